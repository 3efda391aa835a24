//! The host: one owner, for every kind of app, of what serving takes — the
//! engine and its epoch ticker, the compile cache, the instance gate, the
//! limits (resolved once, at load), metrics, request ids, component swaps,
//! idle trim and shutdown. [`Host::load`] builds it from an
//! [`AppModel`]; [`pipeline`] is the request path through it, stage by
//! stage; [`failure`] is the one place an error becomes a status and a page.
//!
//! Where to plug in:
//! - a kind of component: an [`crate::executor::Executor`] and its
//!   [`crate::executor::Preparer`], chosen in [`components`];
//! - a data store: [`crate::data`];
//! - something in front of the call (a response cache, a recorder): a
//!   [`hooks::CallHook`];
//! - a Spin host interface: [`crate::spin`].

pub mod admission;
mod body;
mod components;
pub mod failure;
mod health;
pub mod hooks;
mod once;
mod options;
mod pipeline;
mod reads;
mod record;
pub mod request_id;
pub mod static_files;
mod trim;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;

pub use options::{HostOptions, SharedEngine, SharedEngines};
pub use trim::release_free_heap;

use self::admission::Gate;
use self::components::{ComponentSet, Components};
use self::hooks::CallHook;
use self::request_id::RequestIds;
use crate::data::DataStore;
use crate::executor::{self, CallLimits, CompileCache, Deadlines, EngineOptions};
use crate::manifest::Manifest;
use crate::metrics::AppMetrics;
use crate::model::{AppModel, Front, ALL_METHODS};
use crate::router::Router;
use crate::spin::manifest::SpinManifest;
use crate::web::rate_limit::Limiter;
use crate::web::session::Sessions;

pub struct Host {
    pub model: AppModel,
    router: Router,
    /// The static folder, canonicalised once so requests only resolve their own path.
    static_root: Option<std::path::PathBuf>,
    components: Components,
    /// Advances the epoch while calls are in flight (deadlines, yields).
    deadlines: Deadlines,
    /// Instance slots and the queue in front of them.
    gate: Gate,
    request_ids: RequestIds,
    metrics: Arc<AppMetrics>,
    /// The pure app's database; Spin components do their own I/O.
    store: Option<Arc<dyn DataStore>>,
    /// The visitor cookie's key and settings, with `[session]`.
    sessions: Option<Sessions>,
    /// Token buckets of the routes with a `rate_limit`.
    limiter: Limiter,
    hooks: Vec<Arc<dyn CallHook>>,
    /// Memoised responses of the routes with `cache`.
    memo: Option<crate::memo::Memo>,
    /// With `--record` or a route's `record`: writes calls down for `nebula replay`.
    recorder: Option<crate::replay::Recorder>,
    /// Set on SIGTERM: the health check fails while requests still get served.
    draining: std::sync::atomic::AtomicBool,
    /// What the last health check found of the data store (logged on change).
    store_answers: std::sync::atomic::AtomicBool,
    /// Kept alive for the Spin parts' private file trees.
    _spin: Option<Arc<crate::spin::app::SpinParts>>,
    opts: HostOptions,
}

impl Drop for Host {
    fn drop(&mut self) {
        // A shared ticker belongs to the platform, not to this app.
        if self.opts.shared_engines.is_none() {
            self.deadlines.stop();
        }
    }
}

impl Host {
    /// A pure app (`app.toml`).
    pub fn load(manifest: Manifest, opts: HostOptions) -> Result<Host> {
        Host::load_model(manifest.into(), opts)
    }

    /// A Spin app (`spin.toml`).
    pub fn load_spin(manifest: SpinManifest, opts: HostOptions) -> Result<Host> {
        for w in &manifest.warnings {
            tracing::warn!("{}: {w}", manifest.file.display());
        }
        Host::load_model(AppModel::try_from(manifest)?, opts)
    }

    /// Any app: engine, components (every one loaded, so that a missing or
    /// wrong one stops the start, unless `defer_components`), data, gate
    /// and metrics.
    pub fn load_model(model: AppModel, opts: HostOptions) -> Result<Host> {
        // First: `--record` on a Spin app stops the start before anything costly.
        let recorder =
            crate::replay::Recorder::new(&model, opts.record.as_deref(), opts.record_all)?;
        // The engine (its pool reserves and guards every slot) and the
        // database (open, migrate, check every statement) are the two costly
        // parts of a start and need nothing from each other: a host making
        // its own engine opens its database on a second thread meanwhile.
        // A platform's app shares an engine, and a store opened at first use
        // costs nothing now, so then there is nothing to overlap.
        let overlap = opts.shared_engines.is_none()
            && matches!(&model.front, Front::Pure(m) if !opens_at_first_use(m, &opts));
        let (runtime, store) = std::thread::scope(|s| -> Result<_> {
            let store_job = overlap
                .then(|| {
                    std::thread::Builder::new()
                        .name("nebula-open-db".into())
                        .spawn_scoped(s, || store_of(&model, &opts))
                })
                .transpose()
                .context("cannot start a thread to open the database")?;
            let runtime = Runtime::of(&model, &opts)?;
            let store = match store_job {
                Some(job) => job
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
                None => store_of(&model, &opts)?,
            };
            Ok((runtime, store))
        })?;
        let Runtime {
            deadlines,
            metrics,
            components,
            spin,
        } = runtime;
        let sessions = sessions(&model, store.as_deref())?;
        let memo = match (&model.front, opts.memo) {
            (Front::Pure(m), true) => crate::memo::Memo::new(
                &model.routes,
                || store.as_ref().and_then(|s| s.versions()),
                m.cache,
            ),
            _ => None,
        };
        Ok(Host {
            router: router_of(&model),
            static_root: model
                .static_files
                .as_ref()
                .map(|st| st.dir.canonicalize().unwrap_or_else(|_| st.dir.clone())),
            components,
            deadlines,
            gate: Gate::configured(
                opts.engine.max_instances as usize,
                opts.queue_size,
                opts.queue_timeout,
                &model.limits,
            ),
            request_ids: RequestIds::new(),
            metrics,
            store,
            sessions,
            limiter: Limiter::new(),
            hooks: Vec::new(),
            memo,
            recorder,
            draining: Default::default(),
            store_answers: std::sync::atomic::AtomicBool::new(true),
            _spin: spin,
            model,
            opts,
        })
    }

    /// Loads every component not loaded yet: after a start with
    /// `defer_components`, once the host serves.
    pub fn load_components(&self) -> Result<()> {
        self.components.load_missing()
    }

    /// Runs `hook` around every call from now on.
    pub fn add_hook(&mut self, hook: Arc<dyn CallHook>) {
        self.hooks.push(hook);
    }

    /// Gives memory back: drops the components (and with them their memory
    /// images in the instance pool's warm slots), idle database connections
    /// and free heap pages, and (unless `trim_code` is off) pages out the
    /// binary's code. The engine and its pool's reservations stay: making
    /// them again cost the first request after a trim 2–3 ms. The next
    /// request loads its own component from the compile cache, the others
    /// when next asked for.
    pub fn trim(&self) {
        self.components.unload_all();
        if let Some(memo) = &self.memo {
            memo.clear();
        }
        if let Some(db) = &self.store {
            db.trim();
        }
        trim::release_free_heap(self.opts.trim_code);
    }

    /// After the last request: checkpoint the database's WAL into the main
    /// file and close it, so a stopped host leaves one self-contained file.
    pub fn shutdown(&self) {
        let Some(db) = self.store.as_ref().filter(|db| db.is_open()) else {
            return;
        };
        match db.close() {
            Ok(()) => tracing::info!(db = %db.describe(), "database checkpointed and closed"),
            Err(e) => tracing::warn!(db = %db.describe(), "closing the database: {e:#}"),
        }
    }

    /// Loads component `name` again from its `source` and serves new requests
    /// with it; requests in flight finish on the old version. On any error
    /// the old version keeps serving.
    pub fn swap_component(&self, name: &str) -> Result<()> {
        if !self.model.components.contains_key(name) {
            anyhow::bail!(
                "no component named {name:?} in {}",
                self.model.file.display()
            );
        }
        self.components.load(name)?;
        // Its keys changed with its digest; the old answers only take room.
        if let Some(memo) = &self.memo {
            memo.clear();
        }
        tracing::info!(component = name, "swapped in");
        Ok(())
    }

    /// Requests, CPU, instantiation and memory per component and route.
    pub fn metrics(&self) -> &Arc<AppMetrics> {
        &self.metrics
    }

    pub fn database(&self) -> Option<&dyn DataStore> {
        self.store.as_deref()
    }

    /// Every route with its component and that component's kind.
    pub fn routes(&self) -> Vec<(String, String, &'static str)> {
        self.model
            .routes
            .iter()
            .map(|r| {
                let kind = self
                    .components
                    .loaded(&r.component)
                    .map_or("not loaded", |c| c.kind().label());
                (r.text.clone(), r.component.clone(), kind)
            })
            .collect()
    }

    /// Which imports of component `name` its Spin dependencies satisfy
    /// (`None` if it is not loaded).
    pub fn dependency_plugs(&self, name: &str) -> Option<Vec<crate::executor::compose::Plug>> {
        self.components.plugs(name)
    }

    /// The Spin app's `[[trigger.redis]]` (none for other apps).
    pub fn redis_triggers(&self) -> &[crate::spin::manifest::RedisTrigger] {
        redis_triggers_of(&self.model)
    }

    /// What a Redis trigger's message goes to: the component (loaded now if
    /// an idle trim dropped it), a fresh request id, and the trigger's stats.
    pub fn message_target(
        &self,
        trigger: &crate::spin::manifest::RedisTrigger,
    ) -> Result<MessageTarget> {
        Ok(MessageTarget {
            component: self.components.get(&trigger.component)?,
            id: self.request_ids.next(),
            route: self
                .metrics
                .route(&trigger.component, &redis_route_label(trigger))
                .clone(),
        })
    }

    /// What component `name` imports, by name.
    pub fn imports(&self, name: &str) -> Option<Vec<String>> {
        Some(self.components.loaded(name)?.imports())
    }

    /// Serves one in-process request with a host-chosen seed and the
    /// current time (tests, benchmarks, embedding).
    pub async fn handle(&self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        self.handle_with(req, rand::random(), now_ms()).await
    }

    /// Serves one in-process request with the given seed and time: the
    /// same request, seed, time and data give the same response bytes.
    pub async fn handle_with(
        &self,
        req: http::Request<Bytes>,
        seed: u64,
        now_ms: u64,
    ) -> http::Response<Bytes> {
        let resp = self
            .serve_payload(req.map(executor::Payload::Whole), None, seed, now_ms)
            .await;
        let (parts, body) = resp.into_parts();
        let bytes = match body {
            executor::Payload::Whole(b) => b,
            executor::Payload::Stream(s) => {
                s.collect().await.map(|c| c.to_bytes()).unwrap_or_default()
            }
        };
        http::Response::from_parts(parts, bytes)
    }
}

fn redis_triggers_of(model: &AppModel) -> &[crate::spin::manifest::RedisTrigger] {
    match &model.front {
        Front::Spin(m) => &m.redis_triggers,
        Front::Pure(_) => &[],
    }
}

/// Where one Redis message goes ([`Host::message_target`]).
pub struct MessageTarget {
    pub component: Arc<dyn executor::Executor>,
    pub id: Arc<str>,
    /// The trigger's stats, where the message is counted and charged.
    pub route: Arc<crate::metrics::RouteStats>,
}

/// How a Redis trigger shows in the metrics, beside the HTTP routes.
pub fn redis_route_label(t: &crate::spin::manifest::RedisTrigger) -> String {
    format!("redis:{}", t.channel)
}

/// The preparers of the kinds of component the app serves.
struct Preparers {
    pure: Option<Box<dyn executor::Preparer>>,
    wasi_http: Option<Box<dyn executor::Preparer>>,
    /// Kept by the host too: it owns the Spin app's private file trees.
    spin: Option<Arc<crate::spin::app::SpinParts>>,
}

/// What runs the app's components: the engine's deadlines, the metrics
/// and the component set, made before the host serves.
struct Runtime {
    deadlines: Deadlines,
    metrics: Arc<AppMetrics>,
    components: Components,
    spin: Option<Arc<crate::spin::app::SpinParts>>,
}

impl Runtime {
    /// The engine (or the platform's shared one), the metrics for these
    /// routes and the components: every one loaded, so that a missing or
    /// wrong one stops the start, or only checked present with
    /// `defer_components`.
    fn of(model: &AppModel, opts: &HostOptions) -> Result<Runtime> {
        let limits = resolve_limits(model, opts);
        let (engine, deadlines) = match &opts.shared_engines {
            Some(shared) => {
                let e = if model.is_spin() {
                    &shared.spin
                } else {
                    &shared.pure
                };
                (e.engine.clone(), e.deadlines.clone())
            }
            None => {
                // The pool's memories must hold the largest cap any component asks for.
                let max_memory_bytes = limits
                    .iter()
                    .map(|(_, _, l)| l.max_memory_bytes)
                    .fold(opts.engine.max_memory_bytes, usize::max);
                // Pure components never use the async ABI; leaving it off saves
                // ~3 µs per call.
                let wanted = EngineOptions {
                    concurrency: model.is_spin(),
                    max_memory_bytes,
                    ..opts.engine.clone()
                };
                let early = opts.early_engine.as_ref().and_then(|e| e.take(&wanted));
                let engine = match early {
                    Some(made) => made?,
                    None => executor::new_engine(&wanted)?,
                };
                let deadlines = Deadlines::start(&engine);
                (engine, deadlines)
            }
        };
        let redis_labels: Vec<(String, String)> = redis_triggers_of(model)
            .iter()
            .map(|t| (t.component.clone(), redis_route_label(t)))
            .collect();
        let components = || model.components.keys().map(String::as_str);
        let routes = || {
            model
                .routes
                .iter()
                .map(|r| (r.component.as_str(), r.text.as_str()))
                .chain(redis_labels.iter().map(|(c, r)| (c.as_str(), r.as_str())))
        };
        // Stats that outlive a load (the platform's) are counted on only
        // when they were made for these very routes: a route's index names
        // its counters on the request path.
        let metrics = match &opts.metrics {
            Some(m) if m.fits(components(), routes()) => m.clone(),
            _ => AppMetrics::new(components(), routes()),
        };
        let cache = CompileCache::new(opts.cache_dir.clone())
            .keeping(opts.shared_engines.as_ref().and_then(|e| e.kept.clone()));
        let deferred = opts.defer_components && !model.is_spin();
        let (preparers, prefetched) = if deferred && opts.shared_engines.is_none() {
            // Making the linker and mapping the components from the cache
            // are the start's last two costs before the first request can
            // be answered (~0.5 ms each), and need only the engine: the
            // linker is made on a second thread while this one maps
            // components until it is done. Both end before the start
            // does, so their CPU is the start's like the rest.
            std::thread::scope(|s| -> Result<_> {
                let linking = std::thread::Builder::new()
                    .name("nebula-link".into())
                    .spawn_scoped(s, || {
                        preparers(model, opts, &engine, &deadlines, metrics.clone())
                    })
                    .context("cannot start a thread to make the linker")?;
                let sources = in_route_order(model, &limits)
                    .filter(|(name, _)| model.components[*name].dependencies.is_empty());
                let mapped =
                    components::prefetch(&engine, &cache, sources, || linking.is_finished());
                let preparers = linking
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                Ok((preparers, mapped))
            })?
        } else {
            (
                preparers(model, opts, &engine, &deadlines, metrics.clone())?,
                Default::default(),
            )
        };
        let Preparers {
            pure,
            wasi_http,
            spin,
        } = preparers;
        let components = Components::new(ComponentSet {
            engine: engine.clone(),
            cache,
            components: limits,
            dependencies: model
                .components
                .iter()
                .filter(|(_, c)| !c.dependencies.is_empty())
                .map(|(name, c)| (name.clone(), c.dependencies.clone()))
                .collect(),
            pure,
            wasi_http,
            build_hint: build_hint(model),
            prefetched,
        });
        if deferred {
            components.check_present()?;
        } else {
            components.load_all()?;
        }
        Ok(Runtime {
            deadlines,
            metrics,
            components,
            spin,
        })
    }
}

/// Each component's name and source, those the routes name first, in the
/// order of their first route (the home page's is usually first), then the
/// rest.
fn in_route_order<'a>(
    model: &'a AppModel,
    components: &'a [(String, std::path::PathBuf, CallLimits)],
) -> impl Iterator<Item = (&'a str, &'a std::path::Path)> {
    let rank = |name: &str| {
        model
            .routes
            .iter()
            .position(|r| r.component == name)
            .unwrap_or(usize::MAX)
    };
    let mut ordered: Vec<_> = components
        .iter()
        .map(|(name, source, _)| (name.as_str(), source.as_path()))
        .collect();
    ordered.sort_by_key(|(name, _)| rank(name));
    ordered.into_iter()
}

/// A pure app's database, opened (or set to open at first use); a Spin app has none.
fn store_of(model: &AppModel, opts: &HostOptions) -> Result<Option<Arc<dyn DataStore>>> {
    match &model.front {
        Front::Pure(m) => Ok(Some(open_store(m, opts)?)),
        Front::Spin(_) => Ok(None),
    }
}

fn preparers(
    model: &AppModel,
    opts: &HostOptions,
    engine: &wasmtime::Engine,
    deadlines: &Deadlines,
    metrics: Arc<AppMetrics>,
) -> Result<Preparers> {
    Ok(match &model.front {
        Front::Pure(_) => Preparers {
            pure: Some(Box::new(executor::pure::PurePreparer::new(
                match &opts.shared_engines {
                    Some(shared) => shared.pure_linker.clone(),
                    None => Arc::new(executor::PureLinker::new(engine)?),
                },
                deadlines.clone(),
            ))),
            wasi_http: None,
            spin: None,
        },
        Front::Spin(m) => {
            let parts = Arc::new(crate::spin::app::SpinParts::configure(
                m,
                spin_config(model, opts),
                engine,
                deadlines,
                metrics,
            )?);
            Preparers {
                pure: None,
                wasi_http: Some(Box::new(parts.clone())),
                spin: Some(parts),
            }
        }
    })
}

/// Whether the app's database waits for its first use: with
/// `defer_database`, or when the app declares no data at all (no reads,
/// writes, session, schema or migrations), so that a function that only
/// computes does not make and open a database file at every start.
fn opens_at_first_use(m: &crate::manifest::Manifest, opts: &HostOptions) -> bool {
    let d = &m.database;
    let declares_data = !m.reads.is_empty()
        || !m.writes.is_empty()
        || m.session.is_some()
        || d.url.is_some()
        || d.schema.is_some()
        || d.seed.is_some()
        || d.migrations.is_some();
    opts.defer_database || !declares_data
}

/// The app's database: opened now (so that a start stops on a migration
/// that fails), or by its first use (see [`opens_at_first_use`]).
fn open_store(m: &crate::manifest::Manifest, opts: &HostOptions) -> Result<Arc<dyn DataStore>> {
    if !opens_at_first_use(m, opts) {
        return crate::data::open_limited(m, opts.database.as_ref(), opts.max_storage_bytes);
    }
    let location = opts
        .database
        .clone()
        .unwrap_or_else(|| crate::data::Location::of(m));
    let label = match &location {
        crate::data::Location::Sqlite(p) => format!("sqlite:{}", p.display()),
        crate::data::Location::Postgres(_) => "the app's PostgreSQL schema".to_string(),
    };
    let (m, max) = (m.clone(), opts.max_storage_bytes);
    Ok(Arc::new(crate::data::LazyStore::new(label, move || {
        crate::data::open_limited(&m, Some(&location), max)
    })))
}

/// The visitor cookie's keys, with `[session]`: kept with the data the app
/// really uses (`--db` too).
fn sessions(model: &AppModel, store: Option<&dyn DataStore>) -> Result<Option<Sessions>> {
    let (Some(config), Some(store)) = (&model.session, store) else {
        return Ok(None);
    };
    if let Some(key) = store.session_key()? {
        return Ok(Some(Sessions::with_key(config.clone(), key)));
    }
    let key = store.host_file("session-key").ok_or_else(|| {
        anyhow::anyhow!(
            "[session]: the data store {} has no place for the session key",
            store.describe()
        )
    })?;
    Ok(Some(Sessions::open(config.clone(), &key)?))
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Each component's limits: its own, else the app's, else the command line's.
fn resolve_limits(
    model: &AppModel,
    opts: &HostOptions,
) -> Vec<(String, std::path::PathBuf, CallLimits)> {
    model
        .components
        .values()
        .map(|c| {
            let l = &c.limits;
            let mut limits = CallLimits {
                timeout: l
                    .timeout_ms
                    .map_or(opts.timeout, std::time::Duration::from_millis),
                max_memory_bytes: l
                    .max_memory_mb
                    .map_or(opts.engine.max_memory_bytes, |mb| mb << 20),
                max_response_bytes: l
                    .max_response_bytes
                    .unwrap_or(model.limits.max_response_bytes),
            };
            if opts.shared_engines.is_some() {
                // On a platform the operator's limits are ceilings.
                limits.timeout = limits.timeout.min(opts.timeout);
                limits.max_memory_bytes = limits.max_memory_bytes.min(opts.engine.max_memory_bytes);
            }
            (c.name.clone(), c.source.clone(), limits)
        })
        .collect()
}

/// What a Spin app's parts need from the command line and the model.
fn spin_config(model: &AppModel, opts: &HostOptions) -> crate::spin::app::SpinConfig {
    let mut first_routes: Vec<(String, usize)> = Vec::new();
    for (i, r) in model.routes.iter().enumerate() {
        if !first_routes.iter().any(|(c, _)| c == &r.component) {
            first_routes.push((r.component.clone(), i));
        }
    }
    crate::spin::app::SpinConfig {
        data_dir: opts.data_dir.clone(),
        runtime_config: opts.runtime_config.clone(),
        cache_dir: opts.cache_dir.clone(),
        default_timeout: opts.timeout,
        default_max_memory: opts.engine.max_memory_bytes,
        reuse: opts.reuse,
        first_routes,
    }
}

/// The router over the model's routes; a Spin route answers every method.
fn router_of(model: &AppModel) -> Router {
    let all: Vec<String> = ALL_METHODS.iter().map(|m| m.to_string()).collect();
    Router::new(model.routes.iter().map(|r| {
        (
            r.pattern.clone(),
            r.methods.clone().unwrap_or_else(|| all.clone()),
        )
    }))
}

/// What to tell someone whose component file is missing.
fn build_hint(model: &AppModel) -> Box<dyn Fn(&str) -> String + Send + Sync> {
    let file = model.file.display().to_string();
    let spin = model.is_spin();
    let has_build: std::collections::BTreeSet<String> = model
        .components
        .values()
        .filter(|c| c.build.is_some())
        .map(|c| c.name.clone())
        .collect();
    Box::new(move |name| {
        if spin {
            format!("build it with `nebula build -f {file}`")
        } else if has_build.contains(name) {
            "build it with `nebula build`".to_string()
        } else {
            format!("build it with `nebula build` after adding [components.{name}.build] to {file}")
        }
    })
}

impl crate::server::Service for Host {
    async fn call(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<crate::server::Body> {
        let req = req.map(|b| {
            b.map_err(|e| Box::new(e) as crate::server::BoxError)
                .boxed_unsync()
        });
        self.serve(req, Some(peer), rand::random(), now_ms()).await
    }

    fn security_headers(&self) -> &crate::web::security_headers::SecurityHeaders {
        &self.model.headers
    }

    fn trim(&self) {
        Host::trim(self);
    }

    fn metrics(&self) -> Option<Arc<AppMetrics>> {
        Some(self.metrics.clone())
    }

    fn shutdown(&self) {
        Host::shutdown(self);
    }

    fn drain(&self) {
        Host::begin_drain(self);
    }
}
