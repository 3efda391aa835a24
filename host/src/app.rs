//! An app ready to serve: manifest, router, database and components, and the
//! request path that runs through them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};

use crate::contract::{Request as WitRequest, Response as WitResponse};
use crate::data::{Database, ReadPlan};
use crate::executor::{
    self, CallError, CompileCache, Deadlines, EngineOptions, PureComponent, PureLinker,
};
use crate::manifest::{Binding, Manifest};
use crate::router::{RouteMatch, Router};
use crate::server::backpressure::{self, Gate};
use crate::server::{pages, static_files};

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
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            engine: EngineOptions::default(),
            cache_dir: None,
            database: None,
            timeout: Duration::from_secs(10),
            queue_size: None,
            queue_timeout: None,
        }
    }
}

pub struct App {
    pub manifest: Manifest,
    router: Router,
    db: Arc<Database>,
    /// Instance slots and the queue in front of them.
    gate: Gate,
    /// Dropped by an idle trim and loaded again (from the compile cache) by
    /// the next request.
    runtime: RwLock<Option<Arc<Runtime>>>,
    /// The static folder, canonicalised once so requests only resolve their own path.
    static_root: Option<std::path::PathBuf>,
    opts: AppOptions,
    request_ids: RequestIds,
}

/// The engine with its instance pool, and the pre-linked components.
struct Runtime {
    /// Indexed like `manifest.routes`.
    route_components: Vec<Arc<PureComponent>>,
    deadlines: Deadlines,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.deadlines.stop();
    }
}

impl Runtime {
    fn load(manifest: &Manifest, opts: &AppOptions) -> Result<Runtime> {
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
        let cache = CompileCache::new(opts.cache_dir.clone());
        let linker = PureLinker::new(&engine)?;
        let mut by_name: HashMap<&str, Arc<PureComponent>> = HashMap::new();
        for c in manifest.components.values() {
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
            let (component, origin) = executor::load(&engine, &cache, &c.source)
                .with_context(|| format!("component {:?}", c.name))?;
            tracing::info!(component = %c.name, ?origin, "loaded");
            let pure = PureComponent::new(&c.name, &component, &linker)?;
            by_name.insert(c.name.as_str(), Arc::new(pure));
        }
        let route_components = manifest
            .routes
            .iter()
            .map(|r| by_name[r.component.as_str()].clone())
            .collect();
        Ok(Runtime {
            route_components,
            deadlines: Deadlines::start(&engine),
        })
    }
}

/// The parts of an HTTP request the app needs; the body is already read.
pub type HttpRequest = http::Request<Bytes>;
pub type HttpResponse = http::Response<Bytes>;

impl App {
    pub fn load(manifest: Manifest, opts: AppOptions) -> Result<App> {
        let runtime = Runtime::load(&manifest, &opts)?;
        let db = match &opts.database {
            Some(path) => Database::open_at(path, &manifest),
            None => Database::open(&manifest),
        }?;
        let router = Router::new(
            manifest
                .routes
                .iter()
                .map(|r| (r.pattern.clone(), r.methods.clone())),
        );
        let slots = opts.engine.max_instances as usize;
        let gate = Gate::new(
            slots,
            opts.queue_size
                .or(manifest.limits.queue_size)
                .unwrap_or(slots),
            opts.queue_timeout
                .unwrap_or(Duration::from_millis(manifest.limits.queue_timeout_ms)),
        );
        Ok(App {
            router,
            db: Arc::new(db),
            gate,
            runtime: RwLock::new(Some(Arc::new(runtime))),
            static_root: manifest
                .static_files
                .as_ref()
                .map(|st| st.dir.canonicalize().unwrap_or_else(|_| st.dir.clone())),
            request_ids: RequestIds::new(),
            manifest,
            opts,
        })
    }

    /// Gives memory back: drops the engine and its instance pool, idle
    /// database connections and free heap pages. The next request loads the
    /// components again from the compile cache, without compiling.
    pub fn trim(&self) {
        let runtime = self
            .runtime
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(runtime);
        self.db.trim();
        release_free_heap();
    }

    /// After the last request: checkpoint the database's WAL into the main
    /// file and close it, so a stopped host leaves one self-contained file.
    pub fn shutdown(&self) {
        match self.db.close() {
            Ok(()) => {
                tracing::info!(db = %self.db.path().display(), "database checkpointed and closed")
            }
            Err(e) => tracing::warn!(db = %self.db.path().display(), "closing the database: {e:#}"),
        }
    }

    fn runtime(&self) -> Result<Arc<Runtime>> {
        if let Some(rt) = self
            .runtime
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(rt.clone());
        }
        let mut slot = self.runtime.write().unwrap_or_else(|p| p.into_inner());
        if let Some(rt) = slot.as_ref() {
            return Ok(rt.clone());
        }
        let started = std::time::Instant::now();
        let rt = Arc::new(Runtime::load(&self.manifest, &self.opts)?);
        tracing::info!(
            elapsed_us = started.elapsed().as_micros() as u64,
            "reloaded after an idle trim"
        );
        *slot = Some(rt.clone());
        Ok(rt)
    }

    pub fn database(&self) -> &Database {
        &self.db
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
        let mut resp = self.dispatch(&id, req, seed, now_ms).await;
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
        let runtime = match self.runtime() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(request = id, "cannot load the components: {e:#}");
                return pages::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    id,
                    "The app could not be loaded.",
                );
            }
        };
        let component = &runtime.route_components[route_idx];

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
                })
            })
            .collect();
        let data = match self.db.read(&plans) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(
                    request = id,
                    route = route.pattern.source(),
                    "read failed: {e:#}"
                );
                return pages::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    id,
                    "The data for this page could not be read.",
                );
            }
        };

        let out = match component
            .call(&runtime.deadlines, timeout, max_memory, wit_req, data)
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

        let mut rowid = None;
        let mut out = out;
        if !out.response.effects.is_empty() {
            let effects = std::mem::take(&mut out.response.effects);
            let declared: Vec<(String, String)> = route
                .writes
                .iter()
                .map(|w| (w.clone(), self.manifest.writes[w].sql.clone()))
                .collect();
            match self.db.apply_off_thread(effects, declared).await {
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

fn lookup(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Form fields of a urlencoded body, parsed only if a read binds one.
struct FormFields<'a> {
    req: &'a WitRequest,
    parsed: std::cell::OnceCell<Vec<(String, String)>>,
}

impl<'a> FormFields<'a> {
    fn new(req: &'a WitRequest) -> Self {
        FormFields {
            req,
            parsed: std::cell::OnceCell::new(),
        }
    }
    fn get(&self, name: &str) -> Option<String> {
        let fields = self.parsed.get_or_init(|| {
            let is_form = self.req.headers.iter().any(|(k, v)| {
                k == "content-type" && v.starts_with("application/x-www-form-urlencoded")
            });
            if !is_form {
                return Vec::new();
            }
            form_urlencoded::parse(&self.req.body)
                .into_owned()
                .collect()
        });
        lookup(fields, name)
    }
}

fn to_wit_request(
    id: &str,
    req: &HttpRequest,
    route: &str,
    params: Vec<(String, String)>,
    seed: u64,
    now_ms: u64,
) -> WitRequest {
    let uri = req.uri();
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8_lossy()
        .into_owned();
    let query = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    WitRequest {
        id: id.to_string(),
        method: req.method().as_str().to_string(),
        path,
        route: route.to_string(),
        query,
        headers,
        params,
        body: req.body().to_vec(),
        seed,
        now_ms,
    }
}

fn to_http_response(resp: WitResponse, rowid: Option<i64>) -> Result<HttpResponse, String> {
    let status = StatusCode::from_u16(resp.status)
        .map_err(|_| format!("status {} is not an HTTP status", resp.status))?;
    let mut out = http::Response::builder().status(status);
    let headers = out.headers_mut().expect("fresh builder");
    for (k, v) in resp.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name {k:?}"))?;
        let value = match rowid {
            Some(id) if v.contains(LAST_INSERT_ROWID) => {
                v.replace(LAST_INSERT_ROWID, &id.to_string())
            }
            _ => v,
        };
        let value =
            HeaderValue::from_str(&value).map_err(|_| format!("invalid value for header {k:?}"))?;
        headers.append(name, value);
    }
    if !headers.contains_key(CONTENT_TYPE) && !resp.body.is_empty() {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    out.body(Bytes::from(resp.body)).map_err(|e| e.to_string())
}

/// Returns freed heap pages to the OS (glibc keeps them otherwise) and asks
/// the kernel to reclaim this executable's clean code pages: after a trim
/// most of the resident memory is code that the next request may not need,
/// and it is paged back in from the file cache on demand.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc is not using.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    page_out_own_code();
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
