//! Spin key-value: `fermyon:spin/key-value@2.0.0` and `spin:key-value/key-value@3.0.0`,
//! backed by SQLite files chosen by the host.
//!
//! The table layout is the one Spin's default store uses (`spin_key_value`, keyed by store
//! label and key), so a store file written by `spin up` can be served by Nebula and back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{OpenFlags, OptionalExtension as _};
use wasmtime::component::{
    Accessor, FutureReader, HasData, HasSelf, Linker, Resource, ResourceTable, StreamReader,
};

use crate::bindings::fermyon::spin::key_value as v2;
use crate::bindings::spin::key_value::key_value as v3;
use crate::unit::{granted_list, interface_of, InstanceContext, OpenHandles};
use crate::{prepare_path, Blocking, CallLimits, HostUnit, DEFAULT_MAX_KV_STORE_BYTES};

/// The interfaces this unit serves, without their versions.
const INTERFACES: [&str; 2] = ["fermyon:spin/key-value", "spin:key-value/key-value"];

/// The key-value unit, configured for one app: the file behind each store label.
pub struct KeyValue {
    stores: HashMap<String, Arc<KvFile>>,
}

/// What the app gives the key-value unit.
#[derive(Debug, Default)]
pub struct KeyValueConfig {
    /// Store label → SQLite file holding it (`"default"` is the usual one).
    pub stores: HashMap<String, PathBuf>,
    /// Bytes one store may hold, keys and values together; a `set` that would go past it
    /// fails and writes nothing. `None` means [`DEFAULT_MAX_KV_STORE_BYTES`].
    pub max_store_bytes: Option<u64>,
}

/// What one component may use.
#[derive(Clone, Debug, Default)]
pub struct KeyValueGrants {
    /// `key_value_stores = [...]`
    pub stores: Vec<String>,
    /// Its result cap bounds what one call returns.
    pub limits: CallLimits,
}

/// One component's grants over the app's stores.
pub struct KeyValueComponent {
    unit: Arc<KeyValue>,
    stores: Vec<String>,
    max_result_bytes: usize,
}

impl KeyValueComponent {
    pub(crate) fn new(unit: Arc<KeyValue>, grants: KeyValueGrants) -> Self {
        Self {
            unit,
            stores: grants.stores,
            max_result_bytes: grants.limits.result_cap(),
        }
    }
}

/// One instance's open stores.
pub struct KeyValueInstance {
    component: Arc<KeyValueComponent>,
    /// A table of the unit's own: no other interface shares its handles.
    table: ResourceTable,
    handles: OpenHandles,
    blocking: Blocking,
}

impl KeyValueInstance {
    /// Runs this instance's work with `blocking` from now on.
    pub(crate) fn set_blocking(&mut self, blocking: Blocking) {
        self.blocking = blocking;
    }

    /// Stores and connections the instance holds, all units together.
    #[cfg(test)]
    pub(crate) fn open_handles(&self) -> usize {
        self.handles.count()
    }
}

impl HostUnit for KeyValue {
    type AppConfig = KeyValueConfig;
    type Grants = KeyValueGrants;
    type Component = KeyValueComponent;
    type Instance = KeyValueInstance;
    type Data = HasSelf<KeyValueInstance>;

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <Self::Data as HasData>::Data<'_>,
    ) -> anyhow::Result<()> {
        v2::add_to_linker::<T, Self::Data>(linker, get)?;
        v3::add_to_linker::<T, Self::Data>(linker, get)?;
        Ok(())
    }

    /// Prepares the stores' folders; files are created when a component first opens them.
    fn configure_app(config: KeyValueConfig) -> anyhow::Result<Self> {
        // Labels given the same file share one connection, so they never contend for the
        // file's write lock against each other.
        let quota = config.max_store_bytes.unwrap_or(DEFAULT_MAX_KV_STORE_BYTES);
        let mut files: HashMap<PathBuf, Arc<KvFile>> = HashMap::new();
        let mut stores = HashMap::new();
        for (label, path) in config.stores {
            let path = prepare_path(&path).with_context(|| format!("key-value store {label:?}"))?;
            let file = files
                .entry(path.clone())
                .or_insert_with(|| Arc::new(KvFile::new(path, quota)))
                .clone();
            stores.insert(label, file);
        }
        Ok(Self { stores })
    }

    /// Never fails: a granted label without a file answers `no-such-store` when opened, as
    /// in Spin.
    fn configure_component(
        self: &Arc<Self>,
        grants: KeyValueGrants,
    ) -> anyhow::Result<KeyValueComponent> {
        Ok(KeyValueComponent::new(self.clone(), grants))
    }

    fn prepare(component: &Arc<KeyValueComponent>, instance: &InstanceContext) -> KeyValueInstance {
        KeyValueInstance {
            component: component.clone(),
            table: ResourceTable::new(),
            handles: instance.handles.clone(),
            blocking: instance.blocking.clone(),
        }
    }

    fn serves(import: &str, grants: &KeyValueGrants) -> Option<String> {
        INTERFACES
            .contains(&interface_of(import))
            .then(|| format!("stores: {}", granted_list(&grants.stores)))
    }
}

/// One SQLite file holding key-value stores; several labels may share it.
///
/// A single connection serves every store in the file: each operation is one short
/// statement, so a mutex costs less than a pool would.
pub(crate) struct KvFile {
    path: PathBuf,
    /// Bytes each store in this file may hold.
    quota: u64,
    /// Opened on first use, like Spin, so that a host that maps a label no component opens
    /// does not create files.
    conn: Mutex<Option<KvConn>>,
}

struct KvConn {
    conn: rusqlite::Connection,
    /// Bytes (keys and values) each store holds, summed once per label and then kept up to
    /// date by `set` and `delete`, which all go through this connection.
    usage: HashMap<String, u64>,
}

impl KvConn {
    fn usage(&mut self, label: &str) -> rusqlite::Result<u64> {
        if let Some(&n) = self.usage.get(label) {
            return Ok(n);
        }
        let n: i64 = self.conn.query_row(
            "SELECT coalesce(sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0)
             FROM spin_key_value WHERE store = ?1",
            [label],
            |row| row.get(0),
        )?;
        self.usage.insert(label.to_string(), n as u64);
        Ok(n as u64)
    }
}

impl KvFile {
    pub(crate) fn new(path: PathBuf, quota: u64) -> Self {
        Self {
            path,
            quota,
            conn: Mutex::new(None),
        }
    }

    fn with_conn<R>(
        &self,
        f: impl FnOnce(&mut KvConn) -> Result<R, KvError>,
    ) -> Result<R, KvError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let conn = match &mut *guard {
            Some(conn) => conn,
            slot => slot.insert(KvConn {
                conn: open(&self.path).map_err(|err| {
                    KvError::Other(format!(
                        "cannot open the key-value file {}: {err}",
                        self.path.display()
                    ))
                })?,
                usage: HashMap::new(),
            }),
        };
        f(conn)
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    // No URI file names: the path is the host's, taken literally.
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS spin_key_value (
            store TEXT NOT NULL,
            key   TEXT NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (store, key)
        )",
    )?;
    Ok(conn)
}

/// A guest's open store: the resource behind both versions' `store`.
pub struct KvStore {
    file: Arc<KvFile>,
    label: String,
    /// The component's result cap.
    max_result_bytes: usize,
}

/// Errors shared by both interface versions (their `error` variants are identical).
#[derive(Debug, PartialEq)]
pub(crate) enum KvError {
    StoreTableFull,
    NoSuchStore,
    AccessDenied,
    Other(String),
}

impl From<rusqlite::Error> for KvError {
    fn from(err: rusqlite::Error) -> Self {
        KvError::Other(err.to_string())
    }
}

/// One operation on a store, run on a blocking thread.
enum Op {
    Get(String),
    Set(String, Vec<u8>),
    Delete(String),
    Exists(String),
    Keys,
}

/// What an [`Op`] returns.
enum Out {
    Value(Option<Vec<u8>>),
    Done,
    Exists(bool),
    Keys(Vec<String>),
}

impl KvStore {
    /// Runs `op` off the calling thread (see [`Blocking`]).
    async fn run(&self, blocking: &Blocking, op: Op) -> wasmtime::Result<Result<Out, KvError>> {
        let file = self.file.clone();
        let label = self.label.clone();
        let cap = self.max_result_bytes;
        blocking
            .run(move || match op {
                Op::Get(key) => get(&file, &label, &key, cap).map(Out::Value),
                Op::Set(key, value) => set(&file, &label, &key, &value).map(|()| Out::Done),
                Op::Delete(key) => delete(&file, &label, &key).map(|()| Out::Done),
                Op::Exists(key) => exists(&file, &label, &key).map(Out::Exists),
                Op::Keys => keys(&file, &label, cap).map(Out::Keys),
            })
            .await
    }
}

fn get(file: &KvFile, label: &str, key: &str, cap: usize) -> Result<Option<Vec<u8>>, KvError> {
    let value = file.with_conn(|c| {
        Ok(c.conn
            .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
            .query_row((label, key), |row| row.get::<_, Vec<u8>>(0))
            .optional()?)
    })?;
    match value {
        Some(v) if v.len() > cap => Err(too_large(cap)),
        value => Ok(value),
    }
}

/// Writes the value unless the store would then hold more than its quota; a write that
/// does not grow the store always succeeds (so a store over a lowered quota can shrink).
fn set(file: &KvFile, label: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
    let quota = file.quota;
    file.with_conn(|c| {
        let used = c.usage(label)?;
        let old: Option<i64> = c
            .conn
            .prepare_cached(
                "SELECT length(CAST(value AS BLOB)) FROM spin_key_value
                 WHERE store = ?1 AND key = ?2",
            )?
            .query_row((label, key), |row| row.get(0))
            .optional()?;
        let old = old.map_or(0, |n| key.len() as u64 + n as u64);
        let new = (key.len() + value.len()) as u64;
        let after = used.saturating_sub(old).saturating_add(new);
        if after > quota && after > used {
            return Err(KvError::Other(format!(
                "key-value store {label:?} is full: this set would make it hold {after} bytes \
                 (keys and values), over its quota of {quota} bytes; nothing was written \
                 (delete keys, or raise the host's max_kv_store_bytes)"
            )));
        }
        c.conn
            .prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute((label, key, value))?;
        c.usage.insert(label.to_string(), after);
        Ok(())
    })
}

fn delete(file: &KvFile, label: &str, key: &str) -> Result<(), KvError> {
    file.with_conn(|c| {
        let used = c.usage(label)?;
        let freed: Option<i64> = c
            .conn
            .prepare_cached(
                "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2
                 RETURNING length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))",
            )?
            .query_row((label, key), |row| row.get(0))
            .optional()?;
        if let Some(n) = freed {
            c.usage
                .insert(label.to_string(), used.saturating_sub(n as u64));
        }
        Ok(())
    })
}

fn exists(file: &KvFile, label: &str, key: &str) -> Result<bool, KvError> {
    file.with_conn(|c| {
        Ok(c.conn
            .prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
            .exists((label, key))?)
    })
}

fn keys(file: &KvFile, label: &str, cap: usize) -> Result<Vec<String>, KvError> {
    let keys = file.with_conn(|c| {
        Ok(c.conn
            .prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?
            .query_map([label], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    })?;
    let bytes: usize = keys
        .iter()
        .map(|k| k.len() + std::mem::size_of::<String>())
        .sum();
    if bytes > cap {
        return Err(too_large(cap));
    }
    Ok(keys)
}

fn too_large(cap: usize) -> KvError {
    KvError::Other(format!(
        "the result is larger than this component may receive ({cap} bytes, its memory \
         limit); store smaller values or fewer keys"
    ))
}

impl KeyValueInstance {
    /// Spin's order of checks: a label the component was not granted is `access-denied`
    /// whether or not it exists; a granted one the host did not back is `no-such-store`.
    pub(crate) fn kv_open(&mut self, label: &str) -> Result<KvStore, KvError> {
        let component = &self.component;
        if !component.stores.iter().any(|l| l == label) {
            return Err(KvError::AccessDenied);
        }
        let file = component
            .unit
            .stores
            .get(label)
            .ok_or(KvError::NoSuchStore)?
            .clone();
        if self.handles.full() {
            return Err(KvError::StoreTableFull);
        }
        Ok(KvStore {
            file,
            label: label.to_string(),
            max_result_bytes: component.max_result_bytes,
        })
    }

    fn kv_push(&mut self, store: KvStore) -> wasmtime::Result<Resource<KvStore>> {
        let res = self.table.push(store)?;
        self.handles.opened();
        Ok(res)
    }

    fn kv_store(&self, res: &Resource<KvStore>) -> wasmtime::Result<&KvStore> {
        Ok(self.table.get(res)?)
    }

    fn kv_drop(&mut self, res: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(res)?;
        self.handles.closed();
        Ok(())
    }
}

impl From<KvError> for v2::Error {
    fn from(err: KvError) -> Self {
        match err {
            KvError::StoreTableFull => Self::StoreTableFull,
            KvError::NoSuchStore => Self::NoSuchStore,
            KvError::AccessDenied => Self::AccessDenied,
            KvError::Other(msg) => Self::Other(msg),
        }
    }
}

impl From<KvError> for v3::Error {
    fn from(err: KvError) -> Self {
        match err {
            KvError::StoreTableFull => Self::StoreTableFull,
            KvError::NoSuchStore => Self::NoSuchStore,
            KvError::AccessDenied => Self::AccessDenied,
            KvError::Other(msg) => Self::Other(msg),
        }
    }
}

type V2Result<T> = wasmtime::Result<Result<T, v2::Error>>;

impl v2::Host for KeyValueInstance {}

impl v2::HostStore for KeyValueInstance {
    fn open(&mut self, label: String) -> V2Result<Resource<KvStore>> {
        match self.kv_open(&label) {
            Ok(store) => Ok(Ok(self.kv_push(store)?)),
            Err(err) => Ok(Err(err.into())),
        }
    }

    async fn get(&mut self, store: Resource<KvStore>, key: String) -> V2Result<Option<Vec<u8>>> {
        Ok(self.kv_run(&store, Op::Get(key)).await?.map(Out::value))
    }

    async fn set(&mut self, store: Resource<KvStore>, key: String, value: Vec<u8>) -> V2Result<()> {
        Ok(self.kv_run(&store, Op::Set(key, value)).await?.map(drop))
    }

    async fn delete(&mut self, store: Resource<KvStore>, key: String) -> V2Result<()> {
        Ok(self.kv_run(&store, Op::Delete(key)).await?.map(drop))
    }

    async fn exists(&mut self, store: Resource<KvStore>, key: String) -> V2Result<bool> {
        Ok(self.kv_run(&store, Op::Exists(key)).await?.map(Out::exists))
    }

    async fn get_keys(&mut self, store: Resource<KvStore>) -> V2Result<Vec<String>> {
        Ok(self.kv_run(&store, Op::Keys).await?.map(Out::keys))
    }

    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.kv_drop(store)
    }
}

impl KeyValueInstance {
    /// Runs `op` on a blocking thread, for the v2 functions (which hold the store's data
    /// while they wait, as a synchronous WIT function does).
    async fn kv_run<E: From<KvError>>(
        &mut self,
        store: &Resource<KvStore>,
        op: Op,
    ) -> wasmtime::Result<Result<Out, E>> {
        let blocking = self.blocking.clone();
        let store = self.kv_store(store)?;
        Ok(store.run(&blocking, op).await?.map_err(Into::into))
    }
}

/// The v3 functions let go of the store's data while the operation runs, so the guest's
/// other tasks go on meanwhile.
async fn kv_run3<T: Send>(
    accessor: &Accessor<T, HasSelf<KeyValueInstance>>,
    store: &Resource<KvStore>,
    op: Op,
) -> wasmtime::Result<Result<Out, v3::Error>> {
    let (file, label, cap, blocking) = accessor.with(|mut access| {
        let state = access.get();
        let s = state.kv_store(store)?;
        Ok::<_, wasmtime::Error>((
            s.file.clone(),
            s.label.clone(),
            s.max_result_bytes,
            state.blocking.clone(),
        ))
    })?;
    let store = KvStore {
        file,
        label,
        max_result_bytes: cap,
    };
    Ok(store.run(&blocking, op).await?.map_err(Into::into))
}

impl Out {
    fn value(self) -> Option<Vec<u8>> {
        match self {
            Out::Value(v) => v,
            _ => unreachable!("a get returns a value"),
        }
    }

    fn exists(self) -> bool {
        match self {
            Out::Exists(b) => b,
            _ => unreachable!("an exists returns a bool"),
        }
    }

    fn keys(self) -> Vec<String> {
        match self {
            Out::Keys(k) => k,
            _ => unreachable!("a get-keys returns keys"),
        }
    }
}

type V3Result<T> = wasmtime::Result<Result<T, v3::Error>>;

impl v3::Host for KeyValueInstance {}

impl v3::HostStore for KeyValueInstance {
    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.kv_drop(store)
    }
}

/// The 3.0 functions are `async` in WIT: each runs its statement on a blocking thread.
impl<T: Send> v3::HostStoreWithStore<T> for HasSelf<KeyValueInstance> {
    async fn open(accessor: &Accessor<T, Self>, label: String) -> V3Result<Resource<KvStore>> {
        accessor.with(|mut access| {
            let state = access.get();
            match state.kv_open(&label) {
                Ok(store) => Ok(Ok(state.kv_push(store)?)),
                Err(err) => Ok(Err(err.into())),
            }
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> V3Result<Option<Vec<u8>>> {
        Ok(kv_run3(accessor, &store, Op::Get(key))
            .await?
            .map(Out::value))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> V3Result<()> {
        Ok(kv_run3(accessor, &store, Op::Set(key, value))
            .await?
            .map(drop))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> V3Result<()> {
        Ok(kv_run3(accessor, &store, Op::Delete(key)).await?.map(drop))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> V3Result<bool> {
        Ok(kv_run3(accessor, &store, Op::Exists(key))
            .await?
            .map(Out::exists))
    }

    /// The keys are read in one statement and handed to the stream as one buffer; errors
    /// arrive through the future, with an empty stream, as the WIT's shape implies.
    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), v3::Error>>)> {
        let (keys, outcome) = match kv_run3(accessor, &store, Op::Keys).await? {
            Ok(out) => (out.keys(), Ok(())),
            Err(err) => (Vec::new(), Err(err)),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let future =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )?;
            Ok((stream, future))
        })
    }
}
