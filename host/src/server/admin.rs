//! The admin listener (`nebula up --admin ADDR`): `GET /metrics` in the
//! Prometheus text format, and nothing else. It is a separate socket so that
//! the app's own listener never exposes it.
//!
//! It has no authentication, so it is guarded three ways. It listens on a
//! loopback address unless `--admin-public` says otherwise
//! ([`check_address`]). It serves only requests whose `Host` is an address,
//! `localhost` or the listen address ([`host_allowed`]): a web page the
//! operator visits cannot read it through a name of its own that it points
//! at 127.0.0.1 (DNS rebinding). And it keeps at most [`MAX_CONNECTIONS`]
//! open, so that a client cannot exhaust the host's descriptors through it.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::write_timeout::WriteTimeout;
use crate::metrics::{self, cpu::Background, AppMetrics};

/// Admin connections open at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 16;
/// A scrape's request must arrive, and its answer be read, within this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// An admin request's head must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Refuses a non-loopback admin address unless `public` (`--admin-public`).
pub fn check_address(addr: SocketAddr, public: bool) -> anyhow::Result<()> {
    if public || addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    anyhow::bail!(
        "--admin {addr} is not a loopback address: the admin listener serves metrics without \
         authentication. Use a loopback address (e.g. --admin 127.0.0.1:9100), or add \
         --admin-public to serve it on {addr} anyway"
    )
}

/// Whether a request's `Host` may be served: `localhost`, an IP address
/// (a rebinding attack needs a name the attacker controls; an address is
/// its own origin), or exactly the listen address. No `Host` is refused.
pub fn host_allowed(host: Option<&str>, listen: SocketAddr) -> bool {
    let Some(host) = host.map(str::trim) else {
        return false;
    };
    if host.eq_ignore_ascii_case(&listen.to_string()) {
        return true;
    }
    let Ok(authority) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    let name = authority.host();
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let ip = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    match ip.parse::<IpAddr>() {
        // An address names this host only if it is loopback or the one
        // listened on (any, when it listens on all of them).
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback() || listen.ip().is_unspecified() || ip == listen.ip().to_canonical()
        }
        Err(_) => false,
    }
}

/// Serves `/metrics` until the runtime stops.
pub async fn serve(listener: TcpListener, app: Option<std::sync::Arc<AppMetrics>>) {
    let listen = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("admin: the listener has no address ({e}); not serving");
            return;
        }
    };
    accept_loop(listener, TIMEOUT, move || {
        let app = app.clone();
        service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(respond(&req, app.as_ref(), listen)) }
        })
    })
    .await
}

/// Serves HTTP/1 on every connection `listener` accepts, with the service
/// `service()` makes for it: at most [`MAX_CONNECTIONS`] at once (at the
/// cap it stops accepting, so further clients wait in the backlog), each
/// request's head within 10 s and each answer written within `timeout`.
/// The admin listeners' CPU is charged to the `admin` background task.
/// Runs until the runtime stops.
pub async fn accept_loop<S>(listener: TcpListener, timeout: Duration, service: impl Fn() -> S)
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<Full<Bytes>>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = connections
            .clone()
            .acquire_owned()
            .await
            .expect("the admin semaphore is never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("admin: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = service();
        tokio::spawn(metrics::cpu::background(Background::Admin, async move {
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(WriteTimeout::new(stream, timeout)), service);
            if let Err(e) = conn.await {
                tracing::debug!("admin: connection closed with an error: {e}");
            }
            drop(permit);
        }));
    }
}

fn respond<B>(
    req: &hyper::Request<B>,
    app: Option<&std::sync::Arc<AppMetrics>>,
    listen: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let plain = |status: http::StatusCode, text: &str| {
        hyper::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(text.to_string())))
            .expect("static response")
    };
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    if !host_allowed(host, listen) {
        tracing::warn!(
            host = host.unwrap_or("(none)"),
            "admin: refused a request whose Host is not this listener (421)"
        );
        return plain(
            http::StatusCode::MISDIRECTED_REQUEST,
            &format!(
                "Misdirected request: the admin listener serves only requests for {listen}, \
                 localhost or an IP address of this host.\n"
            ),
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_non_loopback_address_needs_admin_public() {
        for ok in ["127.0.0.1:9100", "127.0.0.2:0", "[::1]:9100"] {
            assert!(check_address(addr(ok), false).is_ok(), "{ok}");
        }
        for public in ["0.0.0.0:0", "[::]:9100", "192.0.2.7:9100"] {
            let e = check_address(addr(public), false).unwrap_err().to_string();
            assert!(e.contains("--admin-public"), "{e}");
            assert!(e.contains(public), "{e}");
            assert!(check_address(addr(public), true).is_ok(), "{public}");
        }
    }

    #[test]
    fn only_this_host_by_address_or_localhost_is_served() {
        let lo = addr("127.0.0.1:9100");
        for ok in [
            "127.0.0.1:9100",
            "127.0.0.1",
            "localhost:9100",
            "LOCALHOST",
            "[::1]:9100",
            "127.0.0.5:9100",
        ] {
            assert!(host_allowed(Some(ok), lo), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9100",
            "localhost.evil.example",
            "127.0.0.1.nip.io:9100",
            "192.0.2.7:9100",
            "",
            "a b",
        ] {
            assert!(!host_allowed(Some(bad), lo), "{bad}");
        }
        assert!(!host_allowed(None, lo), "no Host");

        // Listening on one public address: that address, and loopback.
        let public = addr("192.0.2.7:9100");
        assert!(host_allowed(Some("192.0.2.7:9100"), public));
        assert!(!host_allowed(Some("192.0.2.8:9100"), public));
        assert!(!host_allowed(Some("metrics.evil.example"), public));
        // On all addresses: any address literal, still no names.
        let any = addr("0.0.0.0:9100");
        assert!(host_allowed(Some("198.51.100.1:9100"), any));
        assert!(!host_allowed(Some("metrics.evil.example:9100"), any));
    }
}
