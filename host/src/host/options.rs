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
    /// wasi:http 0.3 components: how instances are reused.
    pub reuse: ReusePolicy,
    /// Spin apps: where the default key-value store and SQLite database
    /// live (default: `.spin/` beside the manifest, as Spin does).
    pub data_dir: Option<PathBuf>,
    /// Spin apps: the runtime configuration file, mapping store labels to files.
    pub runtime_config: Option<PathBuf>,
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
            reuse: ReusePolicy::default(),
            data_dir: None,
            runtime_config: None,
        }
    }
}
