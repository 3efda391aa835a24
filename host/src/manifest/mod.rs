//! The application manifest (`app.toml`): what the host serves and how.
//!
//! Parsing happens in two steps: serde reads the TOML into the raw shapes of
//! [`raw`] (rejecting unknown keys and wrong types with the line they are on),
//! then [`Manifest::from_raw`] checks what serde cannot — that every name a
//! route uses is declared, that route patterns parse, that bindings name a
//! real route parameter — and resolves paths against the manifest's folder.

mod error;
pub mod limits;
pub(crate) mod raw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::ManifestError;
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
    pub path: PathBuf,
    pub schema: Option<PathBuf>,
    pub seed: Option<PathBuf>,
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
        let raw: raw::RawManifest =
            toml::from_str(text).map_err(|e| ManifestError::from_toml(file, text, &e))?;
        Self::from_raw(file, text, raw)
    }

    fn from_raw(file: &Path, text: &str, raw: raw::RawManifest) -> Result<Manifest, ManifestError> {
        let base_dir = file
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let err = |span: Option<std::ops::Range<usize>>, key: &str, msg: String| {
            ManifestError::at_span(file, text, span, key, msg)
        };

        let name = raw
            .app
            .and_then(|a| a.name)
            .unwrap_or_else(|| "app".to_string());

        let static_files = match raw.r#static {
            None => None,
            Some(s) => {
                let prefix = s.prefix.unwrap_or_else(|| "/static".to_string());
                if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') {
                    return Err(err(
                        None,
                        "static.prefix",
                        format!("expected a path like \"/static\" (leading slash, no trailing slash), found {prefix:?}"),
                    ));
                }
                Some(StaticFiles {
                    dir: base_dir.join(s.dir),
                    prefix,
                })
            }
        };

        let database = match raw.database {
            None => Database {
                path: base_dir.join("data").join(format!("{name}.db")),
                schema: None,
                seed: None,
            },
            Some(d) => Database {
                path: base_dir.join(
                    d.path
                        .unwrap_or_else(|| PathBuf::from(format!("data/{name}.db"))),
                ),
                schema: d.schema.map(|p| base_dir.join(p)),
                seed: d.seed.map(|p| base_dir.join(p)),
            },
        };

        let limits = limits::parse_limits(file, text, "limits", raw.limits.unwrap_or_default())?;

        let session = match raw.session {
            None => None,
            Some(sess) => {
                let mut config = SessionConfig::default();
                if let Some(c) = sess.cookie {
                    session::check_cookie_name(c.get_ref())
                        .map_err(|m| err(Some(c.span()), "session.cookie", m))?;
                    config.cookie = c.into_inner();
                }
                if let Some(d) = sess.max_age_days {
                    if !(1..=3650).contains(d.get_ref()) {
                        return Err(err(
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
                Some(config)
            }
        };

        let headers = match raw.headers {
            None => SecurityHeaders::default(),
            Some(h) => {
                let spans: BTreeMap<&str, std::ops::Range<usize>> =
                    h.iter().map(|(k, v)| (k.as_str(), v.span())).collect();
                SecurityHeaders::with_overrides(
                    h.iter().map(|(k, v)| (k.as_str(), v.get_ref().as_str())),
                )
                .map_err(|(name, m)| {
                    err(
                        spans.get(name.as_str()).cloned(),
                        &format!("headers.{name}"),
                        m,
                    )
                })?
            }
        };

        let mut components = BTreeMap::new();
        for (cname, c) in raw.components {
            if c.source.as_os_str().is_empty() {
                return Err(err(
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
                file,
                text,
                &format!("components.{cname}.limits"),
                c.limits.unwrap_or_default(),
            )?;
            components.insert(
                cname.clone(),
                Component {
                    name: cname,
                    source: base_dir.join(c.source),
                    build,
                    limits,
                },
            );
        }

        let mut reads = BTreeMap::new();
        for (rname, r) in raw.reads {
            let mut bind = BTreeMap::new();
            for (param, source) in r.bind {
                let binding = Binding::parse(source.get_ref()).ok_or_else(|| {
                    err(
                        Some(source.span()),
                        &format!("reads.{rname}.bind.{param}"),
                        format!(
                            "expected \"param.NAME\", \"query.NAME\", \"form.NAME\", \"header.NAME\", \"session.id\" or \"request.seed\", found {:?}",
                            source.get_ref()
                        ),
                    )
                })?;
                if binding == Binding::Session && session.is_none() {
                    return Err(err(
                        Some(source.span()),
                        &format!("reads.{rname}.bind.{param}"),
                        "\"session.id\" needs the host's visitor cookie: add a [session] table to the manifest".into(),
                    ));
                }
                bind.insert(param, binding);
            }
            let read_limits = limits::parse_read_limits(
                file,
                text,
                &format!("reads.{rname}"),
                &r.max_rows,
                &r.max_bytes,
                &r.timeout_ms,
                limits.read,
            )?;
            reads.insert(
                rname.clone(),
                Arc::new(Read {
                    name: rname,
                    sql: r.sql,
                    bind,
                    limits: read_limits,
                }),
            );
        }

        let writes = raw
            .writes
            .into_iter()
            .map(|(wname, w)| {
                (
                    wname.clone(),
                    Write {
                        name: wname,
                        sql: w.sql,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();

        let mut routes = Vec::new();
        for (i, r) in raw.routes.into_iter().enumerate() {
            let key = |k: &str| format!("routes[{i}].{k}");
            let pattern = Pattern::parse(r.path.get_ref())
                .map_err(|m| err(Some(r.path.span()), &key("path"), m))?;
            let methods = match r.methods {
                None => vec!["GET".to_string()],
                Some(ms) => {
                    let mut out = Vec::new();
                    for m in ms {
                        let upper = m.get_ref().to_ascii_uppercase();
                        if !METHODS.contains(&upper.as_str()) {
                            return Err(err(
                                Some(m.span()),
                                &key("methods"),
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
                        return Err(err(
                            None,
                            &key("methods"),
                            "expected at least one HTTP method".into(),
                        ));
                    }
                    out
                }
            };
            if !components.contains_key(r.component.get_ref()) {
                return Err(err(
                    Some(r.component.span()),
                    &key("component"),
                    format!(
                        "unknown component {:?}; declare it as [components.{}] or use one of: {}",
                        r.component.get_ref(),
                        r.component.get_ref(),
                        names(components.keys())
                    ),
                ));
            }
            for rd in &r.reads {
                let Some(read) = reads.get(rd.get_ref()) else {
                    return Err(err(
                        Some(rd.span()),
                        &key("reads"),
                        format!(
                            "unknown read {:?}; declare it as [reads.{}] or use one of: {}",
                            rd.get_ref(),
                            rd.get_ref(),
                            names(reads.keys())
                        ),
                    ));
                };
                for (param, binding) in &read.bind {
                    if let Binding::Param(p) = binding {
                        if !pattern.param_names().any(|n| n == p) {
                            return Err(err(
                                Some(rd.span()),
                                &key("reads"),
                                format!(
                                    "read {:?} binds :{param} to route parameter {p:?}, but route {:?} has no such parameter",
                                    read.name,
                                    r.path.get_ref()
                                ),
                            ));
                        }
                    }
                }
            }
            for wr in &r.writes {
                if !writes.contains_key(wr.get_ref()) {
                    return Err(err(
                        Some(wr.span()),
                        &key("writes"),
                        format!(
                            "unknown write {:?}; declare it as [writes.{}] or use one of: {}",
                            wr.get_ref(),
                            wr.get_ref(),
                            names(writes.keys())
                        ),
                    ));
                }
            }
            for earlier in &routes {
                let earlier: &Route = earlier;
                if earlier.pattern.source() == pattern.source() {
                    if let Some(m) = methods.iter().find(|m| earlier.methods.contains(m)) {
                        return Err(err(
                            Some(r.path.span()),
                            &key("path"),
                            format!("route {:?} is declared twice for {m}", pattern.source()),
                        ));
                    }
                }
            }
            let rate_limit = match &r.rate_limit {
                None => None,
                Some(v) => Some(
                    RateLimit::parse(v.get_ref())
                        .map_err(|m| err(Some(v.span()), &key("rate_limit"), m))?,
                ),
            };
            let cross_site = match &r.cross_site {
                None => CrossSite::default(),
                Some(v) => CrossSite::parse(v.get_ref())
                    .map_err(|m| err(Some(v.span()), &key("cross_site"), m))?,
            };
            routes.push(Route {
                pattern,
                methods,
                component: r.component.into_inner(),
                reads: r.reads.into_iter().map(|s| s.into_inner()).collect(),
                writes: r.writes.into_iter().map(|s| s.into_inner()).collect(),
                rate_limit,
                cross_site,
            });
        }

        Ok(Manifest {
            file: file.to_path_buf(),
            base_dir,
            name,
            static_files,
            database,
            limits,
            components,
            reads,
            writes,
            routes,
            session,
            headers,
        })
    }
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

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = keys.map(String::as_str).collect();
    if v.is_empty() {
        "(none declared)".to_string()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests;
