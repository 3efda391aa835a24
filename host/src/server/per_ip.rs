//! The cap on open connections per client address (`[limits]
//! max_connections_per_ip`): one client opening connections without end
//! would otherwise take every `max_connections` permit and lock everyone
//! else out into the listen backlog.
//!
//! Past the cap a new connection from that address is closed at once,
//! before anything is read from it: answering needs its request, and waiting
//! for a request is what the flood is made of. Memory is bounded by the
//! connections open: an address is forgotten when its last one closes.

use std::net::IpAddr;

use super::per_key::{Held, PerKey};

#[derive(Clone)]
pub struct PerIp {
    max: usize,
    open: PerKey<IpAddr>,
}

/// One open connection, counted against its address until dropped.
pub type Counted = Held<IpAddr>;

impl PerIp {
    pub fn new(max: usize) -> PerIp {
        PerIp {
            max: max.max(1),
            open: PerKey::default(),
        }
    }

    /// Counts a connection from `ip`, or `None` if that address already has
    /// its cap open.
    pub fn admit(&self, ip: IpAddr) -> Option<Counted> {
        // IPv4 clients of an IPv6 socket arrive as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        match self.open.admit(ip, self.max) {
            Ok(counted) => Some(counted),
            Err(full) => {
                if full.first {
                    tracing::warn!(
                        client = %ip,
                        max_connections_per_ip = self.max,
                        "client has max_connections_per_ip connections open; closing its new ones at once (raise [limits] max_connections_per_ip if it is a proxy or a busy NAT)"
                    );
                }
                None
            }
        }
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.keys()
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
