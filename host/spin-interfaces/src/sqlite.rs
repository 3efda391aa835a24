//! Spin SQLite: `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.1.0` (which also
//! serves guests importing `@3.0.0`), backed by SQLite files chosen by the host.
//!
//! Each guest `connection` holds one rusqlite connection of its own, taken from a small
//! per-database pool and given back when the guest drops it. Spin shares one connection per
//! database across all requests instead; owning one per handle keeps a guest's
//! `BEGIN … COMMIT` from interleaving with another request's statements and makes `changes`
//! and `last-insert-rowid` describe this guest's statements only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::OpenFlags;
use wasmtime::component::{
    Accessor, FutureReader, HasData, HasSelf, Linker, Resource, ResourceTable, StreamReader,
};

use crate::bindings::fermyon::spin::sqlite as v2;
use crate::bindings::spin::sqlite3_1_0::sqlite as v3;
use crate::sql_policy::Policy;
use crate::unit::{granted_list, interface_of, InstanceContext, OpenHandles};
use crate::{prepare_path, Blocking, CallLimits, HostUnit};

/// The interfaces this unit serves, without their versions (`spin:sqlite/sqlite` in both
/// 3.0.0 and 3.1.0).
const INTERFACES: [&str; 2] = ["fermyon:spin/sqlite", "spin:sqlite/sqlite"];

/// The SQLite unit, configured for one app: the database behind each label, with its pool.
pub struct Sqlite {
    databases: HashMap<String, Arc<SqliteDb>>,
}

/// What the app gives the SQLite unit.
#[derive(Debug, Default)]
pub struct SqliteConfig {
    /// Database label → database file.
    pub databases: HashMap<String, PathBuf>,
}

/// What one component may use.
#[derive(Clone, Debug, Default)]
pub struct SqliteGrants {
    /// `sqlite_databases = [...]`
    pub databases: Vec<String>,
    /// Its deadline bounds one statement, its memory cap one result.
    pub limits: CallLimits,
}

/// One component's grants over the app's databases.
pub struct SqliteComponent {
    unit: Arc<Sqlite>,
    databases: Vec<String>,
    limits: CallLimits,
}

impl SqliteComponent {
    pub(crate) fn new(unit: Arc<Sqlite>, grants: SqliteGrants) -> Self {
        Self {
            unit,
            databases: grants.databases,
            limits: grants.limits,
        }
    }
}

/// One instance's open connections.
pub struct SqliteInstance {
    component: Arc<SqliteComponent>,
    /// A table of the unit's own: no other interface shares its handles.
    table: ResourceTable,
    handles: OpenHandles,
    blocking: Blocking,
}

impl SqliteInstance {
    /// Runs this instance's statements with `blocking` from now on.
    pub(crate) fn set_blocking(&mut self, blocking: Blocking) {
        self.blocking = blocking;
    }
}

impl Sqlite {
    #[cfg(test)]
    pub(crate) fn database(&self, label: &str) -> Arc<SqliteDb> {
        self.databases[label].clone()
    }
}

impl HostUnit for Sqlite {
    type AppConfig = SqliteConfig;
    type Grants = SqliteGrants;
    type Component = SqliteComponent;
    type Instance = SqliteInstance;
    type Data = HasSelf<SqliteInstance>;

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <Self::Data as HasData>::Data<'_>,
    ) -> anyhow::Result<()> {
        v2::add_to_linker::<T, Self::Data>(linker, get)?;
        v3::add_to_linker::<T, Self::Data>(linker, get)?;
        // wasmtime would resolve an `@3.0.0` import to `@3.1.0` by semver on its own, but
        // `Linker::define_unknown_imports_as_traps` matches names exactly and would stub it
        // with traps; naming 3.0.0 explicitly (3.1.0's functions are a superset) avoids that.
        let mut v3_0 = linker.instance("spin:sqlite/sqlite@3.0.0")?;
        v3::add_to_linker_instance::<T, Self::Data>(&mut v3_0, get)?;
        Ok(())
    }

    /// Prepares the databases' folders; files are created when a component first opens
    /// them.
    fn configure_app(config: SqliteConfig) -> anyhow::Result<Self> {
        let mut databases = HashMap::new();
        for (label, path) in config.databases {
            let path = prepare_path(&path).with_context(|| format!("SQLite database {label:?}"))?;
            databases.insert(label, Arc::new(SqliteDb::new(path)));
        }
        Ok(Self { databases })
    }

    /// Never fails: a granted label without a file answers `no-such-database` when opened,
    /// as in Spin.
    fn configure_component(
        self: &Arc<Self>,
        grants: SqliteGrants,
    ) -> anyhow::Result<SqliteComponent> {
        Ok(SqliteComponent::new(self.clone(), grants))
    }

    fn prepare(component: &Arc<SqliteComponent>, instance: &InstanceContext) -> SqliteInstance {
        SqliteInstance {
            component: component.clone(),
            table: ResourceTable::new(),
            handles: instance.handles.clone(),
            blocking: instance.blocking.clone(),
        }
    }

    fn serves(import: &str, grants: &SqliteGrants) -> Option<String> {
        INTERFACES
            .contains(&interface_of(import))
            .then(|| format!("databases: {}", granted_list(&grants.databases)))
    }
}

/// Idle connections kept per database; more are opened under load and closed when returned.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// How often, in SQLite VM instructions, a running statement checks its deadline: often
/// enough to stop within a millisecond or so, rarely enough to cost nothing measurable.
const PROGRESS_INTERVAL: i32 = 10_000;

/// One SQLite database file that guests may open, with its pool of idle connections.
pub(crate) struct SqliteDb {
    path: PathBuf,
    idle: Mutex<Vec<PooledConnection>>,
}

struct PooledConnection {
    conn: rusqlite::Connection,
    /// What the guest may do on it; also notes when a statement changed per-connection state
    /// (temp objects, pragmas), so that such a connection is closed rather than handed to
    /// the next request.
    policy: Arc<Policy>,
    /// When the running guest statement must stop, in milliseconds since `clock_base()`;
    /// `u64::MAX` between statements. A host call is out of reach of wasmtime's epoch
    /// deadlines, so without this a runaway query would hold its thread forever.
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
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
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
        if pooled.policy.dirty.load(Ordering::Relaxed) {
            return;
        }
        // A guest that dropped its connection inside a transaction gets it rolled back, as if
        // the connection had been closed. In WAL mode that discards the transaction's pages
        // without writing, so it is cheap enough to do on the dropping thread.
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
    // No URI file names: the path is the host's, taken literally.
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL lets a reader proceed while another connection writes; it is a property of the
    // file, so setting it again on later connections is a no-op.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode NORMAL loses no committed transaction when this process crashes, only
    // (possibly) the last ones on power loss, and saves an fsync per commit.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(64);
    // Installed after the host's own setup, so it sees only guest statements.
    let policy = Policy::install(&conn)?;
    let deadline = Arc::new(AtomicU64::new(u64::MAX));
    let until = deadline.clone();
    conn.progress_handler(
        PROGRESS_INTERVAL,
        Some(move || now_ms() > until.load(Ordering::Relaxed)),
    );
    Ok(PooledConnection {
        conn,
        policy,
        deadline,
    })
}

/// A guest's open connection: the resource behind both versions' `connection`.
pub struct SqliteConnection {
    /// `None` while a statement runs on a blocking thread, and for good if a call was
    /// abandoned mid-statement (its connection is then closed, not pooled).
    pooled: Option<PooledConnection>,
    db: Arc<SqliteDb>,
    limits: CallLimits,
    /// `changes` as the WIT defines it, for this guest's statements only (see `run`).
    changes: u64,
    last_insert_rowid: i64,
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

/// A statement on its way to a blocking thread, with the connection it runs on.
struct Job {
    pooled: PooledConnection,
    limits: CallLimits,
}

/// What comes back from the blocking thread.
struct Done {
    pooled: PooledConnection,
    result: Result<Rows, SqlError>,
    /// The new `changes`, if the statement could have modified rows.
    changes: Option<u64>,
    last_insert_rowid: i64,
}

/// Interrupts the statement if the call awaiting it is dropped (the request gave up or hit
/// its deadline), so the blocking thread is freed at once rather than at the statement's
/// deadline.
struct InterruptOnDrop(Option<rusqlite::InterruptHandle>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.interrupt();
        }
    }
}

impl SqliteConnection {
    /// Takes the connection out of the handle for one statement.
    fn start(&mut self) -> Result<Job, SqlError> {
        match self.pooled.take() {
            Some(pooled) => Ok(Job {
                pooled,
                limits: self.limits,
            }),
            None => Err(SqlError::Io(
                "this connection is busy with another statement, or was lost when a call on \
                 it was abandoned; wait for the other statement, or open a new connection"
                    .into(),
            )),
        }
    }

    /// Puts the connection back and records what the statement changed.
    fn finish(&mut self, done: Done) -> Result<Rows, SqlError> {
        self.pooled = Some(done.pooled);
        if let Some(changes) = done.changes {
            self.changes = changes;
        }
        self.last_insert_rowid = done.last_insert_rowid;
        done.result
    }

    pub(crate) fn last_insert_rowid(&self) -> i64 {
        self.last_insert_rowid
    }

    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }
}

impl Job {
    /// Runs the statement off the calling thread (see [`Blocking`]).
    async fn run_on(
        self,
        blocking: &Blocking,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Done> {
        let mut interrupt = InterruptOnDrop(Some(self.pooled.conn.get_interrupt_handle()));
        let done = blocking.run(move || self.run(&sql, params)).await;
        interrupt.0 = None;
        done
    }

    /// Runs one statement under the component's deadline. Errors before the first row (bad
    /// SQL, wrong parameters) are the `Err`; an error while stepping ends the rows and is
    /// returned with those read so far, which is what the 3.1 streaming variant reports
    /// through its future.
    fn run(self, sql: &str, params: Vec<Value>) -> Done {
        let Job { pooled, limits } = self;
        let timeout = limits.statement_timeout;
        pooled.deadline.store(
            now_ms().saturating_add(timeout.as_millis() as u64),
            Ordering::Relaxed,
        );
        let total_before = pooled.conn.total_changes();
        let outcome = pooled.policy.statement(&pooled.conn, sql, || {
            query(&pooled.conn, sql, params, limits.result_cap())
        });
        pooled.deadline.store(u64::MAX, Ordering::Relaxed);
        let why = |err: SqlError| explain(err, &pooled, timeout);
        let (result, readonly) = match outcome {
            Ok((mut rows, readonly)) => {
                rows.error = rows.error.map(why);
                (Ok(rows), readonly)
            }
            Err(err) => (Err(why(err)), true),
        };
        // sqlite3_changes() keeps its value across statements that modify nothing and would
        // still hold the previous pool user's count, so it is read only after a statement
        // that could have modified rows: when rows changed it is this statement's count, and
        // a 0 can only come from a DML statement that matched nothing (DDL leaves it as is).
        let changes = (!readonly)
            .then(|| pooled.conn.changes())
            .filter(|&n| pooled.conn.total_changes() != total_before || n == 0);
        let last_insert_rowid = pooled.conn.last_insert_rowid();
        Done {
            pooled,
            result,
            changes,
            last_insert_rowid,
        }
    }
}

/// Says why SQLite stopped a statement, where its own message ("interrupted", "not
/// authorized") would leave the guest's author guessing.
fn explain(err: SqlError, pooled: &PooledConnection, timeout: Duration) -> SqlError {
    let SqlError::Io(msg) = err else { return err };
    if let Some(why) = pooled.policy.refusal() {
        return SqlError::Io(why);
    }
    if msg.contains("interrupt") {
        return SqlError::Io(format!(
            "the statement ran past the component's time limit of {} ms and was stopped \
             ({msg})",
            timeout.as_millis()
        ));
    }
    if msg.contains("too many attached databases") {
        return SqlError::Io(format!(
            "ATTACH is not allowed: a Spin component reaches only the databases it was granted \
             ({msg})"
        ));
    }
    SqlError::Io(msg)
}

/// Prepares and steps one statement; the `bool` says whether it was read-only.
fn query(
    conn: &rusqlite::Connection,
    sql: &str,
    params: Vec<Value>,
    cap: usize,
) -> Result<(Rows, bool), SqlError> {
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
            Ok(Some(row)) => match read_row(row, columns.len(), &mut bytes, cap) {
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
    Ok((
        Rows {
            columns,
            rows: out,
            error,
        },
        readonly,
    ))
}

fn read_row(
    row: &rusqlite::Row<'_>,
    columns: usize,
    bytes: &mut usize,
    cap: usize,
) -> Result<Vec<Value>, SqlError> {
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        let value = row.get_ref(i)?;
        // Counted before the value is copied, so an oversized value is never copied.
        let size = match value {
            ValueRef::Text(t) => t.len(),
            ValueRef::Blob(b) => b.len(),
            _ => 0,
        };
        *bytes = bytes.saturating_add(std::mem::size_of::<Value>() + size);
        if *bytes > cap {
            return Err(SqlError::Io(format!(
                "the query's result is larger than this component may receive ({cap} bytes, \
                 its memory limit); select fewer rows or smaller columns"
            )));
        }
        let value =
            match value {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(r) => Value::Real(r),
                ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec()).map_err(|_| {
                    SqlError::Io(format!("column {i} holds text that is not UTF-8"))
                })?),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            };
        values.push(value);
    }
    Ok(values)
}

impl SqliteInstance {
    /// Spin's order of checks: a label the component was not granted is `access-denied`
    /// whether or not it exists; a granted one the host did not back is `no-such-database`.
    /// Returns the database to take a connection from (on a blocking thread: opening one
    /// may touch the file).
    fn sqlite_check_open(&self, label: &str) -> Result<Arc<SqliteDb>, SqlError> {
        let component = &self.component;
        if !component.databases.iter().any(|l| l == label) {
            return Err(SqlError::AccessDenied);
        }
        let db = component
            .unit
            .databases
            .get(label)
            .ok_or(SqlError::NoSuchDatabase)?
            .clone();
        if self.handles.full() {
            return Err(SqlError::Io("too many connections opened".into()));
        }
        Ok(db)
    }

    fn sqlite_connection(&self, db: Arc<SqliteDb>, pooled: PooledConnection) -> SqliteConnection {
        SqliteConnection {
            pooled: Some(pooled),
            db,
            limits: self.component.limits,
            changes: 0,
            last_insert_rowid: 0,
        }
    }

    pub(crate) async fn sqlite_open(
        &mut self,
        label: &str,
    ) -> wasmtime::Result<Result<Resource<SqliteConnection>, SqlError>> {
        let db = match self.sqlite_check_open(label) {
            Ok(db) => db,
            Err(err) => return Ok(Err(err)),
        };
        match checkout(&self.blocking, db.clone()).await? {
            Ok(pooled) => {
                let conn = self.sqlite_connection(db, pooled);
                Ok(Ok(self.sqlite_push(conn)?))
            }
            Err(err) => Ok(Err(err)),
        }
    }

    /// One statement for the sync functions, which hold the instance's data while it runs,
    /// as a synchronous WIT function does; the thread is free meanwhile.
    pub(crate) async fn sqlite_execute(
        &mut self,
        conn: &Resource<SqliteConnection>,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, SqlError>> {
        let blocking = self.blocking.clone();
        let job = match self.sqlite_conn(conn)?.start() {
            Ok(job) => job,
            Err(err) => return Ok(Err(err)),
        };
        let done = job.run_on(&blocking, sql, params).await?;
        Ok(self.sqlite_conn(conn)?.finish(done))
    }

    fn sqlite_push(
        &mut self,
        conn: SqliteConnection,
    ) -> wasmtime::Result<Resource<SqliteConnection>> {
        let res = self.table.push(conn)?;
        self.handles.opened();
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
        self.handles.closed();
        Ok(())
    }
}

/// Takes a pooled connection, or opens one, on a blocking thread.
async fn checkout(
    blocking: &Blocking,
    db: Arc<SqliteDb>,
) -> wasmtime::Result<Result<PooledConnection, SqlError>> {
    blocking
        .run(move || db.checkout().map_err(SqlError::from))
        .await
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

        impl $v::Host for SqliteInstance {}

        impl $v::HostConnection for SqliteInstance {
            async fn open(
                &mut self,
                database: String,
            ) -> wasmtime::Result<Result<Resource<$v::Connection>, $v::Error>> {
                Ok(self.sqlite_open(&database).await?.map_err(Into::into))
            }

            async fn execute(
                &mut self,
                conn: Resource<$v::Connection>,
                statement: String,
                parameters: Vec<$v::Value>,
            ) -> wasmtime::Result<Result<$v::QueryResult, $v::Error>> {
                let params = parameters.into_iter().map(Value::from).collect();
                let result = self.sqlite_execute(&conn, statement, params).await?;
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

/// The 3.1 `-async` functions. Each lets go of the instance's data while its statement
/// runs on a blocking thread, so the guest's other tasks go on meanwhile.
impl<T: Send> v3::HostConnectionWithStore<T> for HasSelf<SqliteInstance> {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> wasmtime::Result<Result<Resource<v3::Connection>, v3::Error>> {
        let checked = accessor.with(|mut access| {
            let state = access.get();
            state
                .sqlite_check_open(&database)
                .map(|db| (db, state.blocking.clone()))
        });
        let (db, blocking) = match checked {
            Ok(found) => found,
            Err(err) => return Ok(Err(err.into())),
        };
        let pooled = match checkout(&blocking, db.clone()).await? {
            Ok(pooled) => pooled,
            Err(err) => return Ok(Err(err.into())),
        };
        accessor.with(|mut access| {
            let state = access.get();
            let conn = state.sqlite_connection(db, pooled);
            Ok(Ok(state.sqlite_push(conn)?))
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
        let params = parameters.into_iter().map(Value::from).collect();
        let (job, blocking) = accessor.with(|mut access| {
            let state = access.get();
            let blocking = state.blocking.clone();
            Ok::<_, wasmtime::Error>((state.sqlite_conn(&conn)?.start(), blocking))
        })?;
        let job = match job {
            Ok(job) => job,
            Err(err) => return Ok(Err(err.into())),
        };
        let done = job.run_on(&blocking, statement, params).await?;
        accessor.with(|mut access| {
            let Rows {
                columns,
                rows,
                error,
            } = match access.get().sqlite_conn(&conn)?.finish(done) {
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
