//! The application manifest (`app.toml`): what the host serves and how.
//!
//! Parsing happens in two steps: serde reads the TOML into the raw shapes of
//! [`raw`] (rejecting unknown keys and wrong types with the line they are on),
//! then [`Manifest::from_raw`] checks what serde cannot — that every name a
//! route uses is declared, that route patterns parse, that bindings name a
//! real route parameter — and resolves paths against the manifest's folder.

pub mod cache;
mod error;
pub mod limits;
pub(crate) mod raw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

pub use cache::{CacheSettings, RouteCache};
pub use error::ManifestError;
pub(crate) use error::ManifestText;
pub use limits::{ComponentLimits, Limits, ReadLimits};

use crate::router::Pattern;
use crate::web::csrf::CrossSite;
use crate::web::rate_limit::RateLimit;
use crate::web::security_headers::SecurityHeaders;
use crate::web::session::{self, SessionConfig};

/// The methods a route may declare.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file itself, as given.
    pub file: PathBuf,
    /// The folder relative paths in the manifest are resolved against.
    pub base_dir: PathBuf,
    pub name: String,
    pub static_files: Option<StaticFiles>,
    pub database: Database,
    pub limits: Limits,
    pub components: BTreeMap<String, Component>,
    /// Shared so a request's reads can run on a blocking thread.
    pub reads: BTreeMap<String, Arc<Read>>,
    pub writes: BTreeMap<String, Write>,
    pub routes: Vec<Route>,
    /// `[cache]`: the memory memoised responses may take.
    pub cache: CacheSettings,
    /// `[session]`: the host's signed visitor cookie, if the app wants one.
    pub session: Option<SessionConfig>,
    /// `[headers]` over the defaults: what every response gets.
    pub headers: SecurityHeaders,
}

#[derive(Debug, Clone)]
pub struct StaticFiles {
    pub dir: PathBuf,
    /// URL prefix without a trailing slash, e.g. `/static`.
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct Database {
    /// The SQLite file (used unless `url` names another store).
    pub path: PathBuf,
    /// `url = "postgres://…"`: the app's data lives in PostgreSQL.
    pub url: Option<String>,
    pub schema: Option<PathBuf>,
    pub seed: Option<PathBuf>,
    /// A folder of numbered migrations (`data::migrations`), instead of
    /// `schema` and `seed`.
    pub migrations: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    pub source: PathBuf,
    pub build: Option<Build>,
    /// Overrides of the app-wide per-request limits.
    pub limits: ComponentLimits,
}

#[derive(Debug, Clone)]
pub struct Build {
    pub command: String,
    pub workdir: PathBuf,
    /// Files or folders whose change makes the component stale.
    pub watch: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Read {
    pub name: String,
    pub sql: String,
    /// SQL parameter name (without the `:`) → where its value comes from.
    pub bind: BTreeMap<String, Binding>,
    /// Rows, bytes and time this read may take.
    pub limits: ReadLimits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    Param(String),
    Query(String),
    Form(String),
    Header(String),
    /// `session.id`: the visitor id of the host's session cookie.
    Session,
    /// `request.seed`: the request's seed (its low 63 bits, so SQL sees a
    /// non-negative integer), for picks that must be random yet
    /// reproducible, like the random meme.
    Seed,
}

#[derive(Debug, Clone)]
pub struct Write {
    pub name: String,
    pub sql: String,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: Pattern,
    pub methods: Vec<String>,
    pub component: String,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
    /// `rate_limit`: requests per client address, if limited.
    pub rate_limit: Option<RateLimit>,
    /// `cross_site`: whether cross-site POST/PUT/PATCH/DELETE may run.
    pub cross_site: CrossSite,
    /// `cache`: whether (and how) its responses are memoised.
    pub cache: Option<RouteCache>,
    /// `record`: which calls are written down for `nebula replay`.
    pub record: Option<Record>,
}

/// The write parameter the host binds to the visitor id (`[session]`);
/// the guest's args fill the positional ones.
pub const SESSION_PARAM: &str = ":session_id";

impl Manifest {
    /// Reads and validates the manifest at `file`.
    pub fn load(file: &Path) -> Result<Manifest, ManifestError> {
        let bytes = std::fs::read(file).map_err(|e| {
            ManifestError::new(file, None, "", format!("cannot read the manifest: {e}"))
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            ManifestError::new(
                file,
                Some(line),
                "",
                "the manifest is not UTF-8 text; save it as UTF-8".into(),
            )
        })?;
        Self::parse(file, &text)
    }

    /// Parses manifest text; `file` is used for error messages and to resolve
    /// relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let doc = ManifestText { file, text };
        let raw: raw::RawManifest = toml::from_str(text).map_err(|e| doc.toml_error(&e))?;
        Self::from_raw(doc, raw)
    }

    /// What serde cannot check, in the order the tables depend on each
    /// other: routes name components, reads and writes; reads may bind the
    /// session.
    fn from_raw(doc: ManifestText, raw: raw::RawManifest) -> Result<Manifest, ManifestError> {
        let base_dir = base_dir_of(doc.file);
        let name = raw
            .app
            .and_then(|a| a.name)
            .unwrap_or_else(|| "app".to_string());
        let static_files = static_files(doc, &base_dir, raw.r#static)?;
        let database = database(doc, &base_dir, &name, raw.database)?;
        let limits =
            limits::parse_limits(doc.file, doc.text, "limits", raw.limits.unwrap_or_default())?;
        let session = session(doc, raw.session)?;
        let headers = headers(doc, "headers", raw.headers)?;
        let components = components(doc, &base_dir, raw.components)?;
        let reads = reads(doc, raw.reads, session.is_some(), limits.read)?;
        let writes = writes(raw.writes);
        let names = Declared {
            components: &components,
            reads: &reads,
            writes: &writes,
        };
        let routes = routes(doc, raw.routes, &names)?;
        let cache = cache::settings(raw.cache).map_err(|(span, key, m)| doc.error(span, key, m))?;
        Ok(Manifest {
            file: doc.file.to_path_buf(),
            base_dir,
            name,
            static_files,
            database,
            limits,
            components,
            reads,
            writes,
            routes,
            cache,
            session,
            headers,
        })
    }
}

/// The folder a manifest's relative paths are resolved against: its own
/// (`.` for a bare file name).
pub(crate) fn base_dir_of(file: &Path) -> PathBuf {
    file.parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `[static]`: the folder served as is, under a URL prefix.
fn static_files(
    doc: ManifestText,
    base_dir: &Path,
    raw: Option<raw::RawStatic>,
) -> Result<Option<StaticFiles>, ManifestError> {
    let Some(s) = raw else { return Ok(None) };
    let prefix = s.prefix.unwrap_or_else(|| "/static".to_string());
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') {
        return Err(doc.error(
            None,
            "static.prefix",
            format!("expected a path like \"/static\" (leading slash, no trailing slash), found {prefix:?}"),
        ));
    }
    Ok(Some(StaticFiles {
        dir: base_dir.join(s.dir),
        prefix,
    }))
}

/// `[database]`, defaulting to `data/NAME.db` beside the manifest.
fn database(
    doc: ManifestText,
    base_dir: &Path,
    name: &str,
    raw: Option<raw::RawDatabase>,
) -> Result<Database, ManifestError> {
    let default_path = || PathBuf::from(format!("data/{name}.db"));
    if let Some(url) = raw.as_ref().and_then(|d| d.url.as_ref()) {
        let text = url.get_ref();
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(doc.error(
                Some(url.span()),
                "database.url",
                "expected a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE (for SQLite, set `path` instead)".to_string(),
            ));
        }
    }
    Ok(match raw {
        None => Database {
            path: base_dir.join("data").join(format!("{name}.db")),
            url: None,
            schema: None,
            seed: None,
            migrations: None,
        },
        Some(d) => Database {
            path: base_dir.join(d.path.unwrap_or_else(default_path)),
            url: d.url.map(Spanned::into_inner),
            schema: d.schema.map(|p| base_dir.join(p)),
            seed: d.seed.map(|p| base_dir.join(p)),
            migrations: d.migrations.map(|p| base_dir.join(p)),
        },
    })
}

/// `[session]`: the cookie's name and lifetime.
fn session(
    doc: ManifestText,
    raw: Option<raw::RawSession>,
) -> Result<Option<SessionConfig>, ManifestError> {
    let Some(sess) = raw else { return Ok(None) };
    let mut config = SessionConfig::default();
    if let Some(c) = sess.cookie {
        session::check_cookie_name(c.get_ref())
            .map_err(|m| doc.error(Some(c.span()), "session.cookie", m))?;
        config.cookie = c.into_inner();
    }
    if let Some(d) = sess.max_age_days {
        if !(1..=3650).contains(d.get_ref()) {
            return Err(doc.error(
                Some(d.span()),
                "session.max_age_days",
                format!(
                    "expected a number of days from 1 to 3650, found {}",
                    d.get_ref()
                ),
            ));
        }
        config.max_age = std::time::Duration::from_secs(d.get_ref() * 86_400);
    }
    config.secure = sess.secure.unwrap_or(false);
    Ok(Some(config))
}

/// Response headers over the defaults; `table` is where they were written
/// (`headers` in app.toml, `application.tool.nebula.headers` in spin.toml).
pub(crate) fn headers(
    doc: ManifestText,
    table: &str,
    raw: Option<BTreeMap<String, Spanned<String>>>,
) -> Result<SecurityHeaders, ManifestError> {
    let Some(h) = raw else {
        return Ok(SecurityHeaders::default());
    };
    SecurityHeaders::with_overrides(h.iter().map(|(k, v)| (k.as_str(), v.get_ref().as_str())))
        .map_err(|(name, m)| {
            doc.error(
                h.get(name.as_str()).map(Spanned::span),
                &format!("{table}.{name}"),
                m,
            )
        })
}

/// `[components.NAME]`: each component's file, build and limits.
fn components(
    doc: ManifestText,
    base_dir: &Path,
    raw: BTreeMap<String, raw::RawComponent>,
) -> Result<BTreeMap<String, Component>, ManifestError> {
    let mut components = BTreeMap::new();
    for (cname, c) in raw {
        if c.source.as_os_str().is_empty() {
            return Err(doc.error(
                None,
                &format!("components.{cname}.source"),
                "expected the path of the component's .wasm file, found an empty string".into(),
            ));
        }
        let build = c.build.map(|b| {
            let workdir = base_dir.join(b.workdir.unwrap_or_else(|| PathBuf::from(".")));
            let watch = b.watch.iter().map(|w| workdir.join(w)).collect();
            Build {
                command: b.command,
                workdir,
                watch,
            }
        });
        let limits = limits::parse_component_limits(
            doc.file,
            doc.text,
            &format!("components.{cname}.limits"),
            c.limits.unwrap_or_default(),
        )?;
        let component = Component {
            name: cname.clone(),
            source: base_dir.join(c.source),
            build,
            limits,
        };
        components.insert(cname, component);
    }
    Ok(components)
}

/// `[reads.NAME]`: each read's SQL, bindings and limits.
fn reads(
    doc: ManifestText,
    raw: BTreeMap<String, raw::RawRead>,
    has_session: bool,
    defaults: ReadLimits,
) -> Result<BTreeMap<String, Arc<Read>>, ManifestError> {
    let mut reads = BTreeMap::new();
    for (rname, r) in raw {
        let bind = bindings(doc, &rname, r.bind, has_session)?;
        let limits = limits::parse_read_limits(
            doc.file,
            doc.text,
            &format!("reads.{rname}"),
            &r.max_rows,
            &r.max_bytes,
            &r.timeout_ms,
            defaults,
        )?;
        let read = Read {
            name: rname.clone(),
            sql: r.sql,
            bind,
            limits,
        };
        reads.insert(rname, Arc::new(read));
    }
    Ok(reads)
}

/// `[reads.NAME] bind`: where each SQL parameter's value comes from.
fn bindings(
    doc: ManifestText,
    rname: &str,
    raw: BTreeMap<String, Spanned<String>>,
    has_session: bool,
) -> Result<BTreeMap<String, Binding>, ManifestError> {
    let mut bind = BTreeMap::new();
    for (param, source) in raw {
        let key = format!("reads.{rname}.bind.{param}");
        let binding = Binding::parse(source.get_ref()).ok_or_else(|| {
            doc.error(
                Some(source.span()),
                &key,
                format!(
                    "expected \"param.NAME\", \"query.NAME\", \"form.NAME\", \"header.NAME\", \"session.id\" or \"request.seed\", found {:?}",
                    source.get_ref()
                ),
            )
        })?;
        if binding == Binding::Session && !has_session {
            return Err(doc.error(
                Some(source.span()),
                &key,
                "\"session.id\" needs the host's visitor cookie: add a [session] table to the manifest".into(),
            ));
        }
        bind.insert(param, binding);
    }
    Ok(bind)
}

/// `[writes.NAME]`: serde has checked all there is.
fn writes(raw: BTreeMap<String, raw::RawWrite>) -> BTreeMap<String, Write> {
    raw.into_iter()
        .map(|(wname, w)| {
            let write = Write {
                name: wname.clone(),
                sql: w.sql,
            };
            (wname, write)
        })
        .collect()
}

/// The names a route may use.
struct Declared<'a> {
    components: &'a BTreeMap<String, Component>,
    reads: &'a BTreeMap<String, Arc<Read>>,
    writes: &'a BTreeMap<String, Write>,
}

/// `[[routes]]`, each checked against the names declared and the routes
/// before it.
fn routes(
    doc: ManifestText,
    raw: Vec<raw::RawRoute>,
    names: &Declared,
) -> Result<Vec<Route>, ManifestError> {
    let mut routes = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = RouteAt { doc, i };
        let pattern = Pattern::parse(r.path.get_ref())
            .map_err(|m| at.error(Some(r.path.span()), "path", m))?;
        let methods = methods(&at, r.methods.as_deref())?;
        check_route_names(&at, &r, &pattern, names)?;
        check_not_declared_before(&at, &r.path, &pattern, &methods, &routes)?;
        let rate_limit = match &r.rate_limit {
            None => None,
            Some(v) => Some(
                RateLimit::parse(v.get_ref())
                    .map_err(|m| at.error(Some(v.span()), "rate_limit", m))?,
            ),
        };
        let cross_site = match &r.cross_site {
            None => CrossSite::default(),
            Some(v) => CrossSite::parse(v.get_ref())
                .map_err(|m| at.error(Some(v.span()), "cross_site", m))?,
        };
        let record = match &r.record {
            None => None,
            Some(v) => Some(
                Record::parse(v.get_ref()).map_err(|m| at.error(Some(v.span()), "record", m))?,
            ),
        };
        let cache = match &r.cache {
            None => None,
            Some(c) => Some(
                cache::route_cache(c, &methods, &r.writes)
                    .map_err(|(span, key, m)| at.error(span, key, m))?,
            ),
        };
        routes.push(Route {
            pattern,
            methods,
            component: r.component.into_inner(),
            reads: r.reads.into_iter().map(Spanned::into_inner).collect(),
            writes: r.writes.into_iter().map(Spanned::into_inner).collect(),
            rate_limit,
            cross_site,
            cache,
            record,
        });
    }
    Ok(routes)
}

/// The `i`th route, for errors keyed `routes[i].KEY`.
struct RouteAt<'a> {
    doc: ManifestText<'a>,
    i: usize,
}

impl RouteAt<'_> {
    fn error(&self, span: Option<std::ops::Range<usize>>, key: &str, m: String) -> ManifestError {
        self.doc
            .error(span, &format!("routes[{}].{key}", self.i), m)
    }
}

/// A route's `methods`, upper-cased; `GET` when not given.
fn methods(at: &RouteAt, raw: Option<&[Spanned<String>]>) -> Result<Vec<String>, ManifestError> {
    let Some(ms) = raw else {
        return Ok(vec!["GET".to_string()]);
    };
    let mut out = Vec::new();
    for m in ms {
        let upper = m.get_ref().to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            return Err(at.error(
                Some(m.span()),
                "methods",
                format!(
                    "unknown HTTP method {:?}; expected one of {}",
                    m.get_ref(),
                    METHODS.join(", ")
                ),
            ));
        }
        out.push(upper);
    }
    if out.is_empty() {
        return Err(at.error(None, "methods", "expected at least one HTTP method".into()));
    }
    Ok(out)
}

/// The route's component, reads and writes are declared, and each read's
/// `param.NAME` bindings name a parameter of this route.
fn check_route_names(
    at: &RouteAt,
    r: &raw::RawRoute,
    pattern: &Pattern,
    names: &Declared,
) -> Result<(), ManifestError> {
    let c = &r.component;
    if !names.components.contains_key(c.get_ref()) {
        return Err(at.error(
            Some(c.span()),
            "component",
            format!(
                "unknown component {:?}; declare it as [components.{}] or use one of: {}",
                c.get_ref(),
                c.get_ref(),
                self::names(names.components.keys())
            ),
        ));
    }
    for rd in &r.reads {
        let Some(read) = names.reads.get(rd.get_ref()) else {
            return Err(at.error(
                Some(rd.span()),
                "reads",
                format!(
                    "unknown read {:?}; declare it as [reads.{}] or use one of: {}",
                    rd.get_ref(),
                    rd.get_ref(),
                    self::names(names.reads.keys())
                ),
            ));
        };
        check_read_params(at, rd, read, r.path.get_ref(), pattern)?;
    }
    for wr in &r.writes {
        if !names.writes.contains_key(wr.get_ref()) {
            return Err(at.error(
                Some(wr.span()),
                "writes",
                format!(
                    "unknown write {:?}; declare it as [writes.{}] or use one of: {}",
                    wr.get_ref(),
                    wr.get_ref(),
                    self::names(names.writes.keys())
                ),
            ));
        }
    }
    Ok(())
}

/// Each `param.NAME` binding of `read` names a parameter of the route.
fn check_read_params(
    at: &RouteAt,
    rd: &Spanned<String>,
    read: &Read,
    path: &str,
    pattern: &Pattern,
) -> Result<(), ManifestError> {
    for (param, binding) in &read.bind {
        if let Binding::Param(p) = binding {
            if !pattern.param_names().any(|n| n == p) {
                return Err(at.error(
                    Some(rd.span()),
                    "reads",
                    format!(
                        "read {:?} binds :{param} to route parameter {p:?}, but route {path:?} has no such parameter",
                        read.name,
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// No earlier route has the same path for one of the same methods.
fn check_not_declared_before(
    at: &RouteAt,
    path: &Spanned<String>,
    pattern: &Pattern,
    methods: &[String],
    earlier: &[Route],
) -> Result<(), ManifestError> {
    for e in earlier {
        if e.pattern.source() != pattern.source() {
            continue;
        }
        if let Some(m) = methods.iter().find(|m| e.methods.contains(m)) {
            return Err(at.error(
                Some(path.span()),
                "path",
                format!("route {:?} is declared twice for {m}", pattern.source()),
            ));
        }
    }
    Ok(())
}

impl Binding {
    fn parse(s: &str) -> Option<Binding> {
        let (kind, name) = s.split_once('.')?;
        if name.is_empty() {
            return None;
        }
        let name = name.to_string();
        Some(match kind {
            "param" => Binding::Param(name),
            "query" => Binding::Query(name),
            "form" => Binding::Form(name),
            "header" => Binding::Header(name.to_ascii_lowercase()),
            "session" if name == "id" => Binding::Session,
            "request" if name == "seed" => Binding::Seed,
            _ => return None,
        })
    }
}

/// A route's `record`: which of its calls are written down, one file each,
/// for `nebula replay` (see [`crate::replay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Record {
    /// Calls answered 5xx: a trap, a timeout, a bad response or a 5xx status.
    Errors,
    /// Every call.
    All,
}

impl Record {
    pub fn parse(s: &str) -> Result<Record, String> {
        match s {
            "errors" => Ok(Record::Errors),
            "all" => Ok(Record::All),
            other => Err(format!(
                "expected \"errors\" (calls answered 5xx) or \"all\", found {other:?}"
            )),
        }
    }
}

pub(crate) fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = keys.map(String::as_str).collect();
    if v.is_empty() {
        "(none declared)".to_string()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
pub(crate) mod golden;
#[cfg(test)]
mod tests;
