//! `allowed_outbound_hosts`: which URLs a component may send requests to.
//! Entries look like `https://example.com`, `http://127.0.0.1:*`,
//! `*://localhost:3000`, `https://*.example.com:8443`. Nothing else is
//! reachable: an empty list means no outbound HTTP at all.

use anyhow::{bail, Result};

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// No port written: the scheme's default.
    Default,
    Range(u16, u16),
}

#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<AllowedHost>);

impl AllowedHosts {
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
        let port = uri.port_u16().or(match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        self.0.iter().any(|a| a.allows(scheme, host, port))
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
        let host = match host {
            "*" => HostPattern::Any,
            h if h.starts_with("*.") => HostPattern::Subdomain(h[1..].to_ascii_lowercase()),
            h if h.contains('*') => bail!("allowed_outbound_hosts: {entry:?}: '*' may only be the whole host or a leading '*.'"),
            h => HostPattern::Exact(h.trim_matches(['[', ']']).to_ascii_lowercase()),
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
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Default => {
                port == match scheme {
                    "http" => Some(80),
                    "https" => Some(443),
                    _ => None,
                }
            }
            PortPattern::Range(a, b) => port.is_some_and(|p| p >= a && p <= b),
        };
        host_ok && port_ok
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
