//! The SQLite store: the app's database is one SQLite file in WAL mode.
//!
//! One writer connection (SQLite allows one writer at a time anyway) behind a
//! mutex, and a pool of reader connections that WAL mode lets run beside it,
//! so reads never wait for a write. Both kinds of work are blocking calls
//! into SQLite, so the [`DataStore`] methods run them on tokio's blocking
//! pool. Everything SQLite-specific lives in this folder: the pragmas, the
//! parameter syntax (`?N` for writes, `:name` for reads), the progress
//! handler behind a read's deadline (`reads.rs`), the start-time statement
//! check (`statements.rs`) and the schema and seed (`init.rs`).

mod footprint;
mod init;
mod reads;
mod statements;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::idempotency::{Applied, Once, Recorded, KEEP_MS};
use super::versions::TableVersions;
use super::{DataStore, ReadError, ReadPlan, StoreFuture, WriteError};
use crate::contract::{Effect, Table, Value};
use crate::manifest::Manifest;

/// How many idle reader connections are kept for reuse.
const MAX_IDLE_READERS: usize = 8;

/// How long a route's reads may run on the async worker that serves the
/// request before they are stopped and run again, whole, on the blocking
/// pool. Most reads of a web page take tens of microseconds: handing them
/// to another thread and back costs more than running them (two thread
/// switches; benches/RESULTS.md, issue 18). A long query must still not
/// stall the other requests on that worker, hence the budget.
const INLINE_BUDGET: Duration = Duration::from_micros(200);

/// The store [`super::open`] gives an app whose database is a SQLite file.
/// The connections are shared with the blocking threads that use them.
pub struct SqliteStore {
    db: Arc<Database>,
}

/// The connections; their methods block, so the store calls them off the
/// async workers.
struct Database {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Kept in this process only (one node per SQLite file): a random
    /// generation at each start keeps keys made before it from matching.
    versions: Arc<TableVersions>,
    /// The storage ceiling, if the operator set one (for its message).
    max_bytes: Option<u64>,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it from the schema and seed
    /// files if it has not been initialised yet, and checks every declared
    /// SQL statement against it.
    ///
    /// With `max_bytes`, the file is held to it: SQLite's
    /// `max_page_count` on the one writer connection makes a transaction
    /// that would grow the file past it fail (SQLITE_FULL) and roll back.
    pub fn open_limited(
        path: &Path,
        manifest: &Manifest,
        max_bytes: Option<u64>,
    ) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the database folder {}", dir.display()))?;
        }
        let mut writer = connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .context("cannot switch the database to WAL mode")?;
        if let Some(max) = max_bytes {
            let page: u64 = writer.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let pages = (max / page.max(512)).max(1);
            writer.pragma_update(None, "max_page_count", pages)?;
        }
        init::initialise(&mut writer, manifest).map_err(|e| match max_bytes {
            Some(max) if is_full(&e) => e.context(format!(
                "the schema and seed do not fit in the storage ceiling of {} MiB",
                max >> 20
            )),
            _ => e,
        })?;
        let footprint =
            statements::checked_statements(&writer, manifest, &host_file_of(path, "statements"))?;
        // One reader, its schema already parsed, for the first request:
        // otherwise opening it is on the path of the first answer.
        let mut readers = Vec::new();
        if !manifest.reads.is_empty() {
            let reader = connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            reader.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
            readers.push(reader);
        }
        Ok(SqliteStore {
            db: Arc::new(Database {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers: Mutex::new(readers),
                versions: Arc::new(TableVersions::new(&footprint, rand::random())),
                max_bytes,
            }),
        })
    }
}

impl DataStore for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.db.path.display())
    }

    /// First on the worker, within [`INLINE_BUDGET`]; reads that need more
    /// are stopped and run on tokio's blocking pool, where a read may take up
    /// to its `timeout_ms` without stalling the requests beside it.
    fn read(&self, plans: Vec<ReadPlan>) -> StoreFuture<'_, Result<Vec<Table>, ReadError>> {
        let db = self.db.clone();
        Box::pin(async move {
            if plans.is_empty() {
                return Ok(Vec::new());
            }
            if let Some(tables) = db.read(&plans, Instant::now().checked_add(INLINE_BUDGET))? {
                return Ok(tables);
            }
            // Charged to the request's CPU account (metrics) like inline work.
            crate::metrics::cpu::spawn_blocking(move || {
                db.read(&plans, None)
                    .map(|t| t.expect("no budget, so never stopped for one"))
            })
            .await
            .unwrap_or_else(|e| Err(ReadError::Aborted(e.to_string())))
        })
    }

    /// On tokio's blocking pool: a write waits for the one writer connection
    /// and for the disk, and neither wait may stall the async workers
    /// serving other requests.
    fn apply(
        &self,
        effects: Vec<Effect>,
        session: Option<String>,
        declared: Vec<(String, String)>,
        once: Option<Once>,
    ) -> StoreFuture<'_, Result<Applied, WriteError>> {
        let db = self.db.clone();
        Box::pin(async move {
            if let Some(nothing) = Applied::nothing_to_apply(&effects, once.as_ref()) {
                return Ok(nothing);
            }
            // Charged to the request's CPU account (metrics) like inline work.
            crate::metrics::cpu::spawn_blocking(move || {
                db.apply(&effects, session.as_deref(), once.as_ref(), |w| {
                    declared
                        .iter()
                        .find(|(name, _)| name == w)
                        .map(|(_, sql)| sql.as_str())
                })
            })
            .await
            .unwrap_or_else(|e| Err(WriteError::Aborted(e.to_string())))
        })
    }

    fn recall(
        &self,
        key: String,
    ) -> StoreFuture<'_, Result<Option<(String, Recorded)>, WriteError>> {
        let db = self.db.clone();
        Box::pin(async move {
            crate::metrics::cpu::spawn_blocking(move || {
                let conn = db.writer.lock().unwrap_or_else(|p| p.into_inner());
                recorded(&conn, &key).map_err(|e| WriteError::Failed(e.to_string()))
            })
            .await
            .unwrap_or_else(|e| Err(WriteError::Aborted(e.to_string())))
        })
    }

    /// A file on this machine is reachable while the process runs.
    fn ping(&self) -> StoreFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// Drops idle reader connections (they are reopened on demand) and
    /// SQLite's page caches.
    fn trim(&self) {
        self.db.trim();
    }

    fn close(&self) -> Result<()> {
        self.db.close()
    }

    fn versions(&self) -> Option<Arc<TableVersions>> {
        Some(self.db.versions.clone())
    }

    fn host_file(&self, name: &str) -> Option<std::path::PathBuf> {
        Some(host_file_of(&self.db.path, name))
    }
}

impl Database {
    /// Runs a route's reads in one read transaction, so they see one
    /// snapshot, each within its `max_rows`, `max_bytes` and `timeout_ms`;
    /// `None` if they were stopped at `stop_by` (see [`reads::run_all`]).
    fn read(
        &self,
        plans: &[ReadPlan],
        stop_by: Option<Instant>,
    ) -> std::result::Result<Option<Vec<Table>>, ReadError> {
        let Some(first) = plans.first() else {
            return Ok(Some(Vec::new()));
        };
        let conn = self.take_reader().map_err(|e| ReadError::Failed {
            read: first.read.name.clone(),
            error: format!("{e:#}"),
        })?;
        let tables = reads::run_all(&conn, plans, stop_by)?;
        // Only a connection whose reads all succeeded is reused: one left
        // inside a transaction (an error, an interrupt) is dropped.
        self.give_back_reader(conn);
        Ok(tables)
    }

    /// Applies a request's writes in one transaction: all or nothing.
    /// `lookup` maps a write's name to its SQL, or `None` if the route does
    /// not declare it. Returns SQLite's last inserted rowid.
    ///
    /// `session` is the request's visitor id, bound to a write's
    /// `:session_id` (which the manifest check puts after the positional
    /// parameters); the effect's args fill `?1`, `?2`, … before it.
    fn apply<'a>(
        &self,
        effects: &[Effect],
        session: Option<&str>,
        once: Option<&Once>,
        lookup: impl Fn(&str) -> Option<&'a str>,
    ) -> std::result::Result<Applied, WriteError> {
        // Check everything before taking the write lock.
        let mut sqls = Vec::with_capacity(effects.len());
        for e in effects {
            sqls.push(lookup(&e.write).ok_or_else(|| WriteError::Undeclared(e.write.clone()))?);
        }
        let max_bytes = self.max_bytes;
        let failed = move |e: rusqlite::Error| {
            match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => WriteError::StorageFull(match max_bytes {
                Some(max) => format!(
                    "the app's data would outgrow its storage ceiling of {} MiB (the platform's --max-storage-mb) or the disk",
                    max >> 20
                ),
                None => "the disk is full".into(),
            }),
            _ => WriteError::Failed(e.to_string()),
        }
        };
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // The connection remembers the last insert of an earlier request;
        // this request's `{{last_insert_rowid}}` is 0 unless it inserts.
        // SAFETY: the handle is the live writer connection, which the lock
        // keeps to this thread; the call only sets an integer in it.
        unsafe { rusqlite::ffi::sqlite3_set_last_insert_rowid(conn.handle(), 0) };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        // The write lock is held: a twin request cannot commit in between.
        if let Some(once) = once {
            if let Some((fingerprint, recorded)) = recorded(&tx, &once.key).map_err(failed)? {
                return Ok(Applied::Duplicate {
                    fingerprint,
                    recorded,
                });
            }
        }
        let mut returned = None;
        for (effect, sql) in effects.iter().zip(&sqls) {
            let mut stmt = tx.prepare_cached(sql).map_err(failed)?;
            let session_idx = stmt
                .parameter_index(crate::manifest::SESSION_PARAM)
                .map_err(failed)?;
            let expected = stmt.parameter_count() - usize::from(session_idx.is_some());
            if expected != effect.args.len() {
                return Err(WriteError::Arity {
                    write: effect.write.clone(),
                    expected,
                    found: effect.args.len(),
                });
            }
            for (i, arg) in effect.args.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, SqlArg(arg))
                    .map_err(failed)?;
            }
            if let Some(idx) = session_idx {
                // Without a session (an app that has none cannot get here:
                // the start-up check refuses the SQL) it would bind NULL.
                stmt.raw_bind_parameter(idx, session).map_err(failed)?;
            }
            if stmt.column_count() == 0 {
                stmt.raw_execute().map_err(failed)?;
            } else {
                // `INSERT … RETURNING id` (the portable way, PostgreSQL has
                // no rowid): its first value is `{{last_insert_rowid}}`.
                let mut rows = stmt.raw_query();
                if let Some(row) = rows.next().map_err(failed)? {
                    if let Ok(id) = row.get::<_, i64>(0) {
                        returned = Some(id);
                    }
                }
                while rows.next().map_err(failed)?.is_some() {}
            }
        }
        let last_insert_rowid = returned.unwrap_or_else(|| tx.last_insert_rowid());
        if let Some(once) = once {
            let response = (once.response)(last_insert_rowid);
            tx.execute(
                "INSERT INTO nebula_idempotency (key, fingerprint, status, headers, body, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    once.key,
                    once.fingerprint,
                    response.status,
                    response.headers_json(),
                    response.body,
                    crate::data::now_ms()
                ],
            )
            .map_err(failed)?;
            // Records past a day go with the next one (cheap: indexed).
            tx.execute(
                "DELETE FROM nebula_idempotency WHERE created_ms < ?1",
                [crate::data::now_ms() - KEEP_MS],
            )
            .map_err(failed)?;
        }
        tx.commit().map_err(failed)?;
        // Only now: a reader that sees the new versions sees the new rows.
        self.versions
            .committed(effects.iter().map(|e| e.write.as_str()));
        Ok(Applied::Committed { last_insert_rowid })
    }

    /// Shutdown: closes the readers and copies the WAL into the main file,
    /// truncating it, so the database is one self-contained file again. The
    /// writer stays open (a late request still gets a working connection);
    /// SQLite deletes the empty WAL when it closes at exit.
    fn close(&self) -> Result<()> {
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let (busy, _log, _done): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .context("WAL checkpoint failed")?;
        if busy != 0 {
            anyhow::bail!("WAL checkpoint incomplete: a reader still holds the database");
        }
        Ok(())
    }

    /// Drops idle reader connections; they are reopened on demand.
    fn trim(&self) {
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let _ = conn.execute_batch("PRAGMA shrink_memory");
    }

    fn take_reader(&self) -> Result<Connection> {
        if let Some(c) = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        connect(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    fn give_back_reader(&self, conn: Connection) {
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// Whether `e` (from the schema or seed) is SQLite's "database or disk is full".
fn is_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::DiskFull)
    })
}

/// The recorded (fingerprint, response) under an idempotency key.
fn recorded(conn: &Connection, key: &str) -> rusqlite::Result<Option<(String, Recorded)>> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT fingerprint, status, headers, body FROM nebula_idempotency WHERE key = ?1",
        [key],
        |r| {
            let headers: String = r.get(2)?;
            Ok((
                r.get(0)?,
                Recorded::from_parts(r.get(1)?, &headers, r.get(3)?),
            ))
        },
    )
    .optional()
}

/// A file of the host's beside the database: `app.db.NAME`.
fn host_file_of(db: &Path, name: &str) -> PathBuf {
    let mut file = db.file_name().unwrap_or_default().to_os_string();
    file.push(format!(".{name}"));
    db.with_file_name(file)
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // NORMAL is durable against a crash of this process in WAL mode: a
    // committed transaction is in the WAL file before COMMIT returns.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    keep_wal_files(&conn);
    Ok(conn)
}

/// Leaves the `-wal` (empty after the checkpoint at close) and `-shm`
/// files in place when the last connection closes. SQLite deletes them by
/// default, and a platform that unloads idle apps then makes both again at
/// every load: creating two inodes right after freeing two sent ext4 on a
/// search of its inode bitmap (`recently_deleted`) that was ~10% of a
/// platform's CPU while it loaded apps.
fn keep_wal_files(conn: &Connection) {
    let mut on: std::os::raw::c_int = 1;
    // SAFETY: `handle()` is this open connection's own handle, used only
    // for this call; SQLITE_FCNTL_PERSIST_WAL reads and writes one int,
    // which `on` is, and it lives across the call.
    unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast(),
        );
    }
}

/// Binds a WIT value as an SQL parameter.
struct SqlArg<'a>(&'a Value);

impl rusqlite::ToSql for SqlArg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Integer(n) => ToSqlOutput::Owned(SqlValue::Integer(*n)),
            Value::Real(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}
