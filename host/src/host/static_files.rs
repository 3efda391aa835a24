//! Static files under the app's static folder, with content types, ETags
//! and caching headers. Anything that would leave the folder — `..`, its
//! percent-encoded forms, backslashes, NUL, symbolic links pointing out — is
//! refused.

use std::path::{Component, Path};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, StatusCode};

use crate::server::pages;

const CACHE_CONTROL_VALUE: &str = "public, max-age=3600";

/// The rest of `path` after the prefix, if the path is under it.
pub fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// `root` is the static folder, already canonical (resolved once at load).
pub fn serve(root: &Path, rest: &str, req_headers: &HeaderMap) -> http::Response<Bytes> {
    let Some(rel) = safe_relative(rest) else {
        return refused();
    };
    let Ok(full) = root.join(&rel).canonicalize() else {
        return pages::not_found(&rel);
    };
    if !full.starts_with(root) {
        return refused();
    }
    let Ok(meta) = std::fs::metadata(&full) else {
        return pages::not_found(&rel);
    };
    if !meta.is_file() {
        return pages::not_found(&rel);
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let etag = format!("\"{:x}-{:x}\"", meta.len(), mtime);
    let not_modified = req_headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));

    let mut resp = if not_modified {
        let mut r = http::Response::new(Bytes::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        match std::fs::read(&full) {
            Ok(bytes) => {
                let mut r = http::Response::new(Bytes::from(bytes));
                r.headers_mut().insert(CONTENT_TYPE, content_type(&full));
                r
            }
            Err(_) => return pages::not_found(&rel),
        }
    };
    let h = resp.headers_mut();
    h.insert(ETAG, HeaderValue::from_str(&etag).expect("hex etag"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL_VALUE));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Decodes the URL path and keeps it only if every segment is a plain name.
fn safe_relative(rest: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()?;
    if decoded.contains(['\\', '\0']) {
        return None;
    }
    let rel = decoded.strip_prefix('/').unwrap_or(&decoded);
    if rel.is_empty() {
        return None;
    }
    let ok = Path::new(rel)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        && !rel
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    ok.then(|| rel.to_string())
}

fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text = mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
        || mime.subtype() == mime_guess::mime::JSON
        || mime.subtype() == "svg";
    let value = if text {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

fn refused() -> http::Response<Bytes> {
    let mut r = pages::bad_request("That path is not allowed.");
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

#[cfg(test)]
mod tests {
    use super::safe_relative;

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "/../x",
            "/a/../../x",
            "/%2e%2e/x",
            "/a/%2E%2E/%2e%2e/x",
            "/a%5c..%5cx",
            "/a%00",
            "//etc/passwd",
            "/",
            "/./a",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
        assert_eq!(
            safe_relative("/templates/deadline.svg").as_deref(),
            Some("templates/deadline.svg")
        );
        assert_eq!(safe_relative("/a%20b.css").as_deref(), Some("a b.css"));
    }
}
