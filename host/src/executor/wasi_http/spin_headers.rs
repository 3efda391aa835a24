//! The headers Spin sets on every request it gives a component
//! (`spin-full-url`, `spin-path-info`, `spin-path-match-NAME`, …): the
//! router's requests and chained calls both carry them.
//!
//! This runs on every wasi:http request, so the fixed names are constants
//! (not parsed per request), a value that appears twice is made once, and
//! the map grows once for all of them.

use std::fmt::Write as _;
use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

const FULL_URL: HeaderName = HeaderName::from_static("spin-full-url");
const PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
const MATCHED_ROUTE: HeaderName = HeaderName::from_static("spin-matched-route");
const BASE_PATH: HeaderName = HeaderName::from_static("spin-base-path");
const RAW_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-raw-component-route");
const COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");
const CLIENT_ADDR: HeaderName = HeaderName::from_static("spin-client-addr");

/// Adds the headers Spin sets for every request it gives a component,
/// replacing any the client sent under those names. Returns the request's
/// full URL (`spin-full-url`), which is also the absolute URI wasi:http
/// needs.
pub fn add_spin_headers(
    headers: &mut HeaderMap,
    uri: &http::Uri,
    raw: &str,
    params: &[(String, String)],
    client: SocketAddr,
) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut full_url = String::with_capacity(7 + host.len() + path_and_query.len());
    full_url.push_str("http://");
    full_url.push_str(host);
    full_url.push_str(path_and_query);
    let trailing = params
        .iter()
        .find(|(k, _)| k == "*")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let prefix = raw.strip_suffix("/...").unwrap_or(raw);
    let mut client_addr = String::with_capacity(24);
    let _ = write!(client_addr, "{client}");

    headers.reserve(7 + params.len());
    let mut set = |name: HeaderName, value: Option<HeaderValue>| {
        // A value that is not a valid header (a route with a control
        // character) is left out rather than failing the request.
        if let Some(v) = value {
            headers.insert(name, v);
        }
    };
    set(FULL_URL, HeaderValue::from_str(&full_url).ok());
    set(
        PATH_INFO,
        if trailing.is_empty() {
            Some(HeaderValue::from_static(""))
        } else {
            HeaderValue::from_str(&format!("/{trailing}")).ok()
        },
    );
    let route = HeaderValue::from_str(raw).ok();
    set(MATCHED_ROUTE, route.clone());
    set(BASE_PATH, Some(HeaderValue::from_static("/")));
    set(
        COMPONENT_ROUTE,
        if prefix.len() == raw.len() {
            route.clone()
        } else {
            HeaderValue::from_str(prefix).ok()
        },
    );
    set(RAW_COMPONENT_ROUTE, route);
    set(CLIENT_ADDR, HeaderValue::from_str(&client_addr).ok());
    for (name, value) in params {
        if name != "*" {
            let header = format!(
                "spin-path-match-{}",
                name.to_ascii_lowercase().replace('_', "-")
            );
            if let Ok(n) = HeaderName::from_bytes(header.as_bytes()) {
                set(n, HeaderValue::from_str(value).ok());
            }
        }
    }
    full_url
}
