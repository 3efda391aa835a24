//! The app's components: each loaded through the compile cache, prepared by
//! the executor of its kind, and kept behind a lock so that `--watch` can
//! swap one and an idle trim can drop them all. A request clones its
//! component's `Arc`, so a call in flight finishes on the version it
//! started with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::executor::compose::{Dependency, Plug};
use crate::executor::{self, CallLimits, CompileCache, ComponentKind, Executor, Preparer};

pub struct Components {
    slots: RwLock<BTreeMap<String, Option<Arc<dyn Executor>>>>,
    /// One load of each component at a time: a request that needs one the
    /// background loader is loading waits for it instead of loading a copy.
    loading: BTreeMap<String, Mutex<()>>,
    /// Each component's limits, resolved once at load.
    limits: BTreeMap<String, CallLimits>,
    sources: BTreeMap<String, PathBuf>,
    /// Each component's Spin dependencies, composed into it at every load.
    dependencies: BTreeMap<String, Vec<Dependency>>,
    /// What identifies each loaded component's code (its digest), for the
    /// response cache's keys: a swap changes it.
    identities: RwLock<BTreeMap<String, Arc<[u8]>>>,
    /// Which imports the dependencies satisfied, at the last load.
    plugs: RwLock<BTreeMap<String, Vec<Plug>>>,
    /// Components the start mapped from the cache before the linker was
    /// ready ([`prefetch`]); each is taken by its first load.
    prefetched: Mutex<BTreeMap<String, Component>>,
    engine: Engine,
    cache: CompileCache,
    pure: Option<Box<dyn Preparer>>,
    wasi_http: Option<Box<dyn Preparer>>,
    /// What to tell someone whose component file is missing.
    build_hint: Box<dyn Fn(&str) -> String + Send + Sync>,
}

/// What [`Components`] needs to load and prepare.
pub struct ComponentSet {
    pub engine: Engine,
    pub cache: CompileCache,
    /// (name, source, limits) of every component.
    pub components: Vec<(String, PathBuf, CallLimits)>,
    /// The Spin dependencies of those that have any.
    pub dependencies: BTreeMap<String, Vec<Dependency>>,
    pub pure: Option<Box<dyn Preparer>>,
    pub wasi_http: Option<Box<dyn Preparer>>,
    pub build_hint: Box<dyn Fn(&str) -> String + Send + Sync>,
    /// What [`prefetch`] mapped.
    pub prefetched: BTreeMap<String, Component>,
}

/// Maps components from the compile cache, in the order given, until
/// `enough()` says to stop: what a start does on its main thread while
/// another thread makes the linker, so that the first request does not
/// wait for both one after the other. Only cache hits are taken (a miss
/// would mean compiling, which the background loader does after the
/// start). The caller gives no component with dependencies: those are
/// composed at every load, so their file alone is not what runs.
/// Anything not taken is loaded as before, and any error is found and
/// reported there.
pub fn prefetch<'a>(
    engine: &Engine,
    cache: &CompileCache,
    sources: impl IntoIterator<Item = (&'a str, &'a std::path::Path)>,
    enough: impl Fn() -> bool,
) -> BTreeMap<String, Component> {
    let mut mapped = BTreeMap::new();
    for (name, source) in sources {
        if enough() {
            break;
        }
        if let Some(c) = cache.load_if_cached(engine, source) {
            mapped.insert(name.to_string(), c);
        }
    }
    mapped
}

impl Components {
    pub fn new(set: ComponentSet) -> Components {
        let mut slots = BTreeMap::new();
        let mut limits = BTreeMap::new();
        let mut sources = BTreeMap::new();
        let mut loading = BTreeMap::new();
        for (name, source, l) in set.components {
            slots.insert(name.clone(), None);
            loading.insert(name.clone(), Mutex::new(()));
            limits.insert(name.clone(), l);
            sources.insert(name, source);
        }
        Components {
            slots: RwLock::new(slots),
            loading,
            limits,
            sources,
            dependencies: set.dependencies,
            plugs: RwLock::default(),
            prefetched: Mutex::new(set.prefetched),
            identities: RwLock::default(),
            engine: set.engine,
            cache: set.cache,
            pure: set.pure,
            wasi_http: set.wasi_http,
            build_hint: set.build_hint,
        }
    }

    /// Loads every component, so that a missing or wrong one stops the start.
    pub fn load_all(&self) -> Result<()> {
        for name in self.sources.keys() {
            self.load(name)?;
        }
        Ok(())
    }

    /// Loads every component not loaded yet (after a deferred start).
    pub fn load_missing(&self) -> Result<()> {
        for name in self.sources.keys() {
            self.get(name)?;
        }
        Ok(())
    }

    /// What a deferred start checks at once: every component's file is
    /// there (the rest, that it is a valid component of the right kind, is
    /// what `nebula check` and the build check, and the background load
    /// finds within milliseconds).
    pub fn check_present(&self) -> Result<()> {
        for (name, source) in &self.sources {
            if !source.exists() {
                return Err(self.missing(name, source));
            }
        }
        Ok(())
    }

    fn missing(&self, name: &str, source: &std::path::Path) -> anyhow::Error {
        anyhow::anyhow!(
            "component {name:?}: {} does not exist; {}",
            source.display(),
            (self.build_hint)(name)
        )
    }

    pub fn limits(&self, name: &str) -> CallLimits {
        self.limits[name]
    }

    /// Component `name`, loaded now if it is not yet (after an idle trim).
    pub fn get(&self, name: &str) -> Result<Arc<dyn Executor>> {
        if let Some(Some(c)) = self
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(c.clone());
        }
        let Some(one) = self.loading.get(name) else {
            return self.load(name);
        };
        let _one = one.lock().unwrap_or_else(|p| p.into_inner());
        match self.loaded(name) {
            Some(c) => Ok(c),
            None => {
                let prefetched = self.take_prefetched(name);
                self.load_from(name, prefetched)
            }
        }
    }

    /// The loaded component `name`, if it is loaded.
    pub fn loaded(&self, name: &str) -> Option<Arc<dyn Executor>> {
        self.slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .flatten()
    }

    fn take_prefetched(&self, name: &str) -> Option<Component> {
        self.prefetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
    }

    /// Loads component `name` from its source (the compile cache, unless it
    /// changed) and serves new requests with it.
    pub fn load(&self, name: &str) -> Result<Arc<dyn Executor>> {
        // A swap reads the file as it is now, never what the start mapped.
        drop(self.take_prefetched(name));
        self.load_from(name, None)
    }

    /// [`Components::load`], with the component itself if the start
    /// already mapped it from the cache.
    fn load_from(&self, name: &str, prefetched: Option<Component>) -> Result<Arc<dyn Executor>> {
        let source = self
            .sources
            .get(name)
            .with_context(|| format!("no component named {name:?}"))?;
        if !source.exists() {
            return Err(self.missing(name, source));
        }
        let started = std::time::Instant::now();
        let dependencies = self.dependencies.get(name).map_or(&[][..], Vec::as_slice);
        let (component, origin, plugs) = match prefetched {
            Some(c) => (c, executor::Origin::Cache, Vec::new()),
            None => executor::load_with_dependencies(
                &self.engine,
                &self.cache,
                name,
                source,
                dependencies,
            )
            .with_context(|| format!("component {name:?}"))?,
        };
        let kind = executor::kind_of(&self.engine, &component);
        let preparer = match kind {
            ComponentKind::Pure => self.pure.as_ref(),
            ComponentKind::WasiHttp02 | ComponentKind::WasiHttp03 | ComponentKind::SpinRedis => {
                self.wasi_http.as_ref()
            }
        }
        .with_context(|| {
            format!(
                "component {name:?} is a {} component, which this kind of app does not serve (pure components go in app.toml, wasi:http ones in spin.toml)",
                kind.label()
            )
        })?;
        let executor = preparer.prepare(name, &component)?;
        tracing::info!(
            component = name,
            ?origin,
            kind = executor.kind().label(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "loaded"
        );
        self.plugs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), plugs);
        self.identities
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), self.cache.identity(source).into());
        self.slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Some(executor.clone()));
        Ok(executor)
    }

    /// What identifies component `name`'s code as last loaded.
    pub fn identity(&self, name: &str) -> Option<Arc<[u8]>> {
        self.identities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The imports of component `name` that its dependencies satisfied when
    /// it was last loaded (none for a component without dependencies).
    pub fn plugs(&self, name: &str) -> Option<Vec<Plug>> {
        self.plugs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Drops every component; dropping a component's last use also purges
    /// its memory image from the pool's warm slots.
    pub fn unload_all(&self) {
        let old: Vec<_> = self
            .slots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .values_mut()
            .map(Option::take)
            .collect();
        drop(old);
    }
}
