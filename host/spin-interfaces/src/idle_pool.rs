//! One component's open connections to outside servers (Redis, MQTT), kept between its
//! requests and closed once unused for a while.
//!
//! A guest opens a connection on nearly every request (the SDKs have no other way), so
//! without a pool each request would pay a TCP (and TLS) handshake and the server would see
//! a connection per request. The pool is per component, so tenants never share a
//! connection. An entry is dropped by a tokio task of its own once it has gone unused for
//! the pool's idle time: the task sleeps until the entry could have expired and ends with
//! it, so nothing wakes for a component that holds no connection.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

// tokio's clock, so that tests can advance it; the same as std's outside them.
use tokio::time::Instant;

/// Connections by key (the address, and whatever else makes one connection differ).
pub(crate) struct IdlePool<K, V> {
    idle: Duration,
    /// What `last_used` counts from.
    epoch: Instant,
    entries: Mutex<HashMap<K, Entry<V>>>,
}

struct Entry<V> {
    value: V,
    used: Arc<Used>,
}

/// When an entry was last used, in ms since the pool's epoch; shared with the guest's
/// handle, which marks it on every call.
#[derive(Debug)]
pub(crate) struct Used {
    epoch: Instant,
    ms: AtomicU64,
}

impl Used {
    /// Marks the connection as used now.
    pub(crate) fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.ms.fetch_max(now, Ordering::Relaxed);
    }

    fn at(&self) -> Instant {
        self.epoch + Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }
}

impl<K, V> IdlePool<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(crate) fn new(idle: Duration) -> Self {
        Self {
            idle,
            epoch: Instant::now(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The pooled connection for `key`, if one is there and not past its idle time
    /// (its reaper may not have run yet); marks it used.
    pub(crate) fn get(&self, key: &K) -> Option<(V, Arc<Used>)> {
        self.get_fresh(key, self.idle)
    }

    /// As [`Self::get`], for a connection the server itself drops sooner when idle (MQTT's
    /// keep-alive): one unused for `max_idle` is not handed out again.
    pub(crate) fn get_fresh(&self, key: &K, max_idle: Duration) -> Option<(V, Arc<Used>)> {
        let mut entries = self.entries.lock().unwrap();
        let entry = entries.get(key)?;
        if entry.used.at().elapsed() >= self.idle.min(max_idle) {
            entries.remove(key);
            return None;
        }
        entry.used.touch();
        Some((entry.value.clone(), entry.used.clone()))
    }

    /// The pooled connection for `key`, or `make()`'s, pooled; `make` runs under the pool's
    /// lock, so it must not block (it only builds a client; connecting happens later).
    pub(crate) fn get_or_insert(
        self: &Arc<Self>,
        key: &K,
        make: impl FnOnce() -> V,
    ) -> (V, Arc<Used>) {
        if let Some(found) = self.get(key) {
            return found;
        }
        let mut entries = self.entries.lock().unwrap();
        // An entry `get` found stale but the reaper has not removed yet is replaced.
        if entries
            .get(key)
            .is_some_and(|e| e.used.at().elapsed() >= self.idle)
        {
            entries.remove(key);
        }
        let entry = entries.entry(key.clone()).or_insert_with(|| {
            self.spawn_reaper(key.clone());
            Entry {
                value: make(),
                used: self.used_now(),
            }
        });
        (entry.value.clone(), entry.used.clone())
    }

    /// Pools `value` under `key` (after it was connected outside the lock). If another call
    /// pooled one meanwhile, that one is kept and `value` stays the caller's alone: `None`.
    pub(crate) fn insert(self: &Arc<Self>, key: K, value: V) -> Option<Arc<Used>> {
        let mut entries = self.entries.lock().unwrap();
        if let Some(entry) = entries.get(&key) {
            if entry.used.at().elapsed() < self.idle {
                return None;
            }
        }
        self.spawn_reaper(key.clone());
        let used = self.used_now();
        entries.insert(
            key,
            Entry {
                value,
                used: used.clone(),
            },
        );
        Some(used)
    }

    /// A use mark for a connection outside the pool.
    pub(crate) fn unpooled(&self) -> Arc<Used> {
        self.used_now()
    }

    /// Forgets the connection for `key` (it failed); handles that hold it keep it until
    /// they are dropped.
    pub(crate) fn remove(&self, key: &K) {
        self.entries.lock().unwrap().remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    fn used_now(&self) -> Arc<Used> {
        let used = Arc::new(Used {
            epoch: self.epoch,
            ms: AtomicU64::new(0),
        });
        used.touch();
        used
    }

    /// Drops the entry for `key` once it has been idle for the pool's idle time; ends then,
    /// or when the entry was removed, or when the pool (the component) is gone. Without a
    /// tokio runtime (a caller that only checks), entries expire on their next `get`.
    fn spawn_reaper(self: &Arc<Self>, key: K) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool: Weak<Self> = Arc::downgrade(self);
        let idle = self.idle;
        rt.spawn(async move {
            let mut wake = Instant::now() + idle;
            loop {
                tokio::time::sleep_until(wake).await;
                let Some(pool) = pool.upgrade() else { return };
                let mut entries = pool.entries.lock().unwrap();
                let Some(entry) = entries.get(&key) else {
                    return;
                };
                let expires = entry.used.at() + idle;
                if expires <= Instant::now() {
                    entries.remove(&key);
                    return;
                }
                wake = expires;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_when_unused_and_live_while_used() {
        let pool = Arc::new(IdlePool::<String, u32>::new(Duration::from_secs(30)));
        let (v, used) = pool.get_or_insert(&"a".into(), || 1);
        assert_eq!(v, 1);
        assert_eq!(pool.get_or_insert(&"a".into(), || 2).0, 1);
        // Used every 20 s, it stays.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            used.touch();
        }
        assert_eq!(pool.len(), 1);
        // Unused for longer than the idle time, the reaper drops it.
        tokio::time::sleep(Duration::from_secs(31)).await;
        tokio::task::yield_now().await;
        assert_eq!(pool.len(), 0);
        assert_eq!(pool.get_or_insert(&"a".into(), || 3).0, 3);
        pool.remove(&"a".into());
        assert!(pool.get(&"a".into()).is_none());
    }
}
