//! The cap on open connections per client address (`[limits]
//! max_connections_per_ip`): one client opening connections without end
//! would otherwise take every `max_connections` permit and lock everyone
//! else out into the listen backlog.
//!
//! Past the cap a new connection from that address is closed at once,
//! before anything is read from it: answering needs its request, and waiting
//! for a request is what the flood is made of. Memory is bounded by the
//! connections open: an address is forgotten when its last one closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct PerIp {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, Entry>>>,
}

#[derive(Default)]
struct Entry {
    open: usize,
    /// Whether a refusal has been logged since the address was last under
    /// its cap: one line per episode, not one per refused connection.
    logged: bool,
}

/// One open connection, counted against its address until dropped.
pub struct Counted {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, Entry>>>,
}

impl PerIp {
    pub fn new(max: usize) -> PerIp {
        PerIp {
            max: max.max(1),
            open: Arc::default(),
        }
    }

    /// Counts a connection from `ip`, or `None` if that address already has
    /// its cap open.
    pub fn admit(&self, ip: IpAddr) -> Option<Counted> {
        // IPv4 clients of an IPv6 socket arrive as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let entry = open.entry(ip).or_default();
        if entry.open >= self.max {
            if !entry.logged {
                entry.logged = true;
                tracing::warn!(
                    client = %ip,
                    max_connections_per_ip = self.max,
                    "client has max_connections_per_ip connections open; closing its new ones at once (raise [limits] max_connections_per_ip if it is a proxy or a busy NAT)"
                );
            }
            return None;
        }
        entry.open += 1;
        Some(Counted {
            ip,
            open: self.open.clone(),
        })
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = open.get_mut(&self.ip) {
            entry.open -= 1;
            entry.logged = false;
            if entry.open == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_cap_and_a_closed_connection_gives_its_place_back() {
        let caps = PerIp::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_none(), "a third from the same address");
        assert!(caps.admit(b).is_some(), "another address is not affected");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(caps.admit(mapped).is_none(), "the same client over IPv6");
        drop(a1);
        assert!(caps.admit(a).is_some());
    }

    #[test]
    fn addresses_are_forgotten_when_their_last_connection_closes() {
        let caps = PerIp::new(4);
        let held: Vec<_> = (1..=100u8)
            .map(|i| caps.admit(IpAddr::from([10, 0, 0, i])).unwrap())
            .collect();
        assert_eq!(caps.addresses(), 100);
        drop(held);
        assert_eq!(caps.addresses(), 0);
    }
}
