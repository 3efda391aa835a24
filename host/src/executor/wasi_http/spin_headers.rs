//! The headers Spin sets on every request it gives a component
//! (`spin-full-url`, `spin-path-info`, `spin-path-match-NAME`, …): the
//! router's requests and chained calls both carry them.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

/// Adds the headers Spin sets for every request it gives a component.
pub fn add_spin_headers(
    headers: &mut HeaderMap,
    uri: &http::Uri,
    raw: &str,
    params: &[(String, String)],
    client: SocketAddr,
) {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let trailing = params
        .iter()
        .find(|(k, _)| k == "*")
        .map(|(_, v)| {
            if v.is_empty() {
                String::new()
            } else {
                format!("/{v}")
            }
        })
        .unwrap_or_default();
    let prefix = raw.strip_suffix("/...").unwrap_or(raw);
    let mut set = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    };
    set("spin-full-url", &format!("http://{host}{path_and_query}"));
    set("spin-path-info", &trailing);
    set("spin-matched-route", raw);
    set("spin-base-path", "/");
    set("spin-raw-component-route", raw);
    set("spin-component-route", prefix);
    set("spin-client-addr", &client.to_string());
    for (name, value) in params {
        if name != "*" {
            set(
                &format!(
                    "spin-path-match-{}",
                    name.to_ascii_lowercase().replace('_', "-")
                ),
                value,
            );
        }
    }
}
