//! The same key-value semantics on every backend, through the unit's WIT functions: a local
//! SQLite file, and the servers on this machine (Redis on 127.0.0.1:6379, PostgreSQL on
//! 127.0.0.1:5432 as `postgres` with trust auth). Each server test keeps to its own keys
//! (a unique prefix on Redis, whose keys are Spin's raw layout) or its own database
//! (PostgreSQL, created and dropped here).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Resource;

use super::*;
use crate::bindings::fermyon::spin::key_value::HostStore as _;
use crate::InstanceContext;

const REDIS: &str = "redis://127.0.0.1:6379";
const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// Unique within this machine's runs: the process id, the time and a counter.
fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One app's key-value unit, as a host configures it; two of them on one server are two
/// nodes.
fn unit(stores: &[(&str, KvBacking)], quota: Option<u64>) -> Arc<KeyValue> {
    Arc::new(
        KeyValue::configure_app(KeyValueConfig {
            stores: stores
                .iter()
                .map(|(l, b)| (l.to_string(), b.clone()))
                .collect::<HashMap<_, _>>(),
            max_store_bytes: quota,
        })
        .unwrap(),
    )
}

fn instance(unit: &Arc<KeyValue>, stores: &[&str], limits: CallLimits) -> KeyValueInstance {
    let component = unit
        .configure_component(KeyValueGrants {
            stores: stores.iter().map(|s| s.to_string()).collect(),
            limits,
        })
        .unwrap();
    KeyValue::prepare(
        &Arc::new(component),
        &InstanceContext::new(Blocking::tokio()),
    )
}

/// A handle on `label`, opened; borrowed for each call as the guest's would be.
struct Open {
    kv: KeyValueInstance,
    rep: u32,
}

impl Open {
    fn new(unit: &Arc<KeyValue>, label: &str, limits: CallLimits) -> Self {
        let mut kv = instance(unit, &[label], limits);
        let store = kv.open(label.into()).unwrap().unwrap();
        Self {
            rep: store.rep(),
            kv,
        }
    }

    fn at(unit: &Arc<KeyValue>, label: &str) -> Self {
        Self::new(unit, label, CallLimits::default())
    }

    fn b(&self) -> Resource<KvStore> {
        Resource::new_borrow(self.rep)
    }

    async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let b = self.b();
        self.kv.get(b, key.into()).await.unwrap().map_err(debug)
    }

    async fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        let b = self.b();
        self.kv
            .set(b, key.into(), value.to_vec())
            .await
            .unwrap()
            .map_err(debug)
    }

    async fn delete(&mut self, key: &str) -> Result<(), String> {
        let b = self.b();
        self.kv.delete(b, key.into()).await.unwrap().map_err(debug)
    }

    async fn exists(&mut self, key: &str) -> Result<bool, String> {
        let b = self.b();
        self.kv.exists(b, key.into()).await.unwrap().map_err(debug)
    }

    /// The store's keys that start with `prefix`, sorted.
    async fn keys(&mut self, prefix: &str) -> Result<Vec<String>, String> {
        let b = self.b();
        let mut keys: Vec<String> = self
            .kv
            .get_keys(b)
            .await
            .unwrap()
            .map_err(debug)?
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// The guest's error, comparable in asserts.
fn debug(err: v2::Error) -> String {
    format!("{err:?}")
}

fn is_other(r: Result<impl std::fmt::Debug, String>, needle: &str) {
    match r {
        Err(msg) if msg.contains("Other") => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected other({needle:?}), got {other:?}"),
    }
}

/// get/set/delete/exists/get-keys, the result cap, and that a second unit on the same
/// backing (another node) sees the first one's writes.
async fn same_semantics(backing: KvBacking, p: &str) {
    let node_a = unit(&[("default", backing.clone())], None);
    let node_b = unit(&[("default", backing)], None);
    let mut a = Open::at(&node_a, "default");
    let mut b = Open::at(&node_b, "default");
    let k = |name: &str| format!("{p}{name}");

    assert_eq!(a.get(&k("missing")).await, Ok(None));
    assert_eq!(a.exists(&k("a")).await, Ok(false));
    a.set(&k("a"), b"one").await.unwrap();
    a.set(&k("b"), b"").await.unwrap();
    a.set(&k("a"), b"uno").await.unwrap();
    assert_eq!(a.get(&k("a")).await, Ok(Some(b"uno".to_vec())));
    assert_eq!(
        a.get(&k("b")).await,
        Ok(Some(vec![])),
        "an empty value is kept"
    );
    assert_eq!(a.exists(&k("a")).await, Ok(true));
    assert_eq!(a.keys(p).await, Ok(vec![k("a"), k("b")]));

    // The other node sees the writes, and its own are seen back.
    assert_eq!(b.get(&k("a")).await, Ok(Some(b"uno".to_vec())));
    b.set(&k("c"), &[0, 255, 1]).await.unwrap();
    assert_eq!(a.get(&k("c")).await, Ok(Some(vec![0, 255, 1])));

    a.delete(&k("a")).await.unwrap();
    a.delete(&k("a")).await.unwrap();
    assert_eq!(b.get(&k("a")).await, Ok(None));
    assert_eq!(b.exists(&k("a")).await, Ok(false));
    assert_eq!(b.keys(p).await, Ok(vec![k("b"), k("c")]));

    // A value or a list of keys larger than the component may receive is refused.
    let small = CallLimits {
        max_result_bytes: 64,
        ..Default::default()
    };
    let mut capped = Open::new(&node_a, "default", small);
    a.set(&k("big"), &[7; 100]).await.unwrap();
    is_other(capped.get(&k("big")).await, "larger than this component");
    assert_eq!(capped.get(&k("c")).await, Ok(Some(vec![0, 255, 1])));
    is_other(capped.keys(p).await, "larger than this component");

    for key in ["b", "c", "big"] {
        a.delete(&k(key)).await.unwrap();
    }
    assert_eq!(a.keys(p).await, Ok(vec![]));
}

/// A `set` past the store's quota fails and writes nothing; one that does not grow the store
/// still succeeds.
async fn keeps_the_quota(backing: KvBacking, p: &str) {
    let node = unit(&[("default", backing)], Some(1000));
    let mut s = Open::at(&node, "default");
    let k = |name: &str| format!("{p}{name}");
    s.set(&k("a"), &[1; 800]).await.unwrap();
    is_other(s.set(&k("b"), &[2; 300]).await, "is full");
    assert_eq!(s.get(&k("b")).await, Ok(None), "nothing was written");
    s.set(&k("a"), &[3; 500]).await.unwrap();
    s.set(&k("b"), &[2; 300]).await.unwrap();
    s.delete(&k("a")).await.unwrap();
    s.set(&k("c"), &[4; 600]).await.unwrap();
    for key in ["b", "c"] {
        s.delete(&k(key)).await.unwrap();
    }
}

/// A server that accepts connections and never answers: a call gives up at the
/// component's deadline with `other`.
async fn gives_up_at_the_deadline(backing: impl FnOnce(u16) -> KvBacking) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let node = unit(&[("default", backing(port))], None);
    let limits = CallLimits {
        statement_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let mut s = Open::new(&node, "default", limits);
    let started = std::time::Instant::now();
    is_other(s.get("k").await, "deadline");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    silent.abort();
}

// ---- SQLite ----------------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_backend_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let file = KvBacking::Sqlite(dir.path().join("kv.db"));
    same_semantics(file.clone(), "").await;
    keeps_the_quota(file, "").await;
}

// ---- Redis -----------------------------------------------------------------------------------

#[tokio::test]
async fn redis_backend_semantics_and_sharing() {
    let p = format!("nebula-kv-test:{}:", unique());
    let redis = KvBacking::Redis { url: REDIS.into() };
    same_semantics(redis.clone(), &p).await;

    // As in Spin, the label plays no part on Redis: two labels on one URL are one keyspace.
    let node = unit(&[("one", redis.clone()), ("two", redis)], None);
    let mut one = Open::at(&node, "one");
    let mut two = Open::at(&node, "two");
    one.set(&format!("{p}shared"), b"x").await.unwrap();
    assert_eq!(
        two.get(&format!("{p}shared")).await,
        Ok(Some(b"x".to_vec()))
    );
    two.delete(&format!("{p}shared")).await.unwrap();
}

#[tokio::test]
async fn redis_backend_gives_up_at_the_deadline() {
    gives_up_at_the_deadline(|port| KvBacking::Redis {
        url: format!("redis://127.0.0.1:{port}"),
    })
    .await;
}

#[test]
fn redis_backend_refuses_a_bad_url_at_configuration() {
    let err = KeyValue::configure_app(KeyValueConfig {
        stores: HashMap::from([(
            "default".into(),
            KvBacking::Redis {
                url: "http://127.0.0.1".into(),
            },
        )]),
        max_store_bytes: None,
    })
    .err()
    .expect("a non-Redis URL is refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("\"default\"") && msg.contains("not a Redis URL"),
        "{msg}"
    );
}

// ---- PostgreSQL ------------------------------------------------------------------------------

/// A database of this test's own, dropped (with the connections to it) on drop.
struct TempDatabase {
    name: String,
}

impl TempDatabase {
    async fn create() -> Self {
        let name = format!("nebula_kv_{}", unique());
        admin(&format!("CREATE DATABASE {name}")).await;
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn drop_it(self) {
        admin(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).await;
    }
}

async fn admin(sql: &str) {
    let (client, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (user postgres, trust)");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

#[tokio::test]
async fn postgres_backend_semantics_sharing_and_quota() {
    let db = TempDatabase::create().await;
    let pg = KvBacking::Postgres { url: db.url() };
    same_semantics(pg.clone(), "").await;
    keeps_the_quota(pg.clone(), "").await;

    // Labels on one database are separate stores, as in one SQLite file.
    let node = unit(&[("one", pg.clone()), ("two", pg)], None);
    let mut one = Open::at(&node, "one");
    let mut two = Open::at(&node, "two");
    one.set("k", b"1").await.unwrap();
    assert_eq!(two.get("k").await, Ok(None));
    assert_eq!(two.keys("").await, Ok(vec![]));
    assert_eq!(one.keys("").await, Ok(vec!["k".to_string()]));
    drop((one, two, node));
    db.drop_it().await;
}

/// Two nodes writing one store at once never pass its quota together: the usage row's lock
/// orders them.
#[tokio::test]
async fn postgres_quota_holds_across_nodes_writing_at_once() {
    let db = TempDatabase::create().await;
    let pg = KvBacking::Postgres { url: db.url() };
    let nodes: Vec<_> = (0..2)
        .map(|_| unit(&[("default", pg.clone())], Some(1000)))
        .collect();
    // 20 writes of 100 bytes (key and value) from two nodes: exactly 10 fit.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let node = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Open::at(&node, "default");
            s.set(&format!("k{i:02}"), &[0; 97]).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);
    let mut s = Open::at(&nodes[0], "default");
    assert_eq!(s.keys("").await.unwrap().len(), 10);
    drop((s, nodes));
    db.drop_it().await;
}

#[tokio::test]
async fn postgres_backend_gives_up_at_the_deadline() {
    gives_up_at_the_deadline(|port| KvBacking::Postgres {
        url: format!("postgres://postgres@127.0.0.1:{port}/nebula"),
    })
    .await;
}
