//! Reads, then changes, every kind of state an instance has, and reports what
//! it found — so the host's tests can check that each request starts from the
//! component's initial state, whatever earlier requests did or how they ended.
//!
//! On every call, before changing anything, it reports:
//! - `counter`: a static counter (then incremented);
//! - `heap_len`: the length of a static heap buffer (then grown by 4 KiB);
//! - `leaked_runs`: how many 64 KiB runs of the marker byte linear memory
//!   holds (each call then leaks 256 KiB of them on the heap and fills a
//!   static array with them), so a reused or uncleared memory shows up;
//! - `memory_pages`: the size of linear memory;
//! - `runs_after_writing`: the same count after this call's own writes,
//!   which shows the detector works.
//!
//! `?fail=` then ends the call badly after the state was changed: `panic`,
//! `unreachable`, `stack-overflow` (the stack in linear memory),
//! `call-stack` (the engine's call stack), `exit`, `oob` (a load
//! outside linear memory).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use kit::http::{json, query};
use kit::{Request, Response, Table};
use serde_json::json;

/// The byte this guest scatters through memory; 64 KiB of it in a row never
/// happens by chance.
const MARKER: u8 = 0xA7;
const RUN: usize = 64 << 10;

static COUNTER: AtomicU64 = AtomicU64::new(0);
static HEAP: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static mut STATIC_AREA: [u8; 2 * RUN] = [0; 2 * RUN];

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, _data: Vec<Table>) -> Response {
        let memory_pages = core::arch::wasm32::memory_size(0);
        let leaked_runs = marker_runs();
        let counter = COUNTER.fetch_add(1, Ordering::SeqCst);
        let heap_len = {
            let mut heap = HEAP.lock().unwrap_or_else(|p| p.into_inner());
            let before = heap.len();
            heap.extend_from_slice(&[1u8; 4096]);
            before
        };
        std::mem::forget(std::hint::black_box(vec![MARKER; 4 * RUN]));
        // SAFETY: a single-threaded guest; nothing else holds this static.
        unsafe {
            let area = &mut *std::ptr::addr_of_mut!(STATIC_AREA);
            area.fill(MARKER);
            std::hint::black_box(area);
        }

        // Proves the detector sees what a reused memory would hold.
        let runs_after_writing = marker_runs();

        match query(&req, "fail") {
            Some("panic") => panic!("isolation guest: deliberate panic"),
            Some("unreachable") => core::arch::wasm32::unreachable(),
            Some("stack-overflow") => {
                let depth = recurse(std::hint::black_box(1));
                panic!("recursion returned {depth}");
            }
            Some("call-stack") => {
                let depth = deep(1);
                panic!("recursion returned {depth}");
            }
            Some("exit") => std::process::exit(3),
            Some("oob") => {
                let past_end = (core::arch::wasm32::memory_size(0) * 65536 + 16) as *const u8;
                // SAFETY: deliberately not safe: the load is outside linear
                // memory and traps.
                let b = unsafe { std::ptr::read_volatile(past_end) };
                panic!("read {b} past the end of memory");
            }
            _ => {}
        }
        json(
            200,
            json!({
                "counter": counter,
                "heap_len": heap_len,
                "leaked_runs": leaked_runs,
                "memory_pages": memory_pages,
                "runs_after_writing": runs_after_writing,
            })
            .to_string(),
        )
    }
}

/// Unbounded recursion that the compiler cannot turn into a loop.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let mut frame = [0u8; 256];
    frame[(n % 256) as usize] = n as u8;
    std::hint::black_box(&mut frame);
    recurse(std::hint::black_box(n + 1)) + u64::from(frame[0])
}

/// Unbounded recursion whose frames live on the engine's call stack only
/// (nothing in linear memory), so the engine's stack limit is what stops it.
#[inline(never)]
fn deep(n: u64) -> u64 {
    // An atomic load the compiler cannot fold, and a result that is not an
    // accumulator, so the recursion is neither removed nor made a loop.
    if KEEP_GOING.load(Ordering::Relaxed) {
        deep(n + 1).wrapping_mul(3) ^ n
    } else {
        n
    }
}

static KEEP_GOING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Counts non-overlapping 64 KiB runs of `MARKER` in all of linear memory.
fn marker_runs() -> usize {
    let end = core::arch::wasm32::memory_size(0) * 65536;
    let mut runs = 0;
    let mut run = 0;
    // Address 0 is never dereferenced by Rust code; start past it.
    for addr in 1..end {
        // SAFETY: every address below memory_size * 64 KiB is inside linear
        // memory; a volatile byte load reads whatever is there.
        let b = unsafe { std::ptr::read_volatile(addr as *const u8) };
        if b == MARKER {
            run += 1;
            if run == RUN {
                runs += 1;
                run = 0;
            }
        } else {
            run = 0;
        }
    }
    runs
}

kit::export!(Component with_types_in kit::bindings);
