//! Spin application manifests (`spin.toml`, manifest version 2).
//!
//! Nebula reads the keys an HTTP application uses. What Spin would refuse
//! (a key it does not know, a value of the wrong type, a bad id, route or
//! `files` entry) is an error naming the file, the line and the key, as
//! app.toml's are ([`ManifestError`]). Anything Spin knows that Nebula does
//! not act on (other triggers, AI models…) is named in a
//! warning, never silently ignored; what Nebula cannot run (remote sources,
//! registry dependencies) is an error.
//!
//! [`raw`] holds the shapes serde reads; [`component`] checks one component.

mod component;
mod dependencies;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use self::component::ComponentAt;
use self::raw::{RawAppNebula, RawComponentSpec, RawHttpTrigger, RawManifest, RawTriggers};
use crate::manifest::limits::parse_limits;
use crate::manifest::{self as app_manifest, ComponentLimits, Limits, ManifestError, ManifestText};
use crate::router::Pattern;
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
    /// `[[trigger.redis]]`, in order.
    pub redis_triggers: Vec<RedisTrigger>,
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

/// `[variables]`: Spin refuses other keys in a variable's table.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
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

/// One `[[trigger.redis]]`: every message published on `channel` of the
/// server at `address` goes to `component`'s inbound-redis export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTrigger {
    /// `redis://host:port` (or `rediss://`), as written or from
    /// `[application.trigger.redis] address`.
    pub address: String,
    pub channel: String,
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
    /// `[component.ID.dependencies]`: the components that satisfy some of
    /// its imports, composed with it at load.
    pub dependencies: Vec<crate::executor::compose::Dependency>,
}

/// What a component's manifest entry grants the host units, in one place for
/// serving it (`executor::wasi_http`) and for `nebula check`.
impl SpinComponent {
    /// The key-value, SQLite and variables units' grants, with default call
    /// limits: the host sets the component's own.
    pub fn spin_grants(&self) -> nebula_spin_interfaces::ComponentGrants {
        nebula_spin_interfaces::ComponentGrants {
            key_value_stores: self.key_value_stores.clone(),
            sqlite_databases: self.sqlite_databases.clone(),
            variables: self.variables.clone(),
            allowed_outbound_hosts: self.allowed_outbound_hosts.clone(),
            limits: Default::default(),
        }
    }

    /// The outbound HTTP unit's grants.
    pub fn outbound_http_grants(&self) -> crate::executor::wasi_http::outbound::OutboundHttpGrants {
        crate::executor::wasi_http::outbound::OutboundHttpGrants {
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

impl SpinManifest {
    /// Whether `file` is read as spin.toml rather than app.toml: its name,
    /// its version key, or a table only Spin has (so that a spin.toml that
    /// lost its version is told that, not about app.toml's keys).
    pub fn is_spin_manifest(file: &Path, text: &str) -> bool {
        file.file_name().is_some_and(|n| n == "spin.toml")
            || text.contains("spin_manifest_version")
            || text.lines().map(str::trim_start).any(|l| {
                l.starts_with("[application")
                    || l.starts_with("[[trigger.")
                    || l.starts_with("[component.")
            })
    }

    /// Parses spin.toml's text; `file` is used for error messages and to
    /// resolve relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<SpinManifest, ManifestError> {
        let doc = ManifestText { file, text };
        check_version(doc)?;
        let raw: RawManifest = toml::from_str(text).map_err(|e| toml_error(doc, &e))?;
        let base_dir = app_manifest::base_dir_of(file);
        let mut warnings = Vec::new();
        for kind in raw.application.trigger.keys().filter(|k| *k != "redis") {
            warnings.push(format!(
                "application.trigger.{kind} is not used by Nebula and is ignored"
            ));
        }
        let default_redis = redis_default_address(doc, raw.application.trigger.get("redis"))?;
        let (limits, headers) = app_settings(doc, raw.application.tool.nebula)?;
        let mut components = components(doc, &base_dir, raw.component, &mut warnings)?;
        let mut raw_triggers = raw.trigger;
        let redis_triggers = redis_triggers(
            doc,
            &base_dir,
            std::mem::take(&mut raw_triggers.redis),
            default_redis.as_deref(),
            &mut components,
            &mut warnings,
        )?;
        let triggers = http_triggers(
            doc,
            &base_dir,
            raw_triggers,
            !redis_triggers.is_empty(),
            &mut components,
            &mut warnings,
        )?;
        let variables = variables(doc, raw.variables)?;
        Ok(SpinManifest {
            file: file.to_path_buf(),
            base_dir,
            name: raw.application.name,
            version: raw.application.version,
            description: raw.application.description,
            variables,
            triggers,
            redis_triggers,
            components,
            limits,
            headers,
            warnings,
        })
    }
}

const VERSION_KEY: &str = "spin_manifest_version";

/// `spin_manifest_version = 2`, checked before the rest: the other
/// versions have other keys.
fn check_version(doc: ManifestText) -> Result<(), ManifestError> {
    let raw: raw::RawVersion = toml::from_str(doc.text).map_err(|e| doc.toml_error(&e))?;
    match raw.spin_manifest_version {
        Some(v) if v.get_ref().as_integer() == Some(2) => Ok(()),
        Some(v) => Err(doc.error(
            Some(v.span()),
            VERSION_KEY,
            format!(
                "Nebula runs Spin manifest version 2, found {}; run `spin doctor` or upgrade the manifest",
                v.get_ref()
            ),
        )),
        // Where the key belongs: the first line.
        None => Err(ManifestError::new(
            doc.file,
            Some(1),
            VERSION_KEY,
            "missing; Nebula runs Spin manifest version 2: add `spin_manifest_version = 2` at the top".into(),
        )),
    }
}

/// toml's error, with what to do where serde's message only says what is
/// wrong, and the index of the `[[trigger.http]]` table it is in.
fn toml_error(doc: ManifestText, e: &toml::de::Error) -> ManifestError {
    let mut err = doc.toml_error(e);
    if let (Some(line), Some(rest)) = (err.line, err.key.strip_prefix("trigger.http")) {
        let i = trigger_index(doc.text, line);
        err.key = format!("trigger.http[{i}]{rest}");
    }
    if err.message.starts_with("unknown field") {
        let hint = if err.key.contains(".tool.nebula") {
            "; Nebula reads only these keys in its tool table: correct the key or remove it"
        } else {
            "; Spin refuses keys it does not know: correct the key or remove it"
        };
        err.message.push_str(hint);
    } else if err.message.starts_with("missing field") {
        err.message.push_str("; add it");
    }
    err
}

/// Which `[[trigger.http]]` table line `line` (1-based) is in: the headers
/// at or above it, less one.
fn trigger_index(text: &str, line: usize) -> usize {
    text.lines()
        .take(line)
        .filter(|l| l.trim() == "[[trigger.http]]")
        .count()
        .saturating_sub(1)
}

/// `[application.tool.nebula]`: app.toml's `[limits]` and `[headers]`, in
/// the table Spin keeps for other tools (Spin itself ignores it).
fn app_settings(
    doc: ManifestText,
    raw: Option<RawAppNebula>,
) -> Result<(Limits, SecurityHeaders), ManifestError> {
    let (limits, headers) = raw.map_or((None, None), |n| (n.limits, n.headers));
    let limits = parse_limits(
        doc.file,
        doc.text,
        "application.tool.nebula.limits",
        limits.unwrap_or_default(),
    )?;
    let headers = app_manifest::headers(doc, "application.tool.nebula.headers", headers)?;
    Ok((limits, headers))
}

/// `[component.ID]`: ids in kebab-case, as Spin requires.
fn components(
    doc: ManifestText,
    base_dir: &Path,
    raw: BTreeMap<Spanned<String>, raw::RawComponent>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, SpinComponent>, ManifestError> {
    let mut components = BTreeMap::new();
    for (id, c) in raw {
        let key = format!("component.{}", id.get_ref());
        check_id(id.get_ref(), '-', false).map_err(|m| {
            doc.error(
                Some(id.span()),
                &key,
                format!("a component id must be kebab-case, such as \"my-component\": {m}"),
            )
        })?;
        let at = ComponentAt { doc, key };
        let parsed = component::component(&at, base_dir, id.get_ref(), c, warnings)?;
        components.insert(id.into_inner(), parsed);
    }
    Ok(components)
}

/// `[[trigger.http]]`, in order; other trigger types are named in a
/// warning, as they are not run.
fn http_triggers(
    doc: ManifestText,
    base_dir: &Path,
    raw: RawTriggers,
    has_redis: bool,
    components: &mut BTreeMap<String, SpinComponent>,
    warnings: &mut Vec<String>,
) -> Result<Vec<HttpTrigger>, ManifestError> {
    for (kind, n) in &raw.other {
        warnings.push(format!(
            "[[trigger.{kind}]] is not supported by Nebula (HTTP and Redis triggers only); its {n} trigger(s) are not run"
        ));
    }
    let mut triggers = Vec::new();
    for (i, t) in raw.http.into_iter().enumerate() {
        let at = TriggerAt {
            doc,
            i,
            key: format!("trigger.http[{i}]"),
            span: t.span(),
        };
        let t = t.into_inner();
        triggers.push(http_trigger(&at, base_dir, t, components, warnings)?);
    }
    if triggers.is_empty() && !has_redis {
        // At the other triggers, if there are any.
        let line = doc
            .text
            .lines()
            .position(|l| l.trim_start().starts_with("[[trigger."))
            .map(|i| i + 1);
        return Err(ManifestError::new(
            doc.file,
            line,
            "trigger",
            "no [[trigger.http]] or [[trigger.redis]] entries; Nebula serves HTTP and Redis triggers: add one with a `route` and a `component`".into(),
        ));
    }
    Ok(triggers)
}

/// `[application.trigger.redis] address`, the default of every
/// `[[trigger.redis]]`.
fn redis_default_address(
    doc: ManifestText,
    table: Option<&Spanned<toml::Value>>,
) -> Result<Option<String>, ManifestError> {
    let Some(table) = table else { return Ok(None) };
    let key = "application.trigger.redis";
    let Some(t) = table.get_ref().as_table() else {
        return Err(doc.error(
            Some(table.span()),
            key,
            "expected a table with `address`".into(),
        ));
    };
    if let Some(other) = t.keys().find(|k| *k != "address") {
        return Err(doc.error(
            Some(table.span()),
            &format!("{key}.{other}"),
            "unknown key; the Redis trigger's application settings have only `address`".into(),
        ));
    }
    match t.get("address") {
        None => Ok(None),
        Some(toml::Value::String(a)) => Ok(Some(a.clone())),
        Some(other) => Err(doc.error(
            Some(table.span()),
            &format!("{key}.address"),
            format!("expected a string such as \"redis://127.0.0.1:6379\", found {other}"),
        )),
    }
}

/// `[[trigger.redis]]`, in order: each needs a channel, an address (its own
/// or the application's) of the `redis://`/`rediss://` scheme, and a
/// component.
fn redis_triggers(
    doc: ManifestText,
    base_dir: &Path,
    raw: Vec<Spanned<raw::RawRedisTrigger>>,
    default_address: Option<&str>,
    components: &mut BTreeMap<String, SpinComponent>,
    warnings: &mut Vec<String>,
) -> Result<Vec<RedisTrigger>, ManifestError> {
    let mut triggers = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let at = TriggerAt {
            doc,
            i,
            key: format!("trigger.redis[{i}]"),
            span: t.span(),
        };
        let t = t.into_inner();
        let channel = match t.channel {
            Some(c) if !c.get_ref().is_empty() => c.into_inner(),
            Some(c) => return Err(at.error(Some(c.span()), "channel", "empty; name the channel to subscribe to".into())),
            None => return Err(at.error(None, "channel", "missing; name the channel whose messages the component handles (channel = \"messages\")".into())),
        };
        let (address, span) = match (t.address, default_address) {
            (Some(a), _) => {
                let span = Some(a.span());
                (a.into_inner(), span)
            }
            (None, Some(d)) => (d.to_string(), None),
            (None, None) => return Err(at.error(None, "address", "missing; give the Redis server (address = \"redis://127.0.0.1:6379\") here or in [application.trigger.redis]".into())),
        };
        if !(address.starts_with("redis://") || address.starts_with("rediss://")) {
            return Err(at.error(
                span,
                "address",
                format!("{address:?} is not a redis:// or rediss:// URL"),
            ));
        }
        let component = trigger_component(&at, base_dir, t.component, components, warnings)?;
        triggers.push(RedisTrigger {
            address,
            channel,
            component,
        });
    }
    Ok(triggers)
}

/// The `i`th `[[trigger.http]]`: its key and where its table is.
struct TriggerAt<'a> {
    doc: ManifestText<'a>,
    i: usize,
    key: String,
    span: std::ops::Range<usize>,
}

impl TriggerAt<'_> {
    /// An error at `span`, or at the trigger's table when a key is missing.
    fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        message: String,
    ) -> ManifestError {
        let span = span.unwrap_or_else(|| self.span.clone());
        self.doc
            .error(Some(span), &format!("{}.{key}", self.key), message)
    }
}

fn http_trigger(
    at: &TriggerAt,
    base_dir: &Path,
    t: RawHttpTrigger,
    components: &mut BTreeMap<String, SpinComponent>,
    warnings: &mut Vec<String>,
) -> Result<HttpTrigger, ManifestError> {
    warn_ignored_keys(at, &t, warnings);
    let route = route(at, t.route)?;
    let component = trigger_component(at, base_dir, t.component, components, warnings)?;
    Ok(HttpTrigger { route, component })
}

/// The trigger keys Spin knows that Nebula does not act on.
fn warn_ignored_keys(at: &TriggerAt, t: &RawHttpTrigger, warnings: &mut Vec<String>) {
    if let Some(ex) = &t.executor {
        let kind = ex
            .get_ref()
            .get("type")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if kind != "spin" && kind != "http" {
            warnings.push(format!("{}.executor: the {kind:?} executor is not supported; the component runs as a wasi:http component", at.key));
        }
    }
    for (key, given) in [
        ("static_response", t.static_response.is_some()),
        ("components", t.components.is_some()),
    ] {
        if given {
            warnings.push(format!(
                "{}.{key} is not supported by Nebula and is ignored",
                at.key
            ));
        }
    }
}

/// A trigger's `component`: the id of a declared component, or an inline
/// one, which is checked and added to `components` under a synthetic id.
fn trigger_component(
    at: &TriggerAt,
    base_dir: &Path,
    raw: Option<Spanned<RawComponentSpec>>,
    components: &mut BTreeMap<String, SpinComponent>,
    warnings: &mut Vec<String>,
) -> Result<String, ManifestError> {
    let Some(spec) = raw else {
        return Err(at.error(
            None,
            "component",
            "missing; give the id of a [component.ID] (component = \"my-component\") or an inline table (component = { source = \"app.wasm\" })".into(),
        ));
    };
    let span = spec.span();
    match spec.into_inner() {
        RawComponentSpec::Id(id) if components.contains_key(&id) => Ok(id),
        RawComponentSpec::Id(id) => Err(at.error(
            Some(span),
            "component",
            format!(
                "unknown component {id:?}; declare it as [component.{id}] or use one of: {}",
                app_manifest::names(components.keys())
            ),
        )),
        RawComponentSpec::Inline(c) => {
            // As Spin names them.
            let id = match at.key.starts_with("trigger.redis") {
                true => format!("inline-redis-component-{}", at.i),
                false => format!("inline-component-{}", at.i),
            };
            let c_at = ComponentAt {
                doc: at.doc,
                key: format!("{}.component", at.key),
            };
            let parsed = component::component(&c_at, base_dir, &id, *c, warnings)?;
            components.insert(id.clone(), parsed);
            Ok(id)
        }
    }
}

/// A trigger's `route`: a path in Spin's syntax, which must parse as a
/// Nebula route, or `{ private = true }` (no route).
fn route(
    at: &TriggerAt,
    raw: Option<Spanned<toml::Value>>,
) -> Result<Option<String>, ManifestError> {
    let Some(v) = raw else {
        return Err(at.error(
            None,
            "route",
            "missing; add a path (route = \"/hello/...\") or route = { private = true }".into(),
        ));
    };
    match v.get_ref() {
        toml::Value::String(r) => {
            Pattern::parse(&super::routes::to_nebula_pattern(r))
                .map_err(|m| at.error(Some(v.span()), "route", m))?;
            Ok(Some(r.clone()))
        }
        toml::Value::Table(t) if t.get("private").and_then(|p| p.as_bool()) == Some(true) => {
            Ok(None)
        }
        other => Err(at.error(
            Some(v.span()),
            "route",
            format!("expected a path like \"/hello/...\" or {{ private = true }}, found {other}"),
        )),
    }
}

/// `[variables]`: names in lower snake_case, and a value either required
/// or defaulted, as Spin requires.
fn variables(
    doc: ManifestText,
    raw: BTreeMap<Spanned<String>, Spanned<Variable>>,
) -> Result<BTreeMap<String, Variable>, ManifestError> {
    let mut variables = BTreeMap::new();
    for (name, v) in raw {
        let key = format!("variables.{}", name.get_ref());
        check_id(name.get_ref(), '_', true).map_err(|m| {
            doc.error(
                Some(name.span()),
                &key,
                format!("a variable name must be lower snake_case, such as \"api_key\": {m}"),
            )
        })?;
        if v.get_ref().required && v.get_ref().default.is_some() {
            return Err(doc.error(
                Some(v.span()),
                &key,
                "a variable cannot be both `required` and have a `default`; remove one of them"
                    .into(),
            ));
        }
        variables.insert(name.into_inner(), v.into_inner());
    }
    Ok(variables)
}

/// Spin's ids (its manifest's `KebabId`, `SnakeId`, `LowerSnakeId`): words
/// of ASCII letters and digits joined by `delim`, each starting with a
/// letter and all lower-case or all upper-case (only lower-case with
/// `lower`). The error says what was found.
fn check_id(id: &str, delim: char, lower: bool) -> Result<(), String> {
    if id.is_empty() {
        return Err("found an empty name".into());
    }
    for word in id.split(delim) {
        let Some(first) = word.chars().next() else {
            return Err(format!("found an empty word between {delim:?}s in {id:?}"));
        };
        if !first.is_ascii_alphabetic() {
            return Err(format!(
                "each word must start with a letter, found {first:?} in {id:?}"
            ));
        }
        let upper = first.is_ascii_uppercase();
        for ch in word.chars() {
            if !ch.is_ascii_alphanumeric() {
                return Err(format!(
                    "found {ch:?} in {id:?}; use only letters, digits and {delim:?}"
                ));
            }
            if lower && ch.is_ascii_uppercase() {
                return Err(format!("found upper-case {ch:?} in {id:?}"));
            }
            if ch.is_ascii_alphabetic() && ch.is_ascii_uppercase() != upper {
                return Err(format!(
                    "word {word:?} in {id:?} mixes upper and lower case"
                ));
            }
        }
    }
    Ok(())
}
