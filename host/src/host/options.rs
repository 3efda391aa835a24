//! What the command line (or an embedding) decides about serving, over the
//! manifest's own `[limits]`.

use std::path::PathBuf;
use std::time::Duration;

use crate::executor::wasi_http::ReusePolicy;
use crate::executor::EngineOptions;

#[derive(Debug, Clone)]
pub struct HostOptions {
    pub engine: EngineOptions,
    pub cache_dir: Option<PathBuf>,
    /// Overrides the manifest's `[database]` (`nebula up --db`: a SQLite
    /// file or a `postgres://` URL).
    pub database: Option<crate::data::Location>,
    /// The deadline of components that do not set their own.
    pub timeout: Duration,
    /// Requests that may wait for a slot (default: `[limits] queue_size`,
    /// else as many as there are slots).
    pub queue_size: Option<usize>,
    /// How long one may wait (default: `[limits] queue_timeout_ms`).
    pub queue_timeout: Option<Duration>,
    /// Whether an idle trim also pages out the binary's code: about 12 MiB
    /// less resident while idle, for ~4 ms more on the first request after
    /// (benches/RESULTS.md, "Scale to zero").
    pub trim_code: bool,
    /// Whether `[[routes]] rate_limit` is enforced; off only for load tests
    /// and benchmarks that send many requests from one address
    /// (`nebula up --no-rate-limits`).
    pub rate_limits: bool,
    /// Whether routes with `cache` have their responses memoised; off
    /// (`nebula up --no-cache`) to compare, or to debug a component.
    pub memo: bool,
    /// The app's data at most this many bytes (a platform's ceiling;
    /// SQLite files only).
    pub max_storage_bytes: Option<u64>,
    /// wasi:http 0.3 components: how instances are reused.
    pub reuse: ReusePolicy,
    /// Spin apps: where the default key-value store and SQLite database
    /// live (default: `.spin/` beside the manifest, as Spin does).
    pub data_dir: Option<PathBuf>,
    /// Spin apps: the runtime configuration file, mapping store labels to files.
    pub runtime_config: Option<PathBuf>,
    /// The engines (and their epoch tickers) of a platform that hosts many
    /// apps: one instance pool and one ticker thread for all of them,
    /// instead of a pool's address-space reservation and a thread per app.
    /// The engine's memory cap and `timeout` are then ceilings a manifest
    /// may go under, never over.
    pub shared_engines: Option<SharedEngines>,
    /// The app's stats, when they outlive one load of it (a platform
    /// unloads and reloads an app; its counters go on).
    pub metrics: Option<std::sync::Arc<crate::metrics::AppMetrics>>,
    /// `nebula up --record DIR`: every route of a pure app writes down its
    /// calls answered 5xx (all of them with `record_all`) in DIR, one file
    /// per request, for `nebula replay`; routes' own `record` writes there
    /// too (else in `.nebula/recordings` beside the manifest).
    pub record: Option<PathBuf>,
    pub record_all: bool,
    /// A pure app's components are only checked to be there at load, and
    /// loaded by [`Host::load_components`](super::Host::load_components)
    /// once the host serves (or by the first request that needs one):
    /// the start does not wait for every component, the largest (a 35 MB
    /// Python one) included.
    pub defer_components: bool,
    /// A pure app's database is opened by the first request that reads or
    /// writes, not at load (a platform's apps: their databases were made
    /// and checked at deploy, and a request that needs no data should not
    /// wait for one to open).
    pub defer_database: bool,
    /// An engine started before the manifest was read (`nebula up`): the
    /// host uses it if it was made with the options the app resolves to.
    pub early_engine: Option<std::sync::Arc<crate::executor::EarlyEngine>>,
}

/// An engine shared by many hosts, with the ticker that gives its calls
/// their deadlines.
#[derive(Clone)]
pub struct SharedEngine {
    pub engine: wasmtime::Engine,
    pub deadlines: crate::executor::Deadlines,
}

/// A platform's two engines: pure components never use the component
/// model's async ABI (it costs ~3 µs per call); Spin's WASI 0.3 ones need it.
#[derive(Clone)]
pub struct SharedEngines {
    pub pure: SharedEngine,
    pub spin: SharedEngine,
    /// The closed WASI set, linked once for every pure app on `pure`:
    /// making a linker (every WASI function named and hashed) was a large
    /// part of loading a small app.
    pub pure_linker: std::sync::Arc<crate::executor::PureLinker>,
    /// Components kept mapped after their apps unload (a platform's
    /// `--keep-mapped`), so that a reload does not map them again.
    pub kept: Option<std::sync::Arc<crate::executor::KeptComponents>>,
}

impl std::fmt::Debug for SharedEngines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedEngines")
    }
}

impl SharedEngines {
    /// Both engines with `opts` (its `concurrency` is set per engine).
    pub fn new(opts: &EngineOptions) -> anyhow::Result<SharedEngines> {
        let make = |concurrency: bool| -> anyhow::Result<SharedEngine> {
            let engine = crate::executor::new_engine(&EngineOptions {
                concurrency,
                ..opts.clone()
            })?;
            let deadlines = crate::executor::Deadlines::start(&engine);
            Ok(SharedEngine { engine, deadlines })
        };
        let pure = make(false)?;
        Ok(SharedEngines {
            pure_linker: std::sync::Arc::new(crate::executor::PureLinker::new(&pure.engine)?),
            pure,
            spin: make(true)?,
            kept: None,
        })
    }
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            engine: EngineOptions::default(),
            cache_dir: None,
            database: None,
            timeout: Duration::from_secs(10),
            queue_size: None,
            queue_timeout: None,
            trim_code: true,
            rate_limits: true,
            memo: true,
            max_storage_bytes: None,
            reuse: ReusePolicy::default(),
            data_dir: None,
            runtime_config: None,
            shared_engines: None,
            metrics: None,
            record: None,
            record_all: false,
            defer_components: false,
            defer_database: false,
            early_engine: None,
        }
    }
}
