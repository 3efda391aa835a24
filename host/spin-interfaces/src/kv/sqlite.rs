//! Stores in a local SQLite file: Spin's default backing (`type = "spin"`).
//!
//! The table layout is the one Spin's default store uses (`spin_key_value`, keyed by store
//! label and key), so a store file written by `spin up` can be served by Nebula and back.
//! rusqlite blocks, so every operation runs on the call's [`Blocking`](crate::Blocking)
//! spawner, never on the async worker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OpenFlags, OptionalExtension as _};

use super::backend::{keys_fit, store_full, too_large, Call, KvBackend, KvError, KvResult};

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

impl From<rusqlite::Error> for KvError {
    fn from(err: rusqlite::Error) -> Self {
        KvError::Other(err.to_string())
    }
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

/// The file for a label, with the work handed to the call's blocking spawner.
pub(crate) struct SqliteBackend(pub(crate) Arc<KvFile>);

impl SqliteBackend {
    async fn run<R: Send + 'static>(
        &self,
        call: &Call,
        f: impl FnOnce(&KvFile) -> Result<R, KvError> + Send + 'static,
    ) -> KvResult<R> {
        let file = self.0.clone();
        call.blocking.run(move || f(&file)).await
    }
}

#[async_trait]
impl KvBackend for SqliteBackend {
    async fn get(&self, call: &Call, store: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
        let (store, key, cap) = (store.to_string(), key.to_string(), call.max_result_bytes);
        self.run(call, move |f| get(f, &store, &key, cap)).await
    }

    async fn set(&self, call: &Call, store: &str, key: &str, value: Vec<u8>) -> KvResult<()> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(call, move |f| set(f, &store, &key, &value)).await
    }

    async fn delete(&self, call: &Call, store: &str, key: &str) -> KvResult<()> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(call, move |f| delete(f, &store, &key)).await
    }

    async fn exists(&self, call: &Call, store: &str, key: &str) -> KvResult<bool> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(call, move |f| exists(f, &store, &key)).await
    }

    async fn keys(&self, call: &Call, store: &str) -> KvResult<Vec<String>> {
        let (store, cap) = (store.to_string(), call.max_result_bytes);
        self.run(call, move |f| keys(f, &store, cap)).await
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
            return Err(store_full(label, after, quota));
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
    if !keys_fit(&keys, cap) {
        return Err(too_large(cap));
    }
    Ok(keys)
}
