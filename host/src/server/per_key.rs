//! At most N of something in flight per key: connections per client
//! address ([`super::per_ip`]), Redis messages per app on the platform.
//! Memory is bounded by what is in flight: a key is forgotten when its last
//! holder is dropped, so keys with nothing in flight cost nothing.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

pub struct PerKey<K> {
    held: Arc<Mutex<HashMap<K, Entry>>>,
}

impl<K> Default for PerKey<K> {
    fn default() -> Self {
        PerKey {
            held: Arc::default(),
        }
    }
}

impl<K> Clone for PerKey<K> {
    fn clone(&self) -> Self {
        PerKey {
            held: self.held.clone(),
        }
    }
}

#[derive(Default)]
struct Entry {
    held: usize,
    /// Whether a refusal was reported since the key was last under its cap.
    reported: bool,
}

/// One place, counted against its key until dropped.
pub struct Held<K: Eq + Hash> {
    key: K,
    held: Arc<Mutex<HashMap<K, Entry>>>,
}

/// No place left for this key.
#[derive(Debug)]
pub struct Full {
    /// The first refusal since the key was last under its cap: worth one
    /// log line per episode, not one per refusal (a flood must not become a
    /// flood of log lines).
    pub first: bool,
}

impl<K: Eq + Hash + Clone> PerKey<K> {
    /// A place for `key` if it holds fewer than `max`.
    pub fn admit(&self, key: K, max: usize) -> Result<Held<K>, Full> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let entry = held.entry(key.clone()).or_default();
        if entry.held >= max {
            let first = !entry.reported;
            entry.reported = true;
            return Err(Full { first });
        }
        entry.held += 1;
        Ok(Held {
            key,
            held: self.held.clone(),
        })
    }

    /// Keys holding a place now.
    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl<K: Eq + Hash> Drop for Held<K> {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = held.get_mut(&self.key) {
            entry.held -= 1;
            entry.reported = false;
            if entry.held == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_gets_its_places_and_a_dropped_one_comes_back() {
        let gate = PerKey::default();
        let mut a: Vec<_> = (0..3).map(|_| gate.admit(1, 3).expect("a place")).collect();
        assert!(gate.admit(1, 3).is_err(), "a fourth for key 1");
        let b = gate.admit(2, 3).expect("key 2 has its own places");
        a.pop();
        let again = gate.admit(1, 3).expect("a place came back");
        assert!(gate.admit(1, 3).is_err(), "and only one");
        drop(b);
        assert_eq!(gate.keys(), 1, "key 2 holds nothing: no entry");
        drop((a, again));
        assert_eq!(gate.keys(), 0);
    }

    fn refused<K: Eq + Hash + Clone>(gate: &PerKey<K>, key: K) -> Full {
        match gate.admit(key, 1) {
            Ok(_) => panic!("admitted past its cap"),
            Err(full) => full,
        }
    }

    #[test]
    fn a_refusal_is_first_once_per_episode() {
        let gate = PerKey::default();
        let held = gate.admit("k", 1).unwrap();
        let firsts: Vec<bool> = (0..5).map(|_| refused(&gate, "k").first).collect();
        assert_eq!(firsts, [true, false, false, false, false]);
        drop(held);
        let held = gate.admit("k", 1).unwrap();
        assert!(refused(&gate, "k").first, "a new episode");
        drop(held);
    }
}
