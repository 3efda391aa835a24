//! Executors: what runs one component for one request.
//!
//! Every kind of component sits behind one trait, [`Executor`]: the host
//! loads a component through the compile cache ([`cache`]), hands it to the
//! executor of its kind to prepare (pre-link against that kind's imports),
//! and then calls it once per request with a [`Call`], getting back an
//! [`Outcome`]: the response, the effects it asks for and what it cost.
//!
//! - [`pure`]: the pure world (`handle(request, data) -> response`), a
//!   fresh instance per call, the closed WASI set and nothing else.
//! - [`wasi_http`]: `wasi:http/incoming-handler@0.2` and
//!   `wasi:http/handler@0.3` components (Spin apps, `wasmtime serve`'s kind),
//!   with Spin's host interfaces.
//!
//! To add a kind of component: implement [`Executor`] in a folder of its own
//! here, and let [`crate::host::loader`] choose it for the components of
//! that kind. The host's request path does not change.

mod cache;
mod closed_wasi;
mod componentize;
pub mod compose;
mod deadline;
mod engine;
pub mod pure;
pub mod wasi_http;
mod wasm_kind;

pub use cache::{CompileCache, KeptComponents, Origin};
pub use closed_wasi::{closed_ctx, ClosedOutput, CLOSED_WASI_PACKAGES};
pub use deadline::Deadlines;
pub use engine::{new_engine, EarlyEngine, EngineOptions};
pub use pure::{CallOutput, PureCallError, PureComponent, PureExecutor, PureLinker};

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::contract::{Effect, Table};
use crate::metrics::RouteStats;

pub use crate::body::{Body, BoxError};

/// A future an executor returns; boxed so executors of every kind fit
/// behind one `dyn Executor`.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, CallError>> + Send + 'a>>;

/// The kind of a component, which decides its executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// The pure world: `handle(request, data) -> response`.
    Pure,
    /// `wasi:http/incoming-handler@0.2`: a fresh instance per request.
    WasiHttp02,
    /// `wasi:http/handler@0.3`: instances reused up to a bound.
    WasiHttp03,
    /// Spin's Redis handler (`inbound-redis`): a fresh instance per message.
    SpinRedis,
}

impl ComponentKind {
    pub fn label(self) -> &'static str {
        match self {
            ComponentKind::Pure => "pure",
            ComponentKind::WasiHttp02 => "wasi:http@0.2",
            ComponentKind::WasiHttp03 => "wasi:http@0.3",
            ComponentKind::SpinRedis => "Spin Redis handler",
        }
    }
}

/// One component, prepared and ready to run requests.
pub trait Executor: Send + Sync + 'static {
    /// The component's name in the manifest.
    fn name(&self) -> &str;
    fn kind(&self) -> ComponentKind;
    /// Every import of the component, for `nebula check`.
    fn imports(&self) -> Vec<String>;
    /// Whether the request body is read whole before the call (a pure
    /// component gets it in its request record, and a route's reads may
    /// bind form fields); otherwise the component streams it.
    fn wants_whole_body(&self) -> bool;
    /// Runs one request.
    fn call(&self, call: Call) -> CallFuture<'_>;
    /// Its handler of messages (a Redis trigger's), if it has one.
    fn message_handler(&self) -> Option<&dyn MessageHandler> {
        None
    }
}

/// What a message trigger (Redis) calls: one message, in a fresh instance,
/// with the request id `id`, its CPU charged to `route`.
pub trait MessageHandler: Send + Sync {
    fn handle_message(
        &self,
        payload: Vec<u8>,
        id: std::sync::Arc<str>,
        route: std::sync::Arc<crate::metrics::RouteStats>,
    ) -> MessageFuture<'_>;
}

pub type MessageFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;

/// A request's body as the executor gets it.
pub enum Payload {
    Whole(Bytes),
    Stream(Body),
}

/// Everything one call is given.
pub struct Call {
    /// The request id, for the component (pure) and its log lines.
    pub id: std::sync::Arc<str>,
    pub request: http::Request<Payload>,
    /// The route's pattern as written, and the values of its parameters.
    pub route: std::sync::Arc<str>,
    pub params: Vec<(String, String)>,
    pub seed: u64,
    pub now_ms: u64,
    /// The rows of the route's reads, in declaration order.
    pub data: Vec<Table>,
    pub limits: CallLimits,
    /// Where the call's CPU and instantiations are counted.
    pub stats: std::sync::Arc<RouteStats>,
}

/// A component's per-call limits, resolved once at load from its own
/// limits, the app's and the command line.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub timeout: Duration,
    pub max_memory_bytes: usize,
    pub max_response_bytes: usize,
}

/// What a call produced.
pub struct Outcome {
    pub response: http::Response<Payload>,
    /// The writes the response asks for (pure components); `None` for a
    /// component that does its own I/O.
    pub effects: Option<Vec<Effect>>,
    pub cost: Cost,
}

/// What one call cost, where the executor knows it (a wasi:http worker
/// counts its own instantiations, see [`wasi_http`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub instantiate: Option<Duration>,
    pub call: Option<Duration>,
    pub memory_peak: Option<usize>,
}

/// Why a call gave no response.
#[derive(Debug)]
pub enum CallError {
    /// The guest ran past its deadline.
    Timeout,
    /// The guest trapped or panicked; the message says where.
    Trap(String),
    /// The component returned something that is not a valid HTTP response.
    BadResponse(String),
}

/// Every import of a component, as `package/interface@version` or a bare
/// function name; what `nebula check` prints.
pub fn imports_of(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Every export of a component.
pub fn exports_of(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The imports a pure component may not have: anything outside the closed
/// WASI set.
pub fn forbidden_imports(imports: &[String]) -> Vec<String> {
    imports
        .iter()
        .filter(|i| !closed_wasi::is_closed_wasi(i))
        .cloned()
        .collect()
}

/// Loads a component through the compile cache.
pub fn load(
    engine: &Engine,
    cache: &CompileCache,
    path: &std::path::Path,
) -> Result<(Component, cache::Origin)> {
    cache.load(engine, path)
}

/// Loads component `name` composed with its Spin dependencies
/// ([`compose`]), cached like any component; with none, as [`load`]. Also
/// gives which imports each dependency satisfied.
pub fn load_with_dependencies(
    engine: &Engine,
    cache: &CompileCache,
    name: &str,
    path: &std::path::Path,
    dependencies: &[compose::Dependency],
) -> Result<(Component, cache::Origin, Vec<compose::Plug>)> {
    use anyhow::Context as _;
    if dependencies.is_empty() {
        let (component, origin) = cache.load(engine, path)?;
        return Ok((component, origin, Vec::new()));
    }
    let main = compose::read_component(path)?;
    let mut sources = Vec::new();
    for d in dependencies {
        let bytes = compose::read_component(&d.path).with_context(|| {
            format!(
                "dependency {:?}: point its `path` at the dependency's component",
                d.name.to_string()
            )
        })?;
        sources.push((d, bytes));
    }
    let composed = compose::compose(name, main, &sources)?;
    let (component, origin) = cache.load_bytes(engine, composed.bytes, path)?;
    Ok((component, origin, composed.plugs))
}

/// Logs what a guest wrote to stdout or stderr, a line at a time, with its
/// request id: the only way a guest's output reaches anyone.
pub fn log_output(id: &str, component: &str, stream: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for line in String::from_utf8_lossy(bytes).lines() {
        tracing::info!(request = id, component, stream, "{line}");
    }
}

/// Prepares loaded components of one kind for one app: links them against
/// what that kind may import and wraps them in their [`Executor`].
pub trait Preparer: Send + Sync + 'static {
    fn prepare(&self, name: &str, component: &Component) -> Result<std::sync::Arc<dyn Executor>>;
}

/// Which kind a compiled component is, from its exports: a wasi:http
/// handler, or else the pure world (whose own check says what is missing).
pub fn kind_of(engine: &Engine, component: &Component) -> ComponentKind {
    let exports = exports_of(engine, component);
    if exports
        .iter()
        .any(|e| e.starts_with("wasi:http/handler@0.3"))
    {
        ComponentKind::WasiHttp03
    } else if exports.iter().any(|e| e.starts_with("wasi:http/")) {
        ComponentKind::WasiHttp02
    } else if wasi_http::inbound_redis::export_of(engine, component).is_some() {
        ComponentKind::SpinRedis
    } else {
        ComponentKind::Pure
    }
}

/// An error of the machine, not of the component: the system refused a
/// file, a mapping or memory for now (out of descriptors or memory). A load
/// that fails so is worth trying again; nothing about the component is
/// known to be wrong.
pub fn transient(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(transient_io))
}

/// [`transient`] for one I/O error.
pub fn transient_io(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN)
    )
}
