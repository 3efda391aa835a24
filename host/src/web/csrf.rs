//! Cross-site request refusal: a browser visiting another site can be made
//! to POST a form here (with this site's cookies). Such a request says
//! where it comes from in `Origin` and `Sec-Fetch-Site`; a state-changing
//! one whose origin is not this site is refused before anything runs.
//! Clients that send neither header (curl, scripts, server-to-server calls)
//! are not browsers acting for someone else and pass.

use http::{HeaderMap, Method};

/// A route's stance on cross-site state-changing requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrossSite {
    /// The default: refused with 403.
    #[default]
    Refuse,
    /// For real APIs called from other sites' pages (with their own auth).
    Allow,
}

impl CrossSite {
    /// Parses the manifest value: `"refuse"` or `"allow"`.
    pub fn parse(s: &str) -> Result<CrossSite, String> {
        match s {
            "refuse" => Ok(CrossSite::Refuse),
            "allow" => Ok(CrossSite::Allow),
            other => Err(format!(
                "expected \"refuse\" (the default) or \"allow\", found {other:?}"
            )),
        }
    }
}

/// Why this request is refused as cross-site, or `None` if it may run.
/// Only methods that may change state are checked: GET, HEAD, OPTIONS and
/// TRACE are safe by HTTP's definition (RFC 9110 §9.2.1), and apps that
/// write on a GET are already wrong in other ways.
pub fn refusal(method: &Method, headers: &HeaderMap) -> Option<String> {
    if method.is_safe() {
        return None;
    }
    let fetch_site = headers.get("sec-fetch-site").map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .trim()
            .to_ascii_lowercase()
    });
    if fetch_site.as_deref() == Some("cross-site") {
        return Some("Sec-Fetch-Site: cross-site".to_string());
    }
    let mut origins = headers.get_all(http::header::ORIGIN).iter();
    let origin = origins.next()?;
    if origins.next().is_some() {
        return Some("more than one Origin header".to_string());
    }
    let origin = String::from_utf8_lossy(origin.as_bytes())
        .trim()
        .to_string();
    let host = headers
        .get(http::header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).trim().to_string());
    match host {
        Some(host) if same_site(&origin, &host) => None,
        Some(host) => Some(format!("Origin {origin:?} is not this site ({host:?})")),
        None => Some(format!(
            "Origin {origin:?} cannot be checked: the request has no Host"
        )),
    }
}

/// Whether `origin` (`scheme://host[:port]`, or `null`) names the site the
/// request was sent to, `host` being its `Host` header (`host[:port]`).
/// Host names compare without case; a missing port means the scheme's
/// default on both sides, so `https://a.example` matches `a.example` and
/// `a.example:443` (a proxy in front of the host terminates TLS).
fn same_site(origin: &str, host: &str) -> bool {
    // `null` is what sandboxed frames, data: URLs and some redirects send:
    // no site at all, so never this one.
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let (Some((o_host, o_port)), Some((h_host, h_port))) =
        (split_authority(authority), split_authority(host))
    else {
        return false;
    };
    o_host.eq_ignore_ascii_case(h_host)
        && o_port.unwrap_or(default_port) == h_port.unwrap_or(default_port)
}

/// `host[:port]` → (host, port); `None` if it is not that shape (a path,
/// user info, a port that is not a number…). IPv6 literals keep brackets.
fn split_authority(a: &str) -> Option<(&str, Option<u16>)> {
    if a.is_empty() || a.contains(['/', '@', '?', '#', ' ']) {
        return None;
    }
    let (host, port) = match a.rfind(':') {
        Some(i) if !a[i..].contains(']') => (&a[..i], Some(a[i + 1..].parse().ok()?)),
        _ => (a, None),
    };
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: Method, pairs: &[(&str, &str)]) -> Option<String> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        refusal(&method, &h)
    }

    #[test]
    fn same_origin_and_header_less_requests_pass() {
        let host = ("host", "127.0.0.1:3000");
        assert_eq!(check(Method::POST, &[host]), None);
        assert_eq!(
            check(Method::POST, &[host, ("origin", "http://127.0.0.1:3000")]),
            None
        );
        assert_eq!(
            check(
                Method::POST,
                &[
                    ("host", "Memes.Example"),
                    ("origin", "https://memes.example")
                ]
            ),
            None
        );
        assert_eq!(
            check(
                Method::POST,
                &[
                    ("host", "memes.example:443"),
                    ("origin", "https://memes.example")
                ]
            ),
            None
        );
        assert_eq!(
            check(Method::DELETE, &[host, ("sec-fetch-site", "same-origin")]),
            None
        );
        // Safe methods are never refused.
        assert_eq!(
            check(
                Method::GET,
                &[
                    host,
                    ("origin", "https://evil.example"),
                    ("sec-fetch-site", "cross-site")
                ]
            ),
            None
        );
    }

    #[test]
    fn other_sites_are_refused() {
        let host = ("host", "127.0.0.1:3000");
        for origin in [
            "https://evil.example",
            "http://127.0.0.1:3001",
            "http://127.0.0.1",
            "null",
            "http://127.0.0.1:3000.evil.example",
            "http://user@127.0.0.1:3000",
            "ftp://127.0.0.1:3000",
            "",
        ] {
            assert!(
                check(Method::POST, &[host, ("origin", origin)]).is_some(),
                "{origin}"
            );
        }
        for m in [Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(check(m, &[host, ("sec-fetch-site", "cross-site")]).is_some());
        }
        assert!(check(Method::POST, &[("origin", "http://a")]).is_some());
        assert!(check(
            Method::POST,
            &[
                host,
                ("origin", "http://127.0.0.1:3000"),
                ("origin", "https://evil.example")
            ]
        )
        .is_some());
    }

    #[test]
    fn the_setting_parses() {
        assert_eq!(CrossSite::parse("allow"), Ok(CrossSite::Allow));
        assert_eq!(CrossSite::parse("refuse"), Ok(CrossSite::Refuse));
        assert!(CrossSite::parse("yes").is_err());
    }
}
