//! Spin applications: `spin.toml`, Spin's routing and request headers, and
//! components exporting `wasi:http/incoming-handler@0.2` or
//! `wasi:http/handler@0.3`.

pub mod capped_body;
pub mod check;
pub mod files;
pub mod http;
pub mod manifest;
pub mod outbound;
pub mod outbound_connect;
pub mod routes;
pub mod runtime_config;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use nebula_spin_interfaces::{AppVariable, AppVariables, ResourceOptions, SpinResources};
use wasmtime::component::Linker;
use wasmtime_wasi_http::handler::{InstantiationError, ProxyHandler};

use self::capped_body::Capped;
use self::http::{ComponentHandler, ComponentRuntime, ReusePolicy, SpinStore};
use self::manifest::SpinManifest;
use self::routes::SpinRouter;
use crate::executor::{self, CompileCache, EngineOptions};
use crate::metrics::{self, AppMetrics};
use crate::server::backpressure::{self, Gate};
use crate::server::{content_length, pages, Body};
use crate::web::csrf::{self, CrossSite};

#[derive(Debug, Clone)]
pub struct SpinOptions {
    pub engine: EngineOptions,
    pub cache_dir: Option<std::path::PathBuf>,
    /// The deadline of components that do not set their own.
    pub timeout: Duration,
    /// Requests that may wait for a slot (default: the manifest's
    /// `queue_size`, else `max_instances`).
    pub queue_size: Option<usize>,
    /// How long one may wait (default: the manifest's `queue_timeout_ms`).
    pub queue_timeout: Option<Duration>,
    pub reuse: ReusePolicy,
    /// Where the default key-value store and SQLite database live
    /// (default: `.spin/` beside the manifest, as Spin does).
    pub data_dir: Option<std::path::PathBuf>,
    /// Spin's runtime configuration file, mapping store labels to files.
    pub runtime_config: Option<std::path::PathBuf>,
}

impl SpinOptions {
    pub fn new(engine: EngineOptions, timeout: Duration) -> SpinOptions {
        SpinOptions {
            engine,
            cache_dir: None,
            timeout,
            queue_size: None,
            queue_timeout: None,
            reuse: ReusePolicy::default(),
            data_dir: None,
            runtime_config: None,
        }
    }
}

pub struct SpinApp {
    pub manifest: SpinManifest,
    router: SpinRouter,
    /// Component id → how its requests are run.
    components: HashMap<String, LoadedComponent>,
    metrics: &'static AppMetrics,
    /// Advances the epoch while requests are in flight (deadlines, yields).
    deadlines: crate::executor::Deadlines,
    /// Instance slots and the queue for them.
    gate: Gate,
    /// The private trees of `files` the components see; removed on drop.
    _files: files::MountedFiles,
}

struct LoadedComponent {
    handler: ProxyHandler<ComponentHandler>,
    /// Whether it speaks WASI 0.3.
    is_p3: bool,
    caps: Caps,
}

/// One component's per-request limits, resolved from its own
/// `tool.nebula.limits`, the app's and the command line.
#[derive(Debug, Clone, Copy)]
struct Caps {
    timeout: Duration,
    max_response_bytes: u64,
}

impl Drop for SpinApp {
    fn drop(&mut self) {
        self.deadlines.stop();
    }
}

impl SpinApp {
    pub fn load(manifest: SpinManifest, opts: SpinOptions) -> Result<SpinApp> {
        for w in &manifest.warnings {
            tracing::warn!("{}: {w}", manifest.file.display());
        }
        // The pool's memories must hold the largest cap any component asks for.
        let mut engine_opts = opts.engine.clone();
        engine_opts.max_memory_bytes = manifest
            .components
            .values()
            .filter_map(|c| c.limits.max_memory_mb.map(|mb| mb << 20))
            .fold(engine_opts.max_memory_bytes, usize::max);
        let engine = executor::new_engine(&engine_opts)?;
        let cache = CompileCache::new(opts.cache_dir.clone());
        let mut linker: Linker<SpinStore> = Linker::new(&engine);
        self::http::add_to_linker(&mut linker)?;
        let router = SpinRouter::new(&manifest)?;
        let app_metrics = AppMetrics::new(
            manifest.components.keys().map(String::as_str),
            router
                .routes()
                .iter()
                .map(|r| (r.component.as_str(), r.raw.as_str())),
        );
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| manifest.base_dir.join(".spin"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
        let backing = runtime_config::Backing::new(&data_dir, opts.runtime_config.as_deref())?;
        let mounted = files::MountedFiles::build(
            &manifest.file,
            &manifest.base_dir,
            manifest.components.values(),
            &data_dir,
            &files::host_state(&backing, &data_dir, opts.cache_dir.as_deref()),
        )?;
        let mut variables = AppVariables::new();
        for (name, v) in &manifest.variables {
            variables.insert(
                name,
                AppVariable {
                    default: v.default.clone(),
                    required: v.required,
                    secret: v.secret,
                },
            );
        }
        let resources = Arc::new(
            SpinResources::new(ResourceOptions {
                key_value: backing.key_value,
                sqlite: backing.sqlite,
                variables,
                environment: None,
                max_kv_store_bytes: Some(manifest.limits.max_kv_store_bytes),
            })
            .with_context(|| format!("{}", manifest.file.display()))?,
        );
        let mut components = HashMap::new();
        for c in manifest.components.values() {
            if !c.source.exists() {
                anyhow::bail!(
                    "component {:?}: {} does not exist; build it with `nebula build -f {}`",
                    c.id,
                    c.source.display(),
                    manifest.file.display()
                );
            }
            let (component, origin) = executor::load(&engine, &cache, &c.source)
                .with_context(|| format!("component {:?}", c.id))?;
            tracing::info!(component = %c.id, ?origin, "loaded");
            let caps = Caps {
                timeout: c
                    .limits
                    .timeout_ms
                    .map_or(opts.timeout, Duration::from_millis),
                max_response_bytes: c
                    .limits
                    .max_response_bytes
                    .unwrap_or(manifest.limits.max_response_bytes)
                    as u64,
            };
            let runtime = ComponentRuntime::new(
                &linker,
                &component,
                c,
                resources.clone(),
                c.limits
                    .max_memory_mb
                    .map_or(opts.engine.max_memory_bytes, |mb| mb << 20),
                caps.timeout,
                opts.reuse,
            )?
            .mount_files(mounted.tree(&c.id));
            let is_p3 = runtime.is_p3();
            let stats = app_metrics
                .component(&c.id)
                .context("every component has metrics")?;
            let first_route = router
                .routes()
                .iter()
                .position(|r| r.component == c.id)
                .map_or(app_metrics.unmatched, |i| app_metrics.route_at(i));
            components.insert(
                c.id.clone(),
                LoadedComponent {
                    handler: ComponentHandler::new(&engine, runtime, stats, first_route),
                    is_p3,
                    caps,
                },
            );
        }
        let gate = Gate::configured(
            opts.engine.max_instances as usize,
            opts.queue_size,
            opts.queue_timeout,
            &manifest.limits,
        );
        Ok(SpinApp {
            manifest,
            router,
            components,
            metrics: app_metrics,
            deadlines: crate::executor::Deadlines::start(&engine),
            gate,
            _files: mounted,
        })
    }

    pub fn routes(&self) -> impl Iterator<Item = (&str, &str, &'static str)> {
        self.router.routes().iter().map(|r| {
            let kind = if self.components[&r.component].is_p3 {
                "wasi:http@0.3"
            } else {
                "wasi:http@0.2"
            };
            (r.raw.as_str(), r.component.as_str(), kind)
        })
    }

    /// What component `id` imports, by name.
    pub fn imports(&self, id: &str) -> Option<Vec<String>> {
        Some(self.components.get(id)?.handler.state().imports())
    }

    pub async fn handle(
        &self,
        mut req: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<Body> {
        let path = req.uri().path().to_string();
        let Some(m) = self.router.route(&path) else {
            return pages::not_found(&path).map(crate::server::full_body);
        };
        if self.manifest.components[&m.route.component].cross_site == CrossSite::Refuse {
            if let Some(why) = csrf::refusal(req.method(), req.headers()) {
                tracing::info!(
                    route = %m.route.raw,
                    "cross-site {} refused with 403: {why} (a component that serves other sites sets cross_site = \"allow\" in [component.{}.tool.nebula])",
                    req.method(),
                    m.route.component
                );
                return pages::error(
                    ::http::StatusCode::FORBIDDEN,
                    "-",
                    "This request came from another site and was refused; nothing was changed.",
                )
                .map(crate::server::full_body);
            }
        }
        let uri = req.uri().clone();
        routes::add_spin_headers(req.headers_mut(), &uri, &m, peer);
        // Transport information only; it confuses guests that forward requests.
        req.headers_mut().remove(::http::header::CONNECTION);
        // wasi:http needs an absolute URI (scheme and authority).
        if req.uri().authority().is_none() {
            let host = req
                .headers()
                .get(::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
                .to_string();
            if let Ok(abs) = format!(
                "http://{host}{}",
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
            )
            .parse()
            {
                *req.uri_mut() = abs;
            }
        }
        let component = &m.route.component;
        let LoadedComponent { handler, caps, .. } = &self.components[component];
        let caps = *caps;
        let limits = &self.manifest.limits;
        if content_length(req.headers()).is_some_and(|n| n > limits.max_body_bytes as u64) {
            return pages::payload_too_large(limits.max_body_bytes).map(crate::server::full_body);
        }
        let stats = self.route_stats(m.route);
        metrics::cpu::charge_request_to(stats);
        // A slot before an instance; refused requests cost a small page.
        let slot = match self.gate.enter().await {
            Ok(slot) => slot,
            Err(why) => {
                tracing::warn!(
                    route = %m.route.raw,
                    waiting = self.gate.waiting(),
                    "all instance slots busy ({why:?}); answered 503"
                );
                return backpressure::busy("-", self.gate.retry_after_secs())
                    .map(crate::server::full_body);
            }
        };
        let req = capped_request(req, limits);
        let started = std::time::Instant::now();
        let _in_flight = self.deadlines.enter();
        // The worker's own expiration (`http::Expiration`) ends a guest that
        // waits in an async host call at its deadline, and drops its instance
        // as it answers. This wall-clock backstop bounds what it cannot: a
        // host call that holds the worker's thread. It fires a little later,
        // so that in the ordinary case the instance is gone by the time the
        // slot is handed on.
        let handled = tokio::time::timeout(
            caps.timeout + BACKSTOP_MARGIN,
            handle_when_pooled(handler, stats, req),
        )
        .await
        .unwrap_or_else(|_| Err(wasmtime::Trap::Interrupt.into()));
        match handled {
            Ok(mut resp) => {
                drop_guest_headers(resp.headers_mut());
                capped_response(resp, component, caps, slot)
            }
            Err(e) if timed_out(&e) || started.elapsed() >= caps.timeout => {
                tracing::error!(
                    component = %component,
                    timeout_ms = caps.timeout.as_millis() as u64,
                    "deadline exceeded; the call was stopped: {e}"
                );
                pages::error(
                    ::http::StatusCode::GATEWAY_TIMEOUT,
                    "-",
                    "The component took too long and was stopped.",
                )
                .map(crate::server::full_body)
            }
            Err(e) => {
                tracing::error!(component = %component, "request failed: {e:?}");
                pages::error(
                    ::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "-",
                    "The component failed while handling this request.",
                )
                .map(crate::server::full_body)
            }
        }
    }
}

/// How long past a component's deadline the wall-clock backstop in
/// [`SpinApp::handle`] answers 504 if the worker has not.
const BACKSTOP_MARGIN: Duration = Duration::from_millis(250);

/// Waits between tries when every instance in the pool is taken.
const POOL_RETRY_WAIT: Duration = Duration::from_millis(5);

/// `handler.handle`, tried again while the instance pool is full. The pool
/// holds `max_instances` instances, as many as there are slots, but a slot
/// is given back when its request's response is done (or its client gone),
/// and the instance behind it is dropped by its worker task a moment later:
/// the request the slot is handed to may find the pool full until then.
/// Bounded by the caller's deadline.
async fn handle_when_pooled(
    handler: &ProxyHandler<ComponentHandler>,
    stats: &'static metrics::RouteStats,
    mut req: wasmtime_wasi_http::handler::Request,
) -> wasmtime::Result<wasmtime_wasi_http::handler::Response> {
    type Failed = InstantiationError<&'static metrics::RouteStats>;
    loop {
        match handler.handle(stats, req).await {
            Err(e)
                if e.downcast_ref::<Failed>()
                    .is_some_and(|f| f.error.is::<wasmtime::PoolConcurrencyLimitError>()) =>
            {
                let failed = e.downcast::<Failed>().expect("checked above");
                req = failed
                    .request
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner());
                tokio::time::sleep(POOL_RETRY_WAIT).await;
            }
            done => return done,
        }
    }
}

/// The guest streams its request body: past `max_body_bytes` or
/// `body_read_timeout_ms` it gets wasi:http's body-size or read-timeout
/// error rather than more bytes.
fn capped_request(
    req: hyper::Request<hyper::body::Incoming>,
    limits: &crate::manifest::Limits,
) -> wasmtime_wasi_http::handler::Request {
    let (max, timeout) = (limits.max_body_bytes as u64, limits.body_read_timeout_ms);
    req.map(move |b| {
        Capped::new(b.map_err(wasmtime_wasi_http::Error::from), max)
            .within(Duration::from_millis(timeout))
            .map_err(move |e| {
                match &e {
                    wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max)) => tracing::info!(
                        "request body over max_body_bytes = {max}; the component was given an error instead"
                    ),
                    wasmtime_wasi_http::Error::ConnectionReadTimeout => tracing::info!(
                        "request body not received within body_read_timeout_ms = {timeout}; the component was given an error instead"
                    ),
                    _ => {}
                }
                e
            })
            .boxed_unsync()
    })
}

/// A response declaring more than the component's `max_response_bytes` is
/// a 500. A streamed one is sent with its status and headers before its
/// body is written, so a body that outgrows the cap is cut off: the client
/// sees an incomplete response, never a whole wrong one. The body holds the
/// request's instance slot until it is done.
fn capped_response(
    resp: wasmtime_wasi_http::handler::Response,
    component: &str,
    caps: Caps,
    slot: backpressure::Slot,
) -> hyper::Response<Body> {
    if let Some(n) = content_length(resp.headers()).filter(|&n| n > caps.max_response_bytes) {
        tracing::error!(
            component,
            "the response declares {n} bytes, over max_response_bytes = {}; answered 500{}",
            caps.max_response_bytes,
            raise_hint(component)
        );
        return response_too_large();
    }
    let component = component.to_string();
    resp.map(move |b| {
        Capped::new(
            b.map_err(|e| Box::new(e) as crate::server::BoxError),
            caps.max_response_bytes,
        )
        .holding(slot)
        .map_err(move |e| {
            if let Some(cap) = e.downcast_ref::<capped_body::CapExceeded>() {
                tracing::error!(
                    component = %component,
                    "response body cut off: {cap}{}",
                    raise_hint(&component)
                );
            }
            e
        })
        .boxed_unsync()
    })
}

fn raise_hint(component: &str) -> String {
    format!(
        " (raise [component.{component}.tool.nebula.limits] max_response_bytes if it is expected)"
    )
}

fn response_too_large() -> hyper::Response<Body> {
    pages::error(
        ::http::StatusCode::INTERNAL_SERVER_ERROR,
        "-",
        "The component's response was larger than this server allows.",
    )
    .map(crate::server::full_body)
}

impl SpinApp {
    /// Requests, CPU, instantiation and memory per component and route.
    pub fn metrics(&self) -> &'static AppMetrics {
        self.metrics
    }

    fn route_stats(&self, route: &routes::SpinRoute) -> &'static metrics::RouteStats {
        match self
            .router
            .routes()
            .iter()
            .position(|r| std::ptr::eq(r, route))
        {
            Some(i) => self.metrics.route_at(i),
            None => self.metrics.unmatched,
        }
    }
}

impl crate::server::Service for SpinApp {
    async fn call(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<Body> {
        let (mut resp, stats) =
            metrics::cpu::request(self.metrics.unmatched, self.handle(req, peer)).await;
        stats.count(resp.status());
        // Every response, the host's own pages included.
        self.manifest.headers.apply(resp.headers_mut());
        resp
    }

    fn security_headers(&self) -> &crate::web::security_headers::SecurityHeaders {
        &self.manifest.headers
    }

    fn metrics(&self) -> Option<&'static AppMetrics> {
        Some(self.metrics)
    }
}

/// Drops the connection and framing headers a component may not set, as
/// for pure components (`convert::to_http_response`). `content-length`
/// stays: wasi:http itself holds the body to it (a body longer or shorter
/// than declared is an error, never sent as is), and the response cap
/// reads it.
fn drop_guest_headers(headers: &mut ::http::HeaderMap) {
    let names: Vec<::http::HeaderName> = headers.keys().cloned().collect();
    for name in names {
        if name == ::http::header::CONTENT_LENGTH {
            continue;
        }
        let values: Vec<::http::HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        let mut kept = Vec::with_capacity(values.len());
        let mut changed = false;
        for v in values {
            match crate::convert::filter_guest_header(
                name.as_str(),
                &String::from_utf8_lossy(v.as_bytes()),
            ) {
                Ok(f) if f.as_bytes() == v.as_bytes() => kept.push(v),
                Ok(f) => {
                    // A CSP that loses its frame-ancestors directive.
                    tracing::warn!(header = %name, "dropped frame-ancestors from the component's response: framing is set by the host");
                    changed = true;
                    kept.extend(::http::HeaderValue::from_str(&f).ok());
                }
                Err(why) => {
                    changed = true;
                    tracing::warn!(header = %name, "dropped a header from the component's response: {why}")
                }
            }
        }
        if changed {
            headers.remove(&name);
            for v in kept {
                headers.append(name.clone(), v);
            }
        }
    }
}

/// Whether a failed request ran out of time: `ProxyHandler`'s request
/// timeout, or the epoch deadline's trap.
fn timed_out(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<wasmtime_wasi_http::handler::ExpirationError>()
        .is_some()
        || matches!(
            e.downcast_ref::<wasmtime::Trap>(),
            Some(wasmtime::Trap::Interrupt)
        )
}

/// The bytes of a response body; for tests.
pub async fn body_bytes(b: Body) -> Result<Bytes> {
    Ok(b.collect()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_bytes())
}
