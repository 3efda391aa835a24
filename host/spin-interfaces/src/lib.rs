//! The host interfaces Spin gives HTTP components — key-value, SQLite and variables —
//! implemented for Nebula on wasmtime's component model, so that a component built with the
//! Spin SDK runs unchanged.
//!
//! | interface | imported by | functions |
//! |---|---|---|
//! | `fermyon:spin/key-value@2.0.0` | spin-sdk 5.x | sync |
//! | `fermyon:spin/sqlite@2.0.0` | spin-sdk 5.x | sync |
//! | `fermyon:spin/variables@2.0.0` | spin-sdk 5.x | sync |
//! | `spin:sqlite/sqlite@3.0.0` | spin-sdk 5.2 | sync; the `@3.1.0` functions, under this name too |
//! | `spin:key-value/key-value@3.0.0` | spin-sdk 7 | `async`; `get-keys` returns a stream and a future |
//! | `spin:sqlite/sqlite@3.1.0` | spin-sdk 7 | sync and `-async` variants; `execute-async` streams rows |
//! | `spin:variables/variables@3.0.0` | spin-sdk 7 | `async` |
//!
//! The WIT files are Spin's own, copied from the SDK crates into `wit/deps/`.
//!
//! # Use
//!
//! Three steps, after Spin's factors: link once, configure per app, prepare per instance.
//!
//! ```no_run
//! use std::collections::{BTreeMap, HashMap};
//! use std::sync::Arc;
//! use nebula_spin_interfaces::*;
//! use wasmtime::component::Linker;
//!
//! struct Host { spin: SpinState /* , wasi, http, … */ }
//! impl SpinView for Host {
//!     fn spin(&mut self) -> &mut SpinState { &mut self.spin }
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! // Once per engine: the engine needs wasmtime's `component-model-async` cargo feature
//! // (on by default with it: `Config::concurrency_support`, `wasm_component_model_async`).
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<Host>::new(&engine);
//! add_to_linker(&mut linker)?;
//!
//! // Once per app: backing files and `[variables]`; fails if a required variable has no value.
//! let mut variables = AppVariables::new();
//! variables.insert("greeting", AppVariable { default: Some("hello".into()), ..Default::default() });
//! let resources = Arc::new(SpinResources::new(ResourceOptions {
//!     key_value: HashMap::from([("default".into(), ".nebula/spin/key_value.db".into())]),
//!     sqlite: HashMap::from([("default".into(), ".nebula/spin/sqlite.db".into())]),
//!     variables,
//!     environment: None, // read SPIN_VARIABLE_* from the process environment
//!     max_kv_store_bytes: None, // 64 MiB per store
//! })?);
//!
//! // Once per component: what its manifest grants; fails on a bad variable template.
//! let grants = Arc::new(ComponentGrants {
//!     key_value_stores: vec!["default".into()],
//!     sqlite_databases: vec!["default".into()],
//!     variables: BTreeMap::from([("message".into(), "{{ greeting }}, world".into())]),
//!     // Its own deadline and memory cap bound a statement's run time and a call's result.
//!     limits: CallLimits::default(),
//! });
//! resources.check_component(&grants)?;
//!
//! // Per instance (per request): cheap, two `Arc` clones and an empty table. SQLite and
//! // key-value calls run on tokio's blocking pool unless the host gives its own spawner.
//! let host = Host {
//!     spin: SpinState::new(resources.clone(), grants.clone()).with_blocking(Blocking::tokio()),
//! };
//! # let _ = host; Ok(()) }
//! ```
//!
//! # Semantics (as Spin's)
//!
//! - Opening a store or database the component was not granted is `access-denied`, whether
//!   or not it exists; a granted label the host gave no file is `no-such-store` /
//!   `no-such-database`.
//! - Key-value stores live in the `spin_key_value` table of their file, the layout of Spin's
//!   default store; several labels may share a file.
//! - Application variables take `SPIN_VARIABLE_<NAME>` from the environment, else their
//!   default, once, when [`SpinResources::new`] runs. A component sees only the variables its
//!   manifest declares (`undefined` otherwise); names that break Spin's naming rule are
//!   `invalid-name`.
//! - Results are capped at 128 MiB per call, as in Spin, and at the component's own
//!   [`CallLimits::max_result_bytes`] (its memory cap) when that is smaller; a guest may hold
//!   at most 256 open stores and connections together (`store-table-full`, or an `io` error
//!   for SQLite).
//! - Unlike Spin, a key-value store holds at most [`ResourceOptions::max_kv_store_bytes`]
//!   (keys and values, 64 MiB by default): a `set` past it fails with `other` and writes
//!   nothing, so one tenant cannot fill the host's disk.
//!
//! # Blocking
//!
//! No SQLite statement runs on the thread that calls the host function: every key-value
//! operation and SQLite `open`/`execute` is handed to a [`Blocking`] spawner (tokio's
//! blocking pool by default; the host passes one that charges the CPU to the request) and
//! awaited, so an async runtime's worker stays free for other requests while a statement
//! waits on a lock (up to the 5 s busy timeout) or runs. A statement is interrupted at the
//! component's own deadline ([`CallLimits::statement_timeout`]), and at once if the call is
//! abandoned (its future dropped, as when the request's deadline passes).
//!
//! # Isolation
//!
//! A guest's SQLite `connection` is a pooled rusqlite connection of its own, opened on the
//! granted file only, without URI file names. Every `ATTACH` is refused, whatever form its
//! argument takes (a literal, a bound parameter, an expression, a `file:` URI,
//! `':memory:'`), and so are `VACUUM INTO`, `load_extension` and `PRAGMA`s that set anything
//! beyond a short list of per-connection settings; the authorizer denies what it does not
//! know. A plain `VACUUM` still works. Connections that a guest changed (temporary tables,
//! `PRAGMA x = y`) are closed instead of going back to the pool, and an open transaction is
//! rolled back, so nothing per-connection carries over to another request.

mod blocking;
mod kv;
mod sql_policy;
mod sqlite;
mod variables;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{HasData, Linker, ResourceTable};

pub use blocking::{Blocking, BlockingDone, BlockingJob};
pub use kv::KvStore;
pub use sqlite::SqliteConnection;
pub use variables::{env_key as variable_env_key, AppVariable, AppVariables};

/// Largest result one call returns, as Spin's `MAX_HOST_BUFFERED_BYTES`; a component's own
/// cap ([`CallLimits::max_result_bytes`]) may only lower it.
const MAX_RESULT_BYTES: usize = 128 << 20;

/// Bytes one key-value store may hold (keys and values) when the host sets no quota.
pub const DEFAULT_MAX_KV_STORE_BYTES: u64 = 64 << 20;

/// How long one SQLite statement may run when the host gives the component no deadline.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Open stores and connections one instance may hold at once.
const MAX_OPEN_HANDLES: usize = 256;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "nebula:spin-host/host",
        // The calls that touch a SQLite file are `async` on the host, even where the WIT
        // function is not, so that they can wait for a blocking thread instead of running on
        // the caller's (see `Blocking`).
        imports: {
            "fermyon:spin/key-value.[method]store.get": async | trappable,
            "fermyon:spin/key-value.[method]store.set": async | trappable,
            "fermyon:spin/key-value.[method]store.delete": async | trappable,
            "fermyon:spin/key-value.[method]store.exists": async | trappable,
            "fermyon:spin/key-value.[method]store.get-keys": async | trappable,
            "fermyon:spin/sqlite.[static]connection.open": async | trappable,
            "fermyon:spin/sqlite.[method]connection.execute": async | trappable,
            "spin:sqlite/sqlite.[static]connection.open": async | trappable,
            "spin:sqlite/sqlite.[method]connection.execute": async | trappable,
            default: trappable,
        },
        with: {
            "fermyon:spin/key-value.store": crate::kv::KvStore,
            "spin:key-value/key-value.store": crate::kv::KvStore,
            "fermyon:spin/sqlite.connection": crate::sqlite::SqliteConnection,
            "spin:sqlite/sqlite.connection": crate::sqlite::SqliteConnection,
        },
    });
}

/// What the host decides per app: where each label's data lives, and the app's variables.
#[derive(Debug, Default)]
pub struct ResourceOptions {
    /// Key-value store label → SQLite file holding it (`"default"` is the usual one).
    pub key_value: HashMap<String, PathBuf>,
    /// SQLite database label → database file.
    pub sqlite: HashMap<String, PathBuf>,
    /// The manifest's `[variables]`.
    pub variables: AppVariables,
    /// Where `SPIN_VARIABLE_*` overrides are read: `None` for the process environment, or a
    /// fixed map (for tests, or a host that reads a `.env` file itself).
    pub environment: Option<HashMap<String, String>>,
    /// Bytes one key-value store may hold, keys and values together; a `set` that would go
    /// past it fails and writes nothing. `None` means [`DEFAULT_MAX_KV_STORE_BYTES`].
    pub max_kv_store_bytes: Option<u64>,
}

/// Per-app state shared by every instance: backing files and resolved variables.
pub struct SpinResources {
    key_value: HashMap<String, Arc<kv::KvFile>>,
    sqlite: HashMap<String, Arc<sqlite::SqliteDb>>,
    variables: variables::ResolvedVariables,
}

impl SpinResources {
    /// Resolves the app's variables and prepares the backing files' folders. Files are
    /// created when a component first opens them.
    ///
    /// Fails if an application variable has no value (required, and no `SPIN_VARIABLE_*` is
    /// set), has an invalid name, or is both required and defaulted; the message names it.
    pub fn new(opts: ResourceOptions) -> anyhow::Result<Self> {
        let variables = match &opts.environment {
            Some(env) => {
                variables::ResolvedVariables::resolve(&opts.variables, &|k| env.get(k).cloned())
            }
            None => {
                variables::ResolvedVariables::resolve(&opts.variables, &|k| std::env::var(k).ok())
            }
        }?;

        // Labels given the same file share one connection, so they never contend for the
        // file's write lock against each other.
        let quota = opts
            .max_kv_store_bytes
            .unwrap_or(DEFAULT_MAX_KV_STORE_BYTES);
        let mut files: HashMap<PathBuf, Arc<kv::KvFile>> = HashMap::new();
        let mut key_value = HashMap::new();
        for (label, path) in opts.key_value {
            let path = prepare_path(&path).with_context(|| format!("key-value store {label:?}"))?;
            let file = files
                .entry(path.clone())
                .or_insert_with(|| Arc::new(kv::KvFile::new(path, quota)))
                .clone();
            key_value.insert(label, file);
        }

        let mut sqlite = HashMap::new();
        for (label, path) in opts.sqlite {
            let path = prepare_path(&path).with_context(|| format!("SQLite database {label:?}"))?;
            sqlite.insert(label, Arc::new(sqlite::SqliteDb::new(path)));
        }

        Ok(Self {
            key_value,
            sqlite,
            variables,
        })
    }

    /// Checks a component against the app before it serves: its variable templates must
    /// parse and name only application variables. Labels of stores and databases without a
    /// file are not an error here; opening them answers `no-such-store` /
    /// `no-such-database`.
    pub fn check_component(&self, grants: &ComponentGrants) -> anyhow::Result<()> {
        self.variables.check_component(&grants.variables)
    }

    /// Renders a template over the application variables, e.g. `"https://{{ host }}"`; for
    /// the manifest fields where Spin allows them, such as `allowed_outbound_hosts`.
    pub fn resolve_template(&self, template: &str) -> anyhow::Result<String> {
        self.variables.render(template)
    }
}

/// Makes the path absolute (so that two spellings of one file share a connection) and
/// creates its folder, so that a folder that cannot be created fails the load.
fn prepare_path(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    let path = std::path::absolute(path)
        .with_context(|| format!("cannot resolve the path {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    Ok(path)
}

/// What one component's manifest entry grants it.
#[derive(Clone, Debug, Default)]
pub struct ComponentGrants {
    /// `key_value_stores = [...]`
    pub key_value_stores: Vec<String>,
    /// `sqlite_databases = [...]`
    pub sqlite_databases: Vec<String>,
    /// `[component.<id>.variables]`: name → template such as `"{{ greeting }}"`.
    pub variables: BTreeMap<String, String>,
    /// What one call of this component may take.
    pub limits: CallLimits,
}

/// One component's bounds on its SQLite and key-value calls, from its own limits.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// Longest one SQLite statement may run before it is interrupted and fails with an `io`
    /// error: the component's own deadline (default [`DEFAULT_STATEMENT_TIMEOUT`]).
    pub statement_timeout: Duration,
    /// Largest result (rows, a value, the list of keys) one call returns: the component's
    /// memory cap, since the result must fit in its memory. Never more than 128 MiB, which
    /// is also the default.
    pub max_result_bytes: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            max_result_bytes: MAX_RESULT_BYTES,
        }
    }
}

impl CallLimits {
    /// The result cap in force: the component's, within Spin's 128 MiB.
    pub(crate) fn result_cap(&self) -> usize {
        self.max_result_bytes.min(MAX_RESULT_BYTES)
    }
}

/// Per-instance state: the stores and connections the guest has open.
///
/// Dropping it (with the instance's store) closes them and returns SQLite connections to
/// their pool.
pub struct SpinState {
    resources: Arc<SpinResources>,
    grants: Arc<ComponentGrants>,
    /// A table of its own rather than the host's WASI one: the two never share handles, and
    /// it keeps [`SpinView`] to one method.
    table: ResourceTable,
    open_handles: usize,
    /// Where SQLite work runs, off the calling thread.
    blocking: Blocking,
}

impl SpinState {
    pub fn new(resources: Arc<SpinResources>, grants: Arc<ComponentGrants>) -> Self {
        Self {
            resources,
            grants,
            table: ResourceTable::new(),
            open_handles: 0,
            blocking: Blocking::tokio(),
        }
    }

    /// Runs this instance's SQLite and key-value work with `blocking` instead of tokio's
    /// blocking pool: per instance, so that a host can charge the work to the request the
    /// instance is serving.
    pub fn with_blocking(mut self, blocking: Blocking) -> Self {
        self.blocking = blocking;
        self
    }
}

/// Implemented by the host's store data to give these interfaces their state.
pub trait SpinView: Send {
    fn spin(&mut self) -> &mut SpinState;
}

/// The [`HasData`] projection used by the generated bindings: `T` → `&mut SpinState`.
pub(crate) struct SpinData;

impl HasData for SpinData {
    type Data<'a> = &'a mut SpinState;
}

/// Adds every interface in the table at the top of this page to `linker`.
///
/// The `@3.x` interfaces have `async` functions, streams and futures: the engine must be
/// built with wasmtime's `component-model-async` cargo feature, which this crate turns on;
/// with it `Config::concurrency_support` and `Config::wasm_component_model_async` default to
/// on (do not turn them off for engines that run Spin components). Components using them are
/// called as usual (`call_async`, or `run_concurrent` for `wasi:http@0.3`); a guest that
/// lowers these imports synchronously simply blocks until they return.
pub fn add_to_linker<T: SpinView + 'static>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    use bindings::{fermyon, spin};
    let get: fn(&mut T) -> &mut SpinState = T::spin;
    fermyon::spin::key_value::add_to_linker::<T, SpinData>(linker, get)?;
    fermyon::spin::sqlite::add_to_linker::<T, SpinData>(linker, get)?;
    fermyon::spin::variables::add_to_linker::<T, SpinData>(linker, get)?;
    spin::key_value::key_value::add_to_linker::<T, SpinData>(linker, get)?;
    spin::sqlite3_1_0::sqlite::add_to_linker::<T, SpinData>(linker, get)?;
    // wasmtime would resolve an `@3.0.0` import to `@3.1.0` by semver on its own, but
    // `Linker::define_unknown_imports_as_traps` matches names exactly and would stub it with
    // traps; naming 3.0.0 explicitly (3.1.0's functions are a superset) avoids that.
    let mut v3_0 = linker.instance("spin:sqlite/sqlite@3.0.0")?;
    spin::sqlite3_1_0::sqlite::add_to_linker_instance::<T, SpinData>(&mut v3_0, get)?;
    spin::variables::variables::add_to_linker::<T, SpinData>(linker, get)?;
    Ok(())
}

#[cfg(test)]
mod tests;
