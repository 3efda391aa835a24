//! The admin listener (`nebula up --admin ADDR`): `GET /metrics` in the
//! Prometheus text format, and nothing else. It is a separate socket so that
//! the app's own listener never exposes it.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::{self, cpu::Background, AppMetrics};

/// Serves `/metrics` until the runtime stops.
pub async fn serve(listener: TcpListener, app: Option<&'static AppMetrics>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("admin: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = service_fn(
            move |req: hyper::Request<hyper::body::Incoming>| async move {
                Ok::<_, Infallible>(respond(&req, app))
            },
        );
        tokio::spawn(metrics::cpu::background(Background::Admin, async move {
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("admin: connection closed with an error: {e}");
            }
        }));
    }
}

fn respond<B>(
    req: &hyper::Request<B>,
    app: Option<&'static AppMetrics>,
) -> hyper::Response<Full<Bytes>> {
    let plain = |status: http::StatusCode, text: &str| {
        hyper::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(text.to_string())))
            .expect("static response")
    };
    if req.uri().path() != "/metrics" {
        return plain(
            http::StatusCode::NOT_FOUND,
            "Not found: the admin listener serves only GET /metrics.\n",
        );
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return plain(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "Only GET and HEAD are allowed on /metrics.\n",
        );
    }
    metrics::cpu::flush_thread();
    hyper::Response::builder()
        .header(http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)
        .body(Full::new(Bytes::from(metrics::render(app))))
        .expect("metrics response")
}
