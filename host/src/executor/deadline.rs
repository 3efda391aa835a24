//! Drives wasmtime's epoch so that calls can be given deadlines, without a
//! thread that wakes up while the host is idle: the ticker thread sleeps on a
//! condition variable whenever no call is in flight and only ticks while at
//! least one is.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Engine, UpdateDeadline};

/// The epoch advances once per tick while calls are in flight.
pub const TICK: Duration = Duration::from_millis(10);

#[derive(Default)]
struct State {
    in_flight: usize,
    stopped: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

#[derive(Clone)]
pub struct Deadlines {
    shared: Shared,
}

/// Held for the duration of one call.
pub struct InFlight {
    shared: Shared,
}

impl Deadlines {
    pub fn start(engine: &Engine) -> Deadlines {
        let shared: Shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let engine = engine.weak();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("nebula-epoch".into())
            .spawn(move || loop {
                crate::metrics::cpu::epoch_thread_tick();
                let (lock, cvar) = &*s;
                let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                while state.in_flight == 0 && !state.stopped {
                    state = cvar.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                if state.stopped {
                    return;
                }
                drop(state);
                std::thread::sleep(TICK);
                match engine.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => return,
                }
            })
            .expect("cannot start the epoch thread");
        Deadlines { shared }
    }

    /// Ticks needed for a deadline of `d` (at least one).
    pub fn ticks(d: Duration) -> u64 {
        (d.as_millis() / TICK.as_millis()).max(1) as u64
    }

    /// What a store does at each tick: yield to the async executor, so that a
    /// guest that never returns cannot hold a tokio worker and the requests
    /// sharing that worker keep their latency; past `deadline`, trap with
    /// `Trap::Interrupt`. Use with `store.set_epoch_deadline(1)`.
    ///
    /// The yield is tokio's `yield_now`, which defers the task until the
    /// worker has polled its I/O and timer driver: a plain self-wake would
    /// requeue the guest at once, and a worker with only spinning guests
    /// would poll the driver (new connections, queue timeouts) only every
    /// 61 scheduler ticks, 61 epoch ticks.
    pub fn yield_until(deadline: Instant) -> UpdateDeadline {
        if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        }
    }

    /// Ends the ticker thread (when the engine it drives is dropped).
    pub fn stop(&self) {
        let (lock, cvar) = &*self.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).stopped = true;
        cvar.notify_one();
    }

    pub fn enter(&self) -> InFlight {
        let (lock, cvar) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        state.in_flight += 1;
        if state.in_flight == 1 {
            cvar.notify_one();
        }
        InFlight {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (lock, _) = &*self.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).in_flight -= 1;
    }
}
