//! Spin application manifests (`spin.toml`, manifest version 2).
//!
//! Nebula reads the keys an HTTP application uses. Anything else Spin knows
//! (other triggers, remote sources, AI models…) is named in a warning, never
//! silently ignored; keys Spin itself does not know are warnings too, since
//! Spin would reject them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::manifest::limits::{parse_component_limits, parse_limits};
use crate::manifest::raw::{RawComponentLimits, RawLimits};
use crate::manifest::{ComponentLimits, Limits, ManifestError};
use crate::web::csrf::CrossSite;
use crate::web::security_headers::SecurityHeaders;

#[derive(Debug, Clone)]
pub struct SpinManifest {
    pub file: PathBuf,
    pub base_dir: PathBuf,
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub variables: BTreeMap<String, Variable>,
    pub triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, SpinComponent>,
    /// `[application.tool.nebula.limits]`: the same keys as app.toml's
    /// `[limits]`, in the table Spin keeps for other tools' settings (Spin
    /// itself ignores it, so the manifest still runs on Spin unchanged).
    pub limits: Limits,
    /// `[application.tool.nebula.headers]`: what every response gets, as
    /// app.toml's `[headers]`.
    pub headers: SecurityHeaders,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Variable {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// `None` for a private endpoint (`route = { private = true }`).
    pub route: Option<String>,
    pub component: String,
}

#[derive(Debug, Clone)]
pub struct SpinComponent {
    pub id: String,
    pub source: PathBuf,
    pub files: Vec<FileMount>,
    /// Globs relative to the manifest's folder: files `files` matched that
    /// these match are not mounted.
    pub exclude_files: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub variables: BTreeMap<String, String>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub build: Option<crate::manifest::Build>,
    /// `[component.ID.tool.nebula.limits]`: this component's deadline,
    /// memory cap and response size over the app's.
    pub limits: ComponentLimits,
    /// `[component.ID.tool.nebula] cross_site`: whether its routes take
    /// cross-site POST/PUT/PATCH/DELETE (default: refused with 403).
    pub cross_site: CrossSite,
}

/// What a component's manifest entry grants the host units, in one place for
/// serving it (`http::ComponentRuntime`) and for `nebula check`.
impl SpinComponent {
    /// The key-value, SQLite and variables units' grants, with default call
    /// limits: the host sets the component's own.
    pub fn spin_grants(&self) -> nebula_spin_interfaces::ComponentGrants {
        nebula_spin_interfaces::ComponentGrants {
            key_value_stores: self.key_value_stores.clone(),
            sqlite_databases: self.sqlite_databases.clone(),
            variables: self.variables.clone(),
            limits: Default::default(),
        }
    }

    /// The outbound HTTP unit's grants.
    pub fn outbound_http_grants(&self) -> super::outbound::OutboundHttpGrants {
        super::outbound::OutboundHttpGrants {
            allowed_hosts: self.allowed_outbound_hosts.clone(),
        }
    }
}

/// One entry of a component's `files` (see [`super::files`] for what each
/// mounts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMount {
    /// A path or glob relative to the manifest's folder: what it names or
    /// matches appears at the same relative path under `/`.
    Pattern(String),
    /// `{ source, destination }`: a file or folder of the app at
    /// `destination`.
    Placement { source: String, destination: String },
}

impl std::fmt::Display for FileMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileMount::Pattern(p) => write!(f, "{p}"),
            FileMount::Placement {
                source,
                destination,
            } => write!(f, "{source} → {destination}"),
        }
    }
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
    version: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tool: RawAppTools,
}

/// `[application.tool.*]`: Spin's place for other tools' settings. Nebula
/// reads its own table and leaves the others alone.
#[derive(Deserialize, Default)]
struct RawAppTools {
    nebula: Option<RawAppNebula>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppNebula {
    limits: Option<RawLimits>,
    headers: Option<BTreeMap<String, toml::Spanned<String>>>,
}

/// `[component.ID.tool.*]`, as [`RawAppTools`].
#[derive(Deserialize, Default, Clone)]
struct RawComponentTools {
    nebula: Option<RawComponentNebula>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawComponentNebula {
    limits: Option<RawComponentLimits>,
    cross_site: Option<toml::Spanned<String>>,
}

#[derive(Deserialize, Clone)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    build: Option<RawBuild>,
    #[serde(default)]
    tool: RawComponentTools,
}

#[derive(Deserialize, Clone)]
struct RawBuild {
    command: toml::Value,
    workdir: Option<PathBuf>,
    #[serde(default)]
    watch: Vec<String>,
}

const APP_KEYS: &[&str] = &[
    "name",
    "version",
    "description",
    "authors",
    "trigger",
    "tool",
];
const COMPONENT_KEYS: &[&str] = &[
    "source",
    "description",
    "files",
    "exclude_files",
    "environment",
    "variables",
    "key_value_stores",
    "sqlite_databases",
    "allowed_outbound_hosts",
    "build",
    "tool",
];
/// Keys Spin knows that Nebula does not act on.
const UNSUPPORTED_COMPONENT_KEYS: &[&str] = &[
    "ai_models",
    "allowed_http_hosts",
    "dependencies",
    "dependencies_inherit_configuration",
];
const TRIGGER_KEYS: &[&str] = &["route", "component", "executor", "id", "static_response"];

impl SpinManifest {
    pub fn is_spin_manifest(file: &Path, text: &str) -> bool {
        file.file_name().is_some_and(|n| n == "spin.toml") || text.contains("spin_manifest_version")
    }

    pub fn load(file: &Path) -> Result<SpinManifest> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        Self::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<SpinManifest> {
        let fname = file.display();
        let doc: toml::Table =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{fname}: {}", e.message().trim()))?;
        let mut warnings = Vec::new();
        check_keys(&doc, &mut warnings);
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            match line {
                Some(l) => anyhow::anyhow!("{fname}:{l}: {}", e.message().trim()),
                None => anyhow::anyhow!("{fname}: {}", e.message().trim()),
            }
        })?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!(
                "{fname}: spin_manifest_version: Nebula runs Spin manifest version 2, found {}; run `spin doctor` or upgrade the manifest",
                raw.spin_manifest_version
            );
        }
        let base_dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));

        let (app_limits, app_headers) = match raw.application.tool.nebula {
            Some(n) => (n.limits, n.headers),
            None => (None, None),
        };
        let limits = parse_limits(
            file,
            text,
            "application.tool.nebula.limits",
            app_limits.unwrap_or_default(),
        )?;
        let headers = match app_headers {
            None => SecurityHeaders::default(),
            Some(h) => SecurityHeaders::with_overrides(
                h.iter().map(|(k, v)| (k.as_str(), v.get_ref().as_str())),
            )
            .map_err(|(name, m)| {
                ManifestError::at_span(
                    file,
                    text,
                    h.get(&name).map(|v| v.span()),
                    &format!("application.tool.nebula.headers.{name}"),
                    m,
                )
            })?,
        };
        let mut components = BTreeMap::new();
        for (id, c) in raw.component.clone() {
            let own = c.tool.nebula.clone().and_then(|n| n.limits);
            let cross_site = match c.tool.nebula.as_ref().and_then(|n| n.cross_site.as_ref()) {
                None => CrossSite::default(),
                Some(v) => CrossSite::parse(v.get_ref()).map_err(|m| {
                    ManifestError::at_span(
                        file,
                        text,
                        Some(v.span()),
                        &format!("component.{id}.tool.nebula.cross_site"),
                        m,
                    )
                })?,
            };
            let mut parsed = component(&fname.to_string(), &base_dir, &id, c)?;
            parsed.cross_site = cross_site;
            parsed.limits = parse_component_limits(
                file,
                text,
                &format!("component.{id}.tool.nebula.limits"),
                own.unwrap_or_default(),
            )?;
            components.insert(id.clone(), parsed);
        }

        let mut triggers = Vec::new();
        for (kind, list) in &raw.trigger {
            if kind != "http" {
                warnings.push(format!(
                    "[[trigger.{kind}]] is not supported by Nebula (HTTP triggers only); its {} trigger(s) are not run",
                    list.len()
                ));
                continue;
            }
            for (i, t) in list.iter().enumerate() {
                let key = format!("trigger.http[{i}]");
                let table = t
                    .as_table()
                    .with_context(|| format!("{fname}: {key}: expected a table"))?;
                if table.contains_key("executor") {
                    let ex = &table["executor"];
                    let kind = ex.get("type").and_then(|v| v.as_str()).unwrap_or("");
                    if kind != "spin" && kind != "http" {
                        warnings.push(format!("{key}.executor: the {kind:?} executor is not supported; the component runs as a wasi:http component"));
                    }
                }
                let route = match table.get("route") {
                    Some(toml::Value::String(r)) => {
                        if !r.starts_with('/') {
                            bail!("{fname}: {key}.route: a route must start with '/', found {r:?}");
                        }
                        Some(r.clone())
                    }
                    Some(toml::Value::Table(t)) if t.get("private").and_then(|v| v.as_bool()) == Some(true) => None,
                    Some(other) => bail!("{fname}: {key}.route: expected a path like \"/hello/...\" or {{ private = true }}, found {other}"),
                    None => bail!("{fname}: {key}: missing `route`"),
                };
                let component_id = match table.get("component") {
                    Some(toml::Value::String(id)) => {
                        if !components.contains_key(id) {
                            bail!(
                                "{fname}: {key}.component: unknown component {id:?}; declare it as [component.{id}]"
                            );
                        }
                        id.clone()
                    }
                    Some(toml::Value::Table(inline)) => {
                        // An inline component gets a synthetic id, as Spin does.
                        let id = format!("inline-component-{i}");
                        let raw: RawComponent = toml::Value::Table(inline.clone())
                            .try_into()
                            .with_context(|| format!("{fname}: {key}.component"))?;
                        components.insert(
                            id.clone(),
                            component(&fname.to_string(), &base_dir, &id, raw)?,
                        );
                        id
                    }
                    _ => bail!(
                        "{fname}: {key}: missing `component` (a component id or an inline table)"
                    ),
                };
                triggers.push(HttpTrigger {
                    route,
                    component: component_id,
                });
            }
        }
        if triggers.is_empty() {
            bail!("{fname}: no [[trigger.http]] entries; Nebula serves HTTP triggers");
        }
        for (name, v) in &raw.variables {
            if v.required && v.default.is_some() {
                bail!("{fname}: variables.{name}: a variable cannot be both `required` and have a `default`");
            }
        }
        Ok(SpinManifest {
            file: file.to_path_buf(),
            base_dir,
            name: raw.application.name,
            version: raw.application.version,
            description: raw.application.description,
            variables: raw.variables,
            triggers,
            components,
            limits,
            headers,
            warnings,
        })
    }
}

fn component(fname: &str, base: &Path, id: &str, c: RawComponent) -> Result<SpinComponent> {
    let source = match &c.source {
        toml::Value::String(s) => base.join(s),
        toml::Value::Table(t) if t.contains_key("url") => bail!(
            "{fname}: component.{id}.source: remote sources ({{ url = ... }}) are not supported; download the .wasm and give its path"
        ),
        other => bail!("{fname}: component.{id}.source: expected the path of a .wasm file, found {other}"),
    };
    let key = format!("{fname}: component.{id}.files");
    let mut files = Vec::new();
    for f in &c.files {
        files.push(match f {
            toml::Value::String(pattern) => {
                super::files::check_relative("entry", pattern).with_context(|| key.clone())?;
                FileMount::Pattern(pattern.clone())
            }
            toml::Value::Table(t) => {
                let source = t.get("source").and_then(|v| v.as_str());
                let dest = t.get("destination").and_then(|v| v.as_str());
                match (source, dest) {
                    (Some(s), Some(d)) => {
                        super::files::check_relative("source", s).with_context(|| key.clone())?;
                        super::files::check_destination(d).with_context(|| key.clone())?;
                        FileMount::Placement {
                            source: s.to_string(),
                            destination: d.to_string(),
                        }
                    }
                    _ => bail!("{key}: expected {{ source = \"dir\", destination = \"/path\" }}"),
                }
            }
            other => bail!("{key}: expected a path, a glob or a table, found {other}"),
        });
    }
    for pattern in &c.exclude_files {
        super::files::check_exclude(pattern)
            .with_context(|| format!("{fname}: component.{id}.exclude_files"))?;
    }
    let build = match c.build {
        None => None,
        Some(b) => {
            let command = match b.command {
                toml::Value::String(s) => s,
                toml::Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(" && "),
                other => {
                    bail!("{fname}: component.{id}.build.command: expected a string, found {other}")
                }
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
            Some(crate::manifest::Build {
                command,
                workdir,
                watch,
            })
        }
    };
    Ok(SpinComponent {
        id: id.to_string(),
        source,
        files,
        exclude_files: c.exclude_files,
        environment: c.environment,
        variables: c.variables,
        key_value_stores: c.key_value_stores,
        sqlite_databases: c.sqlite_databases,
        allowed_outbound_hosts: c.allowed_outbound_hosts,
        build,
        limits: ComponentLimits::default(),
        cross_site: CrossSite::default(),
    })
}

fn check_keys(doc: &toml::Table, warnings: &mut Vec<String>) {
    for key in doc.keys() {
        if ![
            "spin_manifest_version",
            "application",
            "variables",
            "trigger",
            "component",
        ]
        .contains(&key.as_str())
        {
            warnings.push(format!("unknown top-level key `{key}` is ignored"));
        }
    }
    if let Some(app) = doc.get("application").and_then(|a| a.as_table()) {
        for key in app.keys() {
            if !APP_KEYS.contains(&key.as_str()) {
                warnings.push(format!("application.{key} is not supported and is ignored"));
            }
        }
    }
    if let Some(comps) = doc.get("component").and_then(|c| c.as_table()) {
        for (id, c) in comps {
            let Some(c) = c.as_table() else { continue };
            for key in c.keys() {
                if UNSUPPORTED_COMPONENT_KEYS.contains(&key.as_str()) {
                    warnings.push(format!(
                        "component.{id}.{key} is not supported by Nebula and is ignored"
                    ));
                } else if !COMPONENT_KEYS.contains(&key.as_str()) {
                    warnings.push(format!(
                        "component.{id}.{key} is not a Spin component key and is ignored"
                    ));
                }
            }
        }
    }
    if let Some(http) = doc
        .get("trigger")
        .and_then(|t| t.get("http"))
        .and_then(|h| h.as_array())
    {
        for (i, t) in http.iter().enumerate() {
            if let Some(t) = t.as_table() {
                for key in t.keys() {
                    if !TRIGGER_KEYS.contains(&key.as_str()) {
                        warnings.push(format!(
                            "trigger.http[{i}].{key} is not supported and is ignored"
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
version = "1.0.0"
authors = ["me"]
[variables]
greeting = { default = "hello" }
api_key = { required = true, secret = true }
[[trigger.http]]
route = "/hello/..."
component = "hello"
[[trigger.http]]
route = { private = true }
component = "hello"
[[trigger.http]]
route = "/inline"
component = { source = "inline.wasm" }
[[trigger.redis]]
channel = "x"
component = "hello"
[component.hello]
source = "target/hello.wasm"
files = [{ source = "assets", destination = "/assets" }, "static/**/*"]
exclude_files = ["static/drafts/*"]
key_value_stores = ["default"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
ai_models = ["llama2-chat"]
colour = "blue"
[component.hello.variables]
greeting = "{{ greeting }}"
[component.hello.build]
command = "cargo build --release"
watch = ["src/**/*.rs"]
"#;

    #[test]
    fn parses_an_http_app_and_warns_about_the_rest() {
        let m = SpinManifest::parse(Path::new("app/spin.toml"), APP).unwrap();
        assert_eq!(m.name, "demo");
        assert_eq!(m.triggers.len(), 3);
        assert_eq!(m.triggers[0].route.as_deref(), Some("/hello/..."));
        assert_eq!(m.triggers[1].route, None);
        assert!(m.components.contains_key("inline-component-2"));
        let c = &m.components["hello"];
        assert_eq!(c.source, Path::new("app/target/hello.wasm"));
        assert_eq!(
            c.files,
            vec![
                FileMount::Placement {
                    source: "assets".into(),
                    destination: "/assets".into()
                },
                FileMount::Pattern("static/**/*".into()),
            ]
        );
        assert_eq!(c.exclude_files, ["static/drafts/*"]);
        assert_eq!(c.variables["greeting"], "{{ greeting }}");
        assert!(m.variables["api_key"].required);
        let w = m.warnings.join("\n");
        assert!(w.contains("trigger.redis"), "{w}");
        assert!(
            w.contains("component.hello.ai_models is not supported"),
            "{w}"
        );
        assert!(
            w.contains("component.hello.colour is not a Spin component key"),
            "{w}"
        );
        assert!(
            !w.contains("exclude_files"),
            "exclude_files is applied: {w}"
        );
    }

    #[test]
    fn files_that_would_leave_the_app_folder_are_errors_naming_the_key() {
        for (files, said) in [
            (r#"files = ["../secrets/*"]"#, "'..' is not allowed"),
            (r#"files = ["/etc/passwd"]"#, "must be relative"),
            (
                r#"files = [{ source = "assets", destination = "static" }]"#,
                "must be an absolute guest path",
            ),
            (
                r#"files = [{ source = "assets", destination = "/a/../.." }]"#,
                "must not contain '..'",
            ),
            (r#"exclude_files = ["a/[b"]"#, "not a valid glob"),
        ] {
            let bad = APP.replace(
                "files = [{ source = \"assets\", destination = \"/assets\" }, \"static/**/*\"]\nexclude_files = [\"static/drafts/*\"]",
                files,
            );
            assert_ne!(bad, APP);
            let e = format!(
                "{:#}",
                SpinManifest::parse(Path::new("spin.toml"), &bad).unwrap_err()
            );
            assert!(e.contains("spin.toml: component.hello."), "{e}");
            assert!(e.contains(said), "{files}: {e}");
        }
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let bad = APP.replace(
            "component = \"hello\"\n[[trigger.http]]\nroute = { private",
            "component = \"helo\"\n[[trigger.http]]\nroute = { private",
        );
        let e = SpinManifest::parse(Path::new("spin.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spin.toml: trigger.http[0].component: unknown component \"helo\""),
            "{e}"
        );
        let e = SpinManifest::parse(Path::new("spin.toml"), &APP.replace("= 2", "= 1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("manifest version 2"), "{e}");
    }

    #[test]
    fn nebulas_limits_are_read_from_the_tool_tables_spin_ignores() {
        let with = APP
            .replace(
                "[variables]",
                "[application.tool.nebula.limits]\nmax_instances = 2\nqueue_size = 1\nmax_body_bytes = 100\n[application.tool.other]\nanything = true\n[variables]",
            )
            .replace(
                "[component.hello.variables]",
                "[component.hello.tool.nebula.limits]\ntimeout_ms = 250\nmax_response_bytes = 1000\nmax_instance_reuse = 1\n[component.hello.variables]",
            );
        let m = SpinManifest::parse(Path::new("spin.toml"), &with).unwrap();
        assert_eq!(m.limits.max_instances, Some(2));
        assert_eq!(m.limits.queue_size, Some(1));
        assert_eq!(m.limits.max_body_bytes, 100);
        let c = &m.components["hello"].limits;
        assert_eq!(c.timeout_ms, Some(250));
        assert_eq!(c.max_response_bytes, Some(1000));
        assert_eq!(c.max_memory_mb, None);
        assert_eq!(c.max_instance_reuse, Some(1));
        let w = m.warnings.join("\n");
        assert!(
            !w.contains("tool"),
            "tool tables are Spin's, not unknown: {w}"
        );
        // Without them, the defaults.
        let plain = SpinManifest::parse(Path::new("spin.toml"), APP).unwrap();
        assert_eq!(plain.limits.max_instances, None);
        assert_eq!(plain.components["hello"].limits.timeout_ms, None);
    }

    #[test]
    fn max_kv_store_bytes_is_read_and_checked() {
        let plain = SpinManifest::parse(Path::new("spin.toml"), APP).unwrap();
        assert_eq!(
            plain.limits.max_kv_store_bytes,
            nebula_spin_interfaces::DEFAULT_MAX_KV_STORE_BYTES
        );
        let set = APP.replace(
            "[variables]",
            "[application.tool.nebula.limits]\nmax_kv_store_bytes = 4096\n[variables]",
        );
        let m = SpinManifest::parse(Path::new("spin.toml"), &set).unwrap();
        assert_eq!(m.limits.max_kv_store_bytes, 4096);
        let bad = APP.replace(
            "[variables]",
            "[application.tool.nebula.limits]\nmax_kv_store_bytes = 0\n[variables]",
        );
        let line = bad
            .lines()
            .position(|l| l == "max_kv_store_bytes = 0")
            .unwrap()
            + 1;
        let e = SpinManifest::parse(Path::new("spin.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("spin.toml:{line}"))
                && e.contains("application.tool.nebula.limits.max_kv_store_bytes")
                && e.contains("at least 1"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_limit_in_a_tool_table_names_its_key_and_line() {
        let bad = APP.replace(
            "[component.hello.variables]",
            "[component.hello.tool.nebula.limits]\ntimeout_ms = 0\n[component.hello.variables]",
        );
        let line = bad.lines().position(|l| l == "timeout_ms = 0").unwrap() + 1;
        let e = SpinManifest::parse(Path::new("spin.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("spin.toml:{line}"))
                && e.contains("component.hello.tool.nebula.limits.timeout_ms"),
            "{e}"
        );
        let bad = APP.replace(
            "[component.hello.variables]",
            "[component.hello.tool.nebula.limits]\nmax_instance_reuse = 0\n[component.hello.variables]",
        );
        let line = bad
            .lines()
            .position(|l| l == "max_instance_reuse = 0")
            .unwrap()
            + 1;
        let e = SpinManifest::parse(Path::new("spin.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("spin.toml:{line}"))
                && e.contains("component.hello.tool.nebula.limits.max_instance_reuse")
                && e.contains("between 1 and 1000000"),
            "{e}"
        );
        let typo = APP.replace(
            "[variables]",
            "[application.tool.nebula]\nlimit = {}\n[variables]",
        );
        let e = SpinManifest::parse(Path::new("spin.toml"), &typo)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("limit"),
            "an unknown key in Nebula's table is an error: {e}"
        );
    }
}
