//! The memoised responses: least recently used first out, within a byte
//! budget that counts bodies, headers and the bookkeeping around them.

use std::sync::Arc;

use bytes::Bytes;
use lru::LruCache;

use super::key::Key;
use crate::metrics::RouteStats;

/// One memoised response.
pub struct Entry {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// The end of its clock window (ms since the epoch): after it the
    /// component would see another time, so the entry is dropped.
    pub expires_ms: u64,
    /// Whose counters its bytes and eviction go to.
    pub stats: std::sync::Arc<RouteStats>,
    size: u64,
}

/// What an entry is charged beyond its body and headers: the key, the map
/// node, the `Arc` and the `HeaderMap`'s own table.
const OVERHEAD: u64 = 256;

impl Entry {
    pub fn new(
        status: http::StatusCode,
        headers: http::HeaderMap,
        body: Bytes,
        expires_ms: u64,
        stats: std::sync::Arc<RouteStats>,
    ) -> Entry {
        let header_bytes: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        let size = OVERHEAD + body.len() as u64 + header_bytes as u64;
        Entry {
            status,
            headers,
            body,
            expires_ms,
            stats,
            size,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

pub struct Entries {
    lru: LruCache<Key, Arc<Entry>>,
    bytes: u64,
    max_bytes: u64,
}

impl Entries {
    pub fn new(max_bytes: u64) -> Entries {
        Entries {
            lru: LruCache::unbounded(),
            bytes: 0,
            max_bytes,
        }
    }

    /// The entry under `key` if it is still in its window.
    pub fn get(&mut self, key: &Key, now_ms: u64) -> Option<Arc<Entry>> {
        let entry = self.lru.get(key)?;
        if now_ms < entry.expires_ms {
            return Some(entry.clone());
        }
        let gone = self.lru.pop(key)?;
        self.forget(&gone);
        None
    }

    /// Keeps `entry` under `key`, evicting the least recently used until
    /// the budget holds; one larger than the whole budget is not kept.
    pub fn put(&mut self, key: Key, entry: Arc<Entry>) {
        if entry.size() > self.max_bytes {
            return;
        }
        self.bytes += entry.size();
        entry.stats.memo().stored(entry.size() as i64);
        if let Some(old) = self.lru.put(key, entry) {
            self.forget(&old);
        }
        while self.bytes > self.max_bytes {
            let Some((_, evicted)) = self.lru.pop_lru() else {
                break;
            };
            self.forget(&evicted);
            evicted.stats.memo().evicted();
        }
    }

    /// Drops everything (a component swap, an idle trim).
    pub fn clear(&mut self) {
        while let Some((_, e)) = self.lru.pop_lru() {
            self.forget(&e);
        }
        // The map's own table goes too.
        self.lru = LruCache::unbounded();
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    fn forget(&mut self, e: &Entry) {
        self.bytes -= e.size();
        e.stats.memo().stored(-(e.size() as i64));
    }
}
