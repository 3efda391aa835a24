//! Spin's outbound PostgreSQL: `fermyon:spin/postgres@2.0.0` (with `rdbms-types`),
//! `spin:postgres/postgres@3.0.0` and `@4.2.0` (which also serves guests importing `@4.0.0`
//! and `@4.1.0`), on `tokio-postgres`.
//!
//! A guest `connection` owns one server connection, taken from its component's pool for
//! that connection string or opened through [`AllowedHosts::connect`] (a socket to a
//! checked address, handed to the driver with `connect_raw`), and given back when the guest
//! drops it. Before a pooled connection is handed out again it is cleaned as deadpool's
//! `RecyclingMethod::Clean` does, after rolling back a transaction the previous guest left
//! open, so nothing per-session carries over.
//!
//! Each connection starts with `statement_timeout` at the component's deadline and
//! `idle_session_timeout` at [`IDLE_TIMEOUT`] (PostgreSQL 14 or later), as startup options,
//! which `RESET ALL` returns to: the server stops a runaway statement even if the client
//! has gone, and closes a pooled connection nobody took back.
//!
//! TLS is not offered: `sslmode=prefer` (the default) connects without it, `require` fails,
//! and `connection-builder.set-ca-root` answers `other`.

// `spin:postgres@4.x`'s error carries the server's structured error (as Spin's does); it is
// returned by value like every WIT error.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use futures_util::TryStreamExt as _;
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};
use wasmtime::component::{
    Accessor, FutureReader, HasData, HasSelf, Linker, Resource, ResourceTable, StreamReader,
};

use super::pg_values::{self, Param};
use super::{allows, connect_failed, not_permitted, past_deadline, serves_text, too_large};
use super::{IdlePool, IDLE_TIMEOUT};
use crate::allowed_hosts::AllowedHosts;
use crate::bindings::fermyon::spin::postgres as v2;
use crate::bindings::fermyon::spin::rdbms_types as v2t;
use crate::bindings::spin::postgres3_0_0::postgres as pg3;
use crate::bindings::spin::postgres4_2_0::postgres as pg4;
use crate::unit::{interface_of, InstanceContext, OpenHandles};
use crate::{CallLimits, HostUnit};

/// The interfaces this unit serves, without their versions.
const INTERFACES: [&str; 3] = [
    "fermyon:spin/postgres",
    "fermyon:spin/rdbms-types",
    "spin:postgres/postgres",
];

/// What deadpool-postgres's `RecyclingMethod::Clean` runs, as Spin's pool does: the
/// session's settings, cursors, temporary tables, listeners and advisory locks go.
/// (Not `DISCARD ALL`: it would drop the driver's own cached statements.)
const CLEAN: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
                     SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;";

/// The PostgreSQL unit. It keeps nothing per app: servers are named by the guests, and
/// connections are pooled per component.
#[derive(Debug, Default)]
pub struct Postgres;

/// What the app gives the PostgreSQL unit: nothing yet.
#[derive(Debug, Default)]
pub struct PostgresConfig {}

/// What one component may reach.
#[derive(Clone, Debug, Default)]
pub struct PostgresGrants {
    /// `allowed_outbound_hosts` as written, for `nebula check`.
    pub allowed_outbound_hosts: Vec<String>,
    /// The same, rendered and parsed: what connections are checked against.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// Its deadline bounds one call, its memory cap one result.
    pub limits: CallLimits,
}

/// One component's grants and its pool of idle connections.
pub struct PostgresComponent {
    allowed_hosts: Arc<AllowedHosts>,
    limits: CallLimits,
    pool: IdlePool<Client>,
}

impl PostgresComponent {
    pub(crate) fn new(grants: PostgresGrants) -> Self {
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

/// One instance's open connections and builders.
pub struct PostgresInstance {
    component: Arc<PostgresComponent>,
    table: ResourceTable,
    handles: OpenHandles,
}

/// A guest's open connection: the resource behind every version's `connection`.
pub struct PgConnection {
    /// `None` only while being dropped.
    client: Option<Arc<Client>>,
    address: String,
    component: Arc<PostgresComponent>,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        // A call still running on the connection (an abandoned async call) holds another
        // reference; then the connection is closed instead of pooled.
        if let Some(Ok(client)) = self.client.take().map(Arc::try_unwrap) {
            if !client.is_closed() {
                self.component.pool.put(&self.address, client);
            }
        }
    }
}

/// `spin:postgres@4.x`'s `connection-builder`: an address waiting for `build`.
pub struct PgConnectionBuilder {
    address: String,
}

impl HostUnit for Postgres {
    type AppConfig = PostgresConfig;
    type Grants = PostgresGrants;
    type Component = PostgresComponent;
    type Instance = PostgresInstance;
    type Data = HasSelf<PostgresInstance>;

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <Self::Data as HasData>::Data<'_>,
    ) -> anyhow::Result<()> {
        v2t::add_to_linker::<T, Self::Data>(linker, get)?;
        v2::add_to_linker::<T, Self::Data>(linker, get)?;
        pg3::add_to_linker::<T, Self::Data>(linker, get)?;
        pg4::add_to_linker::<T, Self::Data>(linker, get)?;
        // As for spin:sqlite@3.0.0: named explicitly so that exact-name lookups
        // (`define_unknown_imports_as_traps`) find them; 4.2's functions are a superset.
        for older in [
            "spin:postgres/postgres@4.0.0",
            "spin:postgres/postgres@4.1.0",
        ] {
            let mut inst = linker.instance(older)?;
            pg4::add_to_linker_instance::<T, Self::Data>(&mut inst, get)?;
        }
        Ok(())
    }

    fn configure_app(_: PostgresConfig) -> anyhow::Result<Self> {
        Ok(Postgres)
    }

    fn configure_component(
        self: &Arc<Self>,
        grants: PostgresGrants,
    ) -> anyhow::Result<PostgresComponent> {
        Ok(PostgresComponent::new(grants))
    }

    fn prepare(component: &Arc<PostgresComponent>, instance: &InstanceContext) -> PostgresInstance {
        PostgresInstance {
            component: component.clone(),
            table: ResourceTable::new(),
            handles: instance.handles.clone(),
        }
    }

    fn serves(import: &str, grants: &PostgresGrants) -> Option<String> {
        let interface = interface_of(import);
        if interface == "fermyon:spin/rdbms-types" {
            return Some("types shared by outbound PostgreSQL and MySQL".into());
        }
        INTERFACES
            .contains(&interface)
            .then(|| serves_text("PostgreSQL", "postgres", &grants.allowed_outbound_hosts))
    }
}

fn conn_failed(msg: impl Into<String>) -> pg4::Error {
    pg4::Error::ConnectionFailed(msg.into())
}

fn query_failed_text(msg: impl Into<String>) -> pg4::Error {
    pg4::Error::QueryFailed(pg4::QueryError::Text(msg.into()))
}

/// A driver error as Spin reports it: the server's structured error when there is one.
fn query_failed(e: tokio_postgres::Error) -> pg4::Error {
    let as_text = format!("{e:?}");
    let Some(db) = e.as_db_error() else {
        return query_failed_text(as_text);
    };
    let mut extras = Vec::new();
    let mut extra = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            extras.push((name.to_string(), value));
        }
    };
    extra("column", db.column().map(str::to_string));
    extra("constraint", db.constraint().map(str::to_string));
    extra("routine", db.routine().map(str::to_string));
    extra("hint", db.hint().map(str::to_string));
    extra("table", db.table().map(str::to_string));
    extra("datatype", db.datatype().map(str::to_string));
    extra("schema", db.schema().map(str::to_string));
    extra("file", db.file().map(str::to_string));
    extra("line", db.line().map(|l| l.to_string()));
    extra("where_", db.where_().map(str::to_string));
    pg4::Error::QueryFailed(pg4::QueryError::DbError(pg4::DbError {
        as_text,
        severity: db.severity().to_string(),
        code: db.code().code().to_string(),
        message: db.message().to_string(),
        detail: db.detail().map(str::to_string),
        extras,
    }))
}

/// A connection string, parsed and checked against the component's allowed hosts.
struct Target {
    config: tokio_postgres::Config,
    /// Each host with its port, in the string's order.
    hosts: Vec<(String, u16)>,
}

impl PostgresComponent {
    /// Parses `address` (a URL or `key=value` pairs, as libpq takes them) and checks every
    /// host it names, as Spin does, before any connection is made.
    fn check(&self, address: &str) -> Result<Target, pg4::Error> {
        let mut config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| conn_failed(format!("invalid connection string: {e}")))?;
        if !config.get_hostaddrs().is_empty() {
            return Err(conn_failed(
                "hostaddr is not supported: name the server in host, so that \
                 allowed_outbound_hosts can check it",
            ));
        }
        let ports = config.get_ports();
        let mut hosts = Vec::new();
        for (i, host) in config.get_hosts().iter().enumerate() {
            let host = match host {
                Host::Tcp(host) => host.clone(),
                #[cfg(unix)]
                Host::Unix(_) => {
                    return Err(conn_failed("Unix sockets are not supported on WebAssembly"))
                }
            };
            let port = match ports {
                [] => 5432,
                [one] => *one,
                many => *many.get(i).unwrap_or(&5432),
            };
            if !allows(&self.allowed_hosts, "postgres", &host, port) {
                return Err(conn_failed(not_permitted("postgres", &host, port)));
            }
            hosts.push((host, port));
        }
        if hosts.is_empty() {
            return Err(conn_failed("the connection string names no host"));
        }
        // Startup options are the session's defaults, which `RESET ALL` goes back to.
        let limits = format!(
            "-c statement_timeout={} -c idle_session_timeout={}",
            self.limits.statement_timeout.as_millis(),
            IDLE_TIMEOUT.as_millis()
        );
        let options = match config.get_options() {
            Some(own) if !own.is_empty() => format!("{own} {limits}"),
            _ => limits,
        };
        config.options(&options);
        Ok(Target { config, hosts })
    }

    /// A clean connection to `address`: a pooled one, or a new one.
    async fn checkout(&self, address: &str) -> Result<Client, pg4::Error> {
        let target = self.check(address)?;
        while let Some(client) = self.pool.take(address) {
            if client.is_closed() {
                continue;
            }
            // Sent together (the driver pipelines them): one round trip.
            let (rollback, clean) = tokio::join!(
                client.batch_execute("ROLLBACK"),
                client.batch_execute(CLEAN)
            );
            if rollback.is_ok() && clean.is_ok() {
                return Ok(client);
            }
        }
        self.connect(target).await
    }

    async fn connect(&self, target: Target) -> Result<Client, pg4::Error> {
        let within = self.limits.statement_timeout;
        let mut last = String::new();
        for (host, port) in &target.hosts {
            let stream = match self
                .allowed_hosts
                .connect("postgres", host, *port, within)
                .await
            {
                Ok(stream) => stream,
                Err(e) => {
                    last = connect_failed("postgres", host, *port, &e);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (client, connection) = target
                .config
                .connect_raw(stream, NoTls)
                .await
                .map_err(|e| conn_failed(format!("{e:?}")))?;
            // The driver's half: ends when the client is dropped or the server closes.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            return Ok(client);
        }
        Err(conn_failed(last))
    }

    /// `open` as every version has it, within the component's deadline.
    async fn open(self: &Arc<Self>, address: String) -> Result<PgConnection, pg4::Error> {
        let timeout = self.limits.statement_timeout;
        let client = tokio::time::timeout(timeout, self.checkout(&address))
            .await
            .unwrap_or_else(|_| Err(conn_failed(past_deadline("connection attempt", timeout))))?;
        Ok(PgConnection {
            client: Some(Arc::new(client)),
            address,
            component: self.clone(),
        })
    }
}

fn params(values: &[pg4::ParameterValue]) -> Result<Vec<Param>, String> {
    values.iter().map(pg_values::param).collect()
}

fn refs(params: &[Param]) -> impl ExactSizeIterator<Item = &(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync))
}

/// Runs `fut` within the component's deadline.
async fn bounded<T>(
    limits: CallLimits,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, pg4::Error>>,
) -> Result<T, pg4::Error> {
    tokio::time::timeout(limits.statement_timeout, fut)
        .await
        .unwrap_or_else(|_| {
            Err(query_failed_text(past_deadline(
                what,
                limits.statement_timeout,
            )))
        })
}

/// `query`: every row, within the deadline and the result cap.
async fn query(
    client: &Client,
    limits: CallLimits,
    statement: String,
    values: Vec<pg4::ParameterValue>,
) -> Result<pg4::RowSet, pg4::Error> {
    let params = params(&values).map_err(pg4::Error::BadParameter)?;
    let cap = limits.result_cap();
    bounded(limits, "query", async {
        let stmt = client.prepare(&statement).await.map_err(query_failed)?;
        let columns = stmt
            .columns()
            .iter()
            .map(|c| pg4::Column {
                name: c.name().to_string(),
                data_type: pg_values::data_type(c.type_()),
            })
            .collect();
        let rows = client
            .query_raw(&stmt, refs(&params))
            .await
            .map_err(query_failed)?;
        let mut rows = std::pin::pin!(rows);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = rows.try_next().await.map_err(query_failed)? {
            let mut values = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                let value = pg_values::read(&row, i).map_err(|e| {
                    query_failed_text(format!(
                        "cannot read column {:?}: {e}",
                        row.columns()[i].name()
                    ))
                })?;
                bytes = bytes.saturating_add(pg_values::size(&value));
                values.push(value);
            }
            if bytes > cap {
                return Err(query_failed_text(too_large(cap)));
            }
            out.push(values);
        }
        Ok(pg4::RowSet { columns, rows: out })
    })
    .await
}

/// `execute`: the number of rows the statement affected.
async fn execute(
    client: &Client,
    limits: CallLimits,
    statement: String,
    values: Vec<pg4::ParameterValue>,
) -> Result<u64, pg4::Error> {
    // Spin reports a parameter it cannot convert here as `value-conversion-failed`.
    let params = params(&values).map_err(pg4::Error::ValueConversionFailed)?;
    bounded(limits, "statement", async {
        client
            .execute_raw(statement.as_str(), refs(&params))
            .await
            .map_err(query_failed)
    })
    .await
}

impl PostgresInstance {
    #[cfg(test)]
    pub(crate) fn open_handles(&self) -> usize {
        self.handles.count()
    }

    fn room(&self) -> Result<(), pg4::Error> {
        if self.handles.full() {
            return Err(conn_failed("too many connections"));
        }
        Ok(())
    }

    fn push<R: Send + 'static>(&mut self, item: R) -> wasmtime::Result<Resource<R>> {
        let res = self.table.push(item)?;
        self.handles.opened();
        Ok(res)
    }

    fn remove<R: Send + 'static>(&mut self, res: Resource<R>) -> wasmtime::Result<()> {
        self.table.delete(res)?;
        self.handles.closed();
        Ok(())
    }

    fn client(&self, res: &Resource<PgConnection>) -> wasmtime::Result<(Arc<Client>, CallLimits)> {
        let conn = self.table.get(res)?;
        let client = conn
            .client
            .clone()
            .expect("a connection in the table has its client");
        Ok((client, self.component.limits))
    }

    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, pg4::Error>> {
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
        conn: &Resource<PgConnection>,
        statement: String,
        params: Vec<pg4::ParameterValue>,
    ) -> wasmtime::Result<Result<pg4::RowSet, pg4::Error>> {
        let (client, limits) = self.client(conn)?;
        Ok(query(&client, limits, statement, params).await)
    }

    async fn execute(
        &mut self,
        conn: &Resource<PgConnection>,
        statement: String,
        params: Vec<pg4::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg4::Error>> {
        let (client, limits) = self.client(conn)?;
        Ok(execute(&client, limits, statement, params).await)
    }

    fn builder_address(&self, res: &Resource<PgConnectionBuilder>) -> wasmtime::Result<String> {
        Ok(self.table.get(res)?.address.clone())
    }
}

impl v2t::Host for PostgresInstance {}
impl v2::Host for PostgresInstance {}
impl pg3::Host for PostgresInstance {}
impl pg4::Host for PostgresInstance {}

impl v2::HostConnection for PostgresInstance {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<v2::Connection>, v2::Error>> {
        Ok(PostgresInstance::open(self, address)
            .await?
            .map_err(Into::into))
    }

    async fn query(
        &mut self,
        conn: Resource<v2::Connection>,
        statement: String,
        params: Vec<v2t::ParameterValue>,
    ) -> wasmtime::Result<Result<v2t::RowSet, v2::Error>> {
        let params = match params.into_iter().map(pg_values::from_v2).collect() {
            Ok(params) => params,
            Err(e) => return Ok(Err(e)),
        };
        let result = PostgresInstance::query(self, &conn, statement, params).await?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    async fn execute(
        &mut self,
        conn: Resource<v2::Connection>,
        statement: String,
        params: Vec<v2t::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v2::Error>> {
        let params = match params.into_iter().map(pg_values::from_v2).collect() {
            Ok(params) => params,
            Err(e) => return Ok(Err(e)),
        };
        let result = PostgresInstance::execute(self, &conn, statement, params).await?;
        Ok(result.map_err(Into::into))
    }

    fn drop(&mut self, conn: Resource<v2::Connection>) -> wasmtime::Result<()> {
        self.remove(conn)
    }
}

impl pg3::HostConnection for PostgresInstance {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<pg3::Connection>, pg3::Error>> {
        Ok(PostgresInstance::open(self, address)
            .await?
            .map_err(Into::into))
    }

    async fn query(
        &mut self,
        conn: Resource<pg3::Connection>,
        statement: String,
        params: Vec<pg3::ParameterValue>,
    ) -> wasmtime::Result<Result<pg3::RowSet, pg3::Error>> {
        let params = params.into_iter().map(Into::into).collect();
        let result = PostgresInstance::query(self, &conn, statement, params).await?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    async fn execute(
        &mut self,
        conn: Resource<pg3::Connection>,
        statement: String,
        params: Vec<pg3::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg3::Error>> {
        let params = params.into_iter().map(Into::into).collect();
        let result = PostgresInstance::execute(self, &conn, statement, params).await?;
        Ok(result.map_err(Into::into))
    }

    fn drop(&mut self, conn: Resource<pg3::Connection>) -> wasmtime::Result<()> {
        self.remove(conn)
    }
}

impl pg4::HostConnection for PostgresInstance {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<pg4::Connection>, pg4::Error>> {
        PostgresInstance::open(self, address).await
    }

    async fn query(
        &mut self,
        conn: Resource<pg4::Connection>,
        statement: String,
        params: Vec<pg4::ParameterValue>,
    ) -> wasmtime::Result<Result<pg4::RowSet, pg4::Error>> {
        PostgresInstance::query(self, &conn, statement, params).await
    }

    async fn execute(
        &mut self,
        conn: Resource<pg4::Connection>,
        statement: String,
        params: Vec<pg4::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg4::Error>> {
        PostgresInstance::execute(self, &conn, statement, params).await
    }

    fn drop(&mut self, conn: Resource<pg4::Connection>) -> wasmtime::Result<()> {
        self.remove(conn)
    }
}

impl pg4::HostConnectionBuilder for PostgresInstance {
    fn new(&mut self, address: String) -> wasmtime::Result<Resource<PgConnectionBuilder>> {
        self.push(PgConnectionBuilder { address })
    }

    fn set_ca_root(
        &mut self,
        _: Resource<PgConnectionBuilder>,
        _: String,
    ) -> wasmtime::Result<Result<(), pg4::Error>> {
        Ok(Err(pg4::Error::Other(
            "TLS connections to PostgreSQL are not supported by this host: connect without a \
             root certificate (sslmode=prefer or disable)"
                .into(),
        )))
    }

    async fn build(
        &mut self,
        builder: Resource<PgConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<pg4::Connection>, pg4::Error>> {
        let address = self.builder_address(&builder)?;
        PostgresInstance::open(self, address).await
    }

    fn drop(&mut self, builder: Resource<PgConnectionBuilder>) -> wasmtime::Result<()> {
        self.remove(builder)
    }
}

/// Opens a connection for the `-async` functions: the instance's data is let go of while
/// the connection is made.
async fn open_async<T: Send>(
    accessor: &Accessor<T, HasSelf<PostgresInstance>>,
    address: String,
) -> wasmtime::Result<Result<Resource<pg4::Connection>, pg4::Error>> {
    let component = accessor.with(|mut access| {
        let state = access.get();
        state.room().map(|()| state.component.clone())
    });
    let component = match component {
        Ok(component) => component,
        Err(e) => return Ok(Err(e)),
    };
    match component.open(address).await {
        Ok(conn) => accessor.with(|mut access| Ok(Ok(access.get().push(conn)?))),
        Err(e) => Ok(Err(e)),
    }
}

/// The 4.2 `-async` functions: each lets go of the instance's data while it waits on the
/// server, so the guest's other tasks go on meanwhile.
impl<T: Send> pg4::HostConnectionWithStore<T> for HasSelf<PostgresInstance> {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<pg4::Connection>, pg4::Error>> {
        open_async(accessor, address).await
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<pg4::Connection>,
        statement: String,
        params: Vec<pg4::ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<pg4::Column>,
                StreamReader<pg4::Row>,
                FutureReader<Result<(), pg4::Error>>,
            ),
            pg4::Error,
        >,
    > {
        let (client, limits) = accessor.with(|mut access| access.get().client(&conn))?;
        // The rows are read whole (bounded by the result cap), then streamed to the guest;
        // an error while reading them fails the call rather than ending the stream early.
        let rows = match query(&client, limits, statement, params).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(e)),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, rows.rows)?;
            let future =
                FutureReader::new(&mut access, async { Ok::<_, wasmtime::Error>(Ok(())) })?;
            Ok(Ok((rows.columns, stream, future)))
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<pg4::Connection>,
        statement: String,
        params: Vec<pg4::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg4::Error>> {
        let (client, limits) = accessor.with(|mut access| access.get().client(&conn))?;
        Ok(execute(&client, limits, statement, params).await)
    }
}

impl<T: Send> pg4::HostConnectionBuilderWithStore<T> for HasSelf<PostgresInstance> {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<PgConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<pg4::Connection>, pg4::Error>> {
        let address = accessor.with(|mut access| access.get().builder_address(&builder))?;
        open_async(accessor, address).await
    }
}
