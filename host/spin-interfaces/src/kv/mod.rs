//! Spin key-value: `fermyon:spin/key-value@2.0.0` and `spin:key-value/key-value@3.0.0`.
//!
//! This module is the WIT-facing unit: grants, handles, the two interface versions. Where a
//! store's data lives is a [`backend::KvBackend`] per label, chosen by the host's
//! [`KvBacking`]: a local SQLite file ([`sqlite`], Spin's default), a Redis server
//! ([`redis`], as Spin's `type = "redis"`) or a PostgreSQL database ([`postgres`], a
//! Nebula extension). The last two are shared: several hosts serving one app see the same
//! stores.

mod backend;
mod postgres;
mod redis;
mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{
    Accessor, FutureReader, HasData, HasSelf, Linker, Resource, ResourceTable, StreamReader,
};

use crate::bindings::fermyon::spin::key_value as v2;
use crate::bindings::spin::key_value::key_value as v3;
use crate::unit::{granted_list, interface_of, InstanceContext, OpenHandles};
use crate::{prepare_path, Blocking, CallLimits, HostUnit, DEFAULT_MAX_KV_STORE_BYTES};
pub use backend::KvBacking;
use backend::{Call, KvBackend, KvError, KvResult};

/// The interfaces this unit serves, without their versions.
const INTERFACES: [&str; 2] = ["fermyon:spin/key-value", "spin:key-value/key-value"];

/// The key-value unit, configured for one app: the backend behind each store label.
pub struct KeyValue {
    stores: HashMap<String, Arc<dyn KvBackend>>,
}

/// What the app gives the key-value unit.
#[derive(Debug, Default)]
pub struct KeyValueConfig {
    /// Store label → where it lives (`"default"` is the usual one).
    pub stores: HashMap<String, KvBacking>,
    /// Bytes one store may hold, keys and values together; a `set` that would go past it
    /// fails and writes nothing. `None` means [`DEFAULT_MAX_KV_STORE_BYTES`]. Kept for
    /// SQLite files and PostgreSQL; a Redis server is bounded by its own `maxmemory`.
    pub max_store_bytes: Option<u64>,
}

/// What one component may use.
#[derive(Clone, Debug, Default)]
pub struct KeyValueGrants {
    /// `key_value_stores = [...]`
    pub stores: Vec<String>,
    /// Its result cap bounds what one call returns.
    pub limits: CallLimits,
}

/// One component's grants over the app's stores.
pub struct KeyValueComponent {
    unit: Arc<KeyValue>,
    stores: Vec<String>,
    max_result_bytes: usize,
    /// The component's deadline, which bounds a call to a networked store.
    timeout: Duration,
}

impl KeyValueComponent {
    pub(crate) fn new(unit: Arc<KeyValue>, grants: KeyValueGrants) -> Self {
        Self {
            unit,
            stores: grants.stores,
            max_result_bytes: grants.limits.result_cap(),
            timeout: grants.limits.statement_timeout,
        }
    }
}

/// One instance's open stores.
pub struct KeyValueInstance {
    component: Arc<KeyValueComponent>,
    /// A table of the unit's own: no other interface shares its handles.
    table: ResourceTable,
    handles: OpenHandles,
    blocking: Blocking,
}

impl KeyValueInstance {
    /// Runs this instance's work with `blocking` from now on.
    pub(crate) fn set_blocking(&mut self, blocking: Blocking) {
        self.blocking = blocking;
    }

    /// Stores and connections the instance holds, all units together.
    #[cfg(test)]
    pub(crate) fn open_handles(&self) -> usize {
        self.handles.count()
    }
}

impl HostUnit for KeyValue {
    type AppConfig = KeyValueConfig;
    type Grants = KeyValueGrants;
    type Component = KeyValueComponent;
    type Instance = KeyValueInstance;
    type Data = HasSelf<KeyValueInstance>;

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <Self::Data as HasData>::Data<'_>,
    ) -> anyhow::Result<()> {
        v2::add_to_linker::<T, Self::Data>(linker, get)?;
        v3::add_to_linker::<T, Self::Data>(linker, get)?;
        Ok(())
    }

    /// Prepares the stores' folders and checks the servers' URLs; files are created, and
    /// servers connected, when a component first uses them.
    fn configure_app(config: KeyValueConfig) -> anyhow::Result<Self> {
        let quota = config.max_store_bytes.unwrap_or(DEFAULT_MAX_KV_STORE_BYTES);
        // Labels given the same file share one connection, so they never contend for the
        // file's write lock against each other; labels given one server share its
        // connection or pool.
        let mut shared: HashMap<KvBacking, Arc<dyn KvBackend>> = HashMap::new();
        let mut stores = HashMap::new();
        for (label, backing) in config.stores {
            let backing = match backing {
                KvBacking::Sqlite(path) => KvBacking::Sqlite(
                    prepare_path(&path).with_context(|| format!("key-value store {label:?}"))?,
                ),
                other => other,
            };
            let backend = match shared.get(&backing) {
                Some(b) => b.clone(),
                None => {
                    let b = open_backend(&backing, quota)
                        .with_context(|| format!("key-value store {label:?}"))?;
                    shared.insert(backing, b.clone());
                    b
                }
            };
            stores.insert(label, backend);
        }
        Ok(Self { stores })
    }

    /// Never fails: a granted label without a backing answers `no-such-store` when opened, as
    /// in Spin.
    fn configure_component(
        self: &Arc<Self>,
        grants: KeyValueGrants,
    ) -> anyhow::Result<KeyValueComponent> {
        Ok(KeyValueComponent::new(self.clone(), grants))
    }

    fn prepare(component: &Arc<KeyValueComponent>, instance: &InstanceContext) -> KeyValueInstance {
        KeyValueInstance {
            component: component.clone(),
            table: ResourceTable::new(),
            handles: instance.handles.clone(),
            blocking: instance.blocking.clone(),
        }
    }

    fn serves(import: &str, grants: &KeyValueGrants) -> Option<String> {
        INTERFACES
            .contains(&interface_of(import))
            .then(|| format!("stores: {}", granted_list(&grants.stores)))
    }
}

/// The backend for one backing.
fn open_backend(backing: &KvBacking, quota: u64) -> anyhow::Result<Arc<dyn KvBackend>> {
    Ok(match backing {
        KvBacking::Sqlite(path) => Arc::new(sqlite::SqliteBackend(Arc::new(sqlite::KvFile::new(
            path.clone(),
            quota,
        )))),
        KvBacking::Redis { url } => Arc::new(redis::RedisBackend::new(url)?),
        KvBacking::Postgres { url } => Arc::new(postgres::PostgresBackend::new(url, quota)?),
    })
}

/// A guest's open store: the resource behind both versions' `store`.
pub struct KvStore {
    backend: Arc<dyn KvBackend>,
    label: String,
    /// The component's bounds on a call.
    max_result_bytes: usize,
    timeout: Duration,
}

/// One operation on a store.
enum Op {
    Get(String),
    Set(String, Vec<u8>),
    Delete(String),
    Exists(String),
    Keys,
}

/// What an [`Op`] returns.
enum Out {
    Value(Option<Vec<u8>>),
    Done,
    Exists(bool),
    Keys(Vec<String>),
}

impl KvStore {
    /// Runs `op` on the store's backend; blocking work goes to `blocking`.
    async fn run(&self, blocking: &Blocking, op: Op) -> KvResult<Out> {
        let call = Call {
            blocking: blocking.clone(),
            max_result_bytes: self.max_result_bytes,
            timeout: self.timeout,
        };
        let (b, label) = (&self.backend, self.label.as_str());
        Ok(match op {
            Op::Get(key) => b.get(&call, label, &key).await?.map(Out::Value),
            Op::Set(key, value) => b.set(&call, label, &key, value).await?.map(|()| Out::Done),
            Op::Delete(key) => b.delete(&call, label, &key).await?.map(|()| Out::Done),
            Op::Exists(key) => b.exists(&call, label, &key).await?.map(Out::Exists),
            Op::Keys => b.keys(&call, label).await?.map(Out::Keys),
        })
    }

    /// The same store for a v3 call, which runs after letting go of the instance's data.
    fn share(&self) -> KvStore {
        KvStore {
            backend: self.backend.clone(),
            label: self.label.clone(),
            max_result_bytes: self.max_result_bytes,
            timeout: self.timeout,
        }
    }
}

impl KeyValueInstance {
    /// Spin's order of checks: a label the component was not granted is `access-denied`
    /// whether or not it exists; a granted one the host did not back is `no-such-store`.
    pub(crate) fn kv_open(&mut self, label: &str) -> Result<KvStore, KvError> {
        let component = &self.component;
        if !component.stores.iter().any(|l| l == label) {
            return Err(KvError::AccessDenied);
        }
        let backend = component
            .unit
            .stores
            .get(label)
            .ok_or(KvError::NoSuchStore)?
            .clone();
        if self.handles.full() {
            return Err(KvError::StoreTableFull);
        }
        Ok(KvStore {
            backend,
            label: label.to_string(),
            max_result_bytes: component.max_result_bytes,
            timeout: component.timeout,
        })
    }

    fn kv_push(&mut self, store: KvStore) -> wasmtime::Result<Resource<KvStore>> {
        let res = self.table.push(store)?;
        self.handles.opened();
        Ok(res)
    }

    fn kv_store(&self, res: &Resource<KvStore>) -> wasmtime::Result<&KvStore> {
        Ok(self.table.get(res)?)
    }

    fn kv_drop(&mut self, res: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(res)?;
        self.handles.closed();
        Ok(())
    }
}

impl From<KvError> for v2::Error {
    fn from(err: KvError) -> Self {
        match err {
            KvError::StoreTableFull => Self::StoreTableFull,
            KvError::NoSuchStore => Self::NoSuchStore,
            KvError::AccessDenied => Self::AccessDenied,
            KvError::Other(msg) => Self::Other(msg),
        }
    }
}

impl From<KvError> for v3::Error {
    fn from(err: KvError) -> Self {
        match err {
            KvError::StoreTableFull => Self::StoreTableFull,
            KvError::NoSuchStore => Self::NoSuchStore,
            KvError::AccessDenied => Self::AccessDenied,
            KvError::Other(msg) => Self::Other(msg),
        }
    }
}

type V2Result<T> = wasmtime::Result<Result<T, v2::Error>>;

impl v2::Host for KeyValueInstance {}

impl v2::HostStore for KeyValueInstance {
    fn open(&mut self, label: String) -> V2Result<Resource<KvStore>> {
        match self.kv_open(&label) {
            Ok(store) => Ok(Ok(self.kv_push(store)?)),
            Err(err) => Ok(Err(err.into())),
        }
    }

    async fn get(&mut self, store: Resource<KvStore>, key: String) -> V2Result<Option<Vec<u8>>> {
        Ok(self.kv_run(&store, Op::Get(key)).await?.map(Out::value))
    }

    async fn set(&mut self, store: Resource<KvStore>, key: String, value: Vec<u8>) -> V2Result<()> {
        Ok(self.kv_run(&store, Op::Set(key, value)).await?.map(drop))
    }

    async fn delete(&mut self, store: Resource<KvStore>, key: String) -> V2Result<()> {
        Ok(self.kv_run(&store, Op::Delete(key)).await?.map(drop))
    }

    async fn exists(&mut self, store: Resource<KvStore>, key: String) -> V2Result<bool> {
        Ok(self.kv_run(&store, Op::Exists(key)).await?.map(Out::exists))
    }

    async fn get_keys(&mut self, store: Resource<KvStore>) -> V2Result<Vec<String>> {
        Ok(self.kv_run(&store, Op::Keys).await?.map(Out::keys))
    }

    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.kv_drop(store)
    }
}

impl KeyValueInstance {
    /// Runs `op`, for the v2 functions (which hold the store's data while they wait, as a
    /// synchronous WIT function does).
    async fn kv_run<E: From<KvError>>(
        &mut self,
        store: &Resource<KvStore>,
        op: Op,
    ) -> wasmtime::Result<Result<Out, E>> {
        let blocking = self.blocking.clone();
        let store = self.kv_store(store)?;
        Ok(store.run(&blocking, op).await?.map_err(Into::into))
    }
}

/// The v3 functions let go of the store's data while the operation runs, so the guest's
/// other tasks go on meanwhile.
async fn kv_run3<T: Send>(
    accessor: &Accessor<T, HasSelf<KeyValueInstance>>,
    store: &Resource<KvStore>,
    op: Op,
) -> wasmtime::Result<Result<Out, v3::Error>> {
    let (store, blocking) = accessor.with(|mut access| {
        let state = access.get();
        let s = state.kv_store(store)?;
        Ok::<_, wasmtime::Error>((s.share(), state.blocking.clone()))
    })?;
    Ok(store.run(&blocking, op).await?.map_err(Into::into))
}

impl Out {
    fn value(self) -> Option<Vec<u8>> {
        match self {
            Out::Value(v) => v,
            _ => unreachable!("a get returns a value"),
        }
    }

    fn exists(self) -> bool {
        match self {
            Out::Exists(b) => b,
            _ => unreachable!("an exists returns a bool"),
        }
    }

    fn keys(self) -> Vec<String> {
        match self {
            Out::Keys(k) => k,
            _ => unreachable!("a get-keys returns keys"),
        }
    }
}

type V3Result<T> = wasmtime::Result<Result<T, v3::Error>>;

impl v3::Host for KeyValueInstance {}

impl v3::HostStore for KeyValueInstance {
    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.kv_drop(store)
    }
}

/// The 3.0 functions are `async` in WIT: each awaits its backend without the store's data.
impl<T: Send> v3::HostStoreWithStore<T> for HasSelf<KeyValueInstance> {
    async fn open(accessor: &Accessor<T, Self>, label: String) -> V3Result<Resource<KvStore>> {
        accessor.with(|mut access| {
            let state = access.get();
            match state.kv_open(&label) {
                Ok(store) => Ok(Ok(state.kv_push(store)?)),
                Err(err) => Ok(Err(err.into())),
            }
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> V3Result<Option<Vec<u8>>> {
        Ok(kv_run3(accessor, &store, Op::Get(key))
            .await?
            .map(Out::value))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> V3Result<()> {
        Ok(kv_run3(accessor, &store, Op::Set(key, value))
            .await?
            .map(drop))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> V3Result<()> {
        Ok(kv_run3(accessor, &store, Op::Delete(key)).await?.map(drop))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> V3Result<bool> {
        Ok(kv_run3(accessor, &store, Op::Exists(key))
            .await?
            .map(Out::exists))
    }

    /// The keys are read in one statement and handed to the stream as one buffer; errors
    /// arrive through the future, with an empty stream, as the WIT's shape implies.
    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), v3::Error>>)> {
        let (keys, outcome) = match kv_run3(accessor, &store, Op::Keys).await? {
            Ok(out) => (out.keys(), Ok(())),
            Err(err) => (Vec::new(), Err(err)),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let future =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )?;
            Ok((stream, future))
        })
    }
}
