//! The seam between the request path and a database: [`DataStore`], and
//! [`open`], the one place that decides which store an app gets.

use std::path::Path;
use std::sync::Arc;

use crate::contract::{Effect, Table};
use crate::manifest::Manifest;

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
/// - Both wait off the async workers (on the blocking pool, charged to the
///   request's CPU account via `metrics::cpu::spawn_blocking`), so a slow
///   disk or a long query never stalls other requests.
/// - [`open`] creates the database from the manifest's schema and seed if it
///   is new, and prepares every declared read and write, so that a bad
///   statement is a start-time error naming its manifest key.
pub trait DataStore: Send + Sync + 'static {
    /// For logs and errors: e.g. "sqlite:data/academemes.db".
    fn describe(&self) -> String;
    /// A route's reads in one snapshot, each within its limits (off the async workers).
    fn read(&self, plans: Vec<ReadPlan>) -> StoreFuture<'_, Result<Vec<Table>, ReadError>>;
    /// A response's effects in one transaction: all or nothing; returns the last inserted id (0 if none).
    /// `declared` = the route's writes as (name, sql); `session` binds `:session_id`.
    fn apply(
        &self,
        effects: Vec<Effect>,
        session: Option<String>,
        declared: Vec<(String, String)>,
    ) -> StoreFuture<'_, Result<i64, WriteError>>;
    /// Give memory back while idle (idle connections, caches).
    fn trim(&self);
    /// After the last request: flush and close (SQLite: WAL checkpoint).
    fn close(&self) -> anyhow::Result<()>;
    /// A host-private file kept with the store's data, such as the session
    /// key: for SQLite `<database>.<name>` beside the database file, so a
    /// copy of the data folder keeps it. `None` for a store with no files
    /// (the session key moves into the database in the next issue).
    fn host_file(&self, name: &str) -> Option<std::path::PathBuf>;
}

/// Opens the app's store: `path` overrides the manifest's `[database] path` (nebula up --db).
/// Creates it from schema and seed if new, and checks every declared statement at start
/// (a statement that does not prepare is a start-time error naming the read/write, as today).
///
/// A new kind of store gets its branch here, chosen from the manifest's
/// `[database]`; today every app's database is a SQLite file.
pub fn open(manifest: &Manifest, path: Option<&Path>) -> anyhow::Result<Arc<dyn DataStore>> {
    let path = path.unwrap_or(manifest.database.path.as_path());
    Ok(Arc::new(super::sqlite::SqliteStore::open(path, manifest)?))
}
