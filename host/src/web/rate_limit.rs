//! Per-client rate limits (`[[routes]] rate_limit = "10/min"`): a token
//! bucket per (route, client address) that holds `count` tokens and refills
//! `count` per period, so a client may burst up to `count` requests and then
//! make one more each `period / count`. Past it the request gets 429 with
//! `Retry-After` and nothing runs.
//!
//! A hand-written bucket rather than the `governor` crate: governor's keyed
//! limiter keeps every key until someone calls `retain_recent`, and here the
//! map must stay bounded however many addresses an attacker has, with the
//! eviction policy chosen below.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many (route, client) buckets are kept (about 4 MiB). A full
/// bucket is the same as none, so those go first; past that the least
/// recently used one is dropped, which at worst gives that client a fresh
/// bucket.
pub const MAX_BUCKETS: usize = 65_536;

/// `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub period: Duration,
}

impl RateLimit {
    /// Parses `"N/UNIT"`: N from 1 to 1,000,000, UNIT one of `s`/`sec`/
    /// `second`, `min`/`minute`, `h`/`hour`, `day`.
    pub fn parse(s: &str) -> Result<RateLimit, String> {
        let expected = "expected \"N/UNIT\" such as \"10/min\": N a whole number from 1 to 1000000, UNIT one of s, min, hour, day";
        let Some((n, unit)) = s.split_once('/') else {
            return Err(format!("{expected}; found {s:?}"));
        };
        let count: u32 = match n.trim().parse() {
            Ok(c) if (1..=1_000_000).contains(&c) => c,
            _ => return Err(format!("{expected}; found {s:?}")),
        };
        let secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(format!("{expected}; found {s:?}")),
        };
        Ok(RateLimit {
            count,
            period: Duration::from_secs(secs),
        })
    }

    /// Time for one token to come back.
    fn interval(&self) -> Duration {
        self.period / self.count
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}s", self.count, self.period.as_secs())
    }
}

/// The buckets of every rate-limited route of one app.
#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<(usize, Client), Bucket>>,
}

/// A client as rate limits see it: an IPv4 address, or an IPv6 /64 (one
/// machine usually has a whole /64, and could otherwise rotate through it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(a) => Client::V4(a.into()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.into()),
                None => Client::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens at `at`, in units of `1 / count`-th of the period (exact
    /// integer arithmetic, no drift).
    tokens: Duration,
    at: Instant,
}

impl Bucket {
    /// Tokens (as time credit, at most `period`) at `now`.
    fn credit(&self, limit: &RateLimit, now: Instant) -> Duration {
        (self.tokens + now.saturating_duration_since(self.at)).min(limit.period)
    }
}

impl Limiter {
    pub fn new() -> Limiter {
        Limiter::default()
    }

    /// Takes a token for `client` on route `route`: `Ok` if it had one,
    /// else `Err(wait)` with the time until it will.
    pub fn check(
        &self,
        route: usize,
        client: IpAddr,
        limit: &RateLimit,
        now: Instant,
    ) -> Result<(), Duration> {
        let key = (route, Client::from(client));
        let cost = limit.interval();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= MAX_BUCKETS {
            make_room(&mut buckets, limit, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: limit.period,
            at: now,
        });
        let credit = bucket.credit(limit, now);
        if credit >= cost {
            *bucket = Bucket {
                tokens: credit - cost,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket {
                tokens: credit,
                at: now,
            };
            Err(cost - credit)
        }
    }

    /// Buckets held now; for tests.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the buckets that have refilled (they mean nothing); if none has,
/// the least recently used one.
fn make_room(buckets: &mut HashMap<(usize, Client), Bucket>, limit: &RateLimit, now: Instant) {
    // Routes may have different limits; a bucket idle for a whole period of
    // the longest limit (a day) is full whatever its route's. Using the
    // current route's period is a cheap, conservative stand-in for it.
    buckets.retain(|_, b| b.credit(limit, now) < limit.period);
    if buckets.len() >= MAX_BUCKETS {
        if let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k) {
            buckets.remove(&oldest);
        }
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_bad_ones_are_refused() {
        assert_eq!(
            RateLimit::parse("10/min"),
            Ok(RateLimit {
                count: 10,
                period: Duration::from_secs(60)
            })
        );
        assert_eq!(
            RateLimit::parse("3/s").unwrap().period,
            Duration::from_secs(1)
        );
        assert_eq!(RateLimit::parse("100/hour").unwrap().count, 100);
        for bad in [
            "ten/min",
            "0/s",
            "10",
            "10/fortnight",
            "-1/s",
            "10/",
            "/min",
            "2000000/s",
            "",
        ] {
            let e = RateLimit::parse(bad).unwrap_err();
            assert!(e.contains("\"10/min\""), "{bad}: {e}");
        }
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_each_token() {
        let l = Limiter::new();
        let limit = RateLimit::parse("10/min").unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(l.check(0, ip, &limit, t0), Ok(()), "request {i}");
        }
        assert_eq!(l.check(0, ip, &limit, t0), Err(Duration::from_secs(6)));
        // Another route and another client have their own buckets.
        assert_eq!(l.check(1, ip, &limit, t0), Ok(()));
        assert_eq!(l.check(0, "127.0.0.2".parse().unwrap(), &limit, t0), Ok(()));
        // One token comes back every 6 s.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(l.check(0, ip, &limit, t1), Err(Duration::from_secs(1)));
        let t2 = t0 + Duration::from_secs(6);
        assert_eq!(l.check(0, ip, &limit, t2), Ok(()));
        assert!(l.check(0, ip, &limit, t2).is_err());
        assert_eq!(retry_after_secs(Duration::from_millis(5001)), 6);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn an_ipv6_client_is_its_64_prefix() {
        let l = Limiter::new();
        let limit = RateLimit::parse("1/min").unwrap();
        let t0 = Instant::now();
        assert!(l
            .check(0, "2001:db8::1".parse().unwrap(), &limit, t0)
            .is_ok());
        assert!(l
            .check(0, "2001:db8::ffff:2".parse().unwrap(), &limit, t0)
            .is_err());
        assert!(l
            .check(0, "2001:db8:0:1::1".parse().unwrap(), &limit, t0)
            .is_ok());
    }

    #[test]
    fn memory_stays_bounded_however_many_clients() {
        let l = Limiter::new();
        let limit = RateLimit::parse("5/hour").unwrap();
        let t0 = Instant::now();
        for i in 0..(MAX_BUCKETS as u32 + 1000) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = l.check(0, ip, &limit, t0 + Duration::from_micros(i.into()));
        }
        assert_eq!(l.len(), MAX_BUCKETS);
        // The newest clients are still tracked.
        let last = IpAddr::V4(std::net::Ipv4Addr::from(
            0x0a00_0000 + MAX_BUCKETS as u32 + 999,
        ));
        assert!(l.len() <= MAX_BUCKETS);
        for _ in 0..4 {
            assert!(l.check(0, last, &limit, t0).is_ok());
        }
        assert!(l.check(0, last, &limit, t0).is_err());
    }
}
