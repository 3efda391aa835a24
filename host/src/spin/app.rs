//! A Spin app's per-app parts: its stores and databases (from the runtime
//! configuration), its variables, the private file trees of its
//! components' `files`, and the linker with Spin's host interfaces. The
//! host asks it to prepare each wasi:http component with them.

use std::sync::Arc;

use anyhow::{Context, Result};
use nebula_spin_interfaces::{AppVariable, AppVariables, ResourceOptions, SpinResources};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use super::files;
use super::manifest::SpinManifest;
use super::runtime_config;
use crate::executor::wasi_http::chain::Chain;
use crate::executor::wasi_http::inbound_redis::RedisExecutor;
use crate::executor::wasi_http::{
    self, ComponentHandler, ComponentRuntime, ReusePolicy, SpinStore, WasiHttpExecutor,
};
use crate::executor::{Deadlines, Executor, Preparer};
use crate::metrics::AppMetrics;

/// What the host decides for a Spin app's parts.
pub struct SpinConfig {
    /// Where the default stores live (default: `.spin/` beside spin.toml).
    pub data_dir: Option<std::path::PathBuf>,
    pub runtime_config: Option<std::path::PathBuf>,
    /// Never exposed through `files`.
    pub cache_dir: Option<std::path::PathBuf>,
    /// For components that set none of their own.
    pub default_timeout: std::time::Duration,
    pub default_max_memory: usize,
    pub reuse: ReusePolicy,
    /// Each component's first route's index in the metrics, where a
    /// worker's CPU goes before its first request says its route.
    pub first_routes: Vec<(String, usize)>,
}

pub struct SpinParts {
    manifest: SpinManifest,
    engine: Engine,
    linker: Linker<SpinStore>,
    resources: Arc<SpinResources>,
    deadlines: Deadlines,
    metrics: Arc<AppMetrics>,
    /// Each component's first route, where a worker's CPU goes before its
    /// first request says its route.
    first_routes: Vec<(String, usize)>,
    default_timeout: std::time::Duration,
    default_max_memory: usize,
    reuse: ReusePolicy,
    /// The private trees of `files` the components see; removed on drop.
    files: files::MountedFiles,
    /// The app's components by id, for service chaining.
    chain: Arc<Chain>,
}

impl SpinParts {
    pub fn configure(
        manifest: &SpinManifest,
        opts: SpinConfig,
        engine: &Engine,
        deadlines: &Deadlines,
        metrics: Arc<AppMetrics>,
    ) -> Result<SpinParts> {
        let mut linker: Linker<SpinStore> = Linker::new(engine);
        wasi_http::handler::add_to_linker(&mut linker)?;
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| manifest.base_dir.join(".spin"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
        let backing = runtime_config::Backing::new(&data_dir, opts.runtime_config.as_deref())?;
        let used_databases: std::collections::BTreeSet<&String> = manifest
            .components
            .values()
            .flat_map(|c| &c.sqlite_databases)
            .collect();
        if let Some(w) = backing.cluster_warning(used_databases) {
            tracing::warn!("{}: {w}", manifest.file.display());
        }
        let mounted = files::MountedFiles::build(
            &manifest.file,
            &manifest.base_dir,
            manifest.components.values(),
            &data_dir,
            &files::host_state(&backing, &data_dir, opts.cache_dir.as_deref()),
        )?;
        let mut variables = AppVariables::new();
        for (name, v) in &manifest.variables {
            variables.insert(
                name,
                AppVariable {
                    default: v.default.clone(),
                    required: v.required,
                    secret: v.secret,
                },
            );
        }
        let resources = Arc::new(
            SpinResources::new(ResourceOptions {
                key_value: backing.key_value,
                sqlite: backing.sqlite,
                variables,
                environment: None,
                max_kv_store_bytes: Some(manifest.limits.max_kv_store_bytes),
            })
            .with_context(|| format!("{}", manifest.file.display()))?,
        );
        Ok(SpinParts {
            manifest: manifest.clone(),
            engine: engine.clone(),
            linker,
            resources,
            deadlines: deadlines.clone(),
            metrics,
            first_routes: opts.first_routes,
            default_timeout: opts.default_timeout,
            default_max_memory: opts.default_max_memory,
            reuse: opts.reuse,
            files: mounted,
            chain: Arc::default(),
        })
    }
}

impl Drop for SpinParts {
    fn drop(&mut self) {
        // The components hold the chain and the chain holds them.
        self.chain.clear();
    }
}

impl Preparer for Arc<SpinParts> {
    fn prepare(&self, name: &str, component: &Component) -> Result<Arc<dyn Executor>> {
        let c = self.manifest.components.get(name).with_context(|| {
            format!("no component {name:?} in {}", self.manifest.file.display())
        })?;
        let timeout = c
            .limits
            .timeout_ms
            .map_or(self.default_timeout, std::time::Duration::from_millis);
        let max_memory = c
            .limits
            .max_memory_mb
            .map_or(self.default_max_memory, |mb| mb << 20);
        let spec = wasi_http::ComponentSpec {
            id: c.id.clone(),
            environment: c.environment.clone(),
            grants: c.spin_grants(),
            outbound: c.outbound_http_grants(),
            max_instance_reuse: c.limits.max_instance_reuse,
        };
        let runtime = ComponentRuntime::new(
            &self.linker,
            component,
            &spec,
            self.resources.clone(),
            max_memory,
            timeout,
            self.reuse,
        )?
        .mount_files(self.files.tree(name))
        .chain_through(self.chain.clone());
        let stats = self
            .metrics
            .component(name)
            .context("every component has metrics")?
            .clone();
        if runtime.pre.is_none() {
            // Only a Redis handler: the Redis trigger calls it.
            return Ok(Arc::new(RedisExecutor::new(
                runtime,
                &self.engine,
                stats,
                self.deadlines.clone(),
            )?));
        }
        let first_route = self
            .first_routes
            .iter()
            .find(|(c, _)| c == name)
            .map_or(&self.metrics.unmatched, |(_, i)| self.metrics.route_at(*i))
            .clone();
        let handler = ComponentHandler::new(&self.engine, runtime, stats, first_route.clone());
        self.chain.register(name, handler.clone(), first_route);
        Ok(Arc::new(WasiHttpExecutor::new(
            name,
            handler,
            self.deadlines.clone(),
        )))
    }
}
