//! One description of an app, whatever its manifest: `app.toml`
//! ([`crate::manifest`]) and `spin.toml` ([`crate::spin::manifest`]) are two
//! front ends that read their own syntax and check it, then become an
//! [`AppModel`]: the routes, the components with their limits, what each
//! route may read and write, the static files and the headers. The host
//! ([`crate::host`]) serves an `AppModel` and nothing else; what only one
//! kind of app has (a pure app's database, a Spin app's stores and files)
//! stays in its front end's description, kept in [`Front`], for the part of
//! the host that serves it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::executor::compose::Dependency;
use crate::manifest::{Build, ComponentLimits, Limits, Manifest, Read, StaticFiles};
use crate::router::Pattern;
use crate::spin::manifest::SpinManifest;
use crate::web::csrf::CrossSite;
use crate::web::rate_limit::RateLimit;
use crate::web::security_headers::SecurityHeaders;
use crate::web::session::SessionConfig;

/// Every method a route may answer.
pub const ALL_METHODS: &[&str] = crate::manifest::METHODS;

#[derive(Debug, Clone)]
pub struct AppModel {
    pub name: String,
    /// The manifest file, as given.
    pub file: PathBuf,
    /// The folder relative paths are resolved against.
    pub base_dir: PathBuf,
    pub limits: Limits,
    pub headers: SecurityHeaders,
    pub components: BTreeMap<String, ComponentModel>,
    pub routes: Vec<RouteModel>,
    pub static_files: Option<StaticFiles>,
    /// `[session]`: the host's signed visitor cookie.
    pub session: Option<SessionConfig>,
    /// What the front end alone knows.
    pub front: Front,
}

/// The front end an app came from, with what only that kind of app has.
// One per app, moved once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Front {
    /// `app.toml`: its database, reads and writes.
    Pure(Manifest),
    /// `spin.toml`: variables, stores, files, outbound hosts.
    Spin(SpinManifest),
}

#[derive(Debug, Clone)]
pub struct ComponentModel {
    pub name: String,
    pub source: PathBuf,
    pub build: Option<Build>,
    /// Overrides of the app-wide per-request limits.
    pub limits: ComponentLimits,
    /// Spin's `[component.ID.dependencies]`: components composed into this
    /// one at load (none in app.toml).
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone)]
pub struct RouteModel {
    pub pattern: Pattern,
    /// The route as the manifest writes it (Spin's `/files/...` syntax
    /// included), for metrics, logs and Spin's request headers.
    pub text: String,
    /// `None`: every method (Spin routes; the component decides).
    pub methods: Option<Vec<String>>,
    pub component: String,
    /// The reads run before the call, in order.
    pub reads: Vec<Arc<Read>>,
    /// The writes the component may ask for: (name, SQL).
    pub writes: Vec<(String, String)>,
    pub rate_limit: Option<RateLimit>,
    pub cross_site: CrossSite,
    /// Memoised responses (pure GET routes that ask for it).
    pub cache: Option<crate::manifest::RouteCache>,
    /// `record` (app.toml only): which calls are written down for `nebula replay`.
    pub record: Option<crate::manifest::Record>,
}

impl ComponentModel {
    /// (name, model): what both front ends put in `AppModel::components`.
    fn entry(
        name: &str,
        source: &std::path::Path,
        build: &Option<Build>,
        limits: &ComponentLimits,
        dependencies: &[Dependency],
    ) -> (String, ComponentModel) {
        let model = ComponentModel {
            name: name.to_string(),
            source: source.to_path_buf(),
            build: build.clone(),
            limits: limits.clone(),
            dependencies: dependencies.to_vec(),
        };
        (name.to_string(), model)
    }
}

impl AppModel {
    pub fn is_spin(&self) -> bool {
        matches!(self.front, Front::Spin(_))
    }

    /// The pure front end's manifest, if this is a pure app.
    pub fn pure_manifest(&self) -> Option<&Manifest> {
        match &self.front {
            Front::Pure(m) => Some(m),
            Front::Spin(_) => None,
        }
    }
}

impl From<Manifest> for AppModel {
    fn from(m: Manifest) -> AppModel {
        let components = m
            .components
            .values()
            .map(|c| ComponentModel::entry(&c.name, &c.source, &c.build, &c.limits, &[]))
            .collect();
        let routes = m
            .routes
            .iter()
            .map(|r| RouteModel {
                pattern: r.pattern.clone(),
                text: r.pattern.source().to_string(),
                methods: Some(r.methods.clone()),
                component: r.component.clone(),
                reads: r.reads.iter().map(|n| m.reads[n].clone()).collect(),
                writes: r
                    .writes
                    .iter()
                    .map(|w| (w.clone(), m.writes[w].sql.clone()))
                    .collect(),
                rate_limit: r.rate_limit,
                cross_site: r.cross_site,
                cache: r.cache.clone(),
                record: r.record,
            })
            .collect();
        AppModel {
            name: m.name.clone(),
            file: m.file.clone(),
            base_dir: m.base_dir.clone(),
            limits: m.limits.clone(),
            headers: m.headers.clone(),
            components,
            routes,
            static_files: m.static_files.clone(),
            session: m.session.clone(),
            front: Front::Pure(m),
        }
    }
}

impl TryFrom<SpinManifest> for AppModel {
    type Error = anyhow::Error;

    /// Fails only on a route Nebula's router cannot parse.
    fn try_from(m: SpinManifest) -> Result<AppModel> {
        let components = m
            .components
            .values()
            .map(|c| ComponentModel::entry(&c.id, &c.source, &c.build, &c.limits, &c.dependencies))
            .collect();
        let routes = route_models(&m)?;
        Ok(AppModel {
            name: m.name.clone(),
            file: m.file.clone(),
            base_dir: m.base_dir.clone(),
            limits: m.limits.clone(),
            headers: m.headers.clone(),
            components,
            routes,
            static_files: None,
            session: None,
            front: Front::Spin(m),
        })
    }
}

/// The app model's routes of a Spin app: one per public trigger, answering
/// every method (the component decides), with its component's
/// `cross_site`. Private endpoints (`route = { private = true }`) get none.
pub fn route_models(manifest: &SpinManifest) -> Result<Vec<RouteModel>> {
    let mut routes = Vec::new();
    for t in &manifest.triggers {
        let Some(raw) = &t.route else { continue };
        let pattern = Pattern::parse(&crate::spin::routes::to_nebula_pattern(raw))
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: route {raw:?}", manifest.file.display()))?;
        let cross_site = manifest
            .components
            .get(&t.component)
            .map(|c| c.cross_site)
            .unwrap_or_default();
        routes.push(RouteModel {
            pattern,
            text: raw.clone(),
            methods: None,
            component: t.component.clone(),
            reads: Vec::new(),
            writes: Vec::new(),
            rate_limit: None,
            cross_site,
            cache: None,
            record: None,
        });
    }
    Ok(routes)
}
