//! Where SQLite work runs: never on the thread that called the host function.
//!
//! A SQLite statement can take as long as its deadline, or wait up to the busy timeout for
//! another connection's lock. Run inline, it would hold an async worker thread — with a few
//! such calls at once, every other request of the host — for that long. Each call therefore
//! hands its work to a [`Blocking`] spawner and awaits it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// One piece of synchronous work.
pub type BlockingJob = Box<dyn FnOnce() + Send + 'static>;

/// Completes once the job has run (or failed to: panicked, or its pool shut down).
pub type BlockingDone = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs [`BlockingJob`]s on threads that may block, e.g. tokio's blocking pool.
#[derive(Clone)]
pub struct Blocking(Arc<dyn Fn(BlockingJob) -> BlockingDone + Send + Sync>);

impl Blocking {
    /// A spawner of the host's own: `spawn` must start the job on a thread where blocking is
    /// fine and return a future that completes when it has run.
    pub fn new(spawn: impl Fn(BlockingJob) -> BlockingDone + Send + Sync + 'static) -> Self {
        Self(Arc::new(spawn))
    }

    /// `tokio::task::spawn_blocking`, the default; needs to be called inside a tokio runtime.
    pub fn tokio() -> Self {
        Self::new(|job| {
            let handle = tokio::task::spawn_blocking(job);
            Box::pin(async move {
                let _ = handle.await;
            })
        })
    }

    /// Runs `f` through the spawner and returns what it returned. A job that did not finish
    /// (it panicked) is a trap: a host bug, not the guest's error.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> wasmtime::Result<R> {
        let out = Arc::new(Mutex::new(None));
        let slot = out.clone();
        (self.0)(Box::new(move || {
            let r = f();
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }))
        .await;
        let r = out.lock().unwrap_or_else(|e| e.into_inner()).take();
        r.ok_or_else(|| {
            wasmtime::format_err!(
                "a Spin SQLite or key-value call did not finish on its blocking thread"
            )
        })
    }
}

impl std::fmt::Debug for Blocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Blocking")
    }
}
