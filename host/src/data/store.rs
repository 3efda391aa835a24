//! The seam between the request path and a database: [`DataStore`], and
//! [`open`], the one place that decides which store an app gets.

use std::path::PathBuf;
use std::sync::Arc;

use crate::contract::{Effect, Table};
use crate::manifest::Manifest;

use super::idempotency::{Applied, Once, Recorded};
use super::{ReadError, ReadPlan, WriteError};

/// What [`DataStore`]'s async calls return. A boxed future, because a trait
/// with `async fn` cannot be used as `dyn DataStore`; the one allocation per
/// call is nothing beside the database work it waits for.
pub type StoreFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// An app's database, as the request path sees it.
///
/// What every store guarantees (the request path and the tests rely on it):
///
/// - Every SQL text is the manifest's; request and effect values are bound
///   as parameters only.
/// - [`read`](DataStore::read) runs all of a route's reads in one snapshot
///   and returns one [`Table`] per plan, in order. Each read stays within
///   its `max_rows` and `max_bytes` (checked while rows are copied out, so
///   an oversized result is never held whole) and its `timeout_ms` (the
///   query is stopped, not just abandoned), else the matching [`ReadError`].
/// - [`apply`](DataStore::apply) applies a response's effects in one
///   transaction: all or nothing. An effect naming a write its route does
///   not declare, or giving the wrong number of arguments, is refused
///   before anything is written. An effect's args fill the write's
///   positional parameters in order, and the request's visitor id fills
///   `:session_id`. It returns the id of the last row this request inserted,
///   0 if it inserted none (never another request's).
/// - Neither holds up the other requests on an async worker for long. A
///   write and a PostgreSQL read wait on the blocking pool or the network
///   (charged to the request's CPU account via `metrics::cpu::spawn_blocking`).
///   A SQLite read first runs on the worker, where it costs less than the
///   hand-off, but only for a budget of 0.2 ms of SQLite work; past it, the
///   read is stopped and run whole on the blocking pool. (A page SQLite
///   must fetch from a cold disk during that first try is still waited for
///   on the worker.)
/// - [`open`] creates the database from the manifest's schema and seed if it
///   is new, and prepares every declared read and write, so that a bad
///   statement is a start-time error naming its manifest key.
pub trait DataStore: Send + Sync + 'static {
    /// For logs and errors: e.g. "sqlite:data/academemes.db".
    fn describe(&self) -> String;
    /// A route's reads in one snapshot, each within its limits.
    fn read(&self, plans: Vec<ReadPlan>) -> StoreFuture<'_, Result<Vec<Table>, ReadError>>;
    /// A response's effects in one transaction: all or nothing; gives the last inserted id (0 if none).
    /// `declared` = the route's writes as (name, sql); `session` binds `:session_id`.
    /// With `once`, the response is recorded under its key in the same
    /// transaction; if the key is already recorded nothing is written and
    /// the record comes back as [`Applied::Duplicate`].
    fn apply(
        &self,
        effects: Vec<Effect>,
        session: Option<String>,
        declared: Vec<(String, String)>,
        once: Option<Once>,
    ) -> StoreFuture<'_, Result<Applied, WriteError>>;
    /// The recorded (fingerprint, response) of an idempotency key, if any.
    fn recall(
        &self,
        key: String,
    ) -> StoreFuture<'_, Result<Option<(String, Recorded)>, WriteError>>;
    /// Whether the database answers now (the health check), within a second or so.
    fn ping(&self) -> StoreFuture<'_, Result<(), String>>;
    /// Give memory back while idle (idle connections, caches).
    fn trim(&self);
    /// After the last request: flush and close (SQLite: WAL checkpoint).
    fn close(&self) -> anyhow::Result<()>;
    /// Whether it holds the database open (a deferred one may not yet).
    fn is_open(&self) -> bool {
        true
    }
    /// A host-private file kept with the store's data, such as the session
    /// key: for SQLite `<database>.<name>` beside the database file, so a
    /// copy of the data folder keeps it. `None` for a store with no files
    /// (the session key moves into the database in the next issue).
    fn host_file(&self, name: &str) -> Option<std::path::PathBuf>;
    /// The versions of the tables the app's statements touch, which a
    /// commit bumps (`crate::memo` keys cached responses by them); `None`
    /// for a store that cannot tell.
    fn versions(&self) -> Option<Arc<super::versions::TableVersions>> {
        None
    }
    /// The session signing key kept in the database itself (shared by every
    /// node), for a store with no files; `None`: use [`host_file`](Self::host_file).
    fn session_key(&self) -> anyhow::Result<Option<[u8; 32]>> {
        Ok(None)
    }
}

/// Where an app's data lives: `nebula up --db` or the manifest's `[database]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A libpq-style URL, e.g. `postgres://nebula@db1,db2/app?target_session_attrs=read-write`.
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else a SQLite file.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_string())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    /// The manifest's: `url` if set, else `path`.
    pub fn of(manifest: &Manifest) -> Location {
        match &manifest.database.url {
            Some(url) => Location::parse(url),
            None => Location::Sqlite(manifest.database.path.clone()),
        }
    }
}

/// Opens the app's store: `location` overrides the manifest's `[database]` (nebula up --db).
/// Applies the migrations it has not run yet (schema and seed on a new
/// database), and checks every declared statement at start (a statement that
/// does not prepare is a start-time error naming the read/write).
///
/// A new kind of store gets its branch here.
pub fn open(
    manifest: &Manifest,
    location: Option<&Location>,
) -> anyhow::Result<Arc<dyn DataStore>> {
    open_limited(manifest, location, None)
}

/// [`open`], with the app's data held to `max_bytes` (a platform's
/// storage ceiling): a transaction that would grow it further fails with
/// [`WriteError::StorageFull`](super::WriteError::StorageFull), and so does
/// a schema or seed that does not fit. SQLite holds it with
/// `max_page_count`; PostgreSQL, which has no per-schema quota, with one
/// query per write transaction measuring the schema's tables before it
/// commits (only when a ceiling is set).
pub fn open_limited(
    manifest: &Manifest,
    location: Option<&Location>,
    max_bytes: Option<u64>,
) -> anyhow::Result<Arc<dyn DataStore>> {
    let location = location.cloned().unwrap_or_else(|| Location::of(manifest));
    Ok(match location {
        Location::Sqlite(path) => Arc::new(super::sqlite::SqliteStore::open_limited(
            &path, manifest, max_bytes,
        )?),
        Location::Postgres(url) => Arc::new(super::postgres::PostgresStore::open(
            &url, manifest, max_bytes,
        )?),
    })
}
