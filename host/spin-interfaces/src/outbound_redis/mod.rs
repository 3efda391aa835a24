//! Spin outbound Redis: `fermyon:spin/redis@2.0.0` (sync) and `spin:redis/redis@3.0.0`
//! (`async`).
//!
//! As in Spin (crates/factor-outbound-redis): `open` refuses an address the component's
//! `allowed_outbound_hosts` does not allow, or one the driver cannot parse, with
//! `invalid-address`; every other failure is `other` with the driver's message; a reply
//! of another type than the call returns is `type-error`; `execute` flattens arrays.
//!
//! Beyond Spin:
//!
//! - The name is resolved once, through [`AllowedHosts::resolve_checked`]: an internal
//!   address (loopback, private, link-local) is reached only if an IP or CIDR entry allows
//!   it, else `invalid-address`; the driver connects to the checked addresses only.
//! - Connections are pooled per component and address ([`IdlePool`]) and closed after
//!   [`REDIS_IDLE`] unused, so a request that opens `redis://…` reuses the last one's
//!   connection. A handle that sends a command changing the connection's state (`MULTI`,
//!   `SELECT`, `SUBSCRIBE`, a blocking pop, …: `ops::OWN_CONNECTION`) is first given a
//!   connection of its own, closed with the handle, so shared connections only ever carry
//!   stateless commands.
//! - Each call is bounded by the component's deadline, and its result by the component's
//!   result cap (`GET` reads at most the cap from the server).
//! - Handles count in the instance's open-handle bound (`too-many-connections`).

mod connect;
mod ops;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use wasmtime::component::{Accessor, HasData, HasSelf, Linker, Resource, ResourceTable};

use crate::allowed_hosts::AllowedHosts;
use crate::bindings::fermyon::spin::redis as v2;
use crate::bindings::spin::redis::redis as v3;
use crate::idle_pool::{IdlePool, Used};
use crate::unit::{granted_list, interface_of, InstanceContext, OpenHandles};
use crate::{CallLimits, HostUnit};
use ops::{Op, Out, Param, Res};

/// The interfaces this unit serves, without their versions.
const INTERFACES: [&str; 2] = ["fermyon:spin/redis", "spin:redis/redis"];

/// How long a pooled connection stays open unused.
pub const REDIS_IDLE: Duration = Duration::from_secs(30);

/// The outbound Redis unit; it holds nothing per app.
pub struct OutboundRedis {
    idle: Duration,
}

/// What the app gives the unit.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// How long a pooled connection stays open unused ([`REDIS_IDLE`] by default).
    pub idle: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { idle: REDIS_IDLE }
    }
}

/// What one component may reach.
#[derive(Clone, Debug, Default)]
pub struct RedisGrants {
    /// `allowed_outbound_hosts` as written, for `nebula check`.
    pub allowed_outbound_hosts: Vec<String>,
    /// The same, rendered and parsed ([`crate::ComponentUnits::allowed_hosts`]): what
    /// addresses are checked against.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// The deadline bounds each call, the result cap each reply.
    pub limits: CallLimits,
}

/// One component's allowed hosts and its pool of connections.
pub struct RedisComponent {
    allowed: Arc<AllowedHosts>,
    limits: CallLimits,
    pool: Arc<IdlePool<String, MultiplexedConnection>>,
}

/// One instance's open connections.
pub struct RedisInstance {
    component: Arc<RedisComponent>,
    table: ResourceTable,
    handles: OpenHandles,
}

/// A guest's `connection`: a pooled connection, or one of its own once it sent a command
/// that changes the connection's state.
#[derive(Clone)]
pub struct RedisConnection {
    address: String,
    conn: MultiplexedConnection,
    used: Arc<Used>,
    /// Whether `conn` is shared through the pool.
    pooled: bool,
    component: Arc<RedisComponent>,
}

/// Errors shared by both versions (their `error` variants are identical).
#[derive(Debug, PartialEq)]
pub(crate) enum RedisError {
    InvalidAddress,
    TooManyConnections,
    TypeError,
    Other(String),
}

impl HostUnit for OutboundRedis {
    type AppConfig = RedisConfig;
    type Grants = RedisGrants;
    type Component = RedisComponent;
    type Instance = RedisInstance;
    type Data = HasSelf<RedisInstance>;

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <Self::Data as HasData>::Data<'_>,
    ) -> anyhow::Result<()> {
        v2::add_to_linker::<T, Self::Data>(linker, get)?;
        v3::add_to_linker::<T, Self::Data>(linker, get)?;
        Ok(())
    }

    fn configure_app(config: RedisConfig) -> anyhow::Result<Self> {
        Ok(Self { idle: config.idle })
    }

    /// Never fails: the allowed hosts were parsed by the caller.
    fn configure_component(
        self: &Arc<Self>,
        grants: RedisGrants,
    ) -> anyhow::Result<RedisComponent> {
        Ok(RedisComponent::new(grants, self.idle))
    }

    fn prepare(component: &Arc<RedisComponent>, instance: &InstanceContext) -> RedisInstance {
        RedisInstance {
            component: component.clone(),
            table: ResourceTable::new(),
            handles: instance.handles.clone(),
        }
    }

    fn serves(import: &str, grants: &RedisGrants) -> Option<String> {
        INTERFACES.contains(&interface_of(import)).then(|| {
            let entries =
                AllowedHosts::entries_for(&grants.allowed_outbound_hosts, &["redis", "rediss"]);
            format!(
                "outbound Redis to allowed_outbound_hosts only: {}",
                granted_list(&entries)
            )
        })
    }
}

impl OutboundRedis {
    /// How long its pooled connections stay open unused.
    pub(crate) fn idle(&self) -> Duration {
        self.idle
    }
}

impl RedisComponent {
    pub(crate) fn new(grants: RedisGrants, idle: Duration) -> Self {
        Self {
            allowed: grants.allowed_hosts,
            limits: grants.limits,
            pool: Arc::new(IdlePool::new(idle)),
        }
    }

    /// A connection to `address` for a guest's `open`: the pooled one, or a new one, pooled.
    async fn open(self: &Arc<Self>, address: &str) -> Result<RedisConnection, RedisError> {
        let checked = connect::Address::parse(address, &self.allowed)?;
        let (conn, used, pooled) = match self.pool.get(&address.to_string()) {
            Some((conn, used)) => (conn, used, true),
            None => {
                let conn = checked
                    .connect(&self.allowed, self.limits.statement_timeout)
                    .await?;
                match self.pool.insert(address.to_string(), conn.clone()) {
                    Some(used) => (conn, used, true),
                    // Another request pooled one meanwhile: this one is the handle's own.
                    None => (conn, self.pool.unpooled(), false),
                }
            }
        };
        Ok(RedisConnection {
            address: address.to_string(),
            conn,
            used,
            pooled,
            component: self.clone(),
        })
    }
}

impl RedisConnection {
    /// A connection of this handle's own to the same address (see `ops::OWN_CONNECTION`).
    async fn detached(&self) -> Result<RedisConnection, RedisError> {
        let c = &self.component;
        let checked = connect::Address::parse(&self.address, &c.allowed)?;
        let conn = checked
            .connect(&c.allowed, c.limits.statement_timeout)
            .await?;
        Ok(RedisConnection {
            conn,
            used: c.pool.unpooled(),
            pooled: false,
            ..self.clone()
        })
    }

    /// Runs `op` within the component's deadline. A connection that failed or timed out
    /// leaves the pool, so the next `open` makes a new one.
    async fn run(&self, op: Op) -> Result<Out, RedisError> {
        let limits = self.component.limits;
        let mut conn = self.conn.clone();
        self.used.touch();
        let outcome = tokio::time::timeout(
            limits.statement_timeout,
            op.run(&mut conn, limits.result_cap()),
        )
        .await;
        self.used.touch();
        let forget = |c: &Self| {
            if c.pooled {
                c.component.pool.remove(&c.address);
            }
        };
        match outcome {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    forget(self);
                }
                // A reply of another type than the call returns (Spin says so for `sadd`).
                if e.kind() == redis::ErrorKind::UnexpectedReturnType {
                    return Err(RedisError::TypeError);
                }
                Err(RedisError::Other(e.to_string()))
            }
            Err(_) => {
                forget(self);
                Err(RedisError::Other(format!(
                    "Redis: no answer within the component's deadline ({} ms)",
                    limits.statement_timeout.as_millis()
                )))
            }
        }
    }
}

impl RedisInstance {
    /// Connections the instance holds, all units together.
    #[cfg(test)]
    pub(crate) fn open_handles(&self) -> usize {
        self.handles.count()
    }

    fn push(&mut self, conn: RedisConnection) -> wasmtime::Result<Resource<RedisConnection>> {
        let res = self.table.push(conn)?;
        self.handles.opened();
        Ok(res)
    }

    fn delete(&mut self, res: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(res)?;
        self.handles.closed();
        Ok(())
    }

    /// The handle's connection, for a call that runs without the instance's data.
    fn connection(&self, res: &Resource<RedisConnection>) -> wasmtime::Result<RedisConnection> {
        Ok(self.table.get(res)?.clone())
    }

    /// Gives the handle a connection of its own if `op` needs one; the new one replaces
    /// the pooled one in the table, unless another call did so meanwhile.
    fn replace(
        &mut self,
        res: &Resource<RedisConnection>,
        own: RedisConnection,
    ) -> wasmtime::Result<RedisConnection> {
        let slot = self.table.get_mut(res)?;
        if slot.pooled {
            *slot = own;
        }
        Ok(slot.clone())
    }
}

/// The v2 calls: the handle's connection, detached first if `op` needs it.
async fn run2(
    state: &mut RedisInstance,
    res: &Resource<RedisConnection>,
    op: Op,
) -> wasmtime::Result<Result<Out, RedisError>> {
    let mut conn = state.connection(res)?;
    if conn.pooled && op.needs_own_connection() {
        match conn.detached().await {
            Ok(own) => conn = state.replace(res, own)?,
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(conn.run(op).await)
}

/// The v3 calls let go of the instance's data while the command runs.
async fn run3<T: Send>(
    accessor: &Accessor<T, HasSelf<RedisInstance>>,
    res: &Resource<RedisConnection>,
    op: Op,
) -> wasmtime::Result<Result<Out, RedisError>> {
    let mut conn = accessor.with(|mut a| a.get().connection(res))?;
    if conn.pooled && op.needs_own_connection() {
        match conn.detached().await {
            Ok(own) => conn = accessor.with(|mut a| a.get().replace(res, own))?,
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(conn.run(op).await)
}

/// The open both versions share: Spin's checks, then the instance's handle bound.
async fn open_checked(
    component: &Arc<RedisComponent>,
    handles: &OpenHandles,
    address: &str,
) -> Result<RedisConnection, RedisError> {
    if handles.full() {
        return Err(RedisError::TooManyConnections);
    }
    component.open(address).await
}

// ---- conversions between the internal types and each version's ---------------------------

macro_rules! conversions {
    ($v:ident) => {
        impl From<RedisError> for $v::Error {
            fn from(e: RedisError) -> Self {
                match e {
                    RedisError::InvalidAddress => Self::InvalidAddress,
                    RedisError::TooManyConnections => Self::TooManyConnections,
                    RedisError::TypeError => Self::TypeError,
                    RedisError::Other(m) => Self::Other(m),
                }
            }
        }

        impl From<$v::RedisParameter> for Param {
            fn from(p: $v::RedisParameter) -> Self {
                match p {
                    $v::RedisParameter::Int64(v) => Param::Int64(v),
                    $v::RedisParameter::Binary(v) => Param::Binary(v),
                }
            }
        }

        impl From<Res> for $v::RedisResult {
            fn from(r: Res) -> Self {
                match r {
                    Res::Nil => Self::Nil,
                    Res::Status(s) => Self::Status(s),
                    Res::Int64(v) => Self::Int64(v),
                    Res::Binary(b) => Self::Binary(b),
                }
            }
        }
    };
}
conversions!(v2);
conversions!(v3);

impl Out {
    fn done(self) {}

    fn value(self) -> Option<Vec<u8>> {
        match self {
            Out::Value(v) => v,
            _ => unreachable!("a get returns a value"),
        }
    }

    fn int(self) -> i64 {
        match self {
            Out::Int(v) => v,
            _ => unreachable!("an incr returns an integer"),
        }
    }

    fn count(self) -> u32 {
        match self {
            Out::Count(v) => v,
            _ => unreachable!("a del, sadd or srem returns a count"),
        }
    }

    fn members(self) -> Vec<String> {
        match self {
            Out::Members(v) => v,
            _ => unreachable!("a smembers returns members"),
        }
    }

    fn results<R: From<Res>>(self) -> Vec<R> {
        match self {
            Out::Results(v) => v.into_iter().map(Into::into).collect(),
            _ => unreachable!("an execute returns results"),
        }
    }
}

// ---- fermyon:spin/redis@2.0.0 (sync in WIT; async on the host) -----------------------------

type V2<T> = wasmtime::Result<Result<T, v2::Error>>;

fn v2<T>(r: wasmtime::Result<Result<Out, RedisError>>, f: impl FnOnce(Out) -> T) -> V2<T> {
    Ok(r?.map(f).map_err(Into::into))
}

impl v2::Host for RedisInstance {}

impl v2::HostConnection for RedisInstance {
    async fn open(&mut self, address: String) -> V2<Resource<RedisConnection>> {
        let component = self.component.clone();
        match open_checked(&component, &self.handles, &address).await {
            Ok(conn) => Ok(Ok(self.push(conn)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn publish(
        &mut self,
        c: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> V2<()> {
        v2(
            run2(self, &c, Op::Publish(channel, payload)).await,
            Out::done,
        )
    }

    async fn get(&mut self, c: Resource<RedisConnection>, key: String) -> V2<Option<Vec<u8>>> {
        v2(run2(self, &c, Op::Get(key)).await, Out::value)
    }

    async fn set(&mut self, c: Resource<RedisConnection>, key: String, value: Vec<u8>) -> V2<()> {
        v2(run2(self, &c, Op::Set(key, value)).await, Out::done)
    }

    async fn incr(&mut self, c: Resource<RedisConnection>, key: String) -> V2<i64> {
        v2(run2(self, &c, Op::Incr(key)).await, Out::int)
    }

    async fn del(&mut self, c: Resource<RedisConnection>, keys: Vec<String>) -> V2<u32> {
        v2(run2(self, &c, Op::Del(keys)).await, Out::count)
    }

    async fn sadd(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> V2<u32> {
        v2(run2(self, &c, Op::Sadd(key, values)).await, Out::count)
    }

    async fn smembers(&mut self, c: Resource<RedisConnection>, key: String) -> V2<Vec<String>> {
        v2(run2(self, &c, Op::Smembers(key)).await, Out::members)
    }

    async fn srem(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> V2<u32> {
        v2(run2(self, &c, Op::Srem(key, values)).await, Out::count)
    }

    async fn execute(
        &mut self,
        c: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v2::RedisParameter>,
    ) -> V2<Vec<v2::RedisResult>> {
        let op = Op::Execute(command, arguments.into_iter().map(Into::into).collect());
        v2(run2(self, &c, op).await, Out::results)
    }

    async fn drop(&mut self, c: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.delete(c)
    }
}

// ---- spin:redis/redis@3.0.0 (`async` in WIT) ------------------------------------------------

type V3<T> = wasmtime::Result<Result<T, v3::Error>>;

fn v3<T>(r: wasmtime::Result<Result<Out, RedisError>>, f: impl FnOnce(Out) -> T) -> V3<T> {
    Ok(r?.map(f).map_err(Into::into))
}

impl v3::Host for RedisInstance {}

impl v3::HostConnection for RedisInstance {
    fn drop(&mut self, c: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.delete(c)
    }
}

impl<T: Send> v3::HostConnectionWithStore<T> for HasSelf<RedisInstance> {
    async fn open(accessor: &Accessor<T, Self>, address: String) -> V3<Resource<RedisConnection>> {
        let (component, handles) = accessor.with(|mut a| {
            let s = a.get();
            (s.component.clone(), s.handles.clone())
        });
        match open_checked(&component, &handles, &address).await {
            Ok(conn) => accessor.with(|mut a| Ok(Ok(a.get().push(conn)?))),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> V3<()> {
        v3(
            run3(accessor, &c, Op::Publish(channel, payload)).await,
            Out::done,
        )
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
    ) -> V3<Option<Vec<u8>>> {
        v3(run3(accessor, &c, Op::Get(key)).await, Out::value)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> V3<()> {
        v3(run3(accessor, &c, Op::Set(key, value)).await, Out::done)
    }

    async fn incr(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
    ) -> V3<i64> {
        v3(run3(accessor, &c, Op::Incr(key)).await, Out::int)
    }

    async fn del(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> V3<u32> {
        v3(run3(accessor, &c, Op::Del(keys)).await, Out::count)
    }

    async fn sadd(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> V3<u32> {
        v3(run3(accessor, &c, Op::Sadd(key, values)).await, Out::count)
    }

    async fn smembers(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
    ) -> V3<Vec<String>> {
        v3(run3(accessor, &c, Op::Smembers(key)).await, Out::members)
    }

    async fn srem(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> V3<u32> {
        v3(run3(accessor, &c, Op::Srem(key, values)).await, Out::count)
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v3::RedisParameter>,
    ) -> V3<Vec<v3::RedisResult>> {
        let op = Op::Execute(command, arguments.into_iter().map(Into::into).collect());
        v3(run3(accessor, &c, op).await, Out::results)
    }
}
