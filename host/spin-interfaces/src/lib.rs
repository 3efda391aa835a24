//! The host interfaces Spin gives HTTP components — key-value, SQLite, variables, outbound
//! Redis, MQTT, PostgreSQL and MySQL — implemented for Nebula on wasmtime's component model, so that a component built with the
//! Spin SDK runs unchanged; and the allowed-hosts check every outbound interface shares.
//!
//! | interface | imported by | functions |
//! |---|---|---|
//! | `fermyon:spin/key-value@2.0.0` | spin-sdk 5.x | sync |
//! | `fermyon:spin/sqlite@2.0.0` | spin-sdk 5.x | sync |
//! | `fermyon:spin/variables@2.0.0` | spin-sdk 5.x | sync |
//! | `spin:sqlite/sqlite@3.0.0` | spin-sdk 5.2 | sync; the `@3.1.0` functions, under this name too |
//! | `spin:key-value/key-value@3.0.0` | spin-sdk 7 | `async`; `get-keys` returns a stream and a future |
//! | `spin:sqlite/sqlite@3.1.0` | spin-sdk 7 | sync and `-async` variants; `execute-async` streams rows |
//! | `spin:variables/variables@3.0.0` | spin-sdk 7 | `async` |
//! | `fermyon:spin/redis@2.0.0` | spin-sdk 5.x | sync |
//! | `spin:redis/redis@3.0.0` | spin-sdk 7 | `async` |
//! | `fermyon:spin/mqtt@2.0.0` | spin-sdk 5.x | sync |
//! | `spin:mqtt/mqtt@3.0.0` | spin-sdk 7 | `async` |
//! | `fermyon:spin/postgres@2.0.0` (+ `rdbms-types`) | spin-sdk 5.x (`pg`) | sync |
//! | `spin:postgres/postgres@3.0.0` | spin-sdk 5.2 (`pg3`) | sync |
//! | `spin:postgres/postgres@4.2.0` | spin-sdk 7 (`pg`); also served as `@4.0.0` (spin-sdk 5.2 `pg4`) and `@4.1.0` | sync and `-async` variants; `query-async` streams rows |
//! | `fermyon:spin/mysql@2.0.0` (+ `rdbms-types`) | spin-sdk 5.x (`mysql`) | sync |
//! | `spin:mysql/mysql@3.0.0` | spin-sdk 7 (`mysql`) | `async`; `query` streams rows |
//!
//! The WIT files are Spin's own, copied from the SDK crates into `wit/deps/`.
//!
//! # Units
//!
//! Each interface is a unit of its own, a [`HostUnit`] (after Spin's factors): [`KeyValue`],
//! [`Sqlite`], [`Variables`], [`OutboundRedis`], [`OutboundMqtt`], [`Postgres`], [`Mysql`];
//! outbound HTTP is one too, in the host (it is served through wasmtime-wasi-http). A unit has four steps, each at the level its state lives:
//!
//! 1. [`add_to_linker`](HostUnit::add_to_linker), once per linker: no app is known yet;
//! 2. [`configure_app`](HostUnit::configure_app), once per app: backing files, `[variables]`;
//! 3. [`configure_component`](HostUnit::configure_component), once per component, at load:
//!    what its manifest entry grants, checked, so that a mistake fails the load;
//! 4. [`prepare`](HostUnit::prepare), once per instance: cheap, a few `Arc` clones and an
//!    empty table.
//!
//! and it says how it serves its imports ([`serves`](HostUnit::serves)), which
//! `nebula check` prints. No unit reads another's state or the host's store type, so each
//! is linked, tested and replaced on its own.
//!
//! [`allowed_hosts`] is the one piece outbound interfaces share: which hosts a component may
//! reach, and a connection that checks the addresses a name resolves to.
//!
//! ## Adding a host interface
//!
//! 1. Copy its WIT into `wit/deps/`, import it in `wit/world.wit`'s `host` world and say in
//!    `bindings` below which functions are `async` on the host.
//! 2. Write a module with the unit (the per-app state) and its config, grants, component and
//!    instance types; implement the generated `Host` traits on the instance type and
//!    [`HostUnit`] on the unit. `kv.rs` is the pattern; an outbound one keeps the
//!    component's [`allowed_hosts::AllowedHosts`] and connects through it.
//! 3. Wire it in beside the others. A Spin interface goes into this crate's bundle:
//!    [`ResourceOptions`] and [`SpinResources`] (per app), [`ComponentGrants`] and
//!    [`ComponentUnits`] (per component), [`SpinState`] (per instance), [`add_to_linker`],
//!    and [`ComponentGrants::serves`], which `nebula check` asks; the host fills in the
//!    grants from the manifest (`SpinComponent::spin_grants`, host/src/spin/manifest.rs).
//!    A unit served through another crate is wired by the host itself, as outbound HTTP is
//!    (host/src/spin/outbound.rs; linked, configured and prepared in host/src/spin/http.rs,
//!    asked in host/src/spin/check.rs).
//!
//! # Use
//!
//! Spin's three interfaces together, as the Spin host uses them: link once, configure per
//! app, check each component, prepare per instance.
//!
//! ```no_run
//! use std::collections::{BTreeMap, HashMap};
//! use std::sync::Arc;
//! use nebula_spin_interfaces::*;
//! use wasmtime::component::Linker;
//!
//! struct Host { spin: SpinState /* , wasi, http, … */ }
//! impl SpinView for Host {
//!     fn spin(&mut self) -> &mut SpinState { &mut self.spin }
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! // Once per engine: the engine needs wasmtime's `component-model-async` cargo feature
//! // (on by default with it: `Config::concurrency_support`, `wasm_component_model_async`).
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<Host>::new(&engine);
//! add_to_linker(&mut linker)?;
//!
//! // Once per app: backing files and `[variables]`; fails if a required variable has no value.
//! let mut variables = AppVariables::new();
//! variables.insert("greeting", AppVariable { default: Some("hello".into()), ..Default::default() });
//! let resources = Arc::new(SpinResources::new(ResourceOptions {
//!     key_value: HashMap::from([(
//!         "default".into(),
//!         KvBacking::Sqlite(".nebula/spin/key_value.db".into()),
//!     )]),
//!     sqlite: HashMap::from([("default".into(), ".nebula/spin/sqlite.db".into())]),
//!     variables,
//!     environment: None, // read SPIN_VARIABLE_* from the process environment
//!     max_kv_store_bytes: None, // 64 MiB per store
//! })?);
//!
//! // Once per component: what its manifest grants; fails on a bad variable template.
//! let component = resources.configure_component(&ComponentGrants {
//!     key_value_stores: vec!["default".into()],
//!     sqlite_databases: vec!["default".into()],
//!     variables: BTreeMap::from([("message".into(), "{{ greeting }}, world".into())]),
//!     // What outbound Redis and MQTT (and HTTP, TCP, …) may reach.
//!     allowed_outbound_hosts: vec!["redis://127.0.0.1:6379".into()],
//!     // Its own deadline and memory cap bound a statement's run time and a call's result.
//!     limits: CallLimits::default(),
//! })?;
//!
//! // Per instance (per request): SQLite and key-value calls run on tokio's blocking pool
//! // unless the host gives its own spawner.
//! let host = Host {
//!     spin: SpinState::prepare(&component, &InstanceContext::new(Blocking::tokio())),
//! };
//! # let _ = host; Ok(()) }
//! ```
//!
//! One unit alone, e.g. key-value for a host that offers nothing else:
//!
//! ```no_run
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use nebula_spin_interfaces::*;
//! use wasmtime::component::Linker;
//!
//! struct Host { kv: KeyValueInstance }
//! fn kv(host: &mut Host) -> &mut KeyValueInstance { &mut host.kv }
//!
//! # fn main() -> anyhow::Result<()> {
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<Host>::new(&engine);
//! KeyValue::add_to_linker(&mut linker, kv)?;
//! let app = Arc::new(KeyValue::configure_app(KeyValueConfig {
//!     // Or `KvBacking::Redis { url: "redis://127.0.0.1:6379".into() }`, shared by hosts.
//!     stores: HashMap::from([("default".into(), KvBacking::Sqlite(".nebula/kv.db".into()))]),
//!     max_store_bytes: None,
//! })?);
//! let component = Arc::new(app.configure_component(KeyValueGrants {
//!     stores: vec!["default".into()],
//!     limits: CallLimits::default(),
//! })?);
//! let host = Host { kv: KeyValue::prepare(&component, &InstanceContext::new(Blocking::tokio())) };
//! # let _ = host; Ok(()) }
//! ```
//!
//! # Semantics (as Spin's)
//!
//! - Opening a store or database the component was not granted is `access-denied`, whether
//!   or not it exists; a granted label the host gave no file is `no-such-store` /
//!   `no-such-database`.
//! - Key-value stores live in the `spin_key_value` table of their file, the layout of Spin's
//!   default store; several labels may share a file. A store may live on a Redis server
//!   instead (Spin's layout there: the keys as they are, one keyspace per URL) or in a
//!   PostgreSQL database (table `spin_key_value`, Nebula's own), so that several hosts
//!   serving one app share it; the same operations answer the same there.
//! - Application variables take `SPIN_VARIABLE_<NAME>` from the environment, else their
//!   default, once, when the app is configured ([`Variables::configure_app`]). A component sees only the variables its
//!   manifest declares (`undefined` otherwise); names that break Spin's naming rule are
//!   `invalid-name`.
//! - Results are capped at 128 MiB per call, as in Spin, and at the component's own
//!   [`CallLimits::max_result_bytes`] (its memory cap) when that is smaller; a guest may hold
//!   at most 256 open stores and connections together (`store-table-full`, or an `io` error
//!   for SQLite).
//! - Unlike Spin, a key-value store holds at most [`KeyValueConfig::max_store_bytes`]
//!   (keys and values, 64 MiB by default): a `set` past it fails with `other` and writes
//!   nothing, so one tenant cannot fill the host's disk (SQLite files and PostgreSQL; a
//!   Redis server is bounded by its own `maxmemory`).
//! - Outbound Redis and MQTT reach only what `allowed_outbound_hosts` allows (scheme, host,
//!   port; `redis://`'s default port is 6379, `mqtt://`'s 1883, as in Spin): Redis refuses
//!   with `invalid-address`, MQTT with `connection-failed("address … is not permitted")`,
//!   Spin's own answers. A name is resolved once and an internal address it gives needs an
//!   IP or CIDR entry (or `localhost` written out). Connections are pooled per component
//!   and address and closed after 30 s unused; each call waits at most the component's
//!   deadline, and a Redis reply is capped like any result. `mqtts://` is not served yet.
//!
//! - PostgreSQL and MySQL (module `rdbms`): the guest names the server; the connection
//!   string's host and port must match the component's `allowed_outbound_hosts`
//!   (`postgres://127.0.0.1:5432`, `mysql://db.example.com`, the port defaulting to 5432 /
//!   3306), else `connection-failed` ("address … is not permitted") with no connection
//!   made; a name is resolved once and only permitted addresses are connected to (an
//!   internal one needs an IP or CIDR entry, or `localhost` written out). Types and error
//!   variants are Spin's; each call is bounded by the component's deadline and a query's
//!   rows by its result cap. Connections are pooled per component and connection string,
//!   cleaned before reuse, and closed by the server after 60 s idle. No TLS.
//!
//! # Blocking
//!
//! No SQLite statement runs on the thread that calls the host function: every key-value
//! operation on a SQLite file and SQLite `open`/`execute` is handed to a [`Blocking`] spawner (tokio's
//! blocking pool by default; the host passes one that charges the CPU to the request) and
//! awaited, so an async runtime's worker stays free for other requests while a statement
//! waits on a lock (up to the 5 s busy timeout) or runs. A statement is interrupted at the
//! component's own deadline ([`CallLimits::statement_timeout`]), and at once if the call is
//! abandoned (its future dropped, as when the request's deadline passes).
//!
//! Key-value stores on Redis or PostgreSQL, and outbound PostgreSQL and MySQL, use async
//! drivers (`redis`, `tokio-postgres`, `mysql_async`),
//! which never block the worker: their calls are awaited where they are made, each given at
//! most the component's own deadline, and dropped with the call if it is abandoned.
//!
//! # Isolation
//!
//! A guest's SQLite `connection` is a pooled rusqlite connection of its own, opened on the
//! granted file only, without URI file names. Every `ATTACH` is refused, whatever form its
//! argument takes (a literal, a bound parameter, an expression, a `file:` URI,
//! `':memory:'`), and so are `VACUUM INTO`, `load_extension` and `PRAGMA`s that set anything
//! beyond a short list of per-connection settings; the authorizer denies what it does not
//! know. A plain `VACUUM` still works. Connections that a guest changed (temporary tables,
//! `PRAGMA x = y`) are closed instead of going back to the pool, and an open transaction is
//! rolled back, so nothing per-connection carries over to another request.

pub mod allowed_hosts;
mod blocking;
mod idle_pool;
mod kv;
mod outbound_mqtt;
mod outbound_redis;
mod rdbms;
mod sql_policy;
mod sqlite;
mod unit;
mod variables;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use allowed_hosts::AllowedHosts;
use anyhow::Context as _;
use wasmtime::component::Linker;

pub use blocking::{Blocking, BlockingDone, BlockingJob};
pub use kv::{
    KeyValue, KeyValueComponent, KeyValueConfig, KeyValueGrants, KeyValueInstance, KvBacking,
    KvStore,
};
pub use outbound_mqtt::{
    MqttComponent, MqttConfig, MqttConnection, MqttGrants, MqttInstance, OutboundMqtt, MQTT_IDLE,
};
pub use outbound_redis::{
    OutboundRedis, RedisComponent, RedisConfig, RedisConnection, RedisGrants, RedisInstance,
    REDIS_IDLE,
};
pub use rdbms::mysql::{
    Mysql, MysqlComponent, MysqlConfig, MysqlConnection, MysqlGrants, MysqlInstance,
};
pub use rdbms::postgres::{
    PgConnection, PgConnectionBuilder, Postgres, PostgresComponent, PostgresConfig, PostgresGrants,
    PostgresInstance,
};
pub use sqlite::{
    Sqlite, SqliteComponent, SqliteConfig, SqliteConnection, SqliteGrants, SqliteInstance,
};
pub use unit::{granted_list, interface_of, unsupported_feature, HostUnit, InstanceContext};
pub use variables::{
    env_key as variable_env_key, AppVariable, AppVariables, Variables, VariablesComponent,
    VariablesConfig, VariablesGrants, VariablesInstance,
};

/// Largest result one call returns, as Spin's `MAX_HOST_BUFFERED_BYTES`; a component's own
/// cap ([`CallLimits::max_result_bytes`]) may only lower it.
const MAX_RESULT_BYTES: usize = 128 << 20;

/// Bytes one key-value store may hold (keys and values) when the host sets no quota.
pub const DEFAULT_MAX_KV_STORE_BYTES: u64 = 64 << 20;

/// How long one SQLite statement may run when the host gives the component no deadline.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Open stores and connections one instance may hold at once, all units together.
const MAX_OPEN_HANDLES: usize = 256;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "nebula:spin-host/host",
        // The calls that touch a SQLite file are `async` on the host, even where the WIT
        // function is not, so that they can wait for a blocking thread instead of running on
        // the caller's (see `Blocking`).
        imports: {
            "fermyon:spin/key-value.[method]store.get": async | trappable,
            "fermyon:spin/key-value.[method]store.set": async | trappable,
            "fermyon:spin/key-value.[method]store.delete": async | trappable,
            "fermyon:spin/key-value.[method]store.exists": async | trappable,
            "fermyon:spin/key-value.[method]store.get-keys": async | trappable,
            "fermyon:spin/sqlite.[static]connection.open": async | trappable,
            "fermyon:spin/sqlite.[method]connection.execute": async | trappable,
            "spin:sqlite/sqlite.[static]connection.open": async | trappable,
            "spin:sqlite/sqlite.[method]connection.execute": async | trappable,
            // Network calls: awaited on the async worker, never blocking it.
            "fermyon:spin/redis": async | trappable,
            "fermyon:spin/mqtt": async | trappable,
            // PostgreSQL and MySQL: the WIT-sync functions do network I/O (see rdbms/).
            "fermyon:spin/postgres.[static]connection.open": async | trappable,
            "fermyon:spin/postgres.[method]connection.query": async | trappable,
            "fermyon:spin/postgres.[method]connection.execute": async | trappable,
            "spin:postgres/postgres.[static]connection.open": async | trappable,
            "spin:postgres/postgres.[method]connection.query": async | trappable,
            "spin:postgres/postgres.[method]connection.execute": async | trappable,
            "spin:postgres/postgres.[method]connection-builder.build": async | trappable,
            "fermyon:spin/mysql.[static]connection.open": async | trappable,
            "fermyon:spin/mysql.[method]connection.query": async | trappable,
            "fermyon:spin/mysql.[method]connection.execute": async | trappable,
            default: trappable,
        },
        with: {
            "fermyon:spin/key-value.store": crate::kv::KvStore,
            "spin:key-value/key-value.store": crate::kv::KvStore,
            "fermyon:spin/sqlite.connection": crate::sqlite::SqliteConnection,
            "spin:sqlite/sqlite.connection": crate::sqlite::SqliteConnection,
            "fermyon:spin/redis.connection": crate::outbound_redis::RedisConnection,
            "spin:redis/redis.connection": crate::outbound_redis::RedisConnection,
            "fermyon:spin/mqtt.connection": crate::outbound_mqtt::MqttConnection,
            "spin:mqtt/mqtt.connection": crate::outbound_mqtt::MqttConnection,
            "fermyon:spin/postgres.connection": crate::rdbms::postgres::PgConnection,
            "spin:postgres/postgres.connection": crate::rdbms::postgres::PgConnection,
            "spin:postgres/postgres.connection-builder": crate::rdbms::postgres::PgConnectionBuilder,
            "fermyon:spin/mysql.connection": crate::rdbms::mysql::MysqlConnection,
            "spin:mysql/mysql.connection": crate::rdbms::mysql::MysqlConnection,
        },
    });
}

/// What the host decides per app for Spin's three interfaces: where each label's data
/// lives, and the app's variables. Each unit's part goes to its
/// [`configure_app`](HostUnit::configure_app).
#[derive(Debug, Default)]
pub struct ResourceOptions {
    /// Key-value store label → where it lives: a SQLite file (`PathBuf::into()`), a Redis
    /// server or a PostgreSQL database (`"default"` is the usual label).
    pub key_value: HashMap<String, KvBacking>,
    /// SQLite database label → database file.
    pub sqlite: HashMap<String, PathBuf>,
    /// The manifest's `[variables]`.
    pub variables: AppVariables,
    /// Where `SPIN_VARIABLE_*` overrides are read: `None` for the process environment, or a
    /// fixed map (for tests, or a host that reads a `.env` file itself).
    pub environment: Option<HashMap<String, String>>,
    /// Bytes one key-value store may hold, keys and values together; a `set` that would go
    /// past it fails and writes nothing. `None` means [`DEFAULT_MAX_KV_STORE_BYTES`].
    pub max_kv_store_bytes: Option<u64>,
}

/// Spin's three units configured for one app; shared by every component and instance.
pub struct SpinResources {
    key_value: Arc<KeyValue>,
    sqlite: Arc<Sqlite>,
    variables: Arc<Variables>,
    redis: Arc<OutboundRedis>,
    mqtt: Arc<OutboundMqtt>,
    postgres: Arc<Postgres>,
    mysql: Arc<Mysql>,
}

impl SpinResources {
    /// Configures each unit for the app: resolves the app's variables and prepares the
    /// backing files' folders. Files are created when a component first opens them.
    ///
    /// Fails if an application variable has no value (required, and no `SPIN_VARIABLE_*` is
    /// set), has an invalid name, or is both required and defaulted; the message names it.
    pub fn new(opts: ResourceOptions) -> anyhow::Result<Self> {
        // Variables first, so that a manifest's variable problem is the one reported.
        let variables = Variables::configure_app(VariablesConfig {
            variables: opts.variables,
            environment: opts.environment,
        })?;
        let key_value = KeyValue::configure_app(KeyValueConfig {
            stores: opts.key_value,
            max_store_bytes: opts.max_kv_store_bytes,
        })?;
        let sqlite = Sqlite::configure_app(SqliteConfig {
            databases: opts.sqlite,
        })?;
        Ok(Self {
            key_value: Arc::new(key_value),
            sqlite: Arc::new(sqlite),
            variables: Arc::new(variables),
            redis: Arc::new(OutboundRedis::configure_app(RedisConfig::default())?),
            mqtt: Arc::new(OutboundMqtt::configure_app(MqttConfig::default())?),
            postgres: Arc::new(Postgres::configure_app(PostgresConfig::default())?),
            mysql: Arc::new(Mysql::configure_app(MysqlConfig::default())?),
        })
    }

    /// Configures each unit for one component, checking its grants: its variable templates
    /// must parse and name only application variables. Labels of stores and databases
    /// without a file are not an error here; opening them answers `no-such-store` /
    /// `no-such-database`.
    pub fn configure_component(&self, grants: &ComponentGrants) -> anyhow::Result<ComponentUnits> {
        let allowed_hosts = Arc::new(self.allowed_hosts(grants)?);
        Ok(ComponentUnits {
            redis: Arc::new(
                self.redis
                    .configure_component(grants.redis_grants(allowed_hosts.clone()))?,
            ),
            mqtt: Arc::new(
                self.mqtt
                    .configure_component(grants.mqtt_grants(allowed_hosts.clone()))?,
            ),
            postgres: Arc::new(
                self.postgres
                    .configure_component(grants.postgres_grants(allowed_hosts.clone()))?,
            ),
            mysql: Arc::new(
                self.mysql
                    .configure_component(grants.mysql_grants(allowed_hosts.clone()))?,
            ),
            allowed_hosts,
            key_value: Arc::new(
                self.key_value
                    .configure_component(grants.key_value_grants())?,
            ),
            sqlite: Arc::new(self.sqlite.configure_component(grants.sqlite_grants())?),
            variables: Arc::new(
                self.variables
                    .configure_component(grants.variables_grants())?,
            ),
        })
    }

    /// Only checks a component against the app (see [`Self::configure_component`]).
    pub fn check_component(&self, grants: &ComponentGrants) -> anyhow::Result<()> {
        self.variables.check(&grants.variables_grants())?;
        self.allowed_hosts(grants).map(drop)
    }

    /// The component's `allowed_outbound_hosts`, each entry rendered over the application
    /// variables and parsed. Fails naming the entry that is not a valid pattern or names a
    /// variable the app does not have.
    pub fn allowed_hosts(&self, grants: &ComponentGrants) -> anyhow::Result<AllowedHosts> {
        AllowedHosts::parse(&self.render_allowed_hosts(grants)?)
    }

    /// The component's `allowed_outbound_hosts` entries rendered over the application
    /// variables, for a unit served by another crate (outbound HTTP).
    pub fn render_allowed_hosts(&self, grants: &ComponentGrants) -> anyhow::Result<Vec<String>> {
        grants
            .allowed_outbound_hosts
            .iter()
            .map(|entry| {
                self.variables
                    .render(entry)
                    .with_context(|| format!("allowed_outbound_hosts entry {entry:?}"))
            })
            .collect()
    }

    /// Renders a template over the application variables, e.g. `"https://{{ host }}"`; for
    /// the manifest fields where Spin allows them, such as `allowed_outbound_hosts`.
    pub fn resolve_template(&self, template: &str) -> anyhow::Result<String> {
        self.variables.render(template)
    }

    /// The key-value unit, for a host that wires the units itself.
    pub fn key_value(&self) -> &Arc<KeyValue> {
        &self.key_value
    }

    /// The SQLite unit, for a host that wires the units itself.
    pub fn sqlite(&self) -> &Arc<Sqlite> {
        &self.sqlite
    }

    /// The variables unit, for a host that wires the units itself.
    pub fn variables(&self) -> &Arc<Variables> {
        &self.variables
    }
}

/// Makes the path absolute (so that two spellings of one file share a connection) and
/// creates its folder, so that a folder that cannot be created fails the load.
pub(crate) fn prepare_path(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    let path = std::path::absolute(path)
        .with_context(|| format!("cannot resolve the path {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    Ok(path)
}

/// What one component's manifest entry grants it, for Spin's three units.
#[derive(Clone, Debug, Default)]
pub struct ComponentGrants {
    /// `key_value_stores = [...]`
    pub key_value_stores: Vec<String>,
    /// `sqlite_databases = [...]`
    pub sqlite_databases: Vec<String>,
    /// `[component.<id>.variables]`: name → template such as `"{{ greeting }}"`.
    pub variables: BTreeMap<String, String>,
    /// `allowed_outbound_hosts = [...]` as written: entries may hold templates over the
    /// application variables (`"redis://{{ host }}:6379"`), rendered in
    /// [`SpinResources::configure_component`]. Every outbound unit (TCP, Redis,
    /// PostgreSQL, MySQL, MQTT) checks its connections against the one parsed list.
    pub allowed_outbound_hosts: Vec<String>,
    /// What one call of this component may take.
    pub limits: CallLimits,
}

impl ComponentGrants {
    /// The key-value unit's part.
    pub fn key_value_grants(&self) -> KeyValueGrants {
        KeyValueGrants {
            stores: self.key_value_stores.clone(),
            limits: self.limits,
        }
    }

    /// The SQLite unit's part.
    pub fn sqlite_grants(&self) -> SqliteGrants {
        SqliteGrants {
            databases: self.sqlite_databases.clone(),
            limits: self.limits,
        }
    }

    /// The variables unit's part.
    pub fn variables_grants(&self) -> VariablesGrants {
        VariablesGrants {
            templates: self.variables.clone(),
        }
    }

    /// The outbound Redis unit's part; `allowed_hosts` is
    /// [`ComponentUnits::allowed_hosts`].
    pub fn redis_grants(&self, allowed_hosts: Arc<AllowedHosts>) -> RedisGrants {
        RedisGrants {
            allowed_outbound_hosts: self.allowed_outbound_hosts.clone(),
            allowed_hosts,
            limits: self.limits,
        }
    }

    /// The outbound MQTT unit's part; `allowed_hosts` is [`ComponentUnits::allowed_hosts`].
    pub fn mqtt_grants(&self, allowed_hosts: Arc<AllowedHosts>) -> MqttGrants {
        MqttGrants {
            allowed_outbound_hosts: self.allowed_outbound_hosts.clone(),
            allowed_hosts,
            limits: self.limits,
        }
    }

    /// The PostgreSQL unit's part; `allowed_hosts` is the rendered, parsed
    /// `allowed_outbound_hosts` ([`SpinResources::allowed_hosts`]).
    pub fn postgres_grants(&self, allowed_hosts: Arc<AllowedHosts>) -> PostgresGrants {
        PostgresGrants {
            allowed_outbound_hosts: self.allowed_outbound_hosts.clone(),
            allowed_hosts,
            limits: self.limits,
        }
    }

    /// The MySQL unit's part, as [`Self::postgres_grants`].
    pub fn mysql_grants(&self, allowed_hosts: Arc<AllowedHosts>) -> MysqlGrants {
        MysqlGrants {
            allowed_outbound_hosts: self.allowed_outbound_hosts.clone(),
            allowed_hosts,
            limits: self.limits,
        }
    }

    /// How one of the units serves `import` to this component (for `nebula check`),
    /// or `None` if it is none of theirs.
    pub fn serves(&self, import: &str) -> Option<String> {
        KeyValue::serves(import, &self.key_value_grants())
            .or_else(|| Sqlite::serves(import, &self.sqlite_grants()))
            .or_else(|| Variables::serves(import, &self.variables_grants()))
            .or_else(|| OutboundRedis::serves(import, &self.redis_grants(Default::default())))
            .or_else(|| OutboundMqtt::serves(import, &self.mqtt_grants(Default::default())))
            .or_else(|| Postgres::serves(import, &self.postgres_grants(Default::default())))
            .or_else(|| Mysql::serves(import, &self.mysql_grants(Default::default())))
    }
}

/// One component configured in Spin's three units; cloned into each instance.
#[derive(Clone)]
pub struct ComponentUnits {
    /// Its `allowed_outbound_hosts`, rendered and parsed: what every outbound unit checks.
    pub allowed_hosts: Arc<AllowedHosts>,
    pub key_value: Arc<KeyValueComponent>,
    pub sqlite: Arc<SqliteComponent>,
    pub variables: Arc<VariablesComponent>,
    pub redis: Arc<RedisComponent>,
    pub mqtt: Arc<MqttComponent>,
    pub postgres: Arc<PostgresComponent>,
    pub mysql: Arc<MysqlComponent>,
}

/// One component's bounds on its SQLite and key-value calls, from its own limits.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// Longest one SQLite statement may run before it is interrupted and fails with an `io`
    /// error: the component's own deadline (default [`DEFAULT_STATEMENT_TIMEOUT`]).
    pub statement_timeout: Duration,
    /// Largest result (rows, a value, the list of keys) one call returns: the component's
    /// memory cap, since the result must fit in its memory. Never more than 128 MiB, which
    /// is also the default.
    pub max_result_bytes: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            max_result_bytes: MAX_RESULT_BYTES,
        }
    }
}

impl CallLimits {
    /// The result cap in force: the component's, within Spin's 128 MiB.
    pub(crate) fn result_cap(&self) -> usize {
        self.max_result_bytes.min(MAX_RESULT_BYTES)
    }
}

/// Per-instance state of Spin's three units: the stores and connections the guest has open.
///
/// Dropping it (with the instance's store) closes them and returns SQLite connections to
/// their pool.
pub struct SpinState {
    pub key_value: KeyValueInstance,
    pub sqlite: SqliteInstance,
    pub variables: VariablesInstance,
    pub redis: RedisInstance,
    pub mqtt: MqttInstance,
    pub postgres: PostgresInstance,
    pub mysql: MysqlInstance,
}

impl SpinState {
    /// One instance of `component`.
    pub fn prepare(component: &ComponentUnits, instance: &InstanceContext) -> Self {
        Self {
            key_value: KeyValue::prepare(&component.key_value, instance),
            sqlite: Sqlite::prepare(&component.sqlite, instance),
            variables: Variables::prepare(&component.variables, instance),
            redis: OutboundRedis::prepare(&component.redis, instance),
            mqtt: OutboundMqtt::prepare(&component.mqtt, instance),
            postgres: Postgres::prepare(&component.postgres, instance),
            mysql: Mysql::prepare(&component.mysql, instance),
        }
    }

    /// One instance of a component configured on the spot, its grants unchecked (a bad
    /// variable template answers `other` when read), its work on tokio's blocking pool: for
    /// tests and hosts that check grants on their own. A host that serves many requests
    /// configures each component once ([`SpinResources::configure_component`]) and uses
    /// [`SpinState::prepare`].
    pub fn new(resources: Arc<SpinResources>, grants: Arc<ComponentGrants>) -> Self {
        let allowed_hosts = Arc::new(resources.allowed_hosts(&grants).unwrap_or_default());
        let component = ComponentUnits {
            redis: Arc::new(RedisComponent::new(
                grants.redis_grants(allowed_hosts.clone()),
                resources.redis.idle(),
            )),
            mqtt: Arc::new(MqttComponent::new(
                grants.mqtt_grants(allowed_hosts.clone()),
                resources.mqtt.idle(),
            )),
            postgres: Arc::new(PostgresComponent::new(
                grants.postgres_grants(allowed_hosts.clone()),
            )),
            mysql: Arc::new(MysqlComponent::new(
                grants.mysql_grants(allowed_hosts.clone()),
            )),
            allowed_hosts,
            key_value: Arc::new(KeyValueComponent::new(
                resources.key_value.clone(),
                grants.key_value_grants(),
            )),
            sqlite: Arc::new(SqliteComponent::new(
                resources.sqlite.clone(),
                grants.sqlite_grants(),
            )),
            variables: Arc::new(VariablesComponent::unchecked(
                resources.variables.clone(),
                grants.variables_grants(),
            )),
        };
        Self::prepare(&component, &InstanceContext::new(Blocking::tokio()))
    }

    /// Runs this instance's SQLite and key-value work with `blocking` instead of tokio's
    /// blocking pool: per instance, so that a host can charge the work to the request the
    /// instance is serving.
    pub fn with_blocking(mut self, blocking: Blocking) -> Self {
        self.key_value.set_blocking(blocking.clone());
        self.sqlite.set_blocking(blocking);
        self
    }
}

#[cfg(test)]
impl SpinState {
    /// Stores and connections the instance holds, all units together.
    fn open_handles(&self) -> usize {
        self.key_value.open_handles()
    }
}

/// Implemented by the host's store data to give Spin's three units their state.
pub trait SpinView: Send {
    fn spin(&mut self) -> &mut SpinState;
}

/// Adds every interface in the table at the top of this page to `linker`: each of Spin's
/// three units, with its state found through [`SpinView`].
///
/// The `@3.x` interfaces have `async` functions, streams and futures: the engine must be
/// built with wasmtime's `component-model-async` cargo feature, which this crate turns on;
/// with it `Config::concurrency_support` and `Config::wasm_component_model_async` default to
/// on (do not turn them off for engines that run Spin components). Components using them are
/// called as usual (`call_async`, or `run_concurrent` for `wasi:http@0.3`); a guest that
/// lowers these imports synchronously simply blocks until they return.
pub fn add_to_linker<T: SpinView + 'static>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    fn key_value<T: SpinView>(host: &mut T) -> &mut KeyValueInstance {
        &mut host.spin().key_value
    }
    fn sqlite<T: SpinView>(host: &mut T) -> &mut SqliteInstance {
        &mut host.spin().sqlite
    }
    fn variables<T: SpinView>(host: &mut T) -> &mut VariablesInstance {
        &mut host.spin().variables
    }
    fn redis<T: SpinView>(host: &mut T) -> &mut RedisInstance {
        &mut host.spin().redis
    }
    fn mqtt<T: SpinView>(host: &mut T) -> &mut MqttInstance {
        &mut host.spin().mqtt
    }
    fn postgres<T: SpinView>(host: &mut T) -> &mut PostgresInstance {
        &mut host.spin().postgres
    }
    fn mysql<T: SpinView>(host: &mut T) -> &mut MysqlInstance {
        &mut host.spin().mysql
    }
    KeyValue::add_to_linker(linker, key_value::<T>)?;
    Sqlite::add_to_linker(linker, sqlite::<T>)?;
    Variables::add_to_linker(linker, variables::<T>)?;
    OutboundRedis::add_to_linker(linker, redis::<T>)?;
    OutboundMqtt::add_to_linker(linker, mqtt::<T>)?;
    Postgres::add_to_linker(linker, postgres::<T>)?;
    Mysql::add_to_linker(linker, mysql::<T>)?;
    Ok(())
}

#[cfg(test)]
mod tests;
