//! HTTP: accepts connections with hyper, reads each request body up to the
//! app's limit, and hands the request to the [`App`].

pub mod activation;
pub mod admin;
pub mod idle;
pub mod pages;
pub mod static_files;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::app::App;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A response body: whole (pure components) or streamed (wasi:http).
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

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
    fn metrics(&self) -> Option<&'static crate::metrics::AppMetrics> {
        None
    }
}

pub fn full_body(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

/// Serves until `shutdown` resolves or the idle policy says to exit, then
/// lets open connections finish.
pub async fn serve<S: Service>(
    listener: TcpListener,
    app: Arc<S>,
    shutdown: impl std::future::Future<Output = ()>,
    idle: idle::IdlePolicy,
) -> Result<()> {
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
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = watcher => {}
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors or similar: keep serving the
                        // connections we have rather than dying.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let activity = activity.clone();
                let service = service_fn(move |req| {
                    let app = app.clone();
                    let activity = activity.clone();
                    async move {
                        let _busy = activity.begin();
                        Ok::<_, Infallible>(app.call(req, peer).await)
                    }
                });
                let conn = http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(crate::metrics::cpu::connection(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection closed with an error: {e}");
                    }
                }));
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            tracing::warn!("requests still in flight after 10 s; closing anyway");
        }
    }
    Ok(())
}

impl Service for App {
    async fn call(
        &self,
        req: hyper::Request<Incoming>,
        _peer: SocketAddr,
    ) -> hyper::Response<Body> {
        handle(self, req).await.map(full_body)
    }

    fn trim(&self) {
        App::trim(self);
    }

    fn metrics(&self) -> Option<&'static crate::metrics::AppMetrics> {
        Some(App::metrics(self))
    }
}

async fn handle(app: &App, req: hyper::Request<Incoming>) -> hyper::Response<Bytes> {
    if let Some(problem) = crate::convert::host_problem(req.version(), req.headers()) {
        return pages::bad_request(problem);
    }
    let limit = app.manifest.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let resp = if declared.is_some_and(|n| n > limit as u64) {
        pages::payload_too_large(limit)
    } else {
        let (parts, body) = req.into_parts();
        match Limited::new(body, limit).collect().await {
            Ok(collected) => {
                app.handle(http::Request::from_parts(parts, collected.to_bytes()))
                    .await
            }
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                pages::payload_too_large(limit)
            }
            Err(e) => pages::bad_request(&format!("The request body could not be read: {e}")),
        }
    };
    resp
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
