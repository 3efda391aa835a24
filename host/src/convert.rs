//! The conversions between HTTP and the pure world's records: an HTTP
//! request becomes a WIT `request`, a WIT `response` becomes an HTTP response.
//! Kept apart from the request path so fuzz targets and property tests can
//! drive them directly.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::StatusCode;

use crate::app::{HttpRequest, HttpResponse, LAST_INSERT_ROWID};
use crate::contract::{Request as WitRequest, Response as WitResponse};
pub use crate::web::security_headers::filter_guest_header;

/// The first value named `name` among the pairs.
pub fn lookup(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Form fields of a urlencoded body, parsed only if a read binds one.
pub struct FormFields<'a> {
    req: &'a WitRequest,
    parsed: std::cell::OnceCell<Vec<(String, String)>>,
}

impl<'a> FormFields<'a> {
    pub fn new(req: &'a WitRequest) -> Self {
        FormFields {
            req,
            parsed: std::cell::OnceCell::new(),
        }
    }
    pub fn get(&self, name: &str) -> Option<String> {
        let fields = self.parsed.get_or_init(|| {
            let is_form = self.req.headers.iter().any(|(k, v)| {
                k == "content-type" && v.starts_with("application/x-www-form-urlencoded")
            });
            if !is_form {
                return Vec::new();
            }
            form_urlencoded::parse(&self.req.body)
                .into_owned()
                .collect()
        });
        lookup(fields, name)
    }
}

/// The WIT request for an HTTP request that matched `route` with `params`;
/// the path is percent-decoded, the query parsed as urlencoded pairs, and
/// bytes that are not UTF-8 become U+FFFD.
pub fn to_wit_request(
    id: &str,
    req: &HttpRequest,
    route: &str,
    params: Vec<(String, String)>,
    seed: u64,
    now_ms: u64,
) -> WitRequest {
    let uri = req.uri();
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8_lossy()
        .into_owned();
    let query = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    WitRequest {
        id: id.to_string(),
        method: req.method().as_str().to_string(),
        path,
        route: route.to_string(),
        query,
        headers,
        params,
        body: req.body().to_vec(),
        seed,
        now_ms,
    }
}

/// The HTTP response for a component's response, with `{{last_insert_rowid}}`
/// in header values replaced by `rowid`; an invalid status or header is an
/// error that names it. Headers a guest may not set (hop-by-hop, framing,
/// see [`filter_guest_header`]) are dropped and logged.
pub fn to_http_response(resp: WitResponse, rowid: Option<i64>) -> Result<HttpResponse, String> {
    let status = StatusCode::from_u16(resp.status)
        .map_err(|_| format!("status {} is not an HTTP status", resp.status))?;
    let mut out = http::Response::builder().status(status);
    let headers = out.headers_mut().expect("fresh builder");
    for (k, v) in resp.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name {k:?}"))?;
        // Framing and connection headers are the host's: a guest's
        // `content-length: 0` over a body would otherwise end this response
        // early and start the next pipelined one inside its body.
        let v = match filter_guest_header(name.as_str(), &v) {
            Ok(v) => v,
            Err(why) => {
                tracing::warn!(header = %name, "dropped a header from the component's response: {why}");
                continue;
            }
        };
        let value = match rowid {
            Some(id) if v.contains(LAST_INSERT_ROWID) => {
                v.replace(LAST_INSERT_ROWID, &id.to_string())
            }
            _ => v,
        };
        let value =
            HeaderValue::from_str(&value).map_err(|_| format!("invalid value for header {k:?}"))?;
        headers.append(name, value);
    }
    if !headers.contains_key(CONTENT_TYPE) && !resp.body.is_empty() {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    out.body(Bytes::from(resp.body)).map_err(|e| e.to_string())
}

/// What is wrong with a request's `Host` header, if anything (RFC 9112
/// §3.2: an HTTP/1.1 request needs exactly one, and it must be a valid
/// authority; it may be empty). hyper leaves this check to the server.
pub fn host_problem(version: http::Version, headers: &http::HeaderMap) -> Option<&'static str> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == http::Version::HTTP_11 => {
            Some("An HTTP/1.1 request needs a Host header.")
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some("The request has more than one Host header."),
        (Some(h), None) if h.is_empty() => None,
        (Some(h), None) => http::uri::Authority::try_from(h.as_bytes())
            .is_err()
            .then_some("The Host header is not a valid host[:port]."),
    }
}
