//! Spin outbound MQTT: `fermyon:spin/mqtt@2.0.0` (sync) and `spin:mqtt/mqtt@3.0.0`
//! (`async`), with rumqttc as in Spin.
//!
//! As in Spin (crates/factor-outbound-mqtt): `open` refuses an address the component's
//! `allowed_outbound_hosts` does not allow with `connection-failed("address … is not
//! permitted")`; an address rumqttc cannot read (it needs `?client_id=…`) is
//! `invalid-address`; the connection is made at the first `publish`, which waits until the
//! message left (QoS 0) or was acknowledged (QoS 1, 2), and a broker failure is
//! `connection-failed` with rumqttc's message. `username`, `password` and the keep-alive
//! are rumqttc's options; the address's query may set rumqttc's others.
//!
//! Beyond Spin:
//!
//! - The name is resolved once through [`AllowedHosts::resolve_checked`]: an internal
//!   address is reached only if an IP or CIDR entry allows it (else the same
//!   `connection-failed` refusal), and rumqttc is given the checked address, never the name.
//!   So `mqtts://` (TLS, whose check needs the name) is not served yet: `connection-failed`.
//! - Connections are pooled per component, address and credentials, closed after
//!   [`MQTT_IDLE`] unused (or the keep-alive, if shorter: the broker drops an idle client
//!   then). One publish at a time runs on a connection.
//! - Each publish is bounded by the component's deadline; handles count in the instance's
//!   open-handle bound (`too-many-connections`).

mod client;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Accessor, HasData, HasSelf, Linker, Resource, ResourceTable};

use crate::allowed_hosts::{AllowedHosts, ConnectError};
use crate::bindings::fermyon::spin::mqtt as v2;
use crate::bindings::spin::mqtt::mqtt as v3;
use crate::idle_pool::{IdlePool, Used};
use crate::unit::{granted_list, interface_of, InstanceContext, OpenHandles};
use crate::{CallLimits, HostUnit};
use client::Client;

/// The interfaces this unit serves, without their versions.
const INTERFACES: [&str; 2] = ["fermyon:spin/mqtt", "spin:mqtt/mqtt"];

/// How long a pooled connection stays open unused.
pub const MQTT_IDLE: Duration = Duration::from_secs(30);

/// The outbound MQTT unit; it holds nothing per app.
pub struct OutboundMqtt {
    idle: Duration,
}

/// What the app gives the unit.
#[derive(Clone, Debug)]
pub struct MqttConfig {
    /// How long a pooled connection stays open unused ([`MQTT_IDLE`] by default).
    pub idle: Duration,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self { idle: MQTT_IDLE }
    }
}

/// What one component may reach.
#[derive(Clone, Debug, Default)]
pub struct MqttGrants {
    /// `allowed_outbound_hosts` as written, for `nebula check`.
    pub allowed_outbound_hosts: Vec<String>,
    /// The same, rendered and parsed ([`crate::ComponentUnits::allowed_hosts`]).
    pub allowed_hosts: Arc<AllowedHosts>,
    /// The deadline bounds each publish.
    pub limits: CallLimits,
}

/// What makes two opens share a connection: the address and what `open` was given.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    address: String,
    username: String,
    password: String,
    keep_alive: u64,
}

/// One component's allowed hosts and its pool of connections.
pub struct MqttComponent {
    allowed: Arc<AllowedHosts>,
    limits: CallLimits,
    pool: Arc<IdlePool<Key, Arc<Client>>>,
}

/// One instance's open connections.
pub struct MqttInstance {
    component: Arc<MqttComponent>,
    table: ResourceTable,
    handles: OpenHandles,
}

/// A guest's `connection`.
#[derive(Clone)]
pub struct MqttConnection {
    key: Key,
    client: Arc<Client>,
    used: Arc<Used>,
    component: Arc<MqttComponent>,
}

/// Errors shared by both versions (their `error` variants are identical).
#[derive(Debug, PartialEq)]
pub(crate) enum MqttError {
    InvalidAddress,
    TooManyConnections,
    ConnectionFailed(String),
    Other(String),
}

impl HostUnit for OutboundMqtt {
    type AppConfig = MqttConfig;
    type Grants = MqttGrants;
    type Component = MqttComponent;
    type Instance = MqttInstance;
    type Data = HasSelf<MqttInstance>;

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <Self::Data as HasData>::Data<'_>,
    ) -> anyhow::Result<()> {
        v2::add_to_linker::<T, Self::Data>(linker, get)?;
        v3::add_to_linker::<T, Self::Data>(linker, get)?;
        Ok(())
    }

    fn configure_app(config: MqttConfig) -> anyhow::Result<Self> {
        Ok(Self { idle: config.idle })
    }

    /// Never fails: the allowed hosts were parsed by the caller.
    fn configure_component(self: &Arc<Self>, grants: MqttGrants) -> anyhow::Result<MqttComponent> {
        Ok(MqttComponent::new(grants, self.idle))
    }

    fn prepare(component: &Arc<MqttComponent>, instance: &InstanceContext) -> MqttInstance {
        MqttInstance {
            component: component.clone(),
            table: ResourceTable::new(),
            handles: instance.handles.clone(),
        }
    }

    fn serves(import: &str, grants: &MqttGrants) -> Option<String> {
        INTERFACES.contains(&interface_of(import)).then(|| {
            let entries =
                AllowedHosts::entries_for(&grants.allowed_outbound_hosts, &["mqtt", "mqtts"]);
            format!(
                "outbound MQTT to allowed_outbound_hosts only: {}",
                granted_list(&entries)
            )
        })
    }
}

impl OutboundMqtt {
    /// How long its pooled connections stay open unused.
    pub(crate) fn idle(&self) -> Duration {
        self.idle
    }
}

impl MqttComponent {
    pub(crate) fn new(grants: MqttGrants, idle: Duration) -> Self {
        Self {
            allowed: grants.allowed_hosts,
            limits: grants.limits,
            pool: Arc::new(IdlePool::new(idle)),
        }
    }

    /// Spin's checks, then the pooled connection or a new one to the checked address.
    async fn open(self: &Arc<Self>, key: Key) -> Result<MqttConnection, MqttError> {
        let not_permitted =
            || MqttError::ConnectionFailed(format!("address {} is not permitted", key.address));
        let url = url::Url::parse(&key.address).map_err(|_| MqttError::InvalidAddress)?;
        let scheme = url.scheme().to_ascii_lowercase();
        let host = url.host_str().ok_or(MqttError::InvalidAddress)?.to_string();
        let tls = matches!(scheme.as_str(), "mqtts" | "ssl");
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        let uri: http::Uri = format!("{scheme}://{host}:{port}")
            .parse()
            .map_err(|_| MqttError::InvalidAddress)?;
        if !self.allowed.allows(&uri) {
            return Err(not_permitted());
        }
        if tls {
            return Err(MqttError::ConnectionFailed(format!(
                "{scheme}:// (MQTT over TLS) is not supported by this host yet; use mqtt://"
            )));
        }
        if !matches!(scheme.as_str(), "mqtt" | "tcp") {
            return Err(MqttError::InvalidAddress);
        }
        // rumqttc's own reading of the address (`client_id` and its options), as in Spin.
        rumqttc::MqttOptions::parse_url(key.address.as_str())
            .map_err(|_| MqttError::InvalidAddress)?;

        // The CONNECT packet carries it in 16 bits.
        let keep_alive = Duration::from_secs(key.keep_alive.min(u64::from(u16::MAX)));
        let max_idle = if keep_alive.is_zero() {
            Duration::MAX
        } else {
            keep_alive
        };
        let (client, used) = match self.pool.get_fresh(&key, max_idle) {
            Some(found) => found,
            None => {
                let bare = host.trim_matches(['[', ']']);
                let addrs = self
                    .allowed
                    .resolve_checked(&scheme, bare, port, self.limits.statement_timeout)
                    .await
                    .map_err(|e| match e {
                        ConnectError::Internal(_) => not_permitted(),
                        e => {
                            MqttError::ConnectionFailed(format!("cannot reach {host}:{port}: {e}"))
                        }
                    })?;
                // rumqttc connects to the checked address, never looking the name up.
                let mut checked = url.clone();
                checked
                    .set_ip_host(addrs[0].ip())
                    .map_err(|_| MqttError::InvalidAddress)?;
                let _ = checked.set_port(Some(port));
                let mut options = rumqttc::MqttOptions::parse_url(checked.as_str())
                    .map_err(|_| MqttError::InvalidAddress)?;
                options.set_credentials(key.username.clone(), key.password.clone());
                options.set_keep_alive(keep_alive);
                self.pool
                    .get_or_insert(&key, || Arc::new(Client::new(options)))
            }
        };
        Ok(MqttConnection {
            key,
            client,
            used,
            component: self.clone(),
        })
    }
}

impl MqttConnection {
    async fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        qos: rumqttc::QoS,
    ) -> Result<(), MqttError> {
        self.used.touch();
        let within = self.component.limits.statement_timeout;
        let r = self.client.publish(topic, payload, qos, within).await;
        self.used.touch();
        if self.client.is_broken() {
            self.component.pool.remove(&self.key);
        }
        r
    }
}

impl MqttInstance {
    /// Connections the instance holds, all units together.
    #[cfg(test)]
    pub(crate) fn open_handles(&self) -> usize {
        self.handles.count()
    }

    fn push(&mut self, conn: MqttConnection) -> wasmtime::Result<Resource<MqttConnection>> {
        let res = self.table.push(conn)?;
        self.handles.opened();
        Ok(res)
    }

    fn delete(&mut self, res: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(res)?;
        self.handles.closed();
        Ok(())
    }

    fn connection(&self, res: &Resource<MqttConnection>) -> wasmtime::Result<MqttConnection> {
        Ok(self.table.get(res)?.clone())
    }
}

/// The open both versions share.
async fn open_checked(
    component: &Arc<MqttComponent>,
    handles: &OpenHandles,
    key: Key,
) -> Result<MqttConnection, MqttError> {
    if handles.full() {
        return Err(MqttError::TooManyConnections);
    }
    component.open(key).await
}

macro_rules! conversions {
    ($v:ident) => {
        impl From<MqttError> for $v::Error {
            fn from(e: MqttError) -> Self {
                match e {
                    MqttError::InvalidAddress => Self::InvalidAddress,
                    MqttError::TooManyConnections => Self::TooManyConnections,
                    MqttError::ConnectionFailed(m) => Self::ConnectionFailed(m),
                    MqttError::Other(m) => Self::Other(m),
                }
            }
        }

        impl From<$v::Qos> for rumqttc::QoS {
            fn from(q: $v::Qos) -> Self {
                match q {
                    $v::Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
                    $v::Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
                    $v::Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
                }
            }
        }
    };
}
conversions!(v2);
conversions!(v3);

// ---- fermyon:spin/mqtt@2.0.0 (sync in WIT; async on the host) ------------------------------

type V2<T> = wasmtime::Result<Result<T, v2::Error>>;

impl v2::Host for MqttInstance {}

impl v2::HostConnection for MqttInstance {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive: u64,
    ) -> V2<Resource<MqttConnection>> {
        let key = Key {
            address,
            username,
            password,
            keep_alive,
        };
        let component = self.component.clone();
        match open_checked(&component, &self.handles, key).await {
            Ok(conn) => Ok(Ok(self.push(conn)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn publish(
        &mut self,
        c: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: v2::Qos,
    ) -> V2<()> {
        let conn = self.connection(&c)?;
        Ok(conn
            .publish(topic, payload, qos.into())
            .await
            .map_err(Into::into))
    }

    async fn drop(&mut self, c: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.delete(c)
    }
}

// ---- spin:mqtt/mqtt@3.0.0 (`async` in WIT) --------------------------------------------------

type V3<T> = wasmtime::Result<Result<T, v3::Error>>;

impl v3::Host for MqttInstance {}

impl v3::HostConnection for MqttInstance {
    fn drop(&mut self, c: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.delete(c)
    }
}

impl<T: Send> v3::HostConnectionWithStore<T> for HasSelf<MqttInstance> {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
        username: String,
        password: String,
        keep_alive: u64,
    ) -> V3<Resource<MqttConnection>> {
        let key = Key {
            address,
            username,
            password,
            keep_alive,
        };
        let (component, handles) = accessor.with(|mut a| {
            let s = a.get();
            (s.component.clone(), s.handles.clone())
        });
        match open_checked(&component, &handles, key).await {
            Ok(conn) => accessor.with(|mut a| Ok(Ok(a.get().push(conn)?))),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        c: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: v3::Qos,
    ) -> V3<()> {
        let conn = accessor.with(|mut a| a.get().connection(&c))?;
        Ok(conn
            .publish(topic, payload, qos.into())
            .await
            .map_err(Into::into))
    }
}
