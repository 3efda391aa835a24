//! Drives wasmtime's epoch so that calls can be given deadlines, without a
//! thread that wakes up while the host is idle: the ticker thread sleeps on a
//! condition variable whenever no call is in flight and only ticks while at
//! least one is.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use wasmtime::Engine;

/// The epoch advances once per tick while calls are in flight.
pub const TICK: Duration = Duration::from_millis(10);

#[derive(Clone)]
pub struct Deadlines {
    shared: Arc<(Mutex<usize>, Condvar)>,
}

/// Held for the duration of one call.
pub struct InFlight {
    shared: Arc<(Mutex<usize>, Condvar)>,
}

impl Deadlines {
    pub fn start(engine: &Engine) -> Deadlines {
        let shared = Arc::new((Mutex::new(0usize), Condvar::new()));
        let engine = engine.weak();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("nebula-epoch".into())
            .spawn(move || loop {
                let (lock, cvar) = &*s;
                let mut in_flight = lock.lock().unwrap_or_else(|p| p.into_inner());
                while *in_flight == 0 {
                    in_flight = cvar.wait(in_flight).unwrap_or_else(|p| p.into_inner());
                }
                drop(in_flight);
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

    pub fn enter(&self) -> InFlight {
        let (lock, cvar) = &*self.shared;
        let mut n = lock.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        if *n == 1 {
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
        *lock.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
    }
}
