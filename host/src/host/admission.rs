//! The admission gate: a request needs one of `slots` to run a component. When all
//! are busy it waits in a bounded queue, in arrival order, for at most
//! `max_wait`; when the queue is full or the wait runs out it is refused
//! with 503 and `Retry-After`, so a flood costs a cheap answer rather than
//! memory, and the instance pool (sized to the same number of slots) is
//! never asked for more instances than it has.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Gate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue_size: usize,
    max_wait: Duration,
}

/// Why a request was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `queue_size` requests were already waiting.
    QueueFull,
    /// It waited `max_wait` and no slot came free.
    Waited,
}

/// Held while a request runs its component (for a streamed response, until
/// its body is done); dropping it frees the slot for the first request in
/// the queue.
pub type Slot = OwnedSemaphorePermit;

impl Gate {
    pub fn new(slots: usize, queue_size: usize, max_wait: Duration) -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            queue_size,
            max_wait,
        }
    }

    pub async fn enter(&self) -> Result<Slot, Refused> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_size {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::QueueFull);
        }
        let _in_queue = Queued(&self.waiting);
        match tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            // The semaphore is never closed; treat it like a timeout anyway.
            Ok(Err(_)) | Err(_) => Err(Refused::Waited),
        }
    }

    /// `slots` instance slots; the queue's size and wait from the command
    /// line where given, else from the manifest's `[limits]` (a queue as
    /// long as there are slots by default).
    pub fn configured(
        slots: usize,
        queue_size: Option<usize>,
        queue_timeout: Option<Duration>,
        limits: &crate::manifest::Limits,
    ) -> Gate {
        Gate::new(
            slots,
            queue_size.or(limits.queue_size).unwrap_or(slots),
            queue_timeout.unwrap_or(Duration::from_millis(limits.queue_timeout_ms)),
        )
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Seconds a refused client is told to wait: about one queue's wait.
    pub fn retry_after_secs(&self) -> u64 {
        self.max_wait.as_secs().max(1)
    }
}

struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_is_bounded_and_waits_run_out() {
        let gate = Gate::new(1, 1, Duration::from_millis(50));
        let held = gate.enter().await.unwrap();
        // One may wait; the next is refused at once.
        let waiter = gate.enter();
        tokio::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        assert_eq!(gate.waiting(), 1);
        assert_eq!(gate.enter().await.unwrap_err(), Refused::QueueFull);
        assert_eq!(waiter.await.unwrap_err(), Refused::Waited);
        assert_eq!(gate.waiting(), 0);
        // A waiter gets the slot when it is freed.
        let waiter = gate.enter();
        tokio::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        drop(held);
        assert!(waiter.await.is_ok());
    }
}
