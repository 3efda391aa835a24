//! What the key-value unit asks of the place a store lives: a [`KvBackend`], one per backing
//! (a SQLite file, a Redis server, a PostgreSQL database), chosen by the host's
//! [`KvBacking`] for each label.
//!
//! Every backend keeps the same semantics, so a component cannot tell them apart: `get` of a
//! missing key is `None`, `set` overwrites, `delete` of a missing key succeeds, a result
//! larger than the component's cap is refused with `other`, and failures of the backing
//! itself are `other` with the driver's message.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::Blocking;

/// Where one store label's data lives, as the host's runtime config says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvBacking {
    /// A local SQLite file, table `spin_key_value` (Spin's `type = "spin"`).
    Sqlite(PathBuf),
    /// A Redis server (Spin's `type = "redis"`, `url = "redis://host:port/db"`). As in Spin,
    /// keys are stored as they are, so every label given the same URL shares one keyspace
    /// (the URL's database), and a store written by `spin up` reads the same here.
    Redis { url: String },
    /// A PostgreSQL database (a Nebula extension, `type = "postgres"`,
    /// `url = "postgres://user@host/db"`): table `spin_key_value (store, key, value)`, keyed
    /// by label and key like the SQLite layout, created if missing.
    Postgres { url: String },
}

impl KvBacking {
    /// Whether several hosts can share this backing: a server rather than a local file.
    pub fn is_shared(&self) -> bool {
        !matches!(self, KvBacking::Sqlite(_))
    }

    /// What `nebula check` and messages call it; never the URL, which may hold a password.
    pub fn kind(&self) -> &'static str {
        match self {
            KvBacking::Sqlite(_) => "SQLite file",
            KvBacking::Redis { .. } => "Redis",
            KvBacking::Postgres { .. } => "PostgreSQL",
        }
    }
}

impl From<PathBuf> for KvBacking {
    fn from(path: PathBuf) -> Self {
        KvBacking::Sqlite(path)
    }
}

/// Errors shared by both interface versions (their `error` variants are identical).
#[derive(Debug, PartialEq)]
pub(crate) enum KvError {
    StoreTableFull,
    NoSuchStore,
    AccessDenied,
    Other(String),
}

/// A guest's error, or a trap (a host bug: the blocking job did not finish).
pub(crate) type KvResult<T> = wasmtime::Result<Result<T, KvError>>;

/// What one call brings besides its arguments: the component's bounds and where blocking
/// work runs.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// For backends whose driver blocks (SQLite).
    pub blocking: Blocking,
    /// Largest value, or list of keys, the call may return.
    pub max_result_bytes: usize,
    /// The component's deadline: a network backend gives up after it.
    pub timeout: Duration,
}

/// One backing of key-value stores; several labels may share one (a file, a server).
///
/// `store` is the label the guest opened. Each function is one operation of the WIT
/// interface, with its semantics.
#[async_trait]
pub(crate) trait KvBackend: Send + Sync + 'static {
    async fn get(&self, call: &Call, store: &str, key: &str) -> KvResult<Option<Vec<u8>>>;
    /// Refused, writing nothing, if the store would then hold more than its quota (the
    /// backends that keep one).
    async fn set(&self, call: &Call, store: &str, key: &str, value: Vec<u8>) -> KvResult<()>;
    async fn delete(&self, call: &Call, store: &str, key: &str) -> KvResult<()>;
    async fn exists(&self, call: &Call, store: &str, key: &str) -> KvResult<bool>;
    async fn keys(&self, call: &Call, store: &str) -> KvResult<Vec<String>>;
}

/// The error for a result over the component's cap.
pub(crate) fn too_large(cap: usize) -> KvError {
    KvError::Other(format!(
        "the result is larger than this component may receive ({cap} bytes, its memory \
         limit); store smaller values or fewer keys"
    ))
}

/// The error for a `set` that would take the store past its quota.
pub(crate) fn store_full(store: &str, after: u64, quota: u64) -> KvError {
    KvError::Other(format!(
        "key-value store {store:?} is full: this set would make it hold {after} bytes \
         (keys and values), over its quota of {quota} bytes; nothing was written \
         (delete keys, or raise the host's max_kv_store_bytes)"
    ))
}

/// Whether a list of keys fits the cap, counted as the guest will hold it.
pub(crate) fn keys_fit(keys: &[String], cap: usize) -> bool {
    let bytes: usize = keys
        .iter()
        .map(|k| k.len() + std::mem::size_of::<String>())
        .sum();
    bytes <= cap
}

/// Runs a network backend's operation under the component's deadline, so that a server that
/// stops answering costs the request its own time, not the host's. `backend` names it in
/// the error.
pub(crate) async fn within<T>(
    call: &Call,
    backend: &str,
    op: impl Future<Output = Result<T, KvError>>,
) -> KvResult<T> {
    Ok(match tokio::time::timeout(call.timeout, op).await {
        Ok(r) => r,
        Err(_) => Err(KvError::Other(format!(
            "{backend}: no answer within the component's deadline ({} ms)",
            call.timeout.as_millis()
        ))),
    })
}

/// A driver's error as the guest sees it: `other`, naming the backend, with the error's
/// causes (tokio-postgres says only "db error" at the top; the server's message is below).
pub(crate) fn other<E: std::error::Error>(backend: &'static str) -> impl Fn(E) -> KvError {
    move |err| {
        let mut msg = format!("{backend}: {err}");
        let mut cause = err.source();
        while let Some(c) = cause {
            msg.push_str(&format!(": {c}"));
            cause = c.source();
        }
        KvError::Other(msg)
    }
}
