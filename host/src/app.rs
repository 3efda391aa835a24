//! An app ready to serve: manifest, router, database and components, and the
//! request path that runs through them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, StatusCode};

use crate::convert::{lookup, to_http_response, to_wit_request, FormFields};
use crate::data::{self, DataStore, ReadPlan};
use crate::executor::{
    self, CallError, CompileCache, Deadlines, EngineOptions, PureComponent, PureLinker,
};
use crate::manifest::{Binding, Manifest};
use crate::metrics::{self, AppMetrics};
use crate::router::{RouteMatch, Router};
use crate::server::backpressure::{self, Gate};
use crate::server::{pages, static_files};
use crate::web::csrf::{self, CrossSite};
use crate::web::rate_limit::{self, Limiter};
use crate::web::session::{Sessions, Visitor};

/// The token a component may put in a response header; replaced by the rowid
/// of the last row its effects inserted (e.g. `location: /memes/{{last_insert_rowid}}`).
pub const LAST_INSERT_ROWID: &str = "{{last_insert_rowid}}";

#[derive(Debug, Clone)]
pub struct AppOptions {
    pub engine: EngineOptions,
    pub cache_dir: Option<std::path::PathBuf>,
    /// Overrides the manifest's database path.
    pub database: Option<std::path::PathBuf>,
    pub timeout: Duration,
    /// Requests that may wait for a slot (default: `[limits] queue_size`,
    /// else as many as there are slots).
    pub queue_size: Option<usize>,
    /// How long one may wait (default: `[limits] queue_timeout_ms`).
    pub queue_timeout: Option<Duration>,
    /// Whether an idle trim also pages out the binary's code: about 12 MiB
    /// less resident while idle, for ~4 ms more on the first request after
    /// (benches/RESULTS.md, "Scale to zero").
    pub trim_code: bool,
    /// Whether `[[routes]] rate_limit` is enforced; off only for load tests
    /// and benchmarks that send many requests from one address
    /// (`nebula up --no-rate-limits`).
    pub rate_limits: bool,
}

/// The address a request came from, put in the request's extensions by the
/// server; rate limits count per address.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            engine: EngineOptions::default(),
            cache_dir: None,
            database: None,
            timeout: Duration::from_secs(10),
            queue_size: None,
            queue_timeout: None,
            trim_code: true,
            rate_limits: true,
        }
    }
}

pub struct App {
    pub manifest: Manifest,
    router: Router,
    db: Arc<dyn DataStore>,
    /// Instance slots and the queue in front of them.
    gate: Gate,
    /// The engine lives as long as the app; an idle trim drops the
    /// components, which the next requests load again from the cache.
    runtime: Runtime,
    /// The static folder, canonicalised once so requests only resolve their own path.
    static_root: Option<std::path::PathBuf>,
    opts: AppOptions,
    request_ids: RequestIds,
    metrics: &'static AppMetrics,
    /// The visitor cookie's key and settings, with `[session]`.
    sessions: Option<Sessions>,
    /// Token buckets of the routes with a `rate_limit`.
    limiter: Limiter,
}

/// The engine with its instance pool, and the pre-linked components.
struct Runtime {
    /// Indexed like `manifest.routes`; `None` until the route's component is
    /// loaded. Behind a lock so `nebula up --watch` can swap one component
    /// and a request after an idle trim can load its own: a request clones
    /// its component's `Arc`, so a call in flight finishes on the version it
    /// started with.
    route_components: RwLock<Vec<Option<Arc<PureComponent>>>>,
    /// Kept for swaps: a component must be compiled with the engine that runs it.
    engine: wasmtime::Engine,
    linker: PureLinker,
    deadlines: Deadlines,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.deadlines.stop();
    }
}

impl Runtime {
    /// The engine and linker, and no component yet.
    fn new(manifest: &Manifest, opts: &AppOptions) -> Result<Runtime> {
        // Pure components never use the async ABI; leaving it off saves
        // ~3 µs per call. Pool slots must hold the largest memory any
        // component may grow to; each call's own cap is in its StoreLimits.
        let max_memory_bytes = manifest
            .components
            .values()
            .filter_map(|c| c.limits.max_memory_mb.map(|mb| mb << 20))
            .fold(opts.engine.max_memory_bytes, usize::max);
        let engine = executor::new_engine(&EngineOptions {
            concurrency: false,
            max_memory_bytes,
            ..opts.engine.clone()
        })?;
        let linker = PureLinker::new(&engine)?;
        Ok(Runtime {
            route_components: RwLock::new(vec![None; manifest.routes.len()]),
            deadlines: Deadlines::start(&engine),
            engine,
            linker,
        })
    }

    /// Every component, so that a missing or wrong one stops the start.
    fn load_all(manifest: &Manifest, opts: &AppOptions) -> Result<Runtime> {
        let rt = Runtime::new(manifest, opts)?;
        for name in manifest.components.keys() {
            rt.load_component(manifest, opts, name)?;
        }
        Ok(rt)
    }

    /// Loads component `name` (from the compile cache, unless it changed)
    /// and serves its routes with it.
    fn load_component(
        &self,
        manifest: &Manifest,
        opts: &AppOptions,
        name: &str,
    ) -> Result<Arc<PureComponent>> {
        let c = &manifest.components[name];
        if !c.source.exists() {
            anyhow::bail!(
                "component {:?}: {} does not exist; build it with `nebula build`{}",
                c.name,
                c.source.display(),
                if c.build.is_none() {
                    format!(
                        " after adding [components.{}.build] to {}",
                        c.name,
                        manifest.file.display()
                    )
                } else {
                    String::new()
                }
            );
        }
        let started = std::time::Instant::now();
        let cache = CompileCache::new(opts.cache_dir.clone());
        let (component, origin) = executor::load(&self.engine, &cache, &c.source)
            .with_context(|| format!("component {:?}", c.name))?;
        let pure = Arc::new(PureComponent::new(&c.name, &component, &self.linker)?);
        tracing::info!(
            component = %c.name,
            ?origin,
            elapsed_us = started.elapsed().as_micros() as u64,
            "loaded"
        );
        let mut slots = self
            .route_components
            .write()
            .unwrap_or_else(|p| p.into_inner());
        for (slot, route) in slots.iter_mut().zip(&manifest.routes) {
            if route.component == name {
                *slot = Some(pure.clone());
            }
        }
        Ok(pure)
    }

    /// Drops every component; dropping a component's last use also purges
    /// its memory image from the pool's warm slots.
    fn unload_components(&self) {
        let old: Vec<_> = self
            .route_components
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .map(Option::take)
            .collect();
        drop(old);
    }

    /// The component of route `route_idx`, loaded now if it is not yet.
    fn component(
        &self,
        manifest: &Manifest,
        opts: &AppOptions,
        route_idx: usize,
    ) -> Result<Arc<PureComponent>> {
        if let Some(c) = &self
            .route_components
            .read()
            .unwrap_or_else(|p| p.into_inner())[route_idx]
        {
            return Ok(c.clone());
        }
        // Two first requests may both load it; the cache makes that cheap
        // and the second simply replaces the first's identical copy.
        self.load_component(manifest, opts, &manifest.routes[route_idx].component)
    }
}

/// The parts of an HTTP request the app needs; the body is already read.
pub type HttpRequest = http::Request<Bytes>;
pub type HttpResponse = http::Response<Bytes>;

impl App {
    pub fn load(manifest: Manifest, opts: AppOptions) -> Result<App> {
        let runtime = Runtime::load_all(&manifest, &opts)?;
        let db = data::open(&manifest, opts.database.as_deref())?;
        let router = Router::new(
            manifest
                .routes
                .iter()
                .map(|r| (r.pattern.clone(), r.methods.clone())),
        );
        let gate = Gate::configured(
            opts.engine.max_instances as usize,
            opts.queue_size,
            opts.queue_timeout,
            &manifest.limits,
        );
        // The key is kept beside the database the app really uses (--db too).
        let sessions = manifest
            .session
            .clone()
            .map(|config| {
                let dir = db.local_dir().with_context(|| {
                    format!(
                        "[session] in {}: the database {} keeps no local files, and the session key needs a folder",
                        manifest.file.display(),
                        db.describe()
                    )
                })?;
                Sessions::open(config, dir)
            })
            .transpose()?;
        Ok(App {
            sessions,
            limiter: Limiter::new(),
            router,
            db,
            gate,
            runtime,
            static_root: manifest
                .static_files
                .as_ref()
                .map(|st| st.dir.canonicalize().unwrap_or_else(|_| st.dir.clone())),
            request_ids: RequestIds::new(),
            metrics: AppMetrics::new(
                manifest.components.keys().map(String::as_str),
                manifest
                    .routes
                    .iter()
                    .map(|r| (r.component.as_str(), r.pattern.source())),
            ),
            manifest,
            opts,
        })
    }

    /// Gives memory back: drops the components (and with them their memory
    /// images in the instance pool's warm slots), idle database connections
    /// and free heap pages, and (unless `trim_code` is off) pages out the
    /// binary's code. The engine and its pool's reservations stay: making
    /// them again cost the first request after a trim 2–3 ms. The next request loads its own
    /// component from the compile cache, the others when next asked for.
    pub fn trim(&self) {
        self.runtime.unload_components();
        self.db.trim();
        release_free_heap(self.opts.trim_code);
    }

    /// After the last request: checkpoint the database's WAL into the main
    /// file and close it, so a stopped host leaves one self-contained file.
    pub fn shutdown(&self) {
        match self.db.close() {
            Ok(()) => {
                tracing::info!(db = %self.db.describe(), "database checkpointed and closed")
            }
            Err(e) => tracing::warn!(db = %self.db.describe(), "closing the database: {e:#}"),
        }
    }

    /// Loads component `name` again from its `source` and serves new requests
    /// with it; requests in flight finish on the old version. On any error
    /// the old version keeps serving.
    pub fn swap_component(&self, name: &str) -> Result<()> {
        if !self.manifest.components.contains_key(name) {
            anyhow::bail!(
                "no component named {name:?} in {}",
                self.manifest.file.display()
            );
        }
        self.runtime
            .load_component(&self.manifest, &self.opts, name)?;
        tracing::info!(component = name, "swapped in");
        Ok(())
    }

    /// Requests, CPU, instantiation and memory per component and route.
    pub fn metrics(&self) -> &'static AppMetrics {
        self.metrics
    }

    pub fn database(&self) -> &dyn DataStore {
        &*self.db
    }

    /// Serves one request with a host-chosen seed and the current time.
    pub async fn handle(&self, req: HttpRequest) -> HttpResponse {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.handle_with(req, rand::random(), now_ms).await
    }

    /// Serves one request with the given seed and time: the same request,
    /// seed, time and data give the same response bytes.
    pub async fn handle_with(&self, req: HttpRequest, seed: u64, now_ms: u64) -> HttpResponse {
        let id = self.request_ids.next();
        let is_head = req.method() == Method::HEAD;
        let (mut resp, stats) = metrics::cpu::request(
            self.metrics.unmatched,
            self.dispatch(&id, req, seed, now_ms),
        )
        .await;
        stats.count(resp.status());
        // Every response, the host's own pages included.
        self.manifest.headers.apply(resp.headers_mut());
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        if is_head {
            *resp.body_mut() = Bytes::new();
        }
        resp
    }

    async fn dispatch(&self, id: &str, req: HttpRequest, seed: u64, now_ms: u64) -> HttpResponse {
        let path = req.uri().path().to_string();
        if let Some(st) = &self.manifest.static_files {
            if let Some(rest) = static_files::strip_prefix(&path, &st.prefix) {
                if req.method() != Method::GET && req.method() != Method::HEAD {
                    return pages::method_not_allowed(&["GET", "HEAD"]);
                }
                metrics::cpu::charge_request_to(self.metrics.static_files);
                let root = self.static_root.as_deref().unwrap_or(&st.dir);
                return static_files::serve(root, rest, req.headers());
            }
        }
        let (route_idx, params) = match self.router.route(req.method().as_str(), &path) {
            RouteMatch::Found { route, params } => (route, params),
            RouteMatch::NotFound => return pages::not_found(&path),
            RouteMatch::MethodNotAllowed { allow } => {
                let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
                return pages::method_not_allowed(&allow);
            }
        };
        let route = &self.manifest.routes[route_idx];
        let stats = self.metrics.route_at(route_idx);
        metrics::cpu::charge_request_to(stats);
        if route.cross_site == CrossSite::Refuse {
            if let Some(why) = csrf::refusal(req.method(), req.headers()) {
                tracing::info!(
                    request = id,
                    route = route.pattern.source(),
                    "cross-site {} refused with 403: {why} (a route that serves other sites sets cross_site = \"allow\")",
                    req.method()
                );
                return pages::error(
                    StatusCode::FORBIDDEN,
                    id,
                    "This request came from another site and was refused; nothing was changed.",
                );
            }
        }
        if let (Some(limit), true) = (&route.rate_limit, self.opts.rate_limits) {
            let client = req
                .extensions()
                .get::<ClientAddr>()
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0);
            if let Err(wait) =
                self.limiter
                    .check(route_idx, client, limit, std::time::Instant::now())
            {
                let secs = rate_limit::retry_after_secs(wait);
                tracing::info!(
                    request = id,
                    route = route.pattern.source(),
                    %client,
                    "over rate_limit = {limit}; answered 429, retry after {secs} s"
                );
                let mut r = pages::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    id,
                    "Too many requests from your address; please wait a little and try again.",
                );
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
                return r;
            }
        }
        let mut req = req;
        let visitor = self.sessions.as_ref().map(|s| {
            let v = s.visitor(req.headers());
            s.strip(req.headers_mut());
            v
        });
        let mut resp = self
            .run_route(id, req, route_idx, params, visitor.as_ref(), seed, now_ms)
            .await;
        if let (Some(v), Some(s)) = (&visitor, &self.sessions) {
            s.keep_session_cookie(resp.headers_mut(), v);
        }
        resp
    }

    /// Runs route `route_idx` for a request the checks above let through:
    /// a slot, the reads, the component, its writes.
    #[allow(clippy::too_many_arguments)]
    async fn run_route(
        &self,
        id: &str,
        req: HttpRequest,
        route_idx: usize,
        params: Vec<(String, String)>,
        visitor: Option<&Visitor>,
        seed: u64,
        now_ms: u64,
    ) -> HttpResponse {
        let route = &self.manifest.routes[route_idx];
        let stats = self.metrics.route_at(route_idx);
        // A slot before anything costly (reads, an instance); refused
        // requests cost a small page.
        let _slot = match self.gate.enter().await {
            Ok(slot) => slot,
            Err(why) => {
                tracing::warn!(
                    request = id,
                    route = route.pattern.source(),
                    waiting = self.gate.waiting(),
                    "all instance slots busy ({why:?}); answered 503"
                );
                return backpressure::busy(id, self.gate.retry_after_secs());
            }
        };
        let limits = &self.manifest.components[&route.component].limits;
        let timeout = limits
            .timeout_ms
            .map_or(self.opts.timeout, Duration::from_millis);
        let max_memory = limits
            .max_memory_mb
            .map_or(self.opts.engine.max_memory_bytes, |mb| mb << 20);
        let max_response = limits
            .max_response_bytes
            .unwrap_or(self.manifest.limits.max_response_bytes);
        let component = match self
            .runtime
            .component(&self.manifest, &self.opts, route_idx)
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(request = id, "cannot load the component: {e:#}");
                return pages::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    id,
                    "The app could not be loaded.",
                );
            }
        };
        let component = &component;

        let wit_req = to_wit_request(id, &req, route.pattern.source(), params, seed, now_ms);
        let form = FormFields::new(&wit_req);
        let plans: Vec<ReadPlan> = route
            .reads
            .iter()
            .map(|name| {
                ReadPlan::bind(&self.manifest.reads[name], |b| match b {
                    Binding::Param(n) => lookup(&wit_req.params, n),
                    Binding::Query(n) => lookup(&wit_req.query, n),
                    Binding::Header(n) => lookup(&wit_req.headers, n),
                    Binding::Form(n) => form.get(n),
                    Binding::Session => visitor.map(|v| v.id.clone()),
                    Binding::Seed => Some((seed & i64::MAX as u64).to_string()),
                })
            })
            .collect();
        let data = match self.db.read(plans).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(
                    request = id,
                    route = route.pattern.source(),
                    "answered 500: {e}"
                );
                return pages::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    id,
                    "The data for this page could not be read.",
                );
            }
        };

        let out = match component
            .call(&self.runtime.deadlines, timeout, max_memory, wit_req, data)
            .await
        {
            Ok(out) => out,
            Err(CallError::Timeout { stderr }) => {
                log_output(id, component.name(), "stderr", &stderr);
                tracing::error!(
                    request = id,
                    component = component.name(),
                    timeout_ms = timeout.as_millis() as u64,
                    "deadline exceeded; the call was stopped"
                );
                return pages::error(
                    StatusCode::GATEWAY_TIMEOUT,
                    id,
                    "The function took too long and was stopped.",
                );
            }
            Err(CallError::Trap { message, stderr }) => {
                log_output(id, component.name(), "stderr", &stderr);
                tracing::error!(
                    request = id,
                    component = component.name(),
                    "trapped: {message}"
                );
                return pages::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    id,
                    "The function failed while handling this request.",
                );
            }
        };
        stats.component.instantiated(out.instantiate);
        stats.component.called(out.call);
        stats.component.memory(out.memory_peak);
        log_output(id, component.name(), "stdout", &out.stdout);
        log_output(id, component.name(), "stderr", &out.stderr);
        // Checked before the effects: a refused response writes nothing.
        if out.response.body.len() > max_response {
            tracing::error!(
                request = id,
                component = component.name(),
                "response of {} bytes is over max_response_bytes = {max_response}; answered 500 and applied no writes (raise [components.{}.limits] max_response_bytes if it is expected)",
                out.response.body.len(),
                component.name()
            );
            return pages::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                id,
                "The function's response was too large.",
            );
        }

        // A request that inserts nothing (no effects at all included) has
        // last_insert_rowid 0, never another request's.
        let mut rowid = Some(0);
        let mut out = out;
        if !out.response.effects.is_empty() {
            let effects = std::mem::take(&mut out.response.effects);
            let declared: Vec<(String, String)> = route
                .writes
                .iter()
                .map(|w| (w.clone(), self.manifest.writes[w].sql.clone()))
                .collect();
            let session = visitor.map(|v| v.id.clone());
            match self.db.apply(effects, session, declared).await {
                Ok(r) => rowid = Some(r),
                Err(e) => {
                    tracing::error!(
                        request = id,
                        component = component.name(),
                        "writes refused: {e}"
                    );
                    return pages::error(StatusCode::INTERNAL_SERVER_ERROR, id, "The changes this request asked for could not be saved; nothing was written.");
                }
            }
        }
        match to_http_response(out.response, rowid) {
            Ok(r) => r,
            Err(msg) => {
                tracing::error!(
                    request = id,
                    component = component.name(),
                    "bad response: {msg}"
                );
                pages::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    id,
                    "The function returned a response that is not valid HTTP.",
                )
            }
        }
    }
}

/// Returns freed heap pages to the OS (glibc keeps them otherwise) and asks
/// the kernel to reclaim this executable's clean code pages: after a trim
/// most of the resident memory is code that the next request may not need,
/// and it is paged back in from the file cache on demand.
fn release_free_heap(page_out_code: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc is not using.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    if page_out_code {
        page_out_own_code();
    }
    #[cfg(not(target_os = "linux"))]
    let _ = page_out_code;
}

#[cfg(target_os = "linux")]
fn page_out_own_code() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3).unwrap_or("");
        // Only read-only mappings of our own file: code and constants, never
        // data that was written (those pages would be swapped, not dropped).
        if path != exe.to_string_lossy() || perms.contains('w') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        // SAFETY: advisory only; MADV_PAGEOUT on clean file-backed pages drops
        // them from memory and they fault back in from the file when used.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT);
        }
    }
}

fn log_output(id: &str, component: &str, stream: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for line in String::from_utf8_lossy(bytes).lines() {
        tracing::info!(request = id, component, stream, "{line}");
    }
}

/// Request ids: a per-process random prefix and a counter, cheap and unique
/// enough to find one request in the log.
struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds {
            prefix: rand::random(),
            counter: AtomicU64::new(0),
        }
    }
    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{:08x}-{n:06x}", self.prefix)
    }
}
