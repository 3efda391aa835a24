//! Misbehaves on request, so the host's tests can check its limits:
//!
//! - `?mode=loop`: spins forever without returning (the deadline must stop it);
//! - `?mode=alloc`: allocates and touches memory without end (the memory cap
//!   must stop it);
//! - `?mode=memory`: reserves memory 1 MiB at a time until the cap refuses,
//!   and answers how many MiB it got (the cap in effect, as the guest sees it);
//! - `?mode=big-response&bytes=N`: answers N bytes (the response cap applies);
//! - `?mode=busy&n=N`: N million rounds of arithmetic, then answers (a pure
//!   guest has no clock, so its work is counted, not timed);
//! - `?mode=sleep`: sleeps for an hour, then answers. The closed WASI's
//!   clocks stand still, but a sleep is a wait on a `subscribe-duration`
//!   pollable, which the host times with its own clock: the guest runs no
//!   code while it waits, so only a wall-clock deadline can stop it;
//! - anything else: `ok`.

use std::hint::black_box;

use kit::http::{query, response, text};
use kit::{Request, Response, Table};

struct Component;

fn number(req: &Request, name: &str) -> u64 {
    query(req, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl kit::Guest for Component {
    fn handle(req: Request, _data: Vec<Table>) -> Response {
        match query(&req, "mode") {
            Some("loop") => {
                let mut x: u64 = 0;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            Some("alloc") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch every page, so the memory is really used.
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            Some("memory") => {
                // Room for the chunk list up front, so only chunks can fail.
                let mut hoard: Vec<Vec<u8>> = Vec::with_capacity(4096);
                loop {
                    let mut chunk = Vec::new();
                    if chunk.try_reserve_exact(1 << 20).is_err() {
                        break;
                    }
                    hoard.push(black_box(chunk));
                }
                text(200, format!("{}\n", hoard.len()))
            }
            Some("big-response") => {
                let n = number(&req, "bytes") as usize;
                response(200, "application/octet-stream", vec![b'x'; n])
            }
            Some("busy") => {
                let mut x: u64 = 1;
                for i in 0..number(&req, "n").saturating_mul(1_000_000) {
                    x = black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                text(200, format!("busy done {}\n", x % 10))
            }
            Some("sleep") => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                text(200, "slept\n")
            }
            _ => text(200, "ok\n"),
        }
    }
}

kit::export!(Component with_types_in kit::bindings);
