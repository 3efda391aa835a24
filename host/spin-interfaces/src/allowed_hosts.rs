//! The allowed-hosts unit: which addresses a component may reach, shared by every outbound
//! interface (HTTP today; TCP, Redis, PostgreSQL, MQTT as they come) so that all of them
//! allow and refuse the same things.
//!
//! It serves no import of its own and holds no per-app state, so it is not a [`HostUnit`]:
//! an outbound unit parses its component's `allowed_outbound_hosts` with
//! [`AllowedHosts::parse`] in `configure_component`, keeps the result for its instances, and
//! connects only through [`AllowedHosts::connect`].
//!
//! Entries look like `https://example.com`, `http://127.0.0.1:*`, `*://localhost:3000`,
//! `https://*.example.com:8443`, `http://10.0.0.0/8:*` (a CIDR range, as Spin writes it).
//! Nothing else is reachable: an empty list means no outbound connection at all.
//!
//! A host name is only text: what it resolves to is checked too. An address on the
//! loopback, link-local (cloud metadata services live there), private or shared (CGNAT)
//! ranges is reached only if an IP-literal or CIDR entry allows it, so a name allowed for the
//! outside world cannot be pointed at the host's own network. The name is resolved once, in
//! [`AllowedHosts::connect`]; every address it gave is checked and the connection goes to one
//! that passed, never through a second lookup, so a name cannot answer with a public address
//! for the check and a private one for the connection (DNS rebinding).
//!
//! [`HostUnit`]: crate::HostUnit

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
    /// An IP literal or a CIDR range (`127.0.0.1`, `10.0.0.0/8`, `[::1]`).
    Network(ipnet::IpNet),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// No port written: the scheme's default.
    Default,
    Range(u16, u16),
}

/// One component's `allowed_outbound_hosts`, parsed.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<AllowedHost>);

impl AllowedHosts {
    /// Fails on the first entry that is not a valid pattern, quoting it and saying what
    /// was expected.
    pub fn parse(entries: &[String]) -> Result<AllowedHosts> {
        entries
            .iter()
            .map(|e| AllowedHost::parse(e))
            .collect::<Result<_>>()
            .map(AllowedHosts)
    }

    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else {
            return false;
        };
        let Some(host) = uri.host() else { return false };
        let port = uri.port_u16().or(well_known_port(scheme));
        self.0.iter().any(|a| a.allows(scheme, host, port))
    }

    /// Whether an entry written as an IP literal or CIDR range allows
    /// `ip:port` for `scheme`: what an internal address needs.
    pub fn allows_address(&self, scheme: &str, ip: IpAddr, port: u16) -> bool {
        self.0.iter().any(|a| {
            let host = match &a.host {
                HostPattern::Network(net) => net.contains(&ip),
                // `localhost` is the loopback by definition (RFC 6761), not a name
                // someone else's DNS answers for: writing it grants the loopback, as in Spin.
                HostPattern::Exact(name) => name == "localhost" && ip.is_loopback(),
                _ => false,
            };
            host && a.scheme.as_deref().is_none_or(|s| s == scheme)
                && a.port_allows(scheme, Some(port))
        })
    }

    /// Resolves `host` once (an IP literal is its own address), keeps the addresses this
    /// list allows for `scheme` and `port` (see [`is_internal`]) and connects to the first
    /// of them that answers, each try bounded by `within`. The caller has already checked
    /// the URL text with [`AllowedHosts::allows`].
    pub async fn connect(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        within: Duration,
    ) -> Result<TcpStream, ConnectError> {
        let passed = self.resolve(scheme, host, port, within).await?;
        connect(&passed, within).await
    }

    /// The checked half of [`AllowedHosts::connect`], for a driver that connects by itself
    /// but can be handed the addresses (mysql_async): resolves `host` once and keeps the
    /// addresses this list allows, never empty.
    pub async fn resolve(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        within: Duration,
    ) -> Result<Vec<SocketAddr>, ConnectError> {
        let resolved = resolve(host, port, within).await?;
        let (passed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
            .into_iter()
            .partition(|a| !is_internal(a.ip()) || self.allows_address(scheme, a.ip(), port));
        if passed.is_empty() {
            return Err(ConnectError::Internal(refused));
        }
        Ok(passed)
    }
}

/// Why [`AllowedHosts::connect`] made no connection; each outbound unit says it in its own
/// interface's error type.
#[derive(Debug)]
pub enum ConnectError {
    /// The name did not resolve within the time given.
    DnsTimeout,
    /// The lookup failed.
    Dns(std::io::Error),
    /// The name has no address.
    NotFound,
    /// Every address the name gave is internal and no IP or CIDR entry allows it: these.
    Internal(Vec<SocketAddr>),
    /// No address answered within the time given.
    Timeout,
    /// The last address tried refused the connection.
    Refused,
    /// The last address tried failed otherwise.
    Io(std::io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::DnsTimeout => f.write_str("the name did not resolve in time"),
            ConnectError::Dns(e) => write!(f, "the name did not resolve: {e}"),
            ConnectError::NotFound => f.write_str("the name has no address"),
            ConnectError::Internal(addrs) => write!(
                f,
                "the name resolves to internal addresses ({addrs:?}) that no IP or CIDR entry \
                 of allowed_outbound_hosts allows"
            ),
            ConnectError::Timeout => f.write_str("no address answered in time"),
            ConnectError::Refused => f.write_str("the connection was refused"),
            ConnectError::Io(e) => write!(f, "cannot connect: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// The addresses of `host` (itself, if it is an IP literal).
async fn resolve(host: &str, port: u16, within: Duration) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found = tokio::time::timeout(within, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| ConnectError::DnsTimeout)?
        .map_err(ConnectError::Dns)?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(ConnectError::NotFound);
    }
    Ok(addrs)
}

/// A connection to the first of `addrs` that answers.
async fn connect(addrs: &[SocketAddr], within: Duration) -> Result<TcpStream, ConnectError> {
    let mut last = ConnectError::NotFound;
    for addr in addrs {
        match tokio::time::timeout(within, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = ConnectError::Refused
            }
            Ok(Err(e)) => last = ConnectError::Io(e),
            Err(_) => last = ConnectError::Timeout,
        }
    }
    Err(last)
}

/// Whether `ip` belongs to the host's own or a private network rather than
/// the public internet: unspecified, loopback, link-local (169.254.0.0/16,
/// fe80::/10: cloud metadata services), private (10/8, 172.16/12,
/// 192.168/16, fc00::/7), shared CGNAT space (100.64/10), broadcast and
/// multicast; IPv4 addresses written as IPv6 (::ffff:a.b.c.d, 64:ff9b::/96)
/// are judged as the IPv4 address they carry.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_unspecified()
                || a == 0
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
                || v4.is_broadcast()
                || v4.is_multicast()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return is_internal(IpAddr::V4([o[12], o[13], o[14], o[15]].into()));
            }
            v6.is_unspecified()
                || v6.is_loopback()
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xfe00) == 0xfc00
                || v6.is_multicast()
        }
    }
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<AllowedHost> {
        let Some((scheme, rest)) = entry.split_once("://") else {
            bail!("allowed_outbound_hosts: {entry:?} needs a scheme, e.g. \"https://{entry}\"");
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
            _ => (rest, None),
        };
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => match p.split_once("..") {
                Some((a, b)) => {
                    PortPattern::Range(port_num(entry, a)?, port_num(entry, b)?.saturating_sub(1))
                }
                None => {
                    let n = port_num(entry, p)?;
                    PortPattern::Range(n, n)
                }
            },
        };
        let bare = host.trim_matches(['[', ']']);
        let network = bare
            .parse::<ipnet::IpNet>()
            .ok()
            .or_else(|| bare.parse::<IpAddr>().ok().map(ipnet::IpNet::from));
        let host = match (network, host) {
            (Some(net), _) => HostPattern::Network(net),
            (None, "*") => HostPattern::Any,
            (None, h) if h.starts_with("*.") => HostPattern::Subdomain(h[1..].to_ascii_lowercase()),
            (None, h) if h.contains('*') => bail!("allowed_outbound_hosts: {entry:?}: '*' may only be the whole host or a leading '*.'"),
            (None, h) => HostPattern::Exact(h.trim_matches(['[', ']']).to_ascii_lowercase()),
        };
        Ok(AllowedHost {
            scheme: (scheme != "*").then(|| scheme.to_ascii_lowercase()),
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomain(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Network(net) => host.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip)),
        };
        host_ok && self.port_allows(scheme, port)
    }

    fn port_allows(&self, scheme: &str, port: Option<u16>) -> bool {
        match self.port {
            PortPattern::Any => true,
            PortPattern::Default => port == well_known_port(scheme),
            PortPattern::Range(a, b) => port.is_some_and(|p| p >= a && p <= b),
        }
    }
}

/// The port a URL of `scheme` means when it names none, as Spin's allowed-hosts check has
/// it: `postgres://db` is port 5432 whether written in the entry or in the URL.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn port_num(entry: &str, p: &str) -> Result<u16> {
    p.parse()
        .map_err(|_| anyhow::anyhow!("allowed_outbound_hosts: {entry:?}: {p:?} is not a port, '*' or a range like 8000..8010"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], url: &str) -> bool {
        let a = AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        a.allows(&url.parse().unwrap())
    }

    #[test]
    fn matches_scheme_host_and_port() {
        assert!(allows(&["http://127.0.0.1:*"], "http://127.0.0.1:8080/x"));
        assert!(!allows(&["http://127.0.0.1:*"], "http://localhost:8080/x"));
        assert!(!allows(&["http://127.0.0.1:*"], "https://127.0.0.1:8080/x"));
        assert!(allows(&["https://example.com"], "https://example.com/a"));
        assert!(!allows(
            &["https://example.com"],
            "https://example.com:8443/a"
        ));
        assert!(allows(&["*://localhost:3000"], "http://localhost:3000/"));
        assert!(allows(
            &["https://*.example.com"],
            "https://api.example.com/"
        ));
        assert!(!allows(&["https://*.example.com"], "https://example.org/"));
        assert!(allows(&["http://[::1]:*"], "http://[::1]:9/"));
        assert!(!allows(&[], "http://127.0.0.1/"));
        // CIDR ranges, as Spin writes them.
        assert!(allows(&["http://10.0.0.0/8:*"], "http://10.1.2.3:80/"));
        assert!(!allows(&["http://10.0.0.0/8:*"], "http://11.1.2.3:80/"));
        assert!(allows(&["*://fd00::/8:443"], "https://[fd12::1]/"));
    }

    #[test]
    fn internal_addresses_need_an_ip_or_cidr_entry() {
        let a = |entries: &[&str]| {
            AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!a(&["http://localhost:*"]).allows_address("http", lo, 80));
        assert!(!a(&["*://*:*"]).allows_address("http", lo, 80));
        assert!(a(&["http://127.0.0.1:*"]).allows_address("http", lo, 80));
        assert!(a(&["http://127.0.0.0/8:80"]).allows_address("http", lo, 80));
        assert!(!a(&["http://127.0.0.0/8:81"]).allows_address("http", lo, 80));
        assert!(!a(&["https://127.0.0.1:*"]).allows_address("http", lo, 80));
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    /// A name allowed as text that resolves to the host's own network is refused unless
    /// an IP entry allows the address; the connection goes to the checked address.
    #[tokio::test]
    async fn connect_checks_the_addresses_a_name_resolves_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let within = Duration::from_secs(5);
        let any_name = AllowedHosts::parse(&["http://*:*".into()]).unwrap();
        match any_name.connect("http", "localhost", port, within).await {
            Err(ConnectError::Internal(refused)) => {
                assert!(refused.iter().all(|a| a.ip().is_loopback()), "{refused:?}")
            }
            other => panic!("localhost through a wildcard: {other:?}"),
        }
        // `localhost` written out is the loopback by definition, as in Spin.
        let by_name = AllowedHosts::parse(&["http://localhost:*".into()]).unwrap();
        let stream = by_name
            .connect("http", "localhost", port, within)
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap().port(), port);
        let by_ip = AllowedHosts::parse(&["http://127.0.0.1:*".into()]).unwrap();
        let stream = by_ip
            .connect("http", "127.0.0.1", port, within)
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap().port(), port);
    }

    #[test]
    fn bad_entries_are_explained() {
        assert!(AllowedHosts::parse(&["example.com".into()])
            .unwrap_err()
            .to_string()
            .contains("needs a scheme"));
        assert!(AllowedHosts::parse(&["http://a:b".into()])
            .unwrap_err()
            .to_string()
            .contains("not a port"));
    }
}
