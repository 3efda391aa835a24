//! The host's own pages: 404, 405, 408, 413, 500, 503, 504. Plain, styled like the app
//! when it has a stylesheet, and never echoing anything unescaped.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::StatusCode;

use super::escape_html;

pub fn not_found(path: &str) -> http::Response<Bytes> {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!(
            "<p>There is no page at <code>{}</code>. Peer review found it to be a figment of the reader's imagination.</p>",
            escape_html(path)
        ),
    )
}

pub fn method_not_allowed(allow: &[&str]) -> http::Response<Bytes> {
    let mut r = page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        &format!(
            "<p>This address answers {} only.</p>",
            escape_html(&allow.join(", "))
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        r.headers_mut().insert(ALLOW, v);
    }
    r
}

pub fn payload_too_large(limit: usize) -> http::Response<Bytes> {
    page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request too large",
        &format!("<p>The request body is over the limit of {limit} bytes.</p>"),
    )
}

pub fn request_timeout(limit: std::time::Duration) -> http::Response<Bytes> {
    let mut r = page(
        StatusCode::REQUEST_TIMEOUT,
        "Request timeout",
        &format!(
            "<p>The request body did not arrive within {} ms.</p>",
            limit.as_millis()
        ),
    );
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

pub fn bad_request(message: &str) -> http::Response<Bytes> {
    page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!("<p>{}</p>", escape_html(message)),
    )
}

/// An error of the host or of a component; the request id lets the person
/// who reports it and the operator who reads the log find the same request.
pub fn error(status: StatusCode, request_id: &str, message: &str) -> http::Response<Bytes> {
    page(
        status,
        status.canonical_reason().unwrap_or("Error"),
        &format!(
            "<p>{}</p><p class=\"request-id\">Request id: <code>{}</code></p>",
            escape_html(message),
            escape_html(request_id)
        ),
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> http::Response<Bytes> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{code} {title}</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head>\
<body><main class=\"container error-page\"><h1>{code} — {title}</h1>{body}\
<p><a href=\"/\">Back to the front page</a></p></main></body></html>\n",
        code = status.as_u16(),
        title = escape_html(title),
    );
    let mut r = http::Response::new(Bytes::from(html));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}
