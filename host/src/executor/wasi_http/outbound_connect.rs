//! Sending a guest's outbound request where its check holds.
//!
//! The connection comes from the allowed-hosts unit
//! ([`AllowedHosts::connect`]): the host name is resolved once there, every address it gave
//! is checked (an internal one needs an IP-literal or CIDR entry in
//! `allowed_outbound_hosts`) and the connection goes to one of the addresses that passed,
//! never through a second lookup, so a name cannot answer with a public address for the
//! check and a private one for the connection (DNS rebinding). Redirects are not followed:
//! the guest receives the 3xx and decides, and whatever it asks next is checked anew.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use nebula_spin_interfaces::allowed_hosts::{AllowedHosts, ConnectError};

/// What wasmtime-wasi-http's `send_request` hook returns: the response and a
/// future that drives the connection to its end.
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// The waits wasmtime-wasi-http's own client allows when the guest sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Resolves, checks, connects and sends `request`, whose URL text
/// `allowed` has already accepted.
pub async fn send(
    allowed: Arc<AllowedHosts>,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Sent, Error> {
    let uri = request.uri().clone();
    let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
    let tls = scheme == "https";
    let host = uri
        .host()
        .ok_or(Error::HttpRequestUriInvalid)?
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let opt = |f: fn(&RequestOptions) -> Option<Duration>| {
        options.as_ref().and_then(f).unwrap_or(DEFAULT_TIMEOUT)
    };
    let connect_timeout = opt(|o| o.connect_timeout);
    let first_byte_timeout = opt(|o| o.first_byte_timeout);
    let between_bytes_timeout = opt(|o| o.between_bytes_timeout).max(Duration::from_nanos(1));

    let stream = allowed
        .connect(&scheme, &host, port, connect_timeout)
        .await
        .map_err(|e| match e {
            ConnectError::DnsTimeout => Error::DnsTimeout,
            ConnectError::Dns(e) => Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            },
            ConnectError::NotFound => Error::DestinationNotFound,
            ConnectError::Internal(refused) => {
                tracing::warn!(
                    url = %uri,
                    addresses = ?refused,
                    "outbound request refused: {host} resolves to internal addresses that no IP or CIDR entry of allowed_outbound_hosts allows"
                );
                Error::HttpRequestDenied
            }
            ConnectError::Timeout => Error::ConnectionTimeout,
            ConnectError::Refused => Error::ConnectionRefused,
            ConnectError::Io(e) => Error::Connect(e),
        })?;
    let stream: Box<dyn Stream> = if tls {
        Box::new(tls_connect(&host, stream).await?)
    } else {
        Box::new(stream)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // On the wire the request line names the path only, not a proxy's
    // absolute URL.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    // The connection must be driven while the response is awaited.
    let mut conn = Box::pin(conn);
    let mut conn_ended = None;
    let mut response = std::pin::pin!(tokio::time::timeout(
        first_byte_timeout,
        sender.send_request(request)
    ));
    let response = std::future::poll_fn(|cx| {
        if conn_ended.is_none() {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                conn_ended = Some(r);
            }
        }
        response.as_mut().poll(cx)
    })
    .await
    .map_err(|_| Error::ConnectionReadTimeout)??;
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> = match conn_ended {
        Some(r) => Box::new(std::future::ready(r.map_err(Error::from))),
        None => Box::new(async move { conn.await.map_err(Error::from) }),
    };
    let response = response.map(|body| {
        BetweenBytes {
            body,
            every: between_bytes_timeout,
            timer: Box::pin(tokio::time::sleep(between_bytes_timeout)),
        }
        .boxed_unsync()
    });
    Ok((response, io))
}

async fn tls_connect(
    host: &str,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(Error::Tls)
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A response body that fails with a read timeout when no frame comes for
/// `every` (the guest's `between-bytes-timeout`).
struct BetweenBytes {
    body: hyper::body::Incoming,
    every: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + self.every;
                self.timer.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Error::from)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
