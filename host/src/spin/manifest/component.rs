//! One component of spin.toml (`[component.ID]`, or inline in a trigger):
//! each key checked with its line, paths resolved against the manifest's
//! folder.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::raw::{RawBuild, RawComponent, RawComponentNebula};
use super::{FileMount, SpinComponent};
use crate::manifest::limits::parse_component_limits;
use crate::manifest::{Build, ComponentLimits, ManifestError, ManifestText};
use crate::spin::files;
use crate::web::csrf::CrossSite;

/// Where a component was written (`component.ID`, or
/// `trigger.http[N].component` for an inline one), for its errors' keys.
pub(super) struct ComponentAt<'a> {
    pub doc: ManifestText<'a>,
    pub key: String,
}

impl ComponentAt<'_> {
    pub fn error(&self, span: Option<Range<usize>>, key: &str, message: String) -> ManifestError {
        self.doc
            .error(span, &format!("{}.{key}", self.key), message)
    }
}

/// Checks and resolves component `id`; the Spin keys it ignores are named
/// in `warnings`.
pub(super) fn component(
    at: &ComponentAt,
    base: &Path,
    id: &str,
    c: RawComponent,
    warnings: &mut Vec<String>,
) -> Result<SpinComponent, ManifestError> {
    for key in c.unsupported_keys() {
        warnings.push(format!(
            "{}.{key} is not supported by Nebula and is ignored",
            at.key
        ));
    }
    let source = source(at, base, &c.source)?;
    let files = file_mounts(at, &c.files)?;
    check_excludes(at, &c.exclude_files)?;
    check_labels(at, "key_value_stores", &c.key_value_stores)?;
    check_labels(at, "sqlite_databases", &c.sqlite_databases)?;
    let variables = variables(at, c.variables)?;
    let build = c.build.map(|b| build(at, base, b)).transpose()?;
    let (limits, cross_site) = nebula_settings(at, c.tool.nebula)?;
    let dependencies = super::dependencies::dependencies(
        at,
        base,
        c.dependencies,
        c.dependencies_inherit_configuration,
        warnings,
    )?;
    Ok(SpinComponent {
        id: id.to_string(),
        source,
        files,
        exclude_files: c
            .exclude_files
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        environment: c.environment,
        variables,
        key_value_stores: c
            .key_value_stores
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        sqlite_databases: c
            .sqlite_databases
            .into_iter()
            .map(Spanned::into_inner)
            .collect(),
        allowed_outbound_hosts: c.allowed_outbound_hosts,
        build,
        limits,
        cross_site,
        dependencies,
    })
}

/// `source`: a local .wasm file; Spin's remote and registry sources would
/// need a download Nebula does not do.
fn source(
    at: &ComponentAt,
    base: &Path,
    v: &Spanned<toml::Value>,
) -> Result<PathBuf, ManifestError> {
    let message = match v.get_ref() {
        toml::Value::String(s) if !s.is_empty() => return Ok(base.join(s)),
        toml::Value::String(_) => {
            "expected the path of the component's .wasm file, found an empty string".to_string()
        }
        toml::Value::Table(t) if t.contains_key("url") => {
            "remote sources ({ url = ... }) are not supported; download the .wasm and give its path"
                .to_string()
        }
        toml::Value::Table(t) if t.contains_key("package") => {
            "registry sources ({ package = ... }) are not supported; fetch the .wasm and give its path"
                .to_string()
        }
        other => format!("expected the path of a .wasm file, found {other}"),
    };
    Err(at.error(Some(v.span()), "source", message))
}

/// `files`: patterns and `{ source, destination }` placements, none of
/// which may reach outside the manifest's folder.
fn file_mounts(
    at: &ComponentAt,
    entries: &[Spanned<toml::Value>],
) -> Result<Vec<FileMount>, ManifestError> {
    entries
        .iter()
        .map(|f| file_mount(f.get_ref()).map_err(|m| at.error(Some(f.span()), "files", m)))
        .collect()
}

fn file_mount(v: &toml::Value) -> Result<FileMount, String> {
    let checked = |r: anyhow::Result<()>| r.map_err(|e| format!("{e:#}"));
    match v {
        toml::Value::String(pattern) => {
            checked(files::check_relative("entry", pattern))?;
            glob::Pattern::new(pattern).map_err(|e| {
                format!("{pattern:?} is not a valid glob ({e}); fix the pattern")
            })?;
            Ok(FileMount::Pattern(pattern.clone()))
        }
        toml::Value::Table(t) => {
            let placement = "expected { source = \"dir\", destination = \"/path\" }";
            if let Some(k) = t.keys().find(|k| *k != "source" && *k != "destination") {
                return Err(format!("unknown key `{k}` in a placement; {placement}"));
            }
            let field = |k: &str| t.get(k).and_then(|v| v.as_str());
            let (Some(s), Some(d)) = (field("source"), field("destination")) else {
                return Err(format!("{placement}, found {v}"));
            };
            checked(files::check_relative("source", s))?;
            checked(files::check_destination(d))?;
            Ok(FileMount::Placement {
                source: s.to_string(),
                destination: d.to_string(),
            })
        }
        other => Err(format!(
            "expected a path, a glob or {{ source = \"dir\", destination = \"/path\" }}, found {other}"
        )),
    }
}

/// `exclude_files`: globs relative to the manifest's folder.
fn check_excludes(at: &ComponentAt, patterns: &[Spanned<String>]) -> Result<(), ManifestError> {
    for p in patterns {
        files::check_exclude(p.get_ref()).map_err(|e| {
            at.error(
                Some(p.span()),
                "exclude_files",
                format!("{e:#}; fix the pattern"),
            )
        })?;
    }
    Ok(())
}

/// `key_value_stores` and `sqlite_databases`: labels Spin accepts in
/// kebab-case or snake_case.
fn check_labels(
    at: &ComponentAt,
    key: &str,
    labels: &[Spanned<String>],
) -> Result<(), ManifestError> {
    for l in labels {
        let label = l.get_ref();
        if super::check_id(label, '-', false).is_err()
            && super::check_id(label, '_', false).is_err()
        {
            return Err(at.error(
                Some(l.span()),
                key,
                format!("{label:?} is not a label Spin accepts; use kebab-case or snake_case, such as \"default\" or \"my-store\""),
            ));
        }
    }
    Ok(())
}

/// `variables`: names in lower snake_case, as Spin requires; the values are
/// templates resolved when the app loads.
fn variables(
    at: &ComponentAt,
    raw: BTreeMap<Spanned<String>, String>,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        super::check_id(name.get_ref(), '_', true).map_err(|m| {
            at.error(
                Some(name.span()),
                &format!("variables.{}", name.get_ref()),
                format!("a variable name must be lower snake_case, such as \"api_key\": {m}"),
            )
        })?;
        out.insert(name.into_inner(), value);
    }
    Ok(out)
}

/// `[component.ID.build]`: the command (a list is run in turn), its folder
/// and what makes the component stale.
fn build(at: &ComponentAt, base: &Path, b: RawBuild) -> Result<Build, ManifestError> {
    let not_a_command = |found: &dyn std::fmt::Display| {
        at.error(
            Some(b.command.span()),
            "build.command",
            format!("expected a command or a list of commands, found {found}"),
        )
    };
    let command = match b.command.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(parts) => {
            let mut commands = Vec::new();
            for p in parts {
                commands.push(p.as_str().ok_or_else(|| not_a_command(p))?);
            }
            commands.join(" && ")
        }
        other => return Err(not_a_command(other)),
    };
    let workdir = base.join(b.workdir.unwrap_or_else(|| PathBuf::from(".")));
    // Spin's watch entries are globs; their leading folder is what
    // staleness needs.
    let watch = b
        .watch
        .iter()
        .map(|w| {
            let dir: Vec<&str> = w
                .split('/')
                .take_while(|s| !s.contains(['*', '?', '[']))
                .collect();
            workdir.join(dir.join("/"))
        })
        .collect();
    Ok(Build {
        command,
        workdir,
        watch,
    })
}

/// `[component.ID.tool.nebula]`: the component's limits over the app's, and
/// whether its routes take cross-site writes.
fn nebula_settings(
    at: &ComponentAt,
    raw: Option<RawComponentNebula>,
) -> Result<(ComponentLimits, CrossSite), ManifestError> {
    let (limits, cross_site) = match raw {
        Some(n) => (n.limits, n.cross_site),
        None => (None, None),
    };
    let limits = parse_component_limits(
        at.doc.file,
        at.doc.text,
        &format!("{}.tool.nebula.limits", at.key),
        limits.unwrap_or_default(),
    )?;
    let cross_site = match cross_site {
        None => CrossSite::default(),
        Some(v) => CrossSite::parse(v.get_ref())
            .map_err(|m| at.error(Some(v.span()), "tool.nebula.cross_site", m))?,
    };
    Ok((limits, cross_site))
}
