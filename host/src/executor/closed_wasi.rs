//! The closed WASI a pure component runs in. Rust's std (and other
//! languages' runtimes) import WASI interfaces even for pure code, so they are
//! all served — in a form that reaches nothing: no preopened directories, no
//! environment or arguments, every socket address denied, stdin closed,
//! clocks fixed at the request's time, randomness drawn from its seed, and
//! stdout/stderr captured for the host's log.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// The WASI packages a pure component may import; each is served closed.
pub const CLOSED_WASI_PACKAGES: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// How much a guest may print per call; more traps the guest.
pub const OUTPUT_CAPACITY: usize = 64 << 10;

/// The pure world's own type-only interface: importing it reaches nothing.
const PURE_TYPES: &str = "nebula:function/types@";

pub fn is_closed_wasi(import: &str) -> bool {
    import.starts_with(PURE_TYPES) || CLOSED_WASI_PACKAGES.iter().any(|p| import.starts_with(p))
}

/// The captured output of one call.
pub struct ClosedOutput {
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
}

pub fn closed_ctx(seed: u64, now_ms: u64) -> (WasiCtx, ClosedOutput) {
    let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
    let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
    let mut b = WasiCtxBuilder::new();
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(FixedWallClock(Duration::from_millis(now_ms)))
        .monotonic_clock(FixedMonotonicClock(now_ms.saturating_mul(1_000_000)))
        .secure_random(StdRng::seed_from_u64(seed))
        .insecure_random(StdRng::seed_from_u64(
            seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15,
        ))
        .insecure_random_seed(u128::from(seed))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    (b.build(), ClosedOutput { stdout, stderr })
}

/// Always the request's time: a pure function sees one instant.
struct FixedWallClock(Duration);

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

struct FixedMonotonicClock(u64);

impl HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        self.0
    }
}
