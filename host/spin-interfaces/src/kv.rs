//! Spin key-value: `fermyon:spin/key-value@2.0.0` and `spin:key-value/key-value@3.0.0`,
//! backed by SQLite files chosen by the host.
//!
//! The table layout is the one Spin's default store uses (`spin_key_value`, keyed by store
//! label and key), so a store file written by `spin up` can be served by Nebula and back.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::OptionalExtension as _;
use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use crate::bindings::fermyon::spin::key_value as v2;
use crate::bindings::spin::key_value::key_value as v3;
use crate::{SpinData, SpinState, MAX_OPEN_HANDLES, MAX_RESULT_BYTES};

/// One SQLite file holding key-value stores; several labels may share it.
///
/// A single connection serves every store in the file: each operation is one short
/// statement, so a mutex costs less than a pool would.
pub(crate) struct KvFile {
    path: PathBuf,
    /// Opened on first use, like Spin, so that a host that maps a label no component opens
    /// does not create files.
    conn: Mutex<Option<rusqlite::Connection>>,
}

impl KvFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            conn: Mutex::new(None),
        }
    }

    fn with_conn<R>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Result<R, KvError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let conn = match &mut *guard {
            Some(conn) => conn,
            slot => slot.insert(open(&self.path).map_err(|err| {
                KvError::Other(format!(
                    "cannot open the key-value file {}: {err}",
                    self.path.display()
                ))
            })?),
        };
        f(conn).map_err(|err| KvError::Other(err.to_string()))
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
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
}

/// Errors shared by both interface versions (their `error` variants are identical).
#[derive(Debug, PartialEq)]
pub(crate) enum KvError {
    StoreTableFull,
    NoSuchStore,
    AccessDenied,
    Other(String),
}

impl KvStore {
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let value = self.file.with_conn(|conn| {
            conn.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row((&self.label, key), |row| row.get::<_, Vec<u8>>(0))
                .optional()
        })?;
        match value {
            Some(v) if v.len() > MAX_RESULT_BYTES => Err(too_large()),
            value => Ok(value),
        }
    }

    pub(crate) fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.file.with_conn(|conn| {
            conn.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute((&self.label, key, value))
            .map(drop)
        })
    }

    pub(crate) fn delete(&self, key: &str) -> Result<(), KvError> {
        self.file.with_conn(|conn| {
            conn.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute((&self.label, key))
                .map(drop)
        })
    }

    pub(crate) fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.file.with_conn(|conn| {
            conn.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .exists((&self.label, key))
        })
    }

    pub(crate) fn keys(&self) -> Result<Vec<String>, KvError> {
        let keys = self.file.with_conn(|conn| {
            conn.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?
                .query_map([&self.label], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let bytes: usize = keys
            .iter()
            .map(|k| k.len() + std::mem::size_of::<String>())
            .sum();
        if bytes > MAX_RESULT_BYTES {
            return Err(too_large());
        }
        Ok(keys)
    }
}

fn too_large() -> KvError {
    KvError::Other(format!(
        "query result exceeds the limit of {MAX_RESULT_BYTES} bytes"
    ))
}

impl SpinState {
    /// Spin's order of checks: a label the component was not granted is `access-denied`
    /// whether or not it exists; a granted one the host did not back is `no-such-store`.
    pub(crate) fn kv_open(&mut self, label: &str) -> Result<KvStore, KvError> {
        if !self.grants.key_value_stores.iter().any(|l| l == label) {
            return Err(KvError::AccessDenied);
        }
        let file = self
            .resources
            .key_value
            .get(label)
            .ok_or(KvError::NoSuchStore)?
            .clone();
        if self.open_handles >= MAX_OPEN_HANDLES {
            return Err(KvError::StoreTableFull);
        }
        Ok(KvStore {
            file,
            label: label.to_string(),
        })
    }

    fn kv_push(&mut self, store: KvStore) -> wasmtime::Result<Resource<KvStore>> {
        let res = self.table.push(store)?;
        self.open_handles += 1;
        Ok(res)
    }

    fn kv_store(&self, res: &Resource<KvStore>) -> wasmtime::Result<&KvStore> {
        Ok(self.table.get(res)?)
    }

    fn kv_drop(&mut self, res: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(res)?;
        self.open_handles -= 1;
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

impl v2::Host for SpinState {}

impl v2::HostStore for SpinState {
    fn open(&mut self, label: String) -> V2Result<Resource<KvStore>> {
        match self.kv_open(&label) {
            Ok(store) => Ok(Ok(self.kv_push(store)?)),
            Err(err) => Ok(Err(err.into())),
        }
    }

    fn get(&mut self, store: Resource<KvStore>, key: String) -> V2Result<Option<Vec<u8>>> {
        Ok(self.kv_store(&store)?.get(&key).map_err(Into::into))
    }

    fn set(&mut self, store: Resource<KvStore>, key: String, value: Vec<u8>) -> V2Result<()> {
        Ok(self.kv_store(&store)?.set(&key, &value).map_err(Into::into))
    }

    fn delete(&mut self, store: Resource<KvStore>, key: String) -> V2Result<()> {
        Ok(self.kv_store(&store)?.delete(&key).map_err(Into::into))
    }

    fn exists(&mut self, store: Resource<KvStore>, key: String) -> V2Result<bool> {
        Ok(self.kv_store(&store)?.exists(&key).map_err(Into::into))
    }

    fn get_keys(&mut self, store: Resource<KvStore>) -> V2Result<Vec<String>> {
        Ok(self.kv_store(&store)?.keys().map_err(Into::into))
    }

    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.kv_drop(store)
    }
}

type V3Result<T> = wasmtime::Result<Result<T, v3::Error>>;

impl v3::Host for SpinState {}

impl v3::HostStore for SpinState {
    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.kv_drop(store)
    }
}

/// The 3.0 functions are `async` in WIT but a SQLite statement has nothing to await: each
/// runs inline inside `Accessor::with`.
impl<T: Send> v3::HostStoreWithStore<T> for SpinData {
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
        accessor.with(|mut access| Ok(access.get().kv_store(&store)?.get(&key).map_err(Into::into)))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> V3Result<()> {
        accessor.with(|mut access| {
            Ok(access
                .get()
                .kv_store(&store)?
                .set(&key, &value)
                .map_err(Into::into))
        })
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> V3Result<()> {
        accessor.with(|mut access| {
            Ok(access
                .get()
                .kv_store(&store)?
                .delete(&key)
                .map_err(Into::into))
        })
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> V3Result<bool> {
        accessor.with(|mut access| {
            Ok(access
                .get()
                .kv_store(&store)?
                .exists(&key)
                .map_err(Into::into))
        })
    }

    /// The keys are read in one statement and handed to the stream as one buffer; errors
    /// arrive through the future, with an empty stream, as the WIT's shape implies.
    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), v3::Error>>)> {
        accessor.with(|mut access| {
            let (keys, outcome) = match access.get().kv_store(&store)?.keys() {
                Ok(keys) => (keys, Ok(())),
                Err(err) => (Vec::new(), Err(v3::Error::from(err))),
            };
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
