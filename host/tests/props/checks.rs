//! The properties the fuzz targets (fuzz/) and the property tests (main.rs
//! here) both check. Each takes plain data, so libFuzzer's `arbitrary` and
//! proptest's strategies can drive the same code; each panics when its
//! property fails.

use std::path::Path;

use bytes::Bytes;
use nebula::contract::Response as WitResponse;
use nebula::executor::pure::convert::{filter_guest_header, to_http_response, to_wit_request};
use nebula::manifest::Manifest;
use nebula::router::{Pattern, RouteMatch, Router};

/// The manifest parser never panics, and every error names the file and a
/// line of it.
pub fn manifest_parse(text: &str) {
    let file = Path::new("fuzz.toml");
    let Err(e) = Manifest::parse(file, text) else {
        return;
    };
    let shown = e.to_string();
    assert!(
        shown.starts_with("fuzz.toml:"),
        "the error does not start with file:line: {shown}"
    );
    let line = e
        .line
        .unwrap_or_else(|| panic!("the error has no line: {shown}"));
    let lines = text.lines().count().max(1);
    assert!(
        (1..=lines + 1).contains(&line),
        "line {line} is outside the text ({lines} lines): {shown}"
    );
    assert!(!e.message.trim().is_empty(), "empty message: {shown}");
}

/// The routes of a router as the fuzzers give them: pattern text and methods.
pub type RouteDefs = [(String, Vec<String>)];

/// Routing never panics; a match is a route that takes the method, with
/// exactly that route's parameters, non-empty except a wildcard's.
pub fn router_matches_consistently(defs: &RouteDefs, method: &str, path: &str) {
    let parsed: Vec<(Pattern, Vec<String>)> = defs
        .iter()
        .filter_map(|(p, ms)| Some((Pattern::parse(p).ok()?, ms.clone())))
        .collect();
    let router = Router::new(parsed.clone());
    match router.route(method, path) {
        RouteMatch::Found { route, params } => {
            let (pattern, methods) = &parsed[route];
            assert!(
                methods
                    .iter()
                    .any(|m| m == method || (method == "HEAD" && m == "GET")),
                "{method} {path} went to {} which takes {methods:?}",
                pattern.source()
            );
            let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
            let expected: Vec<&str> = pattern.param_names().collect();
            assert_eq!(names, expected, "{path} on {}", pattern.source());
        }
        RouteMatch::MethodNotAllowed { allow } => {
            assert!(!allow.is_empty());
            assert!(
                !allow.iter().any(|m| m == method),
                "{method} {path}: refused, yet {method} is allowed: {allow:?}"
            );
        }
        RouteMatch::NotFound => {}
    }
}

/// A path built from a pattern by filling in its parameters is routed: to
/// that pattern if it is the only route, with the values given back exactly.
/// `values` fill the parameters in order (a wildcard takes `/`-separated
/// segments); they are percent-encoded into the path.
pub fn router_finds_a_filled_in_pattern(pattern: &str, values: &[String]) {
    let Ok(p) = Pattern::parse(pattern) else {
        return;
    };
    let Some((path, expected)) = fill_in(&p, values) else {
        return;
    };
    let router = Router::new([(p.clone(), vec!["GET".to_string()])]);
    match router.route("GET", &path) {
        RouteMatch::Found { route: 0, params } => {
            assert_eq!(params, expected, "{path} on {pattern}")
        }
        other => panic!("{path} built from {pattern} was not routed to it: {other:?}"),
    }
    // HEAD is served by a GET route; another method is refused, not lost.
    assert!(matches!(
        router.route("HEAD", &path),
        RouteMatch::Found { route: 0, .. }
    ));
    assert!(matches!(
        router.route("DELETE", &path),
        RouteMatch::MethodNotAllowed { .. }
    ));
}

/// The request path for `p` with `values` filled in, and the parameters the
/// router should bind; `None` if the values cannot fill it.
fn fill_in(p: &Pattern, values: &[String]) -> Option<(String, Vec<(String, String)>)> {
    let names: Vec<&str> = p.param_names().collect();
    if values.len() < names.len() {
        return None;
    }
    let mut path = String::new();
    let mut params = Vec::new();
    let mut values = values.iter();
    let source = p.source();
    let trimmed = source.strip_prefix('/').unwrap_or(source);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Some(("/".to_string(), params));
    }
    for seg in trimmed.split('/') {
        path.push('/');
        if let Some(rest) = seg.strip_prefix(':') {
            let (name, suffix) = rest.split_at(rest.find('.').unwrap_or(rest.len()));
            let v = values.next()?;
            if v.is_empty() {
                return None;
            }
            path.push_str(&encode(v));
            path.push_str(&encode(suffix));
            params.push((name.to_string(), v.clone()));
        } else if let Some(name) = seg.strip_prefix('*') {
            let v = values.next()?;
            let name = if name.is_empty() { "*" } else { name };
            // Empty segments would be dropped or merged; keep them out.
            let parts: Vec<&str> = v.split('/').filter(|s| !s.is_empty()).collect();
            path.push_str(
                &parts
                    .iter()
                    .map(|s| encode(s))
                    .collect::<Vec<_>>()
                    .join("/"),
            );
            params.push((name.to_string(), parts.join("/")));
        } else {
            path.push_str(&encode(seg));
        }
    }
    Some((path, params))
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A request the fuzzers describe: any method, target and header bytes.
pub struct RawRequest<'a> {
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub headers: &'a [(Vec<u8>, Vec<u8>)],
    pub body: &'a [u8],
    pub params: Vec<(String, String)>,
    pub seed: u64,
    pub now_ms: u64,
}

/// For every request `http` accepts, the WIT request carries the same
/// method, the percent-decoded path, the query's pairs, every header in
/// order (value intact when it is UTF-8), the params, body, seed and time;
/// and those headers go back through a response unchanged.
pub fn request_converts_faithfully(raw: &RawRequest) {
    let mut b = http::Request::builder().method(raw.method).uri(raw.uri);
    for (k, v) in raw.headers {
        b = b.header(k.as_slice(), v.as_slice());
    }
    let Ok(req) = b.body(Bytes::copy_from_slice(raw.body)) else {
        return;
    };
    let wit = to_wit_request(
        "id-1",
        &req,
        "/route",
        raw.params.clone(),
        raw.seed,
        raw.now_ms,
    );
    assert_eq!(wit.id, "id-1");
    assert_eq!(wit.route, "/route");
    assert_eq!(wit.method, req.method().as_str());
    assert_eq!(
        wit.path,
        percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy()
    );
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    assert_eq!(wit.query, query);
    assert_eq!(wit.headers.len(), req.headers().len());
    for ((k, v), (hk, hv)) in wit.headers.iter().zip(req.headers()) {
        assert_eq!(k, hk.as_str());
        match std::str::from_utf8(hv.as_bytes()) {
            Ok(s) => assert_eq!(v, s),
            Err(_) => assert_eq!(v, &String::from_utf8_lossy(hv.as_bytes())),
        }
    }
    assert_eq!(wit.params, raw.params);
    assert_eq!(wit.body, raw.body);
    assert_eq!((wit.seed, wit.now_ms), (raw.seed, raw.now_ms));

    // Headers that are valid both ways survive the way back unchanged,
    // except those only the host may set in a response (hop-by-hop,
    // framing), which are dropped.
    let echoed: Vec<(String, String)> = wit
        .headers
        .iter()
        .filter(|(_, v)| http::HeaderValue::from_str(v).is_ok())
        .filter(|(k, v)| filter_guest_header(k, v).as_deref() == Ok(v.as_str()))
        .cloned()
        .collect();
    let resp = to_http_response(
        WitResponse {
            status: 200,
            headers: echoed.clone(),
            body: Vec::new(),
            effects: Vec::new(),
        },
        None,
    )
    .expect("headers that came from a request are valid in a response");
    let back: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8(v.as_bytes().to_vec()).expect("came from a String");
            (k.as_str().to_string(), v)
        })
        .collect();
    assert_eq!(back, echoed);
}

/// Any response a component returns becomes a valid HTTP response or an
/// error that names what is wrong; never a panic. A valid one keeps the
/// status, the headers in order (with `{{last_insert_rowid}}` filled in) and
/// the body.
pub fn response_converts_or_is_refused(
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    rowid: Option<i64>,
) {
    let resp = WitResponse {
        status,
        headers: headers.clone(),
        body: body.clone(),
        effects: Vec::new(),
    };
    match to_http_response(resp, rowid) {
        Ok(r) => {
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(r.body().as_ref(), body.as_slice());
            let got: Vec<(String, &[u8])> = r
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.as_bytes()))
                .collect();
            let mut expected: Vec<(String, Vec<u8>)> = headers
                .iter()
                .filter_map(|(k, v)| {
                    // Dropped or trimmed as a guest may not set them.
                    let v = filter_guest_header(k, v).ok()?;
                    let v = match rowid {
                        Some(id) => v.replace("{{last_insert_rowid}}", &id.to_string()),
                        None => v,
                    };
                    Some((k.to_ascii_lowercase(), v.into_bytes()))
                })
                .collect();
            if !body.is_empty() && !expected.iter().any(|(k, _)| k == "content-type") {
                expected.push(("content-type".into(), b"application/octet-stream".to_vec()));
            }
            // http groups values of one name together; compare as multisets
            // per name, in order within each name.
            for (name, _) in &expected {
                let want: Vec<&[u8]> = expected
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.as_slice())
                    .collect();
                let have: Vec<&[u8]> = got
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| *v)
                    .collect();
                assert_eq!(have, want, "header {name}");
            }
            assert_eq!(got.len(), expected.len());
        }
        Err(msg) => assert!(!msg.is_empty()),
    }
}
