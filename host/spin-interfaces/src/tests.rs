//! Exercises the host functions directly, through the generated traits: the sync ones on a
//! `SpinState`, the `async` ones inside `Store::run_concurrent` as wasmtime calls them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use wasmtime::component::{
    Accessor, FutureConsumer, FutureReader, Resource, Source, StreamConsumer, StreamReader,
    StreamResult,
};
use wasmtime::{Engine, Store, StoreContextMut};

use crate::bindings::fermyon::spin::key_value::{self as kv2, HostStore as _};
use crate::bindings::fermyon::spin::sqlite as sql2;
use crate::bindings::fermyon::spin::variables as var2;
use crate::bindings::spin::key_value::key_value::{self as kv3, HostStoreWithStore as _};
use crate::bindings::spin::sqlite3_1_0::sqlite::{self as sql3, HostConnectionWithStore as _};
use crate::bindings::spin::variables::variables as var3;
use crate::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn resources(dir: &Path) -> Arc<SpinResources> {
    let mut variables = AppVariables::new();
    variables.insert(
        "greeting",
        AppVariable {
            default: Some("hello".into()),
            ..Default::default()
        },
    );
    variables.insert(
        "name",
        AppVariable {
            default: Some("world".into()),
            ..Default::default()
        },
    );
    variables.insert(
        "api_key",
        AppVariable {
            required: true,
            secret: true,
            ..Default::default()
        },
    );
    Arc::new(
        SpinResources::new(ResourceOptions {
            key_value: HashMap::from([
                ("default".into(), dir.join("kv.db")),
                ("other".into(), dir.join("kv.db")),
            ]),
            sqlite: HashMap::from([("default".into(), dir.join("data/sqlite.db"))]),
            variables,
            environment: Some(HashMap::from([
                ("SPIN_VARIABLE_NAME".into(), "nebula".into()),
                ("SPIN_VARIABLE_API_KEY".into(), "s3cret".into()),
            ])),
            sqlite_statement_timeout: Some(std::time::Duration::from_millis(200)),
        })
        .unwrap(),
    )
}

fn grants() -> Arc<ComponentGrants> {
    Arc::new(ComponentGrants {
        key_value_stores: strings(&["default", "other", "unbacked"]),
        sqlite_databases: strings(&["default", "unbacked"]),
        variables: BTreeMap::from([
            ("message".into(), "{{ greeting }}, {{ name }}!".into()),
            ("plain".into(), "{{greeting}}".into()),
            ("prefixed".into(), "prefix-{{ name }}".into()),
            ("key".into(), "{{ api_key }}".into()),
        ]),
    })
}

fn state(dir: &Path) -> SpinState {
    SpinState::new(resources(dir), grants())
}

// ---- key-value 2.0 -------------------------------------------------------------------------

#[test]
fn kv_set_get_delete_exists_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let store = s.open("default".into()).unwrap().unwrap();
    let b = || Resource::<KvStore>::new_borrow(store.rep());

    assert_eq!(s.get(b(), "missing".into()).unwrap().unwrap(), None);
    assert!(!s.exists(b(), "a".into()).unwrap().unwrap());
    s.set(b(), "a".into(), b"one".to_vec()).unwrap().unwrap();
    s.set(b(), "b".into(), vec![]).unwrap().unwrap();
    s.set(b(), "a".into(), b"uno".to_vec()).unwrap().unwrap();
    assert_eq!(
        s.get(b(), "a".into()).unwrap().unwrap(),
        Some(b"uno".to_vec())
    );
    assert_eq!(s.get(b(), "b".into()).unwrap().unwrap(), Some(vec![]));
    assert!(s.exists(b(), "a".into()).unwrap().unwrap());
    let mut keys = s.get_keys(b()).unwrap().unwrap();
    keys.sort();
    assert_eq!(keys, strings(&["a", "b"]));

    s.delete(b(), "a".into()).unwrap().unwrap();
    s.delete(b(), "never-there".into()).unwrap().unwrap();
    assert!(!s.exists(b(), "a".into()).unwrap().unwrap());
    assert_eq!(s.get_keys(b()).unwrap().unwrap(), strings(&["b"]));
    kv2::HostStore::drop(&mut s, store).unwrap();
    assert_eq!(s.open_handles, 0);
}

#[test]
fn kv_access_denied_and_no_such_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    // Backed by the host but not granted to this component.
    let mut narrow = SpinState::new(
        resources(dir.path()),
        Arc::new(ComponentGrants {
            key_value_stores: strings(&["default"]),
            ..Default::default()
        }),
    );
    assert!(matches!(
        narrow.open("other".into()).unwrap(),
        Err(kv2::Error::AccessDenied)
    ));
    assert!(matches!(
        s.open("nowhere".into()).unwrap(),
        Err(kv2::Error::AccessDenied)
    ));
    assert!(matches!(
        s.open("unbacked".into()).unwrap(),
        Err(kv2::Error::NoSuchStore)
    ));
    assert_eq!(s.open_handles, 0);
}

#[test]
fn kv_labels_sharing_a_file_are_separate_stores_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = state(dir.path());
        let a = s.open("default".into()).unwrap().unwrap();
        let b = s.open("other".into()).unwrap().unwrap();
        s.set(a, "k".into(), b"from default".to_vec())
            .unwrap()
            .unwrap();
        assert_eq!(s.get(b, "k".into()).unwrap().unwrap(), None);
    }
    // A new app load over the same file sees what the first wrote.
    let mut s = state(dir.path());
    let a = s.open("default".into()).unwrap().unwrap();
    assert_eq!(
        s.get(a, "k".into()).unwrap().unwrap(),
        Some(b"from default".to_vec())
    );
    // Spin's table layout, so Spin's own store file is interchangeable.
    let conn = rusqlite::Connection::open(dir.path().join("kv.db")).unwrap();
    let value: Vec<u8> = conn
        .query_row(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = 'k'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(value, b"from default");
}

#[test]
fn kv_store_table_fills_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let mut open = Vec::new();
    for _ in 0..MAX_OPEN_HANDLES {
        open.push(s.open("default".into()).unwrap().unwrap());
    }
    assert!(matches!(
        s.open("default".into()).unwrap(),
        Err(kv2::Error::StoreTableFull)
    ));
    kv2::HostStore::drop(&mut s, open.pop().unwrap()).unwrap();
    assert!(s.open("default".into()).unwrap().is_ok());
}

// ---- SQLite 2.0 / 3.x sync -----------------------------------------------------------------

fn open_db(s: &mut SpinState) -> Resource<SqliteConnection> {
    sql3::HostConnection::open(s, "default".into())
        .unwrap()
        .unwrap()
}

fn borrow(r: &Resource<SqliteConnection>) -> Resource<SqliteConnection> {
    Resource::new_borrow(r.rep())
}

fn exec3(
    s: &mut SpinState,
    c: &Resource<SqliteConnection>,
    sql: &str,
    params: Vec<sql3::Value>,
) -> Result<sql3::QueryResult, sql3::Error> {
    sql3::HostConnection::execute(s, borrow(c), sql.into(), params).unwrap()
}

#[test]
fn sqlite_values_round_trip_with_parameters() {
    use sql2::Value as V;
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let c = sql2::HostConnection::open(&mut s, "default".into())
        .unwrap()
        .unwrap();
    let mut exec = |sql: &str, params: Vec<V>| {
        sql2::HostConnection::execute(&mut s, borrow(&c), sql.into(), params)
            .unwrap()
            .unwrap()
    };
    exec(
        "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)",
        vec![],
    );
    let insert = exec(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
        vec![
            V::Integer(-42),
            V::Real(2.5),
            V::Text("héllo".into()),
            V::Blob(vec![0, 1, 255]),
            V::Null,
        ],
    );
    assert!(insert.columns.is_empty() && insert.rows.is_empty());
    exec(
        "INSERT INTO t VALUES (?1, ?1, ?2, NULL, ?3)",
        vec![V::Integer(i64::MAX), V::Text(String::new()), V::Real(-0.5)],
    );

    let result = exec(
        "SELECT i, r, s, b, n FROM t WHERE i < ? ORDER BY i",
        vec![V::Integer(0)],
    );
    assert_eq!(result.columns, strings(&["i", "r", "s", "b", "n"]));
    assert_eq!(result.rows.len(), 1);
    let row = &result.rows[0].values;
    assert!(matches!(row[0], V::Integer(-42)));
    assert!(matches!(row[1], V::Real(r) if r == 2.5));
    assert!(matches!(&row[2], V::Text(t) if t == "héllo"));
    assert!(matches!(&row[3], V::Blob(b) if b == &[0, 1, 255]));
    assert!(matches!(row[4], V::Null));

    // Column affinity decides what comes back, as in SQLite: an integer in a REAL column
    // reads as a real.
    let result = exec("SELECT * FROM t WHERE i > 0", vec![]);
    let row = &result.rows[0].values;
    assert!(matches!(row[0], V::Integer(i64::MAX)));
    assert!(matches!(row[1], V::Real(_)));
    assert!(matches!(&row[2], V::Text(t) if t.is_empty()));
    assert!(matches!(row[3], V::Null));
    assert!(matches!(row[4], V::Real(r) if r == -0.5));

    let empty = exec("SELECT i AS renamed FROM t WHERE 0", vec![]);
    assert_eq!(empty.columns, strings(&["renamed"]));
    assert!(empty.rows.is_empty());
}

#[test]
fn sqlite_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    assert!(matches!(
        sql2::HostConnection::open(&mut s, "elsewhere".into()).unwrap(),
        Err(sql2::Error::AccessDenied)
    ));
    assert!(matches!(
        sql3::HostConnection::open(&mut s, "unbacked".into()).unwrap(),
        Err(sql3::Error::NoSuchDatabase)
    ));
    let c = open_db(&mut s);
    for (sql, params) in [
        ("SELEC nonsense", vec![]),
        ("SELECT * FROM no_such_table", vec![]),
        ("SELECT ?", vec![]),
        (
            "SELECT ?",
            vec![sql3::Value::Integer(1), sql3::Value::Integer(2)],
        ),
        ("SELECT 1; SELECT 2", vec![]),
    ] {
        match exec3(&mut s, &c, sql, params) {
            Err(sql3::Error::Io(msg)) => assert!(!msg.is_empty()),
            other => panic!("{sql}: {other:?}"),
        }
    }
    // The connection is still usable after errors.
    assert_eq!(exec3(&mut s, &c, "SELECT 1", vec![]).unwrap().rows.len(), 1);
}

#[test]
fn sqlite_changes_and_last_insert_rowid() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let c = open_db(&mut s);
    let rowid = |s: &mut SpinState| sql3::HostConnection::last_insert_rowid(s, borrow(&c)).unwrap();
    let changes = |s: &mut SpinState| sql3::HostConnection::changes(s, borrow(&c)).unwrap();
    assert_eq!((rowid(&mut s), changes(&mut s)), (0, 0));

    exec3(
        &mut s,
        &c,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v)",
        vec![],
    )
    .unwrap();
    exec3(&mut s, &c, "INSERT INTO t (v) VALUES (1), (2), (3)", vec![]).unwrap();
    assert_eq!((rowid(&mut s), changes(&mut s)), (3, 3));
    exec3(&mut s, &c, "UPDATE t SET v = v + 1 WHERE id > 1", vec![]).unwrap();
    assert_eq!((rowid(&mut s), changes(&mut s)), (3, 2));
    // Reads and DDL leave both as they were, as in SQLite.
    exec3(&mut s, &c, "SELECT * FROM t", vec![]).unwrap();
    exec3(&mut s, &c, "CREATE INDEX t_v ON t (v)", vec![]).unwrap();
    assert_eq!((rowid(&mut s), changes(&mut s)), (3, 2));
    exec3(&mut s, &c, "DELETE FROM t WHERE id > 100", vec![]).unwrap();
    assert_eq!(changes(&mut s), 0);

    // A second guest connection (another request) starts from zero, even though it may be
    // the same pooled SQLite connection.
    sql3::HostConnection::drop(&mut s, c).unwrap();
    let c2 = open_db(&mut s);
    assert_eq!(
        sql3::HostConnection::last_insert_rowid(&mut s, borrow(&c2)).unwrap(),
        0
    );
    assert_eq!(
        sql3::HostConnection::changes(&mut s, borrow(&c2)).unwrap(),
        0
    );
    exec3(&mut s, &c2, "INSERT INTO t (id, v) VALUES (10, 0)", vec![]).unwrap();
    assert_eq!(
        sql3::HostConnection::last_insert_rowid(&mut s, borrow(&c2)).unwrap(),
        10
    );
}

#[test]
fn sqlite_connections_do_not_carry_state_between_guests() {
    let dir = tempfile::tempdir().unwrap();
    let resources = resources(dir.path());
    let mut s = SpinState::new(resources.clone(), grants());
    let c = open_db(&mut s);
    exec3(&mut s, &c, "CREATE TABLE t (v)", vec![]).unwrap();
    // An unfinished transaction is rolled back when the guest lets go of the connection.
    exec3(&mut s, &c, "BEGIN", vec![]).unwrap();
    exec3(&mut s, &c, "INSERT INTO t VALUES (1)", vec![]).unwrap();
    // Temporary objects belong to the connection and must not reach the next guest.
    exec3(&mut s, &c, "CREATE TEMP TABLE scratch (x)", vec![]).unwrap();
    drop(s);

    let mut s = SpinState::new(resources, grants());
    let c = open_db(&mut s);
    let count = exec3(&mut s, &c, "SELECT count(*) FROM t", vec![]).unwrap();
    assert!(matches!(count.rows[0].values[0], sql3::Value::Integer(0)));
    assert!(exec3(&mut s, &c, "SELECT * FROM scratch", vec![]).is_err());
}

#[test]
fn sqlite_pool_keeps_clean_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let resources = resources(dir.path());
    let db = resources.sqlite["default"].clone();
    {
        let mut s = SpinState::new(resources.clone(), grants());
        let c = open_db(&mut s);
        exec3(&mut s, &c, "CREATE TABLE t (v)", vec![]).unwrap();
        exec3(&mut s, &c, "BEGIN", vec![]).unwrap();
        exec3(&mut s, &c, "INSERT INTO t VALUES (1)", vec![]).unwrap();
    }
    // Rolled back and kept for the next guest.
    assert_eq!(db.idle_connections(), 1);
    {
        let mut s = SpinState::new(resources.clone(), grants());
        let c = open_db(&mut s);
        assert_eq!(db.idle_connections(), 0, "the pooled connection is reused");
        let count = exec3(&mut s, &c, "SELECT count(*) FROM t", vec![]).unwrap();
        assert!(matches!(count.rows[0].values[0], sql3::Value::Integer(0)));
        exec3(&mut s, &c, "PRAGMA cache_size = 123", vec![]).unwrap();
    }
    // A connection whose settings a guest changed is closed, not pooled.
    assert_eq!(db.idle_connections(), 0);
    let mut s = SpinState::new(resources, grants());
    let c = open_db(&mut s);
    let size = exec3(&mut s, &c, "PRAGMA cache_size", vec![]).unwrap();
    assert!(!matches!(size.rows[0].values[0], sql3::Value::Integer(123)));
    let info = exec3(&mut s, &c, "PRAGMA table_info(t)", vec![]).unwrap();
    assert_eq!(info.rows.len(), 1);
    drop(s);
    // Reading a setting or the schema does not count as changing the connection.
    assert_eq!(db.idle_connections(), 1);
}

#[test]
fn sqlite_transactions_span_calls_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let resources = resources(dir.path());
    let mut a = SpinState::new(resources.clone(), grants());
    let mut b = SpinState::new(resources, grants());
    let ca = open_db(&mut a);
    let cb = open_db(&mut b);
    exec3(&mut a, &ca, "CREATE TABLE t (v)", vec![]).unwrap();
    exec3(&mut a, &ca, "BEGIN", vec![]).unwrap();
    exec3(&mut a, &ca, "INSERT INTO t VALUES (1)", vec![]).unwrap();
    // Another instance does not see the uncommitted row…
    let seen = exec3(&mut b, &cb, "SELECT count(*) FROM t", vec![]).unwrap();
    assert!(matches!(seen.rows[0].values[0], sql3::Value::Integer(0)));
    exec3(&mut a, &ca, "COMMIT", vec![]).unwrap();
    // …until it is committed.
    let seen = exec3(&mut b, &cb, "SELECT count(*) FROM t", vec![]).unwrap();
    assert!(matches!(seen.rows[0].values[0], sql3::Value::Integer(1)));
}

#[test]
fn sqlite_runaway_statement_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let c = open_db(&mut s);
    let started = std::time::Instant::now();
    let endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) \
                   SELECT count(*) FROM n";
    assert!(matches!(
        exec3(&mut s, &c, endless, vec![]),
        Err(sql3::Error::Io(msg)) if msg.contains("interrupt")
    ));
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    // The deadline is per statement: the connection goes on working.
    assert_eq!(exec3(&mut s, &c, "SELECT 1", vec![]).unwrap().rows.len(), 1);
}

#[test]
fn sqlite_cannot_reach_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let c = open_db(&mut s);
    let other = dir.path().join("other.db");
    for sql in [
        format!("ATTACH '{}' AS other", other.display()),
        format!("ATTACH 'file:{}' AS other", other.display()),
        format!("VACUUM INTO '{}'", other.display()),
    ] {
        assert!(
            matches!(exec3(&mut s, &c, &sql, vec![]), Err(sql3::Error::Io(_))),
            "{sql}"
        );
    }
    assert!(!other.exists());
    exec3(&mut s, &c, "ATTACH ':memory:' AS scratch", vec![]).unwrap();
    exec3(&mut s, &c, "VACUUM", vec![]).unwrap();
}

// ---- variables 2.0 ---------------------------------------------------------------------------

#[test]
fn variables_resolve_for_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let mut get = |name: &str| var2::Host::get(&mut s, name.into()).unwrap();
    assert_eq!(get("plain").unwrap(), "hello");
    assert_eq!(get("message").unwrap(), "hello, nebula!");
    assert_eq!(get("prefixed").unwrap(), "prefix-nebula");
    assert_eq!(get("key").unwrap(), "s3cret");
    // App variables are not visible unless the component declares them.
    assert!(matches!(get("greeting"), Err(var2::Error::Undefined(_))));
    assert!(matches!(get("nope"), Err(var2::Error::Undefined(_))));
    for bad in ["", "Message", "1x", "a-b", "a__b", "x_"] {
        assert!(
            matches!(get(bad), Err(var2::Error::InvalidName(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn app_load_and_component_checks() {
    let dir = tempfile::tempdir().unwrap();
    let mut variables = AppVariables::new();
    variables.insert(
        "token",
        AppVariable {
            required: true,
            ..Default::default()
        },
    );
    let err = SpinResources::new(ResourceOptions {
        variables,
        environment: Some(HashMap::new()),
        ..Default::default()
    })
    .err()
    .expect("a required variable without a value fails the load");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("\"token\"") && msg.contains("SPIN_VARIABLE_TOKEN"),
        "{msg}"
    );

    let resources = resources(dir.path());
    resources.check_component(&grants()).unwrap();
    let bad = ComponentGrants {
        variables: BTreeMap::from([("msg".into(), "{{ undeclared }}".into())]),
        ..Default::default()
    };
    let msg = format!("{:#}", resources.check_component(&bad).unwrap_err());
    assert!(
        msg.contains("\"msg\"") && msg.contains("\"undeclared\""),
        "{msg}"
    );
}

// ---- the 3.x async functions, called as wasmtime calls them --------------------------------

struct TestHost {
    spin: SpinState,
}

impl SpinView for TestHost {
    fn spin(&mut self) -> &mut SpinState {
        &mut self.spin
    }
}

fn test_store(dir: &Path) -> Store<TestHost> {
    let engine = Engine::default();
    Store::new(&engine, TestHost { spin: state(dir) })
}

/// Collects what a host-produced stream delivers; sends it all when the stream ends.
struct Collect<T> {
    items: Vec<T>,
    done: Option<oneshot::Sender<Vec<T>>>,
}

impl<T: wasmtime::component::Lift + Send + Sync + Unpin + 'static, D> StreamConsumer<D>
    for Collect<T>
{
    type Item = T;

    fn poll_consume(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        mut source: Source<'_, T>,
        _: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let me = self.get_mut();
        let mut buf = Vec::with_capacity(source.remaining(&mut store));
        source.read(&mut store, &mut buf)?;
        me.items.extend(buf);
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

impl<T> Drop for Collect<T> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(std::mem::take(&mut self.items));
        }
    }
}

struct Take<T>(Option<oneshot::Sender<T>>);

impl<T: wasmtime::component::Lift + Send + Sync + Unpin + 'static, D> FutureConsumer<D>
    for Take<T>
{
    type Item = T;

    fn poll_consume(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        mut source: Source<'_, T>,
        _: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut value = None;
        source.read(&mut store, &mut value)?;
        if let (Some(value), Some(tx)) = (value, self.get_mut().0.take()) {
            let _ = tx.send(value);
        }
        Poll::Ready(Ok(()))
    }
}

async fn read_stream<T, D>(acc: &Accessor<TestHost, D>, stream: StreamReader<T>) -> Vec<T>
where
    T: wasmtime::component::Lift + Send + Sync + Unpin + 'static,
    D: wasmtime::component::HasData,
{
    let (tx, rx) = oneshot::channel();
    acc.with(|mut access| {
        stream.pipe(
            &mut access,
            Collect {
                items: Vec::new(),
                done: Some(tx),
            },
        )
    })
    .unwrap();
    rx.await.unwrap()
}

async fn read_future<T, D>(acc: &Accessor<TestHost, D>, future: FutureReader<T>) -> T
where
    T: wasmtime::component::Lift + Send + Sync + Unpin + 'static,
    D: wasmtime::component::HasData,
{
    let (tx, rx) = oneshot::channel();
    acc.with(|mut access| future.pipe(&mut access, Take(Some(tx))))
        .unwrap();
    rx.await.unwrap()
}

#[tokio::test]
async fn kv3_async_functions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = test_store(dir.path());
    store
        .run_concurrent(async |acc| {
            let acc = &acc.with_getter::<SpinData>(TestHost::spin);
            assert!(matches!(
                SpinData::open(acc, "nowhere".into()).await.unwrap(),
                Err(kv3::Error::AccessDenied)
            ));
            assert!(matches!(
                SpinData::open(acc, "unbacked".into()).await.unwrap(),
                Err(kv3::Error::NoSuchStore)
            ));
            let st = SpinData::open(acc, "default".into())
                .await
                .unwrap()
                .unwrap();
            let b = || Resource::<KvStore>::new_borrow(st.rep());
            for key in ["x", "y", "z"] {
                SpinData::set(acc, b(), key.into(), key.as_bytes().to_vec())
                    .await
                    .unwrap()
                    .unwrap();
            }
            assert_eq!(
                SpinData::get(acc, b(), "y".into()).await.unwrap().unwrap(),
                Some(b"y".to_vec())
            );
            SpinData::delete(acc, b(), "y".into())
                .await
                .unwrap()
                .unwrap();
            assert!(!SpinData::exists(acc, b(), "y".into())
                .await
                .unwrap()
                .unwrap());
            assert!(SpinData::exists(acc, b(), "z".into())
                .await
                .unwrap()
                .unwrap());

            let (keys, outcome) = SpinData::get_keys(acc, b()).await.unwrap();
            let mut keys = read_stream(acc, keys).await;
            keys.sort();
            assert_eq!(keys, strings(&["x", "z"]));
            assert!(read_future(acc, outcome).await.is_ok());

            acc.with(|mut a| kv3::HostStore::drop(a.get(), st)).unwrap();
            assert_eq!(acc.with(|mut a| a.get().open_handles), 0);
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite3_async_functions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = test_store(dir.path());
    store
        .run_concurrent(async |acc| {
            let acc = &acc.with_getter::<SpinData>(TestHost::spin);
            assert!(matches!(
                SpinData::open_async(acc, "nowhere".into()).await.unwrap(),
                Err(sql3::Error::AccessDenied)
            ));
            let c = SpinData::open_async(acc, "default".into())
                .await
                .unwrap()
                .unwrap();
            let rep = c.rep();
            let b = || Resource::<SqliteConnection>::new_borrow(rep);
            let exec = async |sql: &str, params: Vec<sql3::Value>| {
                SpinData::execute_async(acc, b(), sql.into(), params)
                    .await
                    .unwrap()
            };

            let (cols, rows, outcome) = exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v)", vec![])
                .await
                .unwrap();
            assert!(cols.is_empty());
            assert!(read_stream(acc, rows).await.is_empty());
            assert!(read_future(acc, outcome).await.is_ok());

            let (_, rows, outcome) = exec(
                "INSERT INTO t (v) VALUES (?), (?), (?)",
                vec![
                    sql3::Value::Text("a".into()),
                    sql3::Value::Blob(vec![7]),
                    sql3::Value::Null,
                ],
            )
            .await
            .unwrap();
            let _ = read_stream(acc, rows).await;
            assert!(read_future(acc, outcome).await.is_ok());
            assert_eq!(SpinData::last_insert_rowid_async(acc, b()).await.unwrap(), 3);
            assert_eq!(SpinData::changes_async(acc, b()).await.unwrap(), 3);

            let (cols, rows, outcome) = exec("SELECT id, v FROM t ORDER BY id", vec![])
                .await
                .unwrap();
            assert_eq!(cols, strings(&["id", "v"]));
            let rows = read_stream(acc, rows).await;
            assert_eq!(rows.len(), 3);
            assert!(matches!(&rows[0].values[..], [sql3::Value::Integer(1), sql3::Value::Text(t)] if t == "a"));
            assert!(matches!(&rows[1].values[1], sql3::Value::Blob(b) if b == &[7]));
            assert!(matches!(rows[2].values[1], sql3::Value::Null));
            assert!(read_future(acc, outcome).await.is_ok());

            // A statement that fails before producing rows fails the call itself.
            assert!(matches!(
                exec("SELECT * FROM missing", vec![]).await,
                Err(sql3::Error::Io(_))
            ));
            // One that fails while stepping delivers the rows before the error, then the
            // error through the future.
            let (_, rows, outcome) = exec(
                "SELECT CASE WHEN id < 3 THEN id ELSE abs(-9223372036854775807 - 1) END FROM t ORDER BY id",
                vec![],
            )
            .await
            .unwrap();
            assert_eq!(read_stream(acc, rows).await.len(), 2);
            assert!(matches!(read_future(acc, outcome).await, Err(sql3::Error::Io(_))));

            // The sync functions of the same interface work on the same resource.
            acc.with(|mut a| {
                let s = a.get();
                let r = sql3::HostConnection::execute(s, b(), "SELECT count(*) FROM t".into(), vec![])
                    .unwrap()
                    .unwrap();
                assert!(matches!(r.rows[0].values[0], sql3::Value::Integer(3)));
                sql3::HostConnection::drop(s, c).unwrap();
            });
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn variables3_async_get() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = test_store(dir.path());
    store
        .run_concurrent(async |acc| {
            let acc = &acc.with_getter::<SpinData>(TestHost::spin);
            assert_eq!(
                <SpinData as var3::HostWithStore<TestHost>>::get(acc, "message".into())
                    .await
                    .unwrap()
                    .unwrap(),
                "hello, nebula!"
            );
            assert!(matches!(
                <SpinData as var3::HostWithStore<TestHost>>::get(acc, "greeting".into())
                    .await
                    .unwrap(),
                Err(var3::Error::Undefined(_))
            ));
            assert!(matches!(
                <SpinData as var3::HostWithStore<TestHost>>::get(acc, "Bad-Name".into())
                    .await
                    .unwrap(),
                Err(var3::Error::InvalidName(_))
            ));
        })
        .await
        .unwrap();
}
