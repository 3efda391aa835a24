//! Opening a Redis connection for a guest: the address checked against the component's
//! allowed hosts, the name resolved once through them, the connection made to the checked
//! addresses only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::io::AsyncDNSResolver;
use redis::{AsyncConnectionConfig, ConnectionAddr};

use super::RedisError;
use crate::allowed_hosts::{AllowedHosts, ConnectError};

/// A guest's address, parsed by the driver and allowed by the component's hosts.
pub(crate) struct Address {
    client: redis::Client,
    scheme: &'static str,
    host: String,
    port: u16,
}

impl Address {
    /// Spin's checks, in its order: an address the allowed hosts do not name is
    /// `invalid-address`, and so is one the driver cannot parse. Only `redis://` and
    /// `rediss://` (TLS) are served: a Unix socket is the host's own file system.
    pub(crate) fn parse(address: &str, allowed: &AllowedHosts) -> Result<Address, RedisError> {
        let client = redis::Client::open(address).map_err(|_| RedisError::InvalidAddress)?;
        let (scheme, host, port) = match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) => ("redis", host.clone(), *port),
            ConnectionAddr::TcpTls { host, port, .. } => ("rediss", host.clone(), *port),
            _ => return Err(RedisError::InvalidAddress),
        };
        // What is checked is where the driver would connect (its default port included),
        // not the text alone.
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let uri: http::Uri = format!("{scheme}://{bracketed}:{port}")
            .parse()
            .map_err(|_| RedisError::InvalidAddress)?;
        if !allowed.allows(&uri) {
            return Err(RedisError::InvalidAddress);
        }
        Ok(Address {
            client,
            scheme,
            host,
            port,
        })
    }

    /// Resolves the name once through the allowed hosts (an internal address needs an IP or
    /// CIDR entry) and connects to what passed, within `within`.
    pub(crate) async fn connect(
        &self,
        allowed: &AllowedHosts,
        within: Duration,
    ) -> Result<MultiplexedConnection, RedisError> {
        let addrs = allowed
            .resolve_checked(self.scheme, &self.host, self.port, within)
            .await
            .map_err(|e| match e {
                ConnectError::Internal(_) => RedisError::InvalidAddress,
                e => RedisError::Other(format!(
                    "cannot connect to Redis at {}:{}: {e}",
                    self.host, self.port
                )),
            })?;
        let config = AsyncConnectionConfig::new()
            .set_dns_resolver(Checked(Arc::new(addrs)))
            .set_connection_timeout(Some(within))
            // Each call is bounded by the component's deadline instead (a blocking command
            // may rightly take longer than the driver's 500 ms default).
            .set_response_timeout(None);
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        match tokio::time::timeout(within, connect).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(RedisError::Other(format!(
                "cannot connect to Redis at {}:{}: {e}",
                self.host, self.port
            ))),
            Err(_) => Err(RedisError::Other(format!(
                "cannot connect to Redis at {}:{}: no answer within the component's deadline ({} ms)",
                self.host,
                self.port,
                within.as_millis()
            ))),
        }
    }
}

/// The driver's "resolver": the addresses already resolved and checked, whatever name it
/// asks for, so the driver never looks the name up again (the TLS check still uses it).
struct Checked(Arc<Vec<SocketAddr>>);

impl AsyncDNSResolver for Checked {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        _host: &'b str,
        _port: u16,
    ) -> redis::RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        let addrs = self.0.clone();
        Box::pin(async move {
            Ok(Box::new((0..addrs.len()).map(move |i| addrs[i]))
                as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}
