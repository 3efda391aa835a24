//! Request ids: a per-process random prefix and a counter, cheap and unique
//! enough to find one request in the log. Every response carries its id in
//! `x-request-id`, every log line of the request (its guest's output too)
//! in `request`, and the host's error pages show it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        RequestIds {
            prefix: rand::random(),
            counter: AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> Arc<str> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        Arc::from(format!("{:08x}-{n:06x}", self.prefix))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}
