//! One route's requests by HTTP status code.
//!
//! A platform keeps the counters of every app it has loaded, idle or not,
//! so they must be small: most routes only ever answer two or three codes.
//! Each of a few words holds one code (top bits) and its count (the rest),
//! claimed by the first request with that code; a route that answers more
//! codes than that counts the rest in a map made on first use. Counting is
//! lock-free for the codes in the words.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

const SLOTS: usize = 4;
/// 2^48 requests per code before the count would reach the code's bits.
const COUNT_BITS: u32 = 48;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

#[derive(Debug, Default)]
pub struct StatusCounts {
    /// `code << COUNT_BITS | count`; 0 while unclaimed. A word is claimed
    /// once and never freed, so each code lives in one place only.
    slots: [AtomicU64; SLOTS],
    more: OnceLock<Box<Mutex<BTreeMap<u16, u64>>>>,
}

impl StatusCounts {
    pub fn count(&self, code: u16) {
        let code = u64::from(code);
        for slot in &self.slots {
            let mut now = slot.load(Ordering::Relaxed);
            if now == 0 {
                match slot.compare_exchange(
                    0,
                    code << COUNT_BITS | 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    // Claimed meanwhile, maybe for this very code.
                    Err(claimed) => now = claimed,
                }
            }
            if now >> COUNT_BITS == code {
                slot.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let more = self.more.get_or_init(Default::default);
        *more
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code as u16)
            .or_default() += 1;
    }

    /// `(code, requests)` for every code counted, in code order.
    pub fn counts(&self) -> Vec<(u16, u64)> {
        let mut out: Vec<(u16, u64)> = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|&v| v != 0)
            .map(|v| ((v >> COUNT_BITS) as u16, v & COUNT_MASK))
            .collect();
        if let Some(more) = self.more.get() {
            let more = more.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(more.iter().map(|(&c, &n)| (c, n)));
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_past_the_words_are_counted_in_the_map_and_all_come_out_in_order() {
        let c = StatusCounts::default();
        for code in [503, 200, 200, 404, 999, 100, 200, 418, 100] {
            c.count(code);
        }
        assert_eq!(
            c.counts(),
            [(100, 2), (200, 3), (404, 1), (418, 1), (503, 1), (999, 1)]
        );
        assert!(c.more.get().is_some(), "six codes do not fit four words");
    }

    #[test]
    fn threads_counting_at_once_lose_nothing_and_never_split_a_code() {
        let c = std::sync::Arc::new(StatusCounts::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u16 {
                        c.count([200, 404, 500, 302, 201, 429][usize::from((i + t) % 6)]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let counts = c.counts();
        let codes: Vec<u16> = counts.iter().map(|&(code, _)| code).collect();
        assert_eq!(
            codes,
            [200, 201, 302, 404, 429, 500],
            "a code counted twice: {counts:?}"
        );
        assert_eq!(counts.iter().map(|&(_, n)| n).sum::<u64>(), 40_000);
    }
}
