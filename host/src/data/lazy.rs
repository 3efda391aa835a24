//! A store opened on its first use, not when its app is loaded.
//!
//! A platform loads an app on its first request and unloads it when idle;
//! opening a SQLite database (the file, its WAL index, the schema parsed,
//! the migrations checked) was about half of that load (benches/RESULTS.md,
//! issue 16), paid even when the request reads and writes nothing. The
//! bundle was checked and its database made at deploy, so an open that
//! fails here is the exception: the request that needed the data gets a
//! 503 naming the database, and the next one tries again.

use std::sync::{Arc, Mutex, OnceLock};

use super::idempotency::{Applied, Once, Recorded};
use super::store::{DataStore, StoreFuture};
use super::versions::TableVersions;
use super::{ReadError, ReadPlan, WriteError};
use crate::contract::{Effect, Table};

type Opener = Box<dyn Fn() -> anyhow::Result<Arc<dyn DataStore>> + Send + Sync>;

pub struct LazyStore {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    open: Opener,
    opened: OnceLock<Arc<dyn DataStore>>,
    /// One open at a time: two requests arriving together open it once.
    opening: Mutex<()>,
}

impl LazyStore {
    /// `label` is what [`DataStore::describe`] says before the open;
    /// `open` opens the real store (it blocks).
    pub fn new(
        label: String,
        open: impl Fn() -> anyhow::Result<Arc<dyn DataStore>> + Send + Sync + 'static,
    ) -> LazyStore {
        LazyStore {
            inner: Arc::new(Inner {
                label,
                open: Box::new(open),
                opened: OnceLock::new(),
                opening: Mutex::new(()),
            }),
        }
    }

    fn opened(&self) -> Option<&Arc<dyn DataStore>> {
        self.inner.opened.get()
    }

    /// The real store, opened off the async workers if it is not yet (the
    /// open blocks on the disk), charged to the request like its reads.
    async fn get_async(&self) -> Result<Arc<dyn DataStore>, String> {
        if let Some(s) = self.opened() {
            return Ok(s.clone());
        }
        let inner = self.inner.clone();
        crate::metrics::cpu::spawn_blocking(move || inner.get())
            .await
            .map_err(|e| format!("opening {} panicked: {e}", self.inner.label))?
            .map_err(|e| format!("cannot open {}: {e:#}", self.inner.label))
    }
}

impl Inner {
    /// The real store, opened now if it is not (blocking). A failed open is
    /// not remembered: the next use tries again.
    fn get(&self) -> anyhow::Result<Arc<dyn DataStore>> {
        if let Some(s) = self.opened.get() {
            return Ok(s.clone());
        }
        let _one = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.opened.get() {
            return Ok(s.clone());
        }
        let store = (self.open)()?;
        tracing::debug!(db = %self.label, "database opened on first use");
        Ok(self.opened.get_or_init(|| store).clone())
    }
}

impl DataStore for LazyStore {
    fn describe(&self) -> String {
        match self.opened() {
            Some(s) => s.describe(),
            None => self.inner.label.clone(),
        }
    }

    fn read(&self, plans: Vec<ReadPlan>) -> StoreFuture<'_, Result<Vec<Table>, ReadError>> {
        Box::pin(async move {
            if plans.is_empty() {
                return Ok(Vec::new());
            }
            let store = self.get_async().await.map_err(ReadError::Unavailable)?;
            store.read(plans).await
        })
    }

    fn apply(
        &self,
        effects: Vec<Effect>,
        session: Option<String>,
        declared: Vec<(String, String)>,
        once: Option<Once>,
    ) -> StoreFuture<'_, Result<Applied, WriteError>> {
        Box::pin(async move {
            // Every request applies its effects, most of them none.
            if let Some(nothing) = Applied::nothing_to_apply(&effects, once.as_ref()) {
                return Ok(nothing);
            }
            let store = self.get_async().await.map_err(WriteError::Unavailable)?;
            store.apply(effects, session, declared, once).await
        })
    }

    fn recall(
        &self,
        key: String,
    ) -> StoreFuture<'_, Result<Option<(String, Recorded)>, WriteError>> {
        Box::pin(async move {
            let store = self.get_async().await.map_err(WriteError::Unavailable)?;
            store.recall(key).await
        })
    }

    /// Opens it: a health check asks whether the data can be reached.
    fn ping(&self) -> StoreFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let store = self.get_async().await?;
            store.ping().await
        })
    }

    fn trim(&self) {
        if let Some(s) = self.opened() {
            s.trim();
        }
    }

    fn is_open(&self) -> bool {
        self.opened().is_some()
    }

    /// Nothing to close if it was never opened.
    fn close(&self) -> anyhow::Result<()> {
        match self.opened() {
            Some(s) => s.close(),
            None => Ok(()),
        }
    }

    fn host_file(&self, name: &str) -> Option<std::path::PathBuf> {
        self.inner.get().ok()?.host_file(name)
    }

    fn versions(&self) -> Option<Arc<TableVersions>> {
        self.inner.get().ok()?.versions()
    }

    fn session_key(&self) -> anyhow::Result<Option<[u8; 32]>> {
        self.inner.get()?.session_key()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// An opener that always fails, counting its tries.
    fn failing() -> (LazyStore, Arc<AtomicUsize>) {
        let tries = Arc::new(AtomicUsize::new(0));
        let counted = tries.clone();
        let store = LazyStore::new("sqlite:/nowhere/app.db".into(), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("unable to open database file")
        });
        (store, tries)
    }

    #[tokio::test]
    async fn what_needs_no_data_does_not_open_it() {
        let (store, tries) = failing();
        assert!(store.read(Vec::new()).await.unwrap().is_empty());
        let applied = store.apply(Vec::new(), None, Vec::new(), None).await;
        assert!(matches!(
            applied,
            Ok(Applied::Committed {
                last_insert_rowid: 0
            })
        ));
        store.trim();
        store.close().unwrap();
        assert_eq!(store.describe(), "sqlite:/nowhere/app.db");
        assert!(!store.is_open());
        assert_eq!(tries.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_failed_open_is_unavailable_naming_the_database_and_tried_again() {
        let (store, tries) = failing();
        for n in 1..=2 {
            match store.recall("k".into()).await {
                Err(WriteError::Unavailable(e)) => {
                    assert!(e.contains("cannot open sqlite:/nowhere/app.db"), "{e}");
                    assert!(e.contains("unable to open database file"), "{e}");
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
            assert_eq!(tries.load(Ordering::SeqCst), n);
        }
        assert!(store.ping().await.is_err());
        assert!(!store.is_open());
    }
}
