//! Whether a Redis message may go to its app now. Pub/sub has no
//! backpressure: a subscriber that stops reading makes Redis buffer for it
//! and at last drop the connection, which every app on that address shares.
//! So a tenant flooding its channel must be shed on its own trigger, never
//! waited for: messages over the app's request rate (one bucket with its
//! HTTP requests) are refused as 429, and messages beyond what the app can
//! have in flight as 503, both counted on the trigger's route.
//!
//! Apps with no message in flight have no entry here: an idle app costs
//! nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Messages in flight per app (by its slot number), while any are.
#[derive(Default)]
pub struct InFlight {
    apps: Arc<Mutex<HashMap<usize, u32>>>,
    refused: AtomicU64,
}

/// One message in flight; dropping it frees its place.
pub struct Admitted {
    apps: Arc<Mutex<HashMap<usize, u32>>>,
    app: usize,
}

impl InFlight {
    /// A place for one more of `app`'s messages, if it has fewer than `max`.
    pub fn admit(&self, app: usize, max: u32) -> Option<Admitted> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        let n = apps.entry(app).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Admitted {
            apps: self.apps.clone(),
            app,
        })
    }

    /// Counts one refusal; says whether to log it. A flood must not become a
    /// flood of log lines: the 1st, 2nd, 4th, 8th… refusal is logged.
    pub fn refused(&self) -> (u64, bool) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        (n, n.is_power_of_two())
    }

    /// Apps with a message in flight now.
    #[cfg(test)]
    fn busy_apps(&self) -> usize {
        self.apps.lock().unwrap().len()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = apps.get_mut(&self.app) {
            *n -= 1;
            if *n == 0 {
                apps.remove(&self.app);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_gets_at_most_its_places_and_others_are_not_held_up() {
        let gate = InFlight::default();
        let mut a: Vec<_> = (0..3).map(|_| gate.admit(1, 3).expect("a place")).collect();
        assert!(gate.admit(1, 3).is_none(), "a fourth message of app 1");
        // Another app is not held up by app 1's flood.
        let b = gate.admit(2, 3).expect("app 2 has its own places");
        a.pop();
        let again = gate.admit(1, 3).expect("a place came back");
        assert!(gate.admit(1, 3).is_none(), "and only one");
        drop(b);
        assert_eq!(gate.busy_apps(), 1, "app 2 has nothing in flight: no entry");
        drop((a, again));
        assert_eq!(gate.busy_apps(), 0);
    }

    #[test]
    fn refusals_are_logged_ever_more_rarely() {
        let gate = InFlight::default();
        let logged: Vec<u64> = (0..100)
            .map(|_| gate.refused())
            .filter(|(_, log)| *log)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64]);
    }
}
