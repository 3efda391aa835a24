//! Transport: the listener (or a socket handed over by systemd), connection
//! limits per process and per address, slow clients (header, write and
//! shutdown timeouts), HTTP/1 parsing with hyper, and the admin listener.
//! Each request is handed to a [`Service`] — the host — with its body
//! unread; nothing here knows what an app is.

pub mod activation;
pub mod admin;
pub mod connections;
mod host_header;
pub mod idle;
pub mod pages;
pub mod per_ip;
pub mod per_key;
pub mod write_timeout;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use crate::body::{full_body, Body, BoxError};
pub use connections::ConnectionLimits;

/// What the server hands each request to: a pure app or a Spin app.
pub trait Service: Send + Sync + 'static {
    fn call(
        &self,
        req: hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = hyper::Response<Body>> + Send;

    /// Gives back memory that can be rebuilt on the next request.
    fn trim(&self) {}

    /// What the admin listener reports per component and route.
    fn metrics(&self) -> Option<std::sync::Arc<crate::metrics::AppMetrics>> {
        None
    }

    /// Called once no request is in flight any more (or the shutdown grace
    /// ran out): close what must be closed cleanly, such as the database.
    fn shutdown(&self) {}

    /// Called when shutdown begins, before the drain delay: fail the health
    /// check so load balancers stop sending requests here.
    fn drain(&self) {}

    /// The headers every response of the app gets, for the pages the
    /// server answers itself.
    fn security_headers(&self) -> &crate::web::security_headers::SecurityHeaders;
}

/// Serves until `shutdown` resolves or the idle policy says to exit, then
/// stops accepting, lets requests in flight finish within the shutdown grace
/// and calls [`Service::shutdown`].
pub async fn serve<S: Service>(
    listener: TcpListener,
    app: Arc<S>,
    shutdown: impl std::future::Future<Output = ()>,
    idle: idle::IdlePolicy,
    limits: ConnectionLimits,
) -> Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let per_ip = per_ip::PerIp::new(limits.max_connections_per_ip);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let activity = Arc::new(idle::Activity::default());
    let watcher = {
        let (activity, app) = (activity.clone(), app.clone());
        async move {
            idle::watch(&activity, idle, || {
                tracing::info!("idle: trimming memory");
                app.trim();
            })
            .await;
            tracing::info!("idle: exiting");
        }
    };
    let drain_delay = limits.drain_delay;
    let draining = app.clone();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {
                // Fail the health check, then keep accepting for the drain
                // delay: a balancer that checks every so often learns that
                // this node is going before it refuses connections.
                draining.drain();
                if !drain_delay.is_zero() {
                    tracing::info!(delay_ms = drain_delay.as_millis() as u64, "draining: health fails, still serving");
                    tokio::time::sleep(drain_delay).await;
                }
            }
            _ = watcher => {}
        }
    };
    tokio::pin!(shutdown);
    loop {
        // At the connection cap, stop accepting: new connections wait in the
        // kernel's backlog until one closes, costing this process nothing.
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => p.expect("the connection semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors (EMFILE) or similar: keep serving
                        // the connections we have, and accept again once
                        // some have closed, rather than dying.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(counted) = per_ip.admit(peer.ip()) else {
                    // Closed before reading anything; its permit is free at once.
                    drop(stream);
                    continue;
                };
                let held = (counted, permit);
                spawn_connection(stream, peer, app.clone(), activity.clone(), &limits, &graceful, held);
            }
            _ = &mut shutdown => break,
        }
    }
    // Closing the listener refuses new connections at once.
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {
            tracing::info!("requests in flight finished");
        }
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                grace_ms = limits.shutdown_grace.as_millis() as u64,
                "requests still in flight after the shutdown grace; closing anyway"
            );
        }
    }
    app.shutdown();
    Ok(())
}

/// Serves one accepted connection on a task of its own: HTTP/1 with the
/// header and write timeouts, every request handed to `app`. `held` (its
/// per-address count and its connection permit) is released when it closes.
fn spawn_connection<S: Service>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Arc<S>,
    activity: Arc<idle::Activity>,
    limits: &ConnectionLimits,
    graceful: &hyper_util::server::graceful::GracefulShutdown,
    held: (per_ip::Counted, tokio::sync::OwnedSemaphorePermit),
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let app = app.clone();
        let activity = activity.clone();
        async move {
            let _busy = activity.begin();
            // Malformed whatever the app: no component sees a
            // request whose authority is missing or ambiguous.
            if let Some(problem) = host_header::host_problem(req.version(), req.headers()) {
                let mut r = pages::bad_request(problem);
                app.security_headers().apply(r.headers_mut());
                return Ok(r.map(full_body));
            }
            Ok::<_, Infallible>(app.call(req, peer).await)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        // Slow clients: the request line and headers must arrive
        // in time; the body has its own timeout (the host reads it).
        .header_read_timeout(limits.header_read_timeout)
        // Over either, hyper answers 431.
        .max_buf_size(limits.max_header_bytes.max(8192));
    if limits.max_headers != crate::manifest::limits::DEFAULT_MAX_HEADERS {
        // Setting it moves hyper's header array to the heap; only
        // pay for that when asked.
        builder.max_headers(limits.max_headers);
    }
    // A client that stops reading its responses is cut off.
    let io = write_timeout::WriteTimeout::new(stream, limits.write_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let conn = graceful.watch(conn);
    let write_timeout_ms = limits.write_timeout.as_millis() as u64;
    tokio::spawn(crate::metrics::cpu::connection(async move {
        if let Err(e) = conn.await {
            if is_write_timeout(&e) {
                tracing::info!(
                    client = %peer.ip(),
                    write_timeout_ms,
                    "the client stopped reading its responses; connection closed"
                );
            } else {
                tracing::debug!("connection closed with an error: {e}");
            }
        }
        drop(held);
    }));
}

/// Whether hyper gave up on a connection because [`write_timeout`] failed
/// one of its writes.
fn is_write_timeout(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

/// The Content-Length a message declares, if it is a number.
pub fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
