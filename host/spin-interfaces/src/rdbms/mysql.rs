//! Spin's outbound MySQL: `fermyon:spin/mysql@2.0.0` (with `rdbms-types`) and
//! `spin:mysql/mysql@3.0.0` (every function `async`), on `mysql_async`, with Spin's type
//! mapping (factor-outbound-mysql's `client.rs`): column types the WIT has no case for
//! (DECIMAL, DATE, …) fail the query with `value-conversion-failed`, as in Spin.
//!
//! The name in the connection string is resolved once by [`AllowedHosts::resolve`] and the
//! driver is given only the permitted addresses (`resolved_ips`), never the name, with
//! Unix sockets off. A guest `connection` owns one server connection from its component's
//! pool for that connection string; a pooled one is reset (`COM_RESET_CONNECTION`: open
//! transaction, session variables, temporary tables and prepared statements go) before it
//! is handed out again. Each session gets `wait_timeout` at [`IDLE_TIMEOUT`] and the
//! component's deadline as its statement time limit (MariaDB's `max_statement_time`, or
//! MySQL's `max_execution_time`, which bounds only `SELECT`).
//!
//! TLS is not offered: an address asking for it (`ssl-mode=REQUIRED`) is refused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::{FromValue, Queryable as _};
use mysql_async::{Conn, Opts, OptsBuilder};
use tokio::sync::Mutex;
use wasmtime::component::{
    Accessor, FutureReader, HasData, HasSelf, Linker, Resource, ResourceTable, StreamReader,
};

use super::{allows, connect_failed, not_permitted, past_deadline, serves_text, too_large};
use super::{IdlePool, IDLE_TIMEOUT};
use crate::allowed_hosts::AllowedHosts;
use crate::bindings::fermyon::spin::mysql as v2;
use crate::bindings::fermyon::spin::rdbms_types as v2t;
use crate::bindings::spin::mysql::mysql as my3;
use crate::unit::{interface_of, InstanceContext, OpenHandles};
use crate::{CallLimits, HostUnit};

/// The interfaces this unit serves, without their versions (`fermyon:spin/rdbms-types` is
/// reported by the PostgreSQL unit, which links it too).
const INTERFACES: [&str; 2] = ["fermyon:spin/mysql", "spin:mysql/mysql"];

/// The MySQL unit. It keeps nothing per app: servers are named by the guests, and
/// connections are pooled per component.
#[derive(Debug, Default)]
pub struct Mysql;

/// What the app gives the MySQL unit: nothing yet.
#[derive(Debug, Default)]
pub struct MysqlConfig {}

/// What one component may reach.
#[derive(Clone, Debug, Default)]
pub struct MysqlGrants {
    /// `allowed_outbound_hosts` as written, for `nebula check`.
    pub allowed_outbound_hosts: Vec<String>,
    /// The same, rendered and parsed: what connections are checked against.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// Its deadline bounds one call, its memory cap one result.
    pub limits: CallLimits,
}

/// One component's grants and its pool of idle connections.
pub struct MysqlComponent {
    allowed_hosts: Arc<AllowedHosts>,
    limits: CallLimits,
    pool: IdlePool<Conn>,
}

impl MysqlComponent {
    pub(crate) fn new(grants: MysqlGrants) -> Self {
        Self {
            allowed_hosts: grants.allowed_hosts,
            limits: grants.limits,
            pool: IdlePool::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}

/// One instance's open connections.
pub struct MysqlInstance {
    component: Arc<MysqlComponent>,
    table: ResourceTable,
    handles: OpenHandles,
}

/// A guest's open connection: the resource behind both versions' `connection`.
pub struct MysqlConnection {
    /// `None` only while being dropped.
    shared: Option<Arc<Shared>>,
    address: String,
    component: Arc<MysqlComponent>,
}

/// What a call on the connection takes with it.
struct Shared {
    /// The driver needs the connection exclusively per statement.
    conn: Mutex<Conn>,
    /// Set when a call was stopped at the deadline: the driver may have been in the middle
    /// of a packet, so the connection can be neither used nor pooled again.
    broken: AtomicBool,
}

impl Drop for MysqlConnection {
    fn drop(&mut self) {
        // A call still running (an abandoned async call) holds another reference; then the
        // connection is closed instead of pooled.
        if let Some(Ok(shared)) = self.shared.take().map(Arc::try_unwrap) {
            if !shared.broken.into_inner() {
                self.component
                    .pool
                    .put(&self.address, shared.conn.into_inner());
            }
        }
    }
}

impl HostUnit for Mysql {
    type AppConfig = MysqlConfig;
    type Grants = MysqlGrants;
    type Component = MysqlComponent;
    type Instance = MysqlInstance;
    type Data = HasSelf<MysqlInstance>;

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <Self::Data as HasData>::Data<'_>,
    ) -> anyhow::Result<()> {
        // `rdbms-types` has no functions; linking it again (PostgreSQL does too) reopens the
        // same empty instance.
        v2t::add_to_linker::<T, Self::Data>(linker, get)?;
        v2::add_to_linker::<T, Self::Data>(linker, get)?;
        my3::add_to_linker::<T, Self::Data>(linker, get)?;
        Ok(())
    }

    fn configure_app(_: MysqlConfig) -> anyhow::Result<Self> {
        Ok(Mysql)
    }

    fn configure_component(
        self: &Arc<Self>,
        grants: MysqlGrants,
    ) -> anyhow::Result<MysqlComponent> {
        Ok(MysqlComponent::new(grants))
    }

    fn prepare(component: &Arc<MysqlComponent>, instance: &InstanceContext) -> MysqlInstance {
        MysqlInstance {
            component: component.clone(),
            table: ResourceTable::new(),
            handles: instance.handles.clone(),
        }
    }

    fn serves(import: &str, grants: &MysqlGrants) -> Option<String> {
        INTERFACES
            .contains(&interface_of(import))
            .then(|| serves_text("MySQL", "mysql", &grants.allowed_outbound_hosts))
    }
}

type Error = v2t::Error;

fn conn_failed(msg: impl Into<String>) -> Error {
    Error::ConnectionFailed(msg.into())
}

/// Whether a URL query parameter is one of the SSL mode spellings Spin looks for.
fn is_ssl_param(name: &str) -> bool {
    ["ssl-mode", "sslmode"].contains(&name.to_ascii_lowercase().as_str())
}

impl MysqlComponent {
    /// Parses `address` and checks its host and port, before any connection is made.
    fn check(&self, address: &str) -> Result<(Opts, String, u16), Error> {
        let mut url = url::Url::parse(address)
            .map_err(|e| conn_failed(format!("invalid connection string: {e}")))?;
        let (ssl, rest): (Vec<_>, Vec<_>) = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .partition(|(k, _)| is_ssl_param(k));
        if ssl.iter().any(|(_, v)| !v.eq_ignore_ascii_case("disabled")) {
            return Err(conn_failed(
                "TLS connections to MySQL are not supported by this host: connect without \
                 ssl-mode",
            ));
        }
        url.set_query(None);
        if !rest.is_empty() {
            url.query_pairs_mut().extend_pairs(rest);
        }
        let opts = Opts::from_url(url.as_str())
            .map_err(|e| conn_failed(format!("invalid connection string: {e}")))?;
        if opts.socket().is_some() {
            return Err(conn_failed("Unix sockets are not supported on WebAssembly"));
        }
        let host = opts.ip_or_hostname().trim_matches(['[', ']']).to_string();
        let port = opts.tcp_port();
        if !allows(&self.allowed_hosts, "mysql", &host, port) {
            return Err(conn_failed(not_permitted("mysql", &host, port)));
        }
        Ok((opts, host, port))
    }

    /// A clean connection to `address`: a pooled one (reset), or a new one.
    async fn checkout(&self, address: &str) -> Result<Conn, Error> {
        let (opts, host, port) = self.check(address)?;
        while let Some(mut conn) = self.pool.take(address) {
            if conn.reset().await.is_ok() && self.limit_session(&mut conn).await.is_ok() {
                return Ok(conn);
            }
        }
        let within = self.limits.statement_timeout;
        let addrs = self
            .allowed_hosts
            .resolve_checked("mysql", &host, port, within)
            .await
            .map_err(|e| conn_failed(connect_failed("mysql", &host, port, &e)))?;
        let opts = OptsBuilder::from_opts(opts)
            .resolved_ips(Some(addrs.iter().map(|a| a.ip()).collect::<Vec<_>>()))
            .prefer_socket(false)
            .socket(None::<String>);
        let mut conn = Conn::new(opts)
            .await
            .map_err(|e| conn_failed(format!("{e:?}")))?;
        self.limit_session(&mut conn)
            .await
            .map_err(|e| conn_failed(format!("cannot set the session's limits: {e}")))?;
        Ok(conn)
    }

    /// Sets the session's idle and statement time limits, in MariaDB's words or MySQL's.
    async fn limit_session(&self, conn: &mut Conn) -> mysql_async::Result<()> {
        let idle = IDLE_TIMEOUT.as_secs();
        // A little under the client's deadline, so that the server usually stops the
        // statement first and the connection stays usable.
        let limit = self.limits.statement_timeout.mul_f64(0.9);
        let mariadb = format!(
            "SET SESSION wait_timeout = {idle}, max_statement_time = {}",
            limit.as_secs_f64()
        );
        if conn.query_drop(mariadb).await.is_ok() {
            return Ok(());
        }
        conn.query_drop(format!(
            "SET SESSION wait_timeout = {idle}, max_execution_time = {}",
            limit.as_millis()
        ))
        .await
    }

    /// `open` as both versions have it, within the component's deadline.
    async fn open(self: &Arc<Self>, address: String) -> Result<MysqlConnection, Error> {
        let timeout = self.limits.statement_timeout;
        let conn = tokio::time::timeout(timeout, self.checkout(&address))
            .await
            .unwrap_or_else(|_| Err(conn_failed(past_deadline("connection attempt", timeout))))?;
        Ok(MysqlConnection {
            shared: Some(Arc::new(Shared {
                conn: Mutex::new(conn),
                broken: AtomicBool::new(false),
            })),
            address,
            component: self.clone(),
        })
    }
}

fn param(value: v2t::ParameterValue) -> mysql_async::Value {
    use mysql_async::Value;
    use v2t::ParameterValue as P;
    match value {
        P::Boolean(v) => Value::from(v),
        P::Int8(v) => Value::from(v),
        P::Int16(v) => Value::from(v),
        P::Int32(v) => Value::from(v),
        P::Int64(v) => Value::from(v),
        P::Uint8(v) => Value::from(v),
        P::Uint16(v) => Value::from(v),
        P::Uint32(v) => Value::from(v),
        P::Uint64(v) => Value::from(v),
        P::Floating32(v) => Value::from(v),
        P::Floating64(v) => Value::from(v),
        P::Str(v) => Value::from(v),
        P::Binary(v) => Value::from(v),
        P::DbNull => Value::NULL,
    }
}

fn params(values: Vec<v2t::ParameterValue>) -> mysql_async::Params {
    if values.is_empty() {
        mysql_async::Params::Empty
    } else {
        mysql_async::Params::Positional(values.into_iter().map(param).collect())
    }
}

/// The WIT type of a column, as Spin derives it from the column's type and flags.
fn data_type(column: &mysql_async::Column) -> v2t::DbDataType {
    use v2t::DbDataType as D;
    use ColumnType as C;
    let flags = column.flags();
    let signed = !flags.contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = flags.contains(ColumnFlags::BINARY_FLAG);
    let ty = column.column_type();
    if ty.is_numeric_type() {
        match (ty, signed) {
            (C::MYSQL_TYPE_DOUBLE, _) => D::Floating64,
            (C::MYSQL_TYPE_FLOAT, _) => D::Floating32,
            (C::MYSQL_TYPE_INT24 | C::MYSQL_TYPE_LONG, true) => D::Int32,
            (C::MYSQL_TYPE_INT24 | C::MYSQL_TYPE_LONG, false) => D::Uint32,
            (C::MYSQL_TYPE_LONGLONG, true) => D::Int64,
            (C::MYSQL_TYPE_LONGLONG, false) => D::Uint64,
            (C::MYSQL_TYPE_SHORT, true) => D::Int16,
            (C::MYSQL_TYPE_SHORT, false) => D::Uint16,
            (C::MYSQL_TYPE_TINY, true) => D::Int8,
            (C::MYSQL_TYPE_TINY, false) => D::Uint8,
            _ => D::Other,
        }
    } else if ty.is_character_type() {
        match (ty, binary) {
            (C::MYSQL_TYPE_BLOB, false) => D::Str, // TEXT
            (C::MYSQL_TYPE_BLOB, true) => D::Binary,
            (C::MYSQL_TYPE_LONG_BLOB | C::MYSQL_TYPE_MEDIUM_BLOB, _) => D::Binary,
            (C::MYSQL_TYPE_STRING | C::MYSQL_TYPE_VAR_STRING, true) => D::Binary,
            (C::MYSQL_TYPE_STRING | C::MYSQL_TYPE_VAR_STRING, false) => D::Str,
            _ => D::Other,
        }
    } else {
        D::Other
    }
}

fn convert<T: FromValue>(value: mysql_async::Value) -> Result<T, Error> {
    mysql_async::from_value_opt::<T>(value).map_err(|e| Error::ValueConversionFailed(e.to_string()))
}

fn value(value: mysql_async::Value, column: &v2t::Column) -> Result<v2t::DbValue, Error> {
    use v2t::DbDataType as D;
    use v2t::DbValue as V;
    if value == mysql_async::Value::NULL {
        return Ok(V::DbNull);
    }
    Ok(match column.data_type {
        D::Binary => V::Binary(convert(value)?),
        D::Boolean => V::Boolean(convert(value)?),
        D::Floating32 => V::Floating32(convert(value)?),
        D::Floating64 => V::Floating64(convert(value)?),
        D::Int8 => V::Int8(convert(value)?),
        D::Int16 => V::Int16(convert(value)?),
        D::Int32 => V::Int32(convert(value)?),
        D::Int64 => V::Int64(convert(value)?),
        D::Str => V::Str(convert(value)?),
        D::Uint8 => V::Uint8(convert(value)?),
        D::Uint16 => V::Uint16(convert(value)?),
        D::Uint32 => V::Uint32(convert(value)?),
        D::Uint64 => V::Uint64(convert(value)?),
        D::Other => {
            return Err(Error::ValueConversionFailed(format!(
                "Cannot convert value {value:?} in column {} data type {:?}",
                column.name, column.data_type
            )))
        }
    })
}

/// Bytes a value takes in the guest, for the result cap.
fn size(value: &v2t::DbValue) -> usize {
    std::mem::size_of::<v2t::DbValue>()
        + match value {
            v2t::DbValue::Str(s) => s.len(),
            v2t::DbValue::Binary(b) => b.len(),
            _ => 0,
        }
}

/// The rows a query returned, in the unit's own (2.0) types.
struct Rows {
    columns: Vec<v2t::Column>,
    rows: Vec<Vec<v2t::DbValue>>,
}

/// Runs `fut` on `shared` within the component's deadline; a call stopped there leaves the
/// connection broken.
async fn bounded<T>(
    shared: &Shared,
    limits: CallLimits,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    if shared.broken.load(Ordering::Relaxed) {
        return Err(Error::QueryFailed(
            "this connection was closed when a statement on it ran past the component's time \
             limit; open a new connection"
                .into(),
        ));
    }
    match tokio::time::timeout(limits.statement_timeout, fut).await {
        Ok(result) => result,
        Err(_) => {
            shared.broken.store(true, Ordering::Relaxed);
            Err(Error::QueryFailed(past_deadline(
                what,
                limits.statement_timeout,
            )))
        }
    }
}

async fn query(
    shared: &Shared,
    limits: CallLimits,
    statement: String,
    values: Vec<v2t::ParameterValue>,
) -> Result<Rows, Error> {
    let cap = limits.result_cap();
    let run = async {
        let mut conn = shared.conn.lock().await;
        let mut result = conn
            .exec_iter(statement, params(values))
            .await
            .map_err(|e| Error::QueryFailed(format!("{e:?}")))?;
        let columns: Vec<v2t::Column> = result
            .columns()
            .map(|cols| {
                cols.iter()
                    .map(|c| v2t::Column {
                        name: c.name_str().into_owned(),
                        data_type: data_type(c),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        while let Some(mut row) = result
            .next()
            .await
            .map_err(|e| Error::Other(e.to_string()))?
        {
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                let v = match row.take::<mysql_async::Value, _>(i) {
                    Some(v) => value(v, column)?,
                    None => v2t::DbValue::DbNull,
                };
                bytes = bytes.saturating_add(size(&v));
                values.push(v);
            }
            if bytes > cap {
                return Err(Error::Other(too_large(cap)));
            }
            rows.push(values);
        }
        Ok(Rows { columns, rows })
    };
    bounded(shared, limits, "query", run).await
}

async fn execute(
    shared: &Shared,
    limits: CallLimits,
    statement: String,
    values: Vec<v2t::ParameterValue>,
) -> Result<(), Error> {
    let run = async {
        shared
            .conn
            .lock()
            .await
            .exec_drop(statement, params(values))
            .await
            .map_err(|e| Error::QueryFailed(format!("{e:?}")))
    };
    bounded(shared, limits, "statement", run).await
}

impl MysqlInstance {
    #[cfg(test)]
    pub(crate) fn open_handles(&self) -> usize {
        self.handles.count()
    }

    fn room(&self) -> Result<(), Error> {
        if self.handles.full() {
            return Err(conn_failed("too many connections"));
        }
        Ok(())
    }

    fn push(&mut self, conn: MysqlConnection) -> wasmtime::Result<Resource<MysqlConnection>> {
        let res = self.table.push(conn)?;
        self.handles.opened();
        Ok(res)
    }

    fn remove(&mut self, res: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.table.delete(res)?;
        self.handles.closed();
        Ok(())
    }

    fn conn(&self, res: &Resource<MysqlConnection>) -> wasmtime::Result<(Arc<Shared>, CallLimits)> {
        let conn = self.table.get(res)?;
        let shared = conn
            .shared
            .clone()
            .expect("a connection in the table has its driver");
        Ok((shared, self.component.limits))
    }
}

impl v2t::Host for MysqlInstance {}
impl v2::Host for MysqlInstance {}
impl my3::Host for MysqlInstance {}

impl v2::HostConnection for MysqlInstance {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<v2::Connection>, Error>> {
        if let Err(e) = self.room() {
            return Ok(Err(e));
        }
        match self.component.open(address).await {
            Ok(conn) => Ok(Ok(self.push(conn)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(
        &mut self,
        conn: Resource<v2::Connection>,
        statement: String,
        params: Vec<v2t::ParameterValue>,
    ) -> wasmtime::Result<Result<v2t::RowSet, Error>> {
        let (conn, limits) = self.conn(&conn)?;
        Ok(query(&conn, limits, statement, params)
            .await
            .map(|r| v2t::RowSet {
                columns: r.columns,
                rows: r.rows,
            }))
    }

    async fn execute(
        &mut self,
        conn: Resource<v2::Connection>,
        statement: String,
        params: Vec<v2t::ParameterValue>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (conn, limits) = self.conn(&conn)?;
        Ok(execute(&conn, limits, statement, params).await)
    }

    fn drop(&mut self, conn: Resource<v2::Connection>) -> wasmtime::Result<()> {
        self.remove(conn)
    }
}

impl my3::HostConnection for MysqlInstance {
    fn drop(&mut self, conn: Resource<my3::Connection>) -> wasmtime::Result<()> {
        self.remove(conn)
    }
}

/// `spin:mysql@3.0.0`: every function is `async`, and lets go of the instance's data while
/// it waits on the server.
impl<T: Send> my3::HostConnectionWithStore<T> for HasSelf<MysqlInstance> {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<my3::Connection>, my3::Error>> {
        let component = accessor.with(|mut access| {
            let state = access.get();
            state.room().map(|()| state.component.clone())
        });
        let component = match component {
            Ok(component) => component,
            Err(e) => return Ok(Err(e.into())),
        };
        match component.open(address).await {
            Ok(conn) => accessor.with(|mut access| Ok(Ok(access.get().push(conn)?))),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn query(
        accessor: &Accessor<T, Self>,
        conn: Resource<my3::Connection>,
        statement: String,
        params: Vec<my3::ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<my3::Column>,
                StreamReader<my3::Row>,
                FutureReader<Result<(), my3::Error>>,
            ),
            my3::Error,
        >,
    > {
        let (conn, limits) = accessor.with(|mut access| access.get().conn(&conn))?;
        let params = params.into_iter().map(Into::into).collect();
        // Read whole (bounded by the result cap), then streamed to the guest.
        let rows = match query(&conn, limits, statement, params).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(e.into())),
        };
        let columns = rows.columns.into_iter().map(Into::into).collect();
        let rows: Vec<my3::Row> = rows
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(Into::into).collect())
            .collect();
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, rows)?;
            let future =
                FutureReader::new(&mut access, async { Ok::<_, wasmtime::Error>(Ok(())) })?;
            Ok(Ok((columns, stream, future)))
        })
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        conn: Resource<my3::Connection>,
        statement: String,
        params: Vec<my3::ParameterValue>,
    ) -> wasmtime::Result<Result<(), my3::Error>> {
        let (conn, limits) = accessor.with(|mut access| access.get().conn(&conn))?;
        let params = params.into_iter().map(Into::into).collect();
        Ok(execute(&conn, limits, statement, params)
            .await
            .map_err(Into::into))
    }
}

// ---- spin:mysql@3.0.0's types are 2.0's under another name ---------------------------------

impl From<Error> for my3::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::ConnectionFailed(m) => Self::ConnectionFailed(m),
            Error::BadParameter(m) => Self::BadParameter(m),
            Error::QueryFailed(m) => Self::QueryFailed(m),
            Error::ValueConversionFailed(m) => Self::ValueConversionFailed(m),
            Error::Other(m) => Self::Other(m),
        }
    }
}

impl From<my3::ParameterValue> for v2t::ParameterValue {
    fn from(v: my3::ParameterValue) -> Self {
        use my3::ParameterValue as P;
        match v {
            P::Boolean(v) => Self::Boolean(v),
            P::Int8(v) => Self::Int8(v),
            P::Int16(v) => Self::Int16(v),
            P::Int32(v) => Self::Int32(v),
            P::Int64(v) => Self::Int64(v),
            P::Uint8(v) => Self::Uint8(v),
            P::Uint16(v) => Self::Uint16(v),
            P::Uint32(v) => Self::Uint32(v),
            P::Uint64(v) => Self::Uint64(v),
            P::Floating32(v) => Self::Floating32(v),
            P::Floating64(v) => Self::Floating64(v),
            P::Str(v) => Self::Str(v),
            P::Binary(v) => Self::Binary(v),
            P::DbNull => Self::DbNull,
        }
    }
}

impl From<v2t::DbValue> for my3::DbValue {
    fn from(v: v2t::DbValue) -> Self {
        use v2t::DbValue as V;
        match v {
            V::Boolean(v) => Self::Boolean(v),
            V::Int8(v) => Self::Int8(v),
            V::Int16(v) => Self::Int16(v),
            V::Int32(v) => Self::Int32(v),
            V::Int64(v) => Self::Int64(v),
            V::Uint8(v) => Self::Uint8(v),
            V::Uint16(v) => Self::Uint16(v),
            V::Uint32(v) => Self::Uint32(v),
            V::Uint64(v) => Self::Uint64(v),
            V::Floating32(v) => Self::Floating32(v),
            V::Floating64(v) => Self::Floating64(v),
            V::Str(v) => Self::Str(v),
            V::Binary(v) => Self::Binary(v),
            V::DbNull => Self::DbNull,
            V::Unsupported => Self::Unsupported,
        }
    }
}

impl From<v2t::Column> for my3::Column {
    fn from(c: v2t::Column) -> Self {
        use my3::DbDataType as D3;
        use v2t::DbDataType as D;
        let data_type = match c.data_type {
            D::Boolean => D3::Boolean,
            D::Int8 => D3::Int8,
            D::Int16 => D3::Int16,
            D::Int32 => D3::Int32,
            D::Int64 => D3::Int64,
            D::Uint8 => D3::Uint8,
            D::Uint16 => D3::Uint16,
            D::Uint32 => D3::Uint32,
            D::Uint64 => D3::Uint64,
            D::Floating32 => D3::Floating32,
            D::Floating64 => D3::Floating64,
            D::Str => D3::Str,
            D::Binary => D3::Binary,
            D::Other => D3::Other,
        };
        Self {
            name: c.name,
            data_type,
        }
    }
}
