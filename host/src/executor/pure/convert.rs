//! The conversions between HTTP and the pure world's records: an HTTP
//! request becomes a WIT `request`, a WIT `response` becomes an HTTP response.
//! Kept apart from the request path so fuzz targets and property tests can
//! drive them directly.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::StatusCode;

use crate::contract::{Request as WitRequest, Response as WitResponse, LAST_INSERT_ROWID};

type HttpRequest = http::Request<Bytes>;
type HttpResponse = http::Response<Bytes>;
pub use crate::web::security_headers::filter_guest_header;

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
