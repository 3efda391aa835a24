//! Idle policy: after `trim` without requests, give memory back; after
//! `exit` without requests, stop serving (socket activation starts the
//! process again on the next connection).
//!
//! The watcher only has a timer armed between the end of the last request
//! and the next deadline; once it has acted it waits on a notification, so
//! an idle process has no thread that wakes up.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, Default)]
pub struct IdlePolicy {
    pub trim: Option<Duration>,
    pub exit: Option<Duration>,
}

/// Requests in flight and when the last one ended.
pub struct Activity {
    in_flight: AtomicUsize,
    generation: AtomicU64,
    last_done: Mutex<Instant>,
    changed: Notify,
}

/// Held while a request is being served.
pub struct RequestGuard<'a>(&'a Activity);

impl Default for Activity {
    fn default() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            last_done: Mutex::new(Instant::now()),
            changed: Notify::new(),
        }
    }
}

impl Activity {
    pub fn begin(&self) -> RequestGuard<'_> {
        self.generation.fetch_add(1, Ordering::Relaxed);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.changed.notify_one();
        }
        RequestGuard(self)
    }
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        *self.0.last_done.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_one();
        }
    }
}

enum Action {
    Trim,
    Exit,
}

/// Runs until the exit deadline passes with no request (then returns) or
/// forever if there is none.
pub async fn watch(activity: &Activity, policy: IdlePolicy, trim: impl Fn()) {
    if policy.trim.is_none() && policy.exit.is_none() {
        return std::future::pending().await;
    }
    let mut trimmed = false;
    loop {
        let notified = activity.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let generation = activity.generation.load(Ordering::Relaxed);
        if activity.in_flight.load(Ordering::Acquire) > 0 {
            notified.await;
            trimmed = false;
            continue;
        }
        let since = *activity.last_done.lock().unwrap_or_else(|p| p.into_inner());
        let next = [
            policy
                .trim
                .filter(|_| !trimmed)
                .map(|d| (since + d, Action::Trim)),
            policy.exit.map(|d| (since + d, Action::Exit)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at);
        let Some((at, action)) = next else {
            // Trimmed and no exit: nothing to do until a request comes.
            notified.await;
            trimmed = false;
            continue;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {
                let quiet = activity.generation.load(Ordering::Relaxed) == generation
                    && activity.in_flight.load(Ordering::Acquire) == 0;
                if quiet {
                    match action {
                        Action::Trim => {
                            trim();
                            trimmed = true;
                        }
                        Action::Exit => return,
                    }
                }
            }
            _ = &mut notified => trimmed = false,
        }
    }
}
