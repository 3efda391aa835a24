//! The data layer: where an app's reads and writes go.
//!
//! The request path never talks to a database directly. It binds a route's
//! reads into [`ReadPlan`]s, hands them to a [`DataStore`] and gets tables
//! back; it hands the component's effects to the same store and gets the last
//! inserted id back. Which database sits behind the trait is decided once, in
//! [`open`], from the manifest's `[database]`, so a new kind of database plugs
//! in without touching `app.rs`.
//!
//! What lives where:
//!
//! - `store.rs`: the [`DataStore`] trait (the contract every store keeps) and
//!   [`open`], which picks the store for an app.
//! - this file: what crosses the trait and means the same for every store:
//!   the bound reads ([`ReadPlan`]) and why a read or write failed
//!   ([`ReadError`], [`WriteError`], whose texts the logs and tests rely on).
//! - `sqlite/`: the first store, SQLite in WAL mode with one writer and a
//!   pool of readers; everything SQLite-specific (rusqlite, pragmas, `?N` and
//!   `:name` parameters, the progress handler that enforces a read's
//!   deadline, the schema and seed on first start) stays in there.
//!
//! Adding a store (say PostgreSQL): make a folder beside `sqlite/` with a
//! type that implements [`DataStore`] (its docs list what a store must
//! guarantee), and add its branch to [`open`], chosen from the manifest's
//! `[database]`. Every SQL text comes from the manifest; values from
//! requests and effects are only ever bound as parameters, never spliced
//! into SQL — a new store must keep that.

pub mod idempotency;
mod lazy;
pub mod migrations;
mod postgres;
mod sqlite;
mod store;
pub mod versions;

use std::sync::Arc;

use crate::manifest::{Binding, Read};

pub use lazy::LazyStore;
pub use store::{open, open_limited, DataStore, Location, StoreFuture};

#[cfg(test)]
mod tests;

/// Milliseconds since the Unix epoch, as the host's tables record times.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One read with its parameter values for one request.
pub struct ReadPlan {
    pub read: Arc<Read>,
    /// (parameter name as the read's `bind` names it, without the SQL
    /// prefix such as `:`; its value, or `None` for SQL NULL). The store
    /// maps the name onto its own parameter syntax.
    pub args: Vec<(String, Option<String>)>,
}

impl ReadPlan {
    /// Binds `read`'s parameters for one request: `value_of` gives the
    /// value each binding (query string, route parameter, form field,
    /// header, visitor id, seed) has in it.
    pub fn bind(read: &Arc<Read>, mut value_of: impl FnMut(&Binding) -> Option<String>) -> Self {
        let args = read
            .bind
            .iter()
            .map(|(name, binding)| (name.clone(), value_of(binding)))
            .collect();
        ReadPlan {
            read: read.clone(),
            args,
        }
    }
}

/// Why a route's reads produced no data. Each message names the read and,
/// for a limit, the manifest key to raise.
#[derive(Debug)]
pub enum ReadError {
    TooManyRows {
        read: String,
        max_rows: u64,
    },
    TooManyBytes {
        read: String,
        max_bytes: u64,
    },
    Timeout {
        read: String,
        timeout_ms: u64,
    },
    /// The database refused the query (or no connection could be had);
    /// `error` is its message.
    Failed {
        read: String,
        error: String,
    },
    /// The database cannot be reached (down, failing over, cut off): the
    /// request is answered 503 so that a client or balancer may retry.
    Unavailable(String),
    /// The thread running the reads panicked.
    Aborted(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooManyRows { read, max_rows } => write!(
                f,
                "read {read:?} returned more than max_rows = {max_rows} rows; raise [reads.{read}] max_rows (or [limits] read_max_rows for every read) if that many are expected, or LIMIT the query"
            ),
            ReadError::TooManyBytes { read, max_bytes } => write!(
                f,
                "read {read:?} returned more than max_bytes = {max_bytes} bytes; raise [reads.{read}] max_bytes (or [limits] read_max_bytes for every read) if that much is expected, or LIMIT the query"
            ),
            ReadError::Timeout { read, timeout_ms } => write!(
                f,
                "read {read:?} ran longer than timeout_ms = {timeout_ms} and was stopped; raise [reads.{read}] timeout_ms (or [limits] read_timeout_ms for every read), or make the query cheaper (an index, a LIMIT)"
            ),
            ReadError::Failed { read, error } => write!(f, "read {read:?} failed: {error}"),
            ReadError::Unavailable(e) => write!(f, "the database is unavailable: {e}"),
            ReadError::Aborted(e) => write!(f, "the reads were aborted: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Why a request's writes were not applied; in every case none of them was.
#[derive(Debug)]
pub enum WriteError {
    /// The route does not declare this write.
    Undeclared(String),
    /// The write's SQL wants a different number of arguments.
    Arity {
        write: String,
        expected: usize,
        found: usize,
    },
    /// The database refused the transaction (constraint, busy, disk…);
    /// the text is its message.
    Failed(String),
    /// The database cannot be reached, or the connection broke before the
    /// commit was confirmed: answered 503. (A commit whose answer was lost
    /// may have happened; a retry with the same `Idempotency-Key` is safe.)
    Unavailable(String),
    /// The thread running the transaction panicked; the database rolled it back.
    Aborted(String),
    /// The app's data would outgrow its storage ceiling (the operator's
    /// `--max-storage-mb`) or the disk: nothing was written (507).
    StorageFull(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Undeclared(w) => write!(
                f,
                "the component asked for write {w:?}, which its route does not declare"
            ),
            WriteError::Arity {
                write,
                expected,
                found,
            } => {
                write!(
                    f,
                    "write {write:?} takes {expected} argument(s), the component gave {found}"
                )
            }
            WriteError::Failed(e) => write!(f, "the transaction failed and was rolled back: {e}"),
            WriteError::Unavailable(e) => write!(f, "the database is unavailable: {e}"),
            WriteError::Aborted(e) => write!(f, "the transaction was aborted and rolled back: {e}"),
            WriteError::StorageFull(e) => write!(f, "nothing was written: {e}"),
        }
    }
}

impl std::error::Error for WriteError {}
