//! Drives wasmtime's epoch so that calls can be given deadlines, without a
//! thread that wakes up while the host is idle: the ticker thread parks on a
//! condition variable when a whole tick has passed with no call in flight,
//! and is woken by the next call.
//!
//! Starting and ending a call touch only atomics. The ticker is not parked
//! and woken around each call: on a busy host most calls end within a tick,
//! so in-flight count drops to zero between nearly every two calls, and a
//! wake-up per call (a futex system call, and on a single CPU two context
//! switches to a thread that finds nothing to do) cost more than the call of
//! a small guest. While calls keep coming the ticker just keeps ticking.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Engine, UpdateDeadline};

/// The epoch advances once per tick while calls are in flight.
pub const TICK: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Shared {
    /// Calls running now.
    in_flight: AtomicUsize,
    /// Calls ever started: tells the ticker whether any began during its
    /// last tick, even one that has already ended.
    started: AtomicU64,
    /// The ticker is parked, or about to park, and must be woken.
    parked: AtomicBool,
    /// Held by the ticker from deciding to park until it waits, so that a
    /// wake-up cannot fall between the two.
    lock: Mutex<()>,
    cvar: Condvar,
    stopped: AtomicBool,
    /// Calls that had to wake the ticker, and ticks it made.
    wake_ups: AtomicU64,
    ticks: AtomicU64,
}

#[derive(Clone)]
pub struct Deadlines {
    shared: Arc<Shared>,
}

/// Held for the duration of one call.
pub struct InFlight {
    shared: Arc<Shared>,
}

impl Deadlines {
    pub fn start(engine: &Engine) -> Deadlines {
        let shared = Arc::new(Shared::default());
        let engine = engine.weak();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("nebula-epoch".into())
            .spawn(move || loop {
                crate::metrics::cpu::epoch_thread_tick();
                if !s.park_until_needed() {
                    return;
                }
                // Tick until a whole tick passes in which no call was in
                // flight and none started.
                loop {
                    let before = s.started.load(SeqCst);
                    std::thread::sleep(TICK);
                    match engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => return,
                    }
                    s.ticks.fetch_add(1, SeqCst);
                    crate::metrics::cpu::epoch_thread_tick();
                    if s.stopped.load(SeqCst) {
                        return;
                    }
                    if s.in_flight.load(SeqCst) == 0 && s.started.load(SeqCst) == before {
                        break;
                    }
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
        let s = &self.shared;
        s.stopped.store(true, SeqCst);
        let _held = s.lock.lock().unwrap_or_else(|p| p.into_inner());
        s.cvar.notify_one();
    }

    pub fn enter(&self) -> InFlight {
        let s = &self.shared;
        s.started.fetch_add(1, SeqCst);
        s.in_flight.fetch_add(1, SeqCst);
        // Whoever takes `parked` from true wakes the ticker; every other
        // call leaves it alone.
        if s.parked.swap(false, SeqCst) {
            s.wake_ups.fetch_add(1, SeqCst);
            let _held = s.lock.lock().unwrap_or_else(|p| p.into_inner());
            s.cvar.notify_one();
        }
        InFlight {
            shared: self.shared.clone(),
        }
    }
}

impl Shared {
    /// Parks the ticker until a call is in flight; false once stopped.
    fn park_until_needed(&self) -> bool {
        let held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.stopped.load(SeqCst) {
            return false;
        }
        // Announce the park before looking at `in_flight`; `enter` counts
        // itself before looking at `parked`, so one of the two sees the
        // other (both sequentially consistent) and no call goes untimed.
        self.parked.store(true, SeqCst);
        if self.in_flight.load(SeqCst) > 0 {
            self.parked.store(false, SeqCst);
            return true;
        }
        // Woken by a call (or spuriously): tick at least once, even if that
        // call has already ended, rather than parking again at once and
        // being woken by the very next call.
        let _held = self.cvar.wait(held).unwrap_or_else(|p| p.into_inner());
        self.parked.store(false, SeqCst);
        !self.stopped.load(SeqCst)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        Engine::new(&config).unwrap()
    }

    /// Waits up to 5 s for `done`; fails saying what never happened.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn wait_parked(d: &Deadlines) {
        wait_until("the ticker never parked", || d.shared.parked.load(SeqCst));
    }

    #[test]
    fn calls_back_to_back_wake_the_ticker_once_not_once_per_call() {
        let engine = engine();
        let d = Deadlines::start(&engine);
        wait_parked(&d);
        let started = Instant::now();
        for _ in 0..1000 {
            drop(d.enter());
        }
        let elapsed = started.elapsed();
        // The ticker parks again only after a whole tick without calls, so
        // calls can have had to wake it at most once per tick the loop took
        // (and once at its start) however the threads were scheduled.
        let bound = 1 + (elapsed.as_nanos() / TICK.as_nanos()) as u64;
        let wake_ups = d.shared.wake_ups.load(SeqCst);
        assert!(
            (1..=bound).contains(&wake_ups),
            "1,000 calls in {elapsed:?} woke the ticker {wake_ups} times (at most {bound})"
        );
        d.stop();
    }

    #[test]
    fn the_ticker_ticks_while_a_call_is_in_flight_and_parks_once_idle() {
        let engine = engine();
        let d = Deadlines::start(&engine);
        wait_parked(&d);
        assert_eq!(
            d.shared.ticks.load(SeqCst),
            0,
            "ticked with nothing in flight"
        );

        let call = d.enter();
        std::thread::sleep(TICK * 6);
        let ticked = d.shared.ticks.load(SeqCst);
        assert!(
            ticked >= 2,
            "only {ticked} ticks in six ticks' time with a call in flight"
        );
        drop(call);

        // At most two more ticks (the one under way and an idle one), then
        // it parks and stays parked.
        wait_parked(&d);
        let parked_at = d.shared.ticks.load(SeqCst);
        std::thread::sleep(TICK * 5);
        assert_eq!(d.shared.ticks.load(SeqCst), parked_at, "ticked while idle");

        // The next call wakes it again.
        let call = d.enter();
        std::thread::sleep(TICK * 4);
        assert!(
            d.shared.ticks.load(SeqCst) > parked_at,
            "a new call was not ticked for"
        );
        drop(call);
        d.stop();
    }

    #[test]
    fn a_stopped_ticker_ends_its_thread() {
        let engine = engine();
        let d = Deadlines::start(&engine);
        wait_parked(&d);
        d.stop();
        wait_until("the ticker thread is still running", || {
            Arc::strong_count(&d.shared) == 1
        });
    }
}
