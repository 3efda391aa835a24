//! Exactly-once writes: what a store records for a request that carried an
//! `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header).
//!
//! A store commits a request's effects and the response it got in one
//! transaction, under the key. A retry with the same key — from the client,
//! or from a load balancer that resent a POST to another node — finds the
//! record and gets the same response without running anything again. The
//! record's fingerprint (method, path, body) tells a genuine retry from a
//! different request that reuses a key (refused with 422, as the draft says).

use std::sync::Arc;

/// How long a record is kept: a retry comes within seconds or minutes; a
/// day covers clients that retry after being offline.
pub const KEEP_MS: i64 = 24 * 60 * 60 * 1000;

/// A response as recorded: enough to send it again byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The headers as stored (a JSON array of pairs: readable in `psql`).
    pub fn headers_json(&self) -> String {
        serde_json::to_string(&self.headers).unwrap_or_else(|_| "[]".into())
    }

    pub fn from_parts(status: i64, headers_json: &str, body: Vec<u8>) -> Recorded {
        Recorded {
            status: u16::try_from(status).unwrap_or(500),
            headers: serde_json::from_str(headers_json).unwrap_or_default(),
            body,
        }
    }
}

/// What a request asks its store to record with its effects.
#[derive(Clone)]
pub struct Once {
    /// The client's key, scoped by the host (visitor and route) so that two
    /// clients' keys never meet.
    pub key: String,
    pub fingerprint: String,
    /// The response to record, given the id of the last inserted row (the
    /// response may carry it, `{{last_insert_rowid}}`). Called inside the
    /// transaction, possibly more than once if the store retries it.
    pub response: Arc<dyn Fn(i64) -> Recorded + Send + Sync>,
}

/// What [`super::DataStore::apply`] did.
#[derive(Debug, PartialEq)]
pub enum Applied {
    /// The effects (and the record, with a key) are committed.
    Committed { last_insert_rowid: i64 },
    /// A request with the same key committed first; nothing was written.
    Duplicate {
        fingerprint: String,
        recorded: Recorded,
    },
}

impl Applied {
    /// What an `apply` with nothing to write and no key to record answers,
    /// without asking the database.
    pub fn nothing_to_apply(
        effects: &[crate::contract::Effect],
        once: Option<&Once>,
    ) -> Option<Applied> {
        (effects.is_empty() && once.is_none()).then_some(Applied::Committed {
            last_insert_rowid: 0,
        })
    }
}
