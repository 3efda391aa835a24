//! The request side of exactly-once writes: the `Idempotency-Key` header
//! (draft-ietf-httpapi-idempotency-key-header) on a route that writes.
//!
//! The store records the response with the effects (`data::idempotency`);
//! this module decides which requests ask for that, scopes their key, and
//! turns a record back into a response.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use sha2::{Digest, Sha256};

use super::failure::Failure;
use crate::contract::LAST_INSERT_ROWID;
use crate::data::idempotency::{Once, Recorded};
use crate::executor::Payload;
use crate::web::session::Visitor;

pub const HEADER: &str = "idempotency-key";

/// Sent with a recorded response, so a client can tell a replay.
pub const REPLAYED: &str = "idempotent-replayed";

/// The longest key accepted: a UUID is 36; the draft sets no bound.
const MAX_KEY: usize = 255;

/// A request's key, scoped and fingerprinted, before the call.
pub struct Key {
    pub scoped: String,
    pub fingerprint: String,
}

/// The request's key, if it has one; a malformed key is a 400.
///
/// The key is scoped by the route and, when the request carried a valid
/// visitor cookie, by the visitor, so that one visitor's key never finds
/// another's response. A client without a cookie (an API client, curl) is a
/// new visitor on every request, retries included, so its keys are scoped
/// by the route alone: its retry must find the first attempt's record. The
/// fingerprint (method, path and query, body) tells a retry from a
/// different request that reuses the key.
pub fn key_of(
    req: &http::Request<Payload>,
    route: &str,
    visitor: Option<&Visitor>,
) -> Result<Option<Key>, Failure> {
    let Some(raw) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("");
    // The draft makes it a structured-field string ("…"); plain tokens
    // are what most clients send, and both are taken.
    let key = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Failure::BadBody(format!(
            "the Idempotency-Key header must be 1 to {MAX_KEY} visible ASCII characters, such as a UUID"
        )));
    }
    let mut scope = Sha256::new();
    let known = visitor.filter(|v| v.set_cookie.is_none());
    for part in [known.map_or("", |v| v.id.as_str()), route, key] {
        scope.update(part.len().to_le_bytes());
        scope.update(part.as_bytes());
    }
    let mut print = Sha256::new();
    print.update(req.method().as_str().as_bytes());
    print.update(b" ");
    print.update(req.uri().to_string().as_bytes());
    print.update(b"\n");
    if let Payload::Whole(body) = req.body() {
        print.update(body);
    }
    Ok(Some(Key {
        scoped: hex::encode(scope.finalize()),
        fingerprint: hex::encode(print.finalize()),
    }))
}

/// What the store records for `resp` (its headers still holding
/// `{{last_insert_rowid}}`, filled in by the store's id).
pub fn once(key: &Key, resp: &http::Response<Payload>) -> Option<Once> {
    let Payload::Whole(body) = resp.body() else {
        // A streamed body cannot be recorded; such components have no
        // store writes anyway.
        return None;
    };
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = body.to_vec();
    Some(Once {
        key: key.scoped.clone(),
        fingerprint: key.fingerprint.clone(),
        response: Arc::new(move |rowid| Recorded {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), v.replace(LAST_INSERT_ROWID, &rowid.to_string())))
                .collect(),
            body: body.clone(),
        }),
    })
}

/// The recorded response for a retry of the same request; 422 for a key
/// reused with a different one.
pub fn replay(
    key: &Key,
    fingerprint: &str,
    recorded: Recorded,
) -> Result<http::Response<Payload>, Failure> {
    if fingerprint != key.fingerprint {
        return Err(Failure::KeyReused);
    }
    let mut resp = http::Response::new(Payload::Whole(Bytes::from(recorded.body)));
    *resp.status_mut() =
        http::StatusCode::from_u16(recorded.status).unwrap_or(http::StatusCode::OK);
    for (k, v) in recorded.headers {
        if let (Ok(k), Ok(v)) = (
            http::header::HeaderName::try_from(k),
            HeaderValue::try_from(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(resp)
}
