//! The wasi:http executor: components exporting
//! `wasi:http/incoming-handler@0.2` (a fresh instance per request) or
//! `wasi:http/handler@0.3` (instances reused up to a bound, as Spin and
//! `wasmtime serve` do). [`handler`] runs a WASI 0.2 request itself, in the
//! request's own task, and gives wasmtime-wasi-http's `ProxyHandler` what it
//! needs to run reused WASI 0.3 instances (the store, the deadlines and the
//! accounting); [`guest_log`] turns the guest's stdout and stderr into log
//! lines with the request id.
//!
//! The component streams its request body and its response body; the host
//! caps both. Its outbound HTTP ([`outbound`], [`outbound_connect`]) reaches
//! only the hosts its grants allow; Spin's key-value, SQLite and variables
//! interfaces come from the `nebula-spin-interfaces` units. Imports of
//! Spin's platform that Nebula does not implement are linked as traps
//! ([`platform_stubs`]), since componentize-py components import them all.

pub mod chain;
mod guest_log;
pub mod handler;
pub mod inbound_redis;
pub mod outbound;
pub mod outbound_connect;
pub mod platform_stubs;
mod sockets;
pub mod spin_headers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::handler::{InstantiationError, ProxyHandler};

pub use handler::{
    ComponentHandler, ComponentRuntime, ComponentSpec, RequestTag, ReusePolicy, SpinStore,
};

use super::{
    BoxError, Call, CallError, CallFuture, ComponentKind, Cost, Deadlines, Executor, Outcome,
    Payload,
};

/// How long past a component's deadline the wall-clock backstop answers
/// 504 if the worker has not.
const BACKSTOP_MARGIN: Duration = Duration::from_millis(250);

/// Waits between tries when every instance in the pool is taken.
pub(super) const POOL_RETRY_WAIT: Duration = Duration::from_millis(5);

/// A wasi:http component behind [`Executor`].
pub struct WasiHttpExecutor {
    name: String,
    handler: ProxyHandler<ComponentHandler>,
    deadlines: Deadlines,
}

impl WasiHttpExecutor {
    pub fn new(name: &str, handler: ProxyHandler<ComponentHandler>, deadlines: Deadlines) -> Self {
        WasiHttpExecutor {
            name: name.to_string(),
            handler,
            deadlines,
        }
    }
}

impl Executor for WasiHttpExecutor {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ComponentKind {
        if self.handler.state().is_p3() {
            ComponentKind::WasiHttp03
        } else {
            ComponentKind::WasiHttp02
        }
    }

    fn imports(&self) -> Vec<String> {
        self.handler.state().imports()
    }

    fn wants_whole_body(&self) -> bool {
        false
    }

    fn call(&self, call: Call) -> CallFuture<'_> {
        Box::pin(self.run(call))
    }
}

impl WasiHttpExecutor {
    async fn run(&self, call: Call) -> Result<Outcome, CallError> {
        let timeout = call.limits.timeout;
        let req = call.request.map(|body| match body {
            Payload::Stream(b) => b.map_err(to_wasi_error).boxed_unsync(),
            Payload::Whole(b) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
        });
        let tag = RequestTag {
            route: call.stats,
            id: call.id.clone(),
        };
        let started = Instant::now();
        let _in_flight = self.deadlines.enter();
        // The call's own deadline (the fresh instance's `timeout_at`, a
        // reused instance's `handler::Expiration`) ends a guest that waits
        // in an async host call, and drops its instance as it answers. This
        // wall-clock backstop bounds what it cannot: a host call that holds
        // the thread. It fires a little later, so that in the ordinary case
        // the instance is gone by the time the slot is handed on.
        let handled =
            tokio::time::timeout(timeout + BACKSTOP_MARGIN, handle(&self.handler, tag, req))
                .await
                .unwrap_or_else(|_| Err(wasmtime::Trap::Interrupt.into()));
        match handled {
            Ok(mut resp) => {
                drop_guest_headers(resp.headers_mut());
                Ok(Outcome {
                    response: resp.map(|b| {
                        Payload::Stream(b.map_err(|e| Box::new(e) as BoxError).boxed_unsync())
                    }),
                    effects: None,
                    cost: Cost::default(),
                })
            }
            Err(e) if timed_out(&e) || started.elapsed() >= timeout => Err(CallError::Timeout),
            Err(e) => Err(CallError::Trap(format!("{e:?}"))),
        }
    }
}

/// A request body error as wasi:http reports it to the guest: past the
/// host's cap, wasi:http's own body-size or read-timeout error.
fn to_wasi_error(e: BoxError) -> wasmtime_wasi_http::Error {
    use crate::body::capped::CapExceeded;
    match e.downcast_ref::<CapExceeded>() {
        Some(CapExceeded::Size(max)) => {
            return wasmtime_wasi_http::Error::HttpRequestBodySize(Some(*max))
        }
        Some(CapExceeded::Time(_)) => return wasmtime_wasi_http::Error::ConnectionReadTimeout,
        None => {}
    }
    match e.downcast::<hyper::Error>() {
        Ok(h) => wasmtime_wasi_http::Error::Hyper(*h),
        Err(e) => match e.downcast::<wasmtime_wasi_http::Error>() {
            Ok(w) => *w,
            Err(e) => wasmtime_wasi_http::Error::InternalError(Some(e.to_string())),
        },
    }
}

/// A request to a component: on a fresh instance of its own for WASI 0.2
/// ([`ComponentHandler::handle_fresh_p2`]), through `ProxyHandler`'s
/// reused instances for WASI 0.3.
pub(super) async fn handle(
    handler: &ProxyHandler<ComponentHandler>,
    tag: RequestTag,
    req: wasmtime_wasi_http::handler::Request,
) -> wasmtime::Result<wasmtime_wasi_http::handler::Response> {
    if handler.state().is_p3() {
        handle_when_pooled(handler, tag, req).await
    } else {
        handler.state().handle_fresh_p2(tag, req).await
    }
}

/// `handler.handle`, tried again while the instance pool is full. The pool
/// holds `max_instances` instances, as many as there are slots, but a slot
/// is given back when its request's response is done (or its client gone),
/// and the instance behind it is dropped by its worker task a moment later:
/// the request the slot is handed to may find the pool full until then.
/// Bounded by the caller's deadline.
async fn handle_when_pooled(
    handler: &ProxyHandler<ComponentHandler>,
    tag: RequestTag,
    mut req: wasmtime_wasi_http::handler::Request,
) -> wasmtime::Result<wasmtime_wasi_http::handler::Response> {
    type Failed = InstantiationError<RequestTag>;
    loop {
        match handler.handle(tag.clone(), req).await {
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

/// Drops the connection and framing headers a component may not set, as
/// for pure components (`convert::to_http_response`). `content-length`
/// stays: wasi:http itself holds the body to it (a body longer or shorter
/// than declared is an error, never sent as is), and the response cap
/// reads it.
fn drop_guest_headers(headers: &mut http::HeaderMap) {
    use crate::web::security_headers::kept_as_is;
    // Usually none: nothing is copied then.
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|name| !kept_as_is(name.as_str()))
        .cloned()
        .collect();
    for name in names {
        if name == http::header::CONTENT_LENGTH {
            continue;
        }
        let values: Vec<http::HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        let mut kept = Vec::with_capacity(values.len());
        let mut changed = false;
        for v in values {
            match crate::web::security_headers::filter_guest_header(
                name.as_str(),
                &String::from_utf8_lossy(v.as_bytes()),
            ) {
                Ok(f) if f.as_bytes() == v.as_bytes() => kept.push(v),
                Ok(f) => {
                    // A CSP that loses its frame-ancestors directive.
                    tracing::warn!(header = %name, "dropped frame-ancestors from the component's response: framing is set by the host");
                    changed = true;
                    kept.extend(http::HeaderValue::from_str(&f).ok());
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

/// Shared so every route of the component runs the same handler.
pub type SharedWasiHttp = Arc<WasiHttpExecutor>;
