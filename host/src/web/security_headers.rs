//! The headers every response of an app gets (`[headers]` in app.toml,
//! `[application.tool.nebula.headers]` in spin.toml), and the headers a
//! guest's response may not set.
//!
//! Defaults: a Content-Security-Policy that runs only the site's own
//! scripts and loads only its own resources (styles may be inline:
//! Academemes' tag cloud and /stats size things with `style` attributes,
//! and with images, fonts and connections limited to 'self' injected CSS
//! has no way to send anything out), no framing by anyone (clickjacking),
//! no Referer to other sites, and no MIME sniffing.

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_SECURITY_POLICY};

pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Name and value of each default, in the order they are sent.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("content-security-policy", DEFAULT_CSP),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("x-content-type-options", "nosniff"),
];

/// Headers that describe the connection or the message's framing: only the
/// host may set them, or a response could desynchronise the connection
/// (a wrong `content-length` makes the next pipelined response start inside
/// this one's body). RFC 9110 §7.6.1 and RFC 9112 §6.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What one app sends with every response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        SecurityHeaders {
            headers: DEFAULTS
                .iter()
                .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
                .collect(),
        }
    }
}

impl SecurityHeaders {
    /// The defaults with the manifest's overrides: a value replaces the
    /// default of the same name (or adds a header), `""` removes it. An
    /// error names the header and what is wrong.
    pub fn with_overrides<'a>(
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<SecurityHeaders, (String, String)> {
        let mut out = SecurityHeaders::default();
        for (name, value) in overrides {
            let lower = name.to_ascii_lowercase();
            let header = HeaderName::from_bytes(lower.as_bytes()).map_err(|_| {
                (
                    name.to_string(),
                    format!("{name:?} is not a valid HTTP header name"),
                )
            })?;
            if HOP_BY_HOP.contains(&lower.as_str()) || lower == "set-cookie" {
                return Err((
                    name.to_string(),
                    format!("{name} is set by the host for each response and cannot be configured"),
                ));
            }
            out.headers.retain(|(k, _)| *k != header);
            if value.is_empty() {
                continue;
            }
            let v = HeaderValue::from_str(value).map_err(|_| {
                (
                    name.to_string(),
                    format!("the value {value:?} is not a valid header value (visible ASCII only)"),
                )
            })?;
            out.headers.push((header, v));
        }
        Ok(out)
    }

    /// Sets these headers on a response. They replace what the guest sent
    /// under the same name, except `Content-Security-Policy`: a guest's
    /// policy is kept beside the host's, and browsers enforce both, so it
    /// can only narrow what the page may do.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (k, v) in &self.headers {
            if *k == CONTENT_SECURITY_POLICY {
                headers.append(k.clone(), v.clone());
            } else {
                headers.insert(k.clone(), v.clone());
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().map(|(k, v)| (k, v))
    }
}

/// Whether [`filter_guest_header`] keeps a header of this (lowercase) name
/// as it is, whatever its value: every name but the hop-by-hop and framing
/// ones, `X-Frame-Options` and the two CSP headers. Lets a response whose
/// headers are all of that kind skip the filter (the common case); the
/// filter itself checks it first.
pub fn kept_as_is(lower_name: &str) -> bool {
    !(HOP_BY_HOP.contains(&lower_name)
        || lower_name == "x-frame-options"
        || lower_name == "content-security-policy"
        || lower_name == "content-security-policy-report-only")
}

/// What becomes of a header a guest's response sets: `Some(value)` to
/// keep (possibly changed), `None` to drop. Hop-by-hop and framing headers
/// and `X-Frame-Options` are dropped; a `Content-Security-Policy` loses its
/// `frame-ancestors` directive (whether the page may be framed is the
/// manifest's call, not the guest's). The reason is for the log.
pub fn filter_guest_header(name: &str, value: &str) -> Result<String, &'static str> {
    let lower = name.to_ascii_lowercase();
    if kept_as_is(&lower) {
        return Ok(value.to_string());
    }
    if HOP_BY_HOP.contains(&lower.as_str()) {
        return Err("it describes the connection or the message framing, which only the host sets");
    }
    if lower == "x-frame-options" {
        return Err("framing is set by the host ([headers] in the manifest)");
    }
    if lower == "content-security-policy" || lower == "content-security-policy-report-only" {
        let kept: Vec<&str> = value
            .split(';')
            .map(str::trim)
            .filter(|d| {
                !d.split_whitespace()
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case("frame-ancestors"))
            })
            .filter(|d| !d.is_empty())
            .collect();
        let had = value
            .split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .count();
        if kept.len() != had {
            if kept.is_empty() {
                return Err("its only directive is frame-ancestors; framing is set by the host ([headers] in the manifest)");
            }
            return Ok(kept.join("; "));
        }
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_overrides_and_removals() {
        let d = SecurityHeaders::default();
        let names: Vec<&str> = d.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-security-policy",
                "x-frame-options",
                "referrer-policy",
                "x-content-type-options"
            ]
        );
        let o = SecurityHeaders::with_overrides([
            ("Referrer-Policy", "no-referrer"),
            ("x-frame-options", ""),
            ("permissions-policy", "camera=()"),
        ])
        .unwrap();
        let got: Vec<(String, String)> = o
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert!(got.contains(&("referrer-policy".into(), "no-referrer".into())));
        assert!(got.contains(&("permissions-policy".into(), "camera=()".into())));
        assert!(!got.iter().any(|(k, _)| k == "x-frame-options"));
        for bad in [("content-length", "1"), ("bad name", "x"), ("x-a", "\u{7}")] {
            assert!(SecurityHeaders::with_overrides([bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_host_policy_is_added_to_a_guests_and_replaces_framing() {
        let mut h = HeaderMap::new();
        h.insert("content-security-policy", "img-src 'none'".parse().unwrap());
        h.insert("referrer-policy", "unsafe-url".parse().unwrap());
        SecurityHeaders::default().apply(&mut h);
        assert_eq!(h.get_all("content-security-policy").iter().count(), 2);
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }

    #[test]
    fn guests_cannot_set_framing_or_hop_by_hop_headers() {
        for name in [
            "Content-Length",
            "transfer-encoding",
            "Connection",
            "keep-alive",
            "te",
            "trailer",
            "upgrade",
            "X-Frame-Options",
        ] {
            assert!(filter_guest_header(name, "x").is_err(), "{name}");
        }
        assert_eq!(
            filter_guest_header(
                "content-security-policy",
                "default-src 'self'; frame-ancestors *"
            ),
            Ok("default-src 'self'".to_string())
        );
        assert!(filter_guest_header("content-security-policy", "frame-ancestors *").is_err());
        assert_eq!(filter_guest_header("x-custom", "v"), Ok("v".to_string()));
        // What `kept_as_is` lets skip the filter, the filter keeps unchanged.
        for name in ["x-custom", "content-type", "cache-control", "set-cookie"] {
            assert!(kept_as_is(name), "{name}");
            for value in ["v", "frame-ancestors *", "a; b"] {
                assert_eq!(filter_guest_header(name, value), Ok(value.to_string()));
            }
        }
        for name in HOP_BY_HOP.iter().copied().chain([
            "x-frame-options",
            "content-security-policy",
            "content-security-policy-report-only",
        ]) {
            assert!(!kept_as_is(name), "{name}");
        }
    }
}
