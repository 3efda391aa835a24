//! One deployed version of one app, loaded on its first request and
//! unloaded when idle. While unloaded it is a few hundred bytes: its record
//! and counters. Loaded, it is a [`Host`] on the platform's shared engines:
//! its components mapped from its tenant's compile cache, its database open.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::registry::AppRecord;
use super::shared_store::{data_schema, SharedStore};
use crate::app::AnyManifest;
use crate::host::{Host, HostOptions, SharedEngines};
use crate::metrics::AppMetrics;

/// What the operator allows any one app at most.
#[derive(Debug, Clone)]
pub struct Ceilings {
    pub max_instances: u32,
    pub max_memory_bytes: usize,
    pub timeout: Duration,
    /// Each app's data (SQLite file) at most this many bytes.
    pub max_storage_bytes: Option<u64>,
}

pub struct Slot {
    pub record: AppRecord,
    /// The app's number on this node (its rate bucket).
    pub id: usize,
    manifest: PathBuf,
    data_dir: PathBuf,
    cache_dir: PathBuf,
    /// With several nodes, the app's data is in its own schema there.
    store: Option<Arc<SharedStore>>,
    host: RwLock<Option<Arc<Host>>>,
    /// One load at a time; requests that arrive meanwhile wait for it.
    loading: tokio::sync::Mutex<()>,
    /// When it last finished a request, in ms since `epoch`.
    last_used_ms: AtomicU64,
    epoch: Instant,
    /// Kept across loads: the app's counters go on after an unload, and
    /// into its next version when that has the same routes.
    metrics: Mutex<Option<std::sync::Arc<AppMetrics>>>,
    pub loads: AtomicU64,
    pub unloads: AtomicU64,
    /// Time the last load took, in µs.
    pub last_load_us: AtomicU64,
    /// The whole of the last request that found the app unloaded, in µs:
    /// from the platform receiving it to its response, so the load, the
    /// component mapped for it and the call. The load alone leaves out
    /// what a deferred load does for the request.
    pub last_cold_request_us: AtomicU64,
}

impl Slot {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        record: AppRecord,
        id: usize,
        manifest: PathBuf,
        data_dir: PathBuf,
        cache_dir: PathBuf,
        store: Option<Arc<SharedStore>>,
        epoch: Instant,
        inherited: Option<std::sync::Arc<AppMetrics>>,
    ) -> Slot {
        Slot {
            record,
            id,
            manifest,
            data_dir,
            cache_dir,
            store,
            host: RwLock::new(None),
            loading: tokio::sync::Mutex::new(()),
            last_used_ms: AtomicU64::new(0),
            epoch,
            metrics: Mutex::new(inherited),
            loads: AtomicU64::new(0),
            unloads: AtomicU64::new(0),
            last_load_us: AtomicU64::new(0),
            last_cold_request_us: AtomicU64::new(0),
        }
    }

    /// The folder of the version this slot serves (`apps/HOST/vN`).
    pub fn version_dir(&self) -> Option<&std::path::Path> {
        self.manifest.parent()
    }

    pub fn loaded(&self) -> Option<Arc<Host>> {
        self.host.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn metrics(&self) -> Option<std::sync::Arc<AppMetrics>> {
        self.metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn touch(&self) {
        self.last_used_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since it last served a request.
    pub fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_used_ms.load(Ordering::Relaxed)))
    }

    /// The loaded app, loading it first if it is not.
    pub async fn host(
        self: &Arc<Self>,
        engines: &SharedEngines,
        ceilings: &Ceilings,
    ) -> Result<Arc<Host>> {
        if let Some(h) = self.loaded() {
            return Ok(h);
        }
        let _one = self.loading.lock().await;
        if let Some(h) = self.loaded() {
            return Ok(h);
        }
        let started = Instant::now();
        let host = match self.store {
            // A SQLite app's load reads its manifest and builds its host
            // (~0.1 ms: its database and components are opened by the
            // requests that need them, on this worker too), less than
            // handing it to the blocking pool and back.
            None => self.load(engines.clone(), ceilings)?,
            // Making the app's schema on PostgreSQL waits on the network.
            Some(_) => {
                let (me, engines, ceilings) = (self.clone(), engines.clone(), ceilings.clone());
                tokio::task::spawn_blocking(move || me.load(engines, &ceilings))
                    .await
                    .context("loading the app panicked")??
            }
        };
        let host = Arc::new(host);
        // The stats it inherited, or new ones if this version's routes differ.
        *self.metrics.lock().unwrap_or_else(|p| p.into_inner()) = Some(host.metrics().clone());
        self.last_load_us
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.loads.fetch_add(1, Ordering::Relaxed);
        self.touch();
        *self.host.write().unwrap_or_else(|p| p.into_inner()) = Some(host.clone());
        tracing::info!(
            app = %self.record.host,
            version = self.record.current(),
            took_us = started.elapsed().as_micros() as u64,
            "app loaded"
        );
        Ok(host)
    }

    fn load(&self, engines: SharedEngines, ceilings: &Ceilings) -> Result<Host> {
        let manifest = AnyManifest::load(&self.manifest)?;
        let max_instances = manifest
            .limits()
            .max_instances
            .map_or(ceilings.max_instances, |n| n.min(ceilings.max_instances));
        let database = match &self.store {
            Some(store) => {
                let schema = data_schema(&self.record.host);
                tokio::runtime::Handle::current().block_on(store.create_schema(&schema))?;
                crate::data::Location::Postgres(store.app_url(&schema))
            }
            None => crate::data::Location::Sqlite(self.data_dir.join("app.db")),
        };
        let opts = HostOptions {
            engine: crate::executor::EngineOptions {
                max_instances,
                max_memory_bytes: ceilings.max_memory_bytes,
                ..Default::default()
            },
            cache_dir: Some(self.cache_dir.clone()),
            database: Some(database),
            timeout: ceilings.timeout,
            max_storage_bytes: ceilings.max_storage_bytes,
            // The binary's code serves the other apps.
            trim_code: false,
            data_dir: Some(self.data_dir.join("spin")),
            shared_engines: Some(engines),
            metrics: self.metrics(),
            // Checked and made at deploy; opened by the first request
            // that reads or writes (about half of a load's time).
            defer_database: true,
            // Checked at deploy too: each request maps the component it
            // needs, not every component of the app.
            defer_components: true,
            ..Default::default()
        };
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
        match manifest {
            AnyManifest::Pure(m) => Host::load(m, opts),
            AnyManifest::Spin(m) => Host::load_spin(m, opts),
        }
    }

    /// Unloads the app if it has been idle for `after` and no request holds
    /// it; says whether it is unloaded now.
    pub fn unload_if_idle(&self, after: Duration) -> bool {
        if self.idle_for() < after {
            return self.loaded().is_none();
        }
        let mut slot = self.host.write().unwrap_or_else(|p| p.into_inner());
        let Some(host) = slot.as_ref() else {
            return true;
        };
        if Arc::strong_count(host) > 1 {
            // A request is still in it.
            return false;
        }
        let host = slot.take().expect("checked above");
        drop(slot);
        self.close(host);
        true
    }

    /// Unloads it now, whatever it is doing (deleted or replaced): requests
    /// in flight finish on their own reference.
    pub fn unload(&self) {
        let taken = self.host.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(host) = taken {
            self.close(host);
        }
    }

    fn close(&self, host: Arc<Host>) {
        if Arc::strong_count(&host) == 1 {
            host.shutdown();
        }
        drop(host);
        self.unloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!(app = %self.record.host, "app unloaded");
    }
}
