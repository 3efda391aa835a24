//! Spin SQLite: `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.1.0` (which also
//! serves guests importing `@3.0.0`), backed by SQLite files chosen by the host.
//!
//! Each guest `connection` holds one rusqlite connection of its own, taken from a small
//! per-database pool and given back when the guest drops it. Spin shares one connection per
//! database across all requests instead; owning one per handle keeps a guest's
//! `BEGIN … COMMIT` from interleaving with another request's statements and makes `changes`
//! and `last-insert-rowid` describe this guest's statements only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value as SqlValue, ValueRef};
use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use crate::bindings::fermyon::spin::sqlite as v2;
use crate::bindings::spin::sqlite3_1_0::sqlite as v3;
use crate::{SpinData, SpinState, MAX_OPEN_HANDLES, MAX_RESULT_BYTES};

/// Idle connections kept per database; more are opened under load and closed when returned.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// How long one guest statement may run when the host sets no limit.
pub(crate) const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often, in SQLite VM instructions, a running statement checks its deadline: often
/// enough to stop within a millisecond or so, rarely enough to cost nothing measurable.
const PROGRESS_INTERVAL: i32 = 10_000;

/// One SQLite database file that guests may open, with its pool of idle connections.
pub(crate) struct SqliteDb {
    path: PathBuf,
    statement_timeout: Duration,
    idle: Mutex<Vec<PooledConnection>>,
}

struct PooledConnection {
    conn: rusqlite::Connection,
    /// Set by the authorizer when a statement changes per-connection state (temp objects,
    /// attached databases, pragmas), so that such a connection is closed rather than handed
    /// to the next request.
    dirty: Arc<AtomicBool>,
    /// When the running guest statement must stop, in milliseconds since `clock_base()`;
    /// `u64::MAX` between statements. A host call is out of reach of wasmtime's epoch
    /// deadlines, so without this a runaway query would hold the thread forever.
    deadline: Arc<AtomicU64>,
}

fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    clock_base().elapsed().as_millis() as u64
}

impl SqliteDb {
    pub(crate) fn new(path: PathBuf, statement_timeout: Duration) -> Self {
        Self {
            path,
            statement_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    #[cfg(test)]
    pub(crate) fn idle_connections(&self) -> usize {
        self.idle.lock().unwrap().len()
    }

    fn checkout(&self) -> rusqlite::Result<PooledConnection> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let pooled = match pooled {
            Some(pooled) => pooled,
            None => connect(&self.path)?,
        };
        // A pooled connection remembers the previous user's last insert; the WIT promises 0
        // until this guest inserts.
        // SAFETY: the handle belongs to a live connection that nothing else is using, and the
        // call only writes an integer inside SQLite's connection object.
        unsafe { rusqlite::ffi::sqlite3_set_last_insert_rowid(pooled.conn.handle(), 0) };
        Ok(pooled)
    }

    fn checkin(&self, pooled: PooledConnection) {
        if pooled.dirty.load(Ordering::Relaxed) {
            return;
        }
        // A guest that dropped its connection inside a transaction gets it rolled back, as if
        // the connection had been closed.
        if !pooled.conn.is_autocommit()
            && (pooled.conn.execute_batch("ROLLBACK").is_err() || !pooled.conn.is_autocommit())
        {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(pooled);
        }
    }
}

fn connect(path: &Path) -> rusqlite::Result<PooledConnection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL lets a reader proceed while another connection writes; it is a property of the
    // file, so setting it again on later connections is a no-op.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode NORMAL loses no committed transaction when this process crashes, only
    // (possibly) the last ones on power loss, and saves an fsync per commit.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(64);
    let dirty = Arc::new(AtomicBool::new(false));
    let flag = dirty.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(&ctx, &flag)));
    let deadline = Arc::new(AtomicU64::new(u64::MAX));
    let until = deadline.clone();
    conn.progress_handler(
        PROGRESS_INTERVAL,
        Some(move || now_ms() > until.load(Ordering::Relaxed)),
    );
    Ok(PooledConnection {
        conn,
        dirty,
        deadline,
    })
}

const READ_ONLY_PRAGMAS: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// Installed after the host's own setup, so it sees only guest statements.
fn authorize(ctx: &AuthContext<'_>, dirty: &AtomicBool) -> Authorization {
    match ctx.action {
        // Like Spin: no ATTACH of another file, which also stops `VACUUM INTO 'path'`; a
        // guest must not reach files beyond the database it was granted.
        AuthAction::Attach { filename } if !matches!(filename, "" | ":memory:") => {
            Authorization::Deny
        }
        // Pragmas that take an argument but only read (what ORMs use to inspect a schema)
        // leave the connection as it was.
        AuthAction::Pragma { pragma_name, .. } if READ_ONLY_PRAGMAS.contains(&pragma_name) => {
            Authorization::Allow
        }
        AuthAction::Attach { .. }
        | AuthAction::Detach { .. }
        | AuthAction::Pragma {
            pragma_value: Some(_),
            ..
        } => {
            dirty.store(true, Ordering::Relaxed);
            Authorization::Allow
        }
        AuthAction::Read { .. } | AuthAction::Select => Authorization::Allow,
        _ => {
            if ctx.database_name == Some("temp") {
                dirty.store(true, Ordering::Relaxed);
            }
            Authorization::Allow
        }
    }
}

/// A guest's open connection: the resource behind both versions' `connection`.
pub struct SqliteConnection {
    pooled: Option<PooledConnection>,
    db: Arc<SqliteDb>,
    /// `changes` as the WIT defines it, for this guest's statements only (see `execute`).
    changes: u64,
}

impl Drop for SqliteConnection {
    fn drop(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            self.db.checkin(pooled);
        }
    }
}

/// Errors shared by both interface versions (their `error` variants are identical).
#[derive(Debug, PartialEq)]
pub(crate) enum SqlError {
    NoSuchDatabase,
    AccessDenied,
    Io(String),
}

impl From<rusqlite::Error> for SqlError {
    fn from(err: rusqlite::Error) -> Self {
        SqlError::Io(err.to_string())
    }
}

/// Version-neutral values; the generated types of the two versions are distinct Rust types.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

/// The outcome of a statement: columns, rows read before any error, and that error.
pub(crate) struct Rows {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<Value>>,
    pub(crate) error: Option<SqlError>,
}

impl SqliteConnection {
    fn conn(&self) -> &rusqlite::Connection {
        &self.pooled.as_ref().expect("present until dropped").conn
    }

    /// Runs one statement. Errors before the first row (bad SQL, wrong parameters) are the
    /// `Err`; an error while stepping ends the rows and is returned with those read so far,
    /// which is what the 3.1 streaming variant reports through its future.
    pub(crate) fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<Rows, SqlError> {
        let pooled = self.pooled.as_ref().expect("present until dropped");
        let timeout = self.db.statement_timeout.as_millis() as u64;
        pooled
            .deadline
            .store(now_ms().saturating_add(timeout), Ordering::Relaxed);
        let result = self.run(sql, params);
        let pooled = self.pooled.as_ref().expect("present until dropped");
        pooled.deadline.store(u64::MAX, Ordering::Relaxed);
        result
    }

    fn run(&mut self, sql: &str, params: Vec<Value>) -> Result<Rows, SqlError> {
        let conn = self.conn();
        let total_before = conn.total_changes();
        let mut stmt = conn.prepare_cached(sql)?;
        let readonly = stmt.readonly();
        let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.into_iter().map(
            |value| match value {
                Value::Integer(i) => SqlValue::Integer(i),
                Value::Real(r) => SqlValue::Real(r),
                Value::Text(t) => SqlValue::Text(t),
                Value::Blob(b) => SqlValue::Blob(b),
                Value::Null => SqlValue::Null,
            },
        )))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut error = None;
        loop {
            match rows.next() {
                Ok(Some(row)) => match read_row(row, columns.len(), &mut bytes) {
                    Ok(values) => out.push(values),
                    Err(err) => {
                        error = Some(err);
                        break;
                    }
                },
                Ok(None) => break,
                Err(err) => {
                    error = Some(err.into());
                    break;
                }
            }
        }
        drop(rows);
        drop(stmt);
        // sqlite3_changes() keeps its value across statements that modify nothing and would
        // still hold the previous pool user's count, so it is read only after a statement
        // that could have modified rows: when rows changed it is this statement's count, and
        // a 0 can only come from a DML statement that matched nothing (DDL leaves it as is).
        if !readonly {
            let conn = self.conn();
            let changes = conn.changes();
            if conn.total_changes() != total_before || changes == 0 {
                self.changes = changes;
            }
        }
        Ok(Rows {
            columns,
            rows: out,
            error,
        })
    }

    pub(crate) fn last_insert_rowid(&self) -> i64 {
        self.conn().last_insert_rowid()
    }

    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }
}

fn read_row(
    row: &rusqlite::Row<'_>,
    columns: usize,
    bytes: &mut usize,
) -> Result<Vec<Value>, SqlError> {
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        let value =
            match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(r) => Value::Real(r),
                ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec()).map_err(|_| {
                    SqlError::Io(format!("column {i} holds text that is not UTF-8"))
                })?),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            };
        *bytes += std::mem::size_of::<Value>()
            + match &value {
                Value::Text(t) => t.len(),
                Value::Blob(b) => b.len(),
                _ => 0,
            };
        values.push(value);
    }
    if *bytes > MAX_RESULT_BYTES {
        return Err(SqlError::Io(format!(
            "query result exceeds the limit of {MAX_RESULT_BYTES} bytes"
        )));
    }
    Ok(values)
}

impl SpinState {
    /// Spin's order of checks: a label the component was not granted is `access-denied`
    /// whether or not it exists; a granted one the host did not back is `no-such-database`.
    pub(crate) fn sqlite_open(&mut self, label: &str) -> Result<SqliteConnection, SqlError> {
        if !self.grants.sqlite_databases.iter().any(|l| l == label) {
            return Err(SqlError::AccessDenied);
        }
        let db = self
            .resources
            .sqlite
            .get(label)
            .ok_or(SqlError::NoSuchDatabase)?
            .clone();
        if self.open_handles >= MAX_OPEN_HANDLES {
            return Err(SqlError::Io("too many connections opened".into()));
        }
        let pooled = db.checkout()?;
        Ok(SqliteConnection {
            pooled: Some(pooled),
            db,
            changes: 0,
        })
    }

    fn sqlite_push(
        &mut self,
        conn: SqliteConnection,
    ) -> wasmtime::Result<Resource<SqliteConnection>> {
        let res = self.table.push(conn)?;
        self.open_handles += 1;
        Ok(res)
    }

    fn sqlite_conn(
        &mut self,
        res: &Resource<SqliteConnection>,
    ) -> wasmtime::Result<&mut SqliteConnection> {
        Ok(self.table.get_mut(res)?)
    }

    fn sqlite_drop(&mut self, res: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table.delete(res)?;
        self.open_handles -= 1;
        Ok(())
    }
}

macro_rules! convert_version {
    ($v:ident) => {
        impl From<SqlError> for $v::Error {
            fn from(err: SqlError) -> Self {
                match err {
                    SqlError::NoSuchDatabase => Self::NoSuchDatabase,
                    SqlError::AccessDenied => Self::AccessDenied,
                    SqlError::Io(msg) => Self::Io(msg),
                }
            }
        }

        impl From<$v::Value> for Value {
            fn from(value: $v::Value) -> Self {
                match value {
                    $v::Value::Integer(i) => Value::Integer(i),
                    $v::Value::Real(r) => Value::Real(r),
                    $v::Value::Text(t) => Value::Text(t),
                    $v::Value::Blob(b) => Value::Blob(b),
                    $v::Value::Null => Value::Null,
                }
            }
        }

        impl From<Value> for $v::Value {
            fn from(value: Value) -> Self {
                match value {
                    Value::Integer(i) => Self::Integer(i),
                    Value::Real(r) => Self::Real(r),
                    Value::Text(t) => Self::Text(t),
                    Value::Blob(b) => Self::Blob(b),
                    Value::Null => Self::Null,
                }
            }
        }

        impl $v::Host for SpinState {}

        impl $v::HostConnection for SpinState {
            fn open(
                &mut self,
                database: String,
            ) -> wasmtime::Result<Result<Resource<$v::Connection>, $v::Error>> {
                match self.sqlite_open(&database) {
                    Ok(conn) => Ok(Ok(self.sqlite_push(conn)?)),
                    Err(err) => Ok(Err(err.into())),
                }
            }

            fn execute(
                &mut self,
                conn: Resource<$v::Connection>,
                statement: String,
                parameters: Vec<$v::Value>,
            ) -> wasmtime::Result<Result<$v::QueryResult, $v::Error>> {
                let params = parameters.into_iter().map(Value::from).collect();
                let result = self.sqlite_conn(&conn)?.execute(&statement, params);
                // The whole result is one value here, so an error after some rows fails it.
                Ok(match result {
                    Ok(Rows {
                        error: Some(err), ..
                    })
                    | Err(err) => Err(err.into()),
                    Ok(Rows { columns, rows, .. }) => Ok($v::QueryResult {
                        columns,
                        rows: rows
                            .into_iter()
                            .map(|values| $v::RowResult {
                                values: values.into_iter().map(Into::into).collect(),
                            })
                            .collect(),
                    }),
                })
            }

            fn drop(&mut self, conn: Resource<$v::Connection>) -> wasmtime::Result<()> {
                self.sqlite_drop(conn)
            }

            convert_version!(@since_3_0 $v);
        }
    };
    (@since_3_0 v2) => {};
    (@since_3_0 v3) => {
        fn last_insert_rowid(&mut self, conn: Resource<v3::Connection>) -> wasmtime::Result<i64> {
            Ok(self.sqlite_conn(&conn)?.last_insert_rowid())
        }

        fn changes(&mut self, conn: Resource<v3::Connection>) -> wasmtime::Result<u64> {
            Ok(self.sqlite_conn(&conn)?.changes())
        }
    };
}

convert_version!(v2);
convert_version!(v3);

/// The 3.1 `-async` functions. SQLite calls are short and run inline, inside
/// `Accessor::with`, like the sync ones: there is nothing to await, and moving the work to a
/// blocking thread would cost more than most statements take.
impl<T: Send> v3::HostConnectionWithStore<T> for SpinData {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> wasmtime::Result<Result<Resource<v3::Connection>, v3::Error>> {
        accessor.with(|mut access| {
            let state = access.get();
            match state.sqlite_open(&database) {
                Ok(conn) => Ok(Ok(state.sqlite_push(conn)?)),
                Err(err) => Ok(Err(err.into())),
            }
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<v3::Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<String>,
                StreamReader<v3::RowResult>,
                FutureReader<Result<(), v3::Error>>,
            ),
            v3::Error,
        >,
    > {
        accessor.with(|mut access| {
            let params = parameters.into_iter().map(Value::from).collect();
            let Rows {
                columns,
                rows,
                error,
            } = match access.get().sqlite_conn(&conn)?.execute(&statement, params) {
                Ok(rows) => rows,
                Err(err) => return Ok(Err(err.into())),
            };
            let outcome = match error {
                Some(err) => Err(err.into()),
                None => Ok(()),
            };
            let rows: Vec<v3::RowResult> = rows
                .into_iter()
                .map(|values| v3::RowResult {
                    values: values.into_iter().map(Into::into).collect(),
                })
                .collect();
            let stream = StreamReader::new(&mut access, rows)?;
            let future =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )?;
            Ok(Ok((columns, stream, future)))
        })
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<v3::Connection>,
    ) -> wasmtime::Result<i64> {
        accessor.with(|mut access| Ok(access.get().sqlite_conn(&conn)?.last_insert_rowid()))
    }

    async fn changes_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<v3::Connection>,
    ) -> wasmtime::Result<u64> {
        accessor.with(|mut access| Ok(access.get().sqlite_conn(&conn)?.changes()))
    }
}
