//! Exercises the host functions directly, through the generated traits: the sync ones on a
//! unit's instance state (in a `SpinState`), the `async` ones inside `Store::run_concurrent`
//! as wasmtime calls them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use wasmtime::component::{
    Accessor, FutureConsumer, FutureReader, HasSelf, Resource, Source, StreamConsumer,
    StreamReader, StreamResult,
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
                ("default".into(), dir.join("kv.db").into()),
                ("other".into(), dir.join("kv.db").into()),
            ]),
            sqlite: HashMap::from([("default".into(), dir.join("data/sqlite.db"))]),
            variables,
            environment: Some(HashMap::from([
                ("SPIN_VARIABLE_NAME".into(), "nebula".into()),
                ("SPIN_VARIABLE_API_KEY".into(), "s3cret".into()),
            ])),
            max_kv_store_bytes: None,
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
        allowed_outbound_hosts: Vec::new(),
        limits: CallLimits {
            statement_timeout: std::time::Duration::from_millis(200),
            ..Default::default()
        },
    })
}

/// Runs a host function's future to its end, on a runtime with a blocking pool (the host
/// functions hand their SQLite work to it).
fn wait<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
    }
    RT.with(|rt| rt.block_on(f))
}

fn state(dir: &Path) -> SpinState {
    SpinState::new(resources(dir), grants())
}

// ---- key-value 2.0 -------------------------------------------------------------------------

#[test]
fn kv_set_get_delete_exists_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let store = s.key_value.open("default".into()).unwrap().unwrap();
    let b = || Resource::<KvStore>::new_borrow(store.rep());

    assert_eq!(
        wait(s.key_value.get(b(), "missing".into()))
            .unwrap()
            .unwrap(),
        None
    );
    assert!(!wait(s.key_value.exists(b(), "a".into())).unwrap().unwrap());
    wait(s.key_value.set(b(), "a".into(), b"one".to_vec()))
        .unwrap()
        .unwrap();
    wait(s.key_value.set(b(), "b".into(), vec![]))
        .unwrap()
        .unwrap();
    wait(s.key_value.set(b(), "a".into(), b"uno".to_vec()))
        .unwrap()
        .unwrap();
    assert_eq!(
        wait(s.key_value.get(b(), "a".into())).unwrap().unwrap(),
        Some(b"uno".to_vec())
    );
    assert_eq!(
        wait(s.key_value.get(b(), "b".into())).unwrap().unwrap(),
        Some(vec![])
    );
    assert!(wait(s.key_value.exists(b(), "a".into())).unwrap().unwrap());
    let mut keys = wait(s.key_value.get_keys(b())).unwrap().unwrap();
    keys.sort();
    assert_eq!(keys, strings(&["a", "b"]));

    wait(s.key_value.delete(b(), "a".into())).unwrap().unwrap();
    wait(s.key_value.delete(b(), "never-there".into()))
        .unwrap()
        .unwrap();
    assert!(!wait(s.key_value.exists(b(), "a".into())).unwrap().unwrap());
    assert_eq!(
        wait(s.key_value.get_keys(b())).unwrap().unwrap(),
        strings(&["b"])
    );
    kv2::HostStore::drop(&mut s.key_value, store).unwrap();
    assert_eq!(s.open_handles(), 0);
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
        narrow.key_value.open("other".into()).unwrap(),
        Err(kv2::Error::AccessDenied)
    ));
    assert!(matches!(
        s.key_value.open("nowhere".into()).unwrap(),
        Err(kv2::Error::AccessDenied)
    ));
    assert!(matches!(
        s.key_value.open("unbacked".into()).unwrap(),
        Err(kv2::Error::NoSuchStore)
    ));
    assert_eq!(s.open_handles(), 0);
}

#[test]
fn kv_labels_sharing_a_file_are_separate_stores_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = state(dir.path());
        let a = s.key_value.open("default".into()).unwrap().unwrap();
        let b = s.key_value.open("other".into()).unwrap().unwrap();
        wait(s.key_value.set(a, "k".into(), b"from default".to_vec()))
            .unwrap()
            .unwrap();
        assert_eq!(wait(s.key_value.get(b, "k".into())).unwrap().unwrap(), None);
    }
    // A new app load over the same file sees what the first wrote.
    let mut s = state(dir.path());
    let a = s.key_value.open("default".into()).unwrap().unwrap();
    assert_eq!(
        wait(s.key_value.get(a, "k".into())).unwrap().unwrap(),
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
        open.push(s.key_value.open("default".into()).unwrap().unwrap());
    }
    assert!(matches!(
        s.key_value.open("default".into()).unwrap(),
        Err(kv2::Error::StoreTableFull)
    ));
    kv2::HostStore::drop(&mut s.key_value, open.pop().unwrap()).unwrap();
    assert!(s.key_value.open("default".into()).unwrap().is_ok());
}

/// The bound on open handles is the instance's, not each unit's: key-value stores and SQLite
/// connections count together.
#[test]
fn open_handles_are_counted_across_units() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let mut open = Vec::new();
    for _ in 0..MAX_OPEN_HANDLES {
        open.push(s.key_value.open("default".into()).unwrap().unwrap());
    }
    match wait(sql3::HostConnection::open(&mut s.sqlite, "default".into())).unwrap() {
        Err(sql3::Error::Io(msg)) => assert!(msg.contains("too many"), "{msg}"),
        other => panic!(
            "a connection past the instance's bound: {:?}",
            other.map(|_| ())
        ),
    }
    kv2::HostStore::drop(&mut s.key_value, open.pop().unwrap()).unwrap();
    let c = open_db(&mut s);
    assert!(matches!(
        s.key_value.open("default".into()).unwrap(),
        Err(kv2::Error::StoreTableFull)
    ));
    sql3::HostConnection::drop(&mut s.sqlite, c).unwrap();
    assert_eq!(s.open_handles(), MAX_OPEN_HANDLES - 1);
}

/// `nebula check` asks the units how they serve a component's imports.
#[test]
fn units_say_how_they_serve_their_imports() {
    let g = grants();
    let serves = |import: &str| g.serves(import);
    for import in [
        "fermyon:spin/key-value@2.0.0",
        "spin:key-value/key-value@3.0.0",
    ] {
        assert_eq!(
            serves(import).as_deref(),
            Some("stores: default, other, unbacked"),
            "{import}"
        );
    }
    for import in ["fermyon:spin/sqlite@2.0.0", "spin:sqlite/sqlite@3.0.0"] {
        assert_eq!(
            serves(import).as_deref(),
            Some("databases: default, unbacked"),
            "{import}"
        );
    }
    assert_eq!(
        serves("spin:variables/variables@3.0.0").as_deref(),
        Some("variables: key, message, plain, prefixed")
    );
    for other in [
        "wasi:http/types@0.2.6",
        "fermyon:spin/llm@2.0.0",
        "key-value",
    ] {
        assert_eq!(serves(other), None, "{other}");
    }
    assert_eq!(
        ComponentGrants::default()
            .serves("fermyon:spin/sqlite@2.0.0")
            .as_deref(),
        Some("databases: none granted")
    );
}

// ---- SQLite 2.0 / 3.x sync -----------------------------------------------------------------

fn open_db(s: &mut SpinState) -> Resource<SqliteConnection> {
    wait(sql3::HostConnection::open(&mut s.sqlite, "default".into()))
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
    wait(sql3::HostConnection::execute(
        &mut s.sqlite,
        borrow(c),
        sql.into(),
        params,
    ))
    .unwrap()
}

#[test]
fn sqlite_values_round_trip_with_parameters() {
    use sql2::Value as V;
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let c = wait(sql2::HostConnection::open(&mut s.sqlite, "default".into()))
        .unwrap()
        .unwrap();
    let mut exec = |sql: &str, params: Vec<V>| {
        wait(sql2::HostConnection::execute(
            &mut s.sqlite,
            borrow(&c),
            sql.into(),
            params,
        ))
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
        wait(sql2::HostConnection::open(
            &mut s.sqlite,
            "elsewhere".into()
        ))
        .unwrap(),
        Err(sql2::Error::AccessDenied)
    ));
    assert!(matches!(
        wait(sql3::HostConnection::open(&mut s.sqlite, "unbacked".into())).unwrap(),
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
    let rowid = |s: &mut SpinState| {
        sql3::HostConnection::last_insert_rowid(&mut s.sqlite, borrow(&c)).unwrap()
    };
    let changes =
        |s: &mut SpinState| sql3::HostConnection::changes(&mut s.sqlite, borrow(&c)).unwrap();
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
    sql3::HostConnection::drop(&mut s.sqlite, c).unwrap();
    let c2 = open_db(&mut s);
    assert_eq!(
        sql3::HostConnection::last_insert_rowid(&mut s.sqlite, borrow(&c2)).unwrap(),
        0
    );
    assert_eq!(
        sql3::HostConnection::changes(&mut s.sqlite, borrow(&c2)).unwrap(),
        0
    );
    exec3(&mut s, &c2, "INSERT INTO t (id, v) VALUES (10, 0)", vec![]).unwrap();
    assert_eq!(
        sql3::HostConnection::last_insert_rowid(&mut s.sqlite, borrow(&c2)).unwrap(),
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
    let db = resources.sqlite().database("default");
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

/// A state whose component has its own limits, over the same app as `state`.
fn state_with(dir: &Path, limits: CallLimits) -> SpinState {
    let mut grants = (*grants()).clone();
    grants.limits = limits;
    SpinState::new(resources(dir), Arc::new(grants))
}

#[test]
fn sqlite_statement_stops_at_the_components_own_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // The app sets no statement timeout: the component's deadline (here 150 ms, from its
    // `timeout_ms`) is the statement's.
    let mut s = state_with(
        dir.path(),
        CallLimits {
            statement_timeout: std::time::Duration::from_millis(150),
            ..Default::default()
        },
    );
    let c = open_db(&mut s);
    let endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) \
                   SELECT count(*) FROM n";
    match exec3(&mut s, &c, endless, vec![]) {
        Err(sql3::Error::Io(msg)) => assert!(
            msg.contains("time limit of 150 ms") && msg.contains("stopped"),
            "{msg}"
        ),
        other => panic!("the endless statement was not stopped: {other:?}"),
    }
    // The deadline is per statement: the connection goes on working.
    assert_eq!(exec3(&mut s, &c, "SELECT 1", vec![]).unwrap().rows.len(), 1);
}

#[test]
fn sqlite_result_over_the_components_memory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state_with(
        dir.path(),
        CallLimits {
            max_result_bytes: 64 << 10,
            ..Default::default()
        },
    );
    let c = open_db(&mut s);
    exec3(
        &mut s,
        &c,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)",
        vec![],
    )
    .unwrap();
    exec3(
        &mut s,
        &c,
        "INSERT INTO t (b) VALUES (zeroblob(100000))",
        vec![],
    )
    .unwrap();
    exec3(&mut s, &c, "INSERT INTO t (b) VALUES (x'01')", vec![]).unwrap();
    // One 100 kB value does not fit in a 64 KiB cap…
    match exec3(&mut s, &c, "SELECT b FROM t", vec![]) {
        Err(sql3::Error::Io(msg)) => assert!(
            msg.contains("65536 bytes") && msg.contains("memory"),
            "{msg}"
        ),
        Ok(r) => panic!("{} rows over the component's memory cap", r.rows.len()),
        Err(other) => panic!("{other:?}"),
    }
    // …small results still come back.
    let small = exec3(&mut s, &c, "SELECT b FROM t WHERE id = 2", vec![]).unwrap();
    assert!(matches!(&small.rows[0].values[0], sql3::Value::Blob(b) if b == &[1]));
    // The key-value store obeys the same cap.
    let store = s.key_value.open("default".into()).unwrap().unwrap();
    let b = || Resource::<KvStore>::new_borrow(store.rep());
    wait(s.key_value.set(b(), "big".into(), vec![7; 100_000]))
        .unwrap()
        .unwrap();
    match wait(s.key_value.get(b(), "big".into())).unwrap() {
        Err(kv2::Error::Other(msg)) => assert!(msg.contains("65536 bytes"), "{msg}"),
        other => panic!("{:?}", other.map(|v| v.map(|v| v.len()))),
    }
}

#[test]
fn sqlite_attach_is_refused_in_every_form_and_creates_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let c = open_db(&mut s);
    exec3(&mut s, &c, "CREATE TABLE t (v)", vec![]).unwrap();
    exec3(&mut s, &c, "INSERT INTO t VALUES (1)", vec![]).unwrap();
    let file = |name: &str| dir.path().join(name);
    let text = |p: std::path::PathBuf| sql3::Value::Text(p.display().to_string());
    let dir_text = dir.path().display().to_string();
    let cases: Vec<(String, Vec<sql3::Value>, Option<std::path::PathBuf>)> = vec![
        (
            format!("ATTACH '{}' AS x", file("literal.db").display()),
            vec![],
            Some(file("literal.db")),
        ),
        // SQLite gives the authorizer no file name for these two.
        (
            "ATTACH ?1 AS x".into(),
            vec![text(file("param.db"))],
            Some(file("param.db")),
        ),
        (
            "ATTACH ?1 || '/expr.db' AS x".into(),
            vec![sql3::Value::Text(dir_text.clone())],
            Some(file("expr.db")),
        ),
        (
            format!("ATTACH 'file:{}?mode=rwc' AS x", file("uri.db").display()),
            vec![],
            Some(file("uri.db")),
        ),
        (
            "ATTACH 'file:' || ?1 || '?mode=rwc' AS x".into(),
            vec![text(file("uri-param.db"))],
            Some(file("uri-param.db")),
        ),
        ("ATTACH ':memory:' AS x".into(), vec![], None),
        ("ATTACH '' AS x".into(), vec![], None),
        (
            format!("VACUUM INTO '{}'", file("vacuum.db").display()),
            vec![],
            Some(file("vacuum.db")),
        ),
        (
            "VACUUM INTO ?1".into(),
            vec![text(file("vacuum-param.db"))],
            Some(file("vacuum-param.db")),
        ),
    ];
    for (sql, params, path) in cases {
        match exec3(&mut s, &c, &sql, params) {
            Err(sql3::Error::Io(msg)) => assert!(msg.contains("not allowed"), "{sql}: {msg}"),
            other => panic!("{sql}: {other:?}"),
        }
        if let Some(path) = path {
            assert!(!path.exists(), "{sql} created {}", path.display());
        }
        // Nothing got attached under the name either.
        assert!(exec3(&mut s, &c, "SELECT * FROM x.sqlite_master", vec![]).is_err());
    }
    // Only the granted database (and its WAL files) exists.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, strings(&["data"]));
    // A plain VACUUM, which works through a private temporary ATTACH, still works.
    exec3(&mut s, &c, "VACUUM", vec![]).unwrap();
    let count = exec3(&mut s, &c, "SELECT count(*) FROM t", vec![]).unwrap();
    assert!(matches!(count.rows[0].values[0], sql3::Value::Integer(1)));
    // …and afterwards ATTACH is refused again.
    assert!(exec3(&mut s, &c, "ATTACH '' AS x", vec![]).is_err());
}

#[test]
fn sqlite_pragmas_and_functions_that_reach_beyond_the_database_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let c = open_db(&mut s);
    exec3(
        &mut s,
        &c,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v)",
        vec![],
    )
    .unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    for sql in [
        format!("PRAGMA temp_store_directory = '{}'", elsewhere.display()),
        format!("PRAGMA data_store_directory = '{}'", elsewhere.display()),
        "PRAGMA writable_schema = ON".into(),
        "PRAGMA journal_mode = DELETE".into(),
        "PRAGMA locking_mode = EXCLUSIVE".into(),
        "PRAGMA mmap_size = 1000000".into(),
        "PRAGMA soft_heap_limit = 1".into(),
        "SELECT load_extension('/nonexistent/ext')".into(),
    ] {
        match exec3(&mut s, &c, &sql, vec![]) {
            Err(sql3::Error::Io(msg)) => assert!(msg.contains("not allowed"), "{sql}: {msg}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    // What applications do with their own database still works.
    for sql in [
        "PRAGMA foreign_keys = ON",
        "PRAGMA journal_mode = WAL",
        "PRAGMA user_version = 7",
        "PRAGMA busy_timeout = 100",
        "CREATE INDEX t_v ON t (v)",
        "CREATE VIEW w AS SELECT v FROM t",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
        "CREATE VIRTUAL TABLE f USING fts5 (body)",
        "INSERT INTO f (body) VALUES ('hello world')",
        "SAVEPOINT sp",
        "INSERT INTO t (v) VALUES (1)",
        "RELEASE sp",
        "ANALYZE",
        "ALTER TABLE t ADD COLUMN w",
        "PRAGMA integrity_check",
        "PRAGMA index_list(t)",
    ] {
        exec3(&mut s, &c, sql, vec![]).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    let v = exec3(&mut s, &c, "PRAGMA user_version", vec![]).unwrap();
    assert!(matches!(v.rows[0].values[0], sql3::Value::Integer(7)));
    let info = exec3(&mut s, &c, "PRAGMA table_info(t)", vec![]).unwrap();
    assert_eq!(info.rows.len(), 3);
    let hit = exec3(
        &mut s,
        &c,
        "SELECT body FROM f WHERE f MATCH 'hello'",
        vec![],
    )
    .unwrap();
    assert_eq!(hit.rows.len(), 1);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn kv_set_past_the_quota_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let quota_state = |dir: &Path| {
        let resources = SpinResources::new(ResourceOptions {
            key_value: HashMap::from([
                ("default".into(), dir.join("kv.db").into()),
                ("other".into(), dir.join("kv.db").into()),
            ]),
            max_kv_store_bytes: Some(1000),
            ..Default::default()
        })
        .unwrap();
        SpinState::new(Arc::new(resources), grants())
    };
    let stored = |dir: &Path| -> i64 {
        rusqlite::Connection::open(dir.join("kv.db"))
            .unwrap()
            .query_row(
                "SELECT sum(length(key) + length(value)) FROM spin_key_value WHERE store = 'default'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    {
        let mut s = quota_state(dir.path());
        let st = s.key_value.open("default".into()).unwrap().unwrap();
        let b = || Resource::<KvStore>::new_borrow(st.rep());
        // "a" + 500 bytes: 501 of 1000.
        wait(s.key_value.set(b(), "a".into(), vec![1; 500]))
            .unwrap()
            .unwrap();
        // "b" + 600 bytes would make 1102.
        match wait(s.key_value.set(b(), "b".into(), vec![2; 600])).unwrap() {
            Err(kv2::Error::Other(msg)) => assert!(
                msg.contains("quota of 1000 bytes") && msg.contains("nothing was written"),
                "{msg}"
            ),
            other => panic!("a set past the quota: {other:?}"),
        }
        assert_eq!(
            wait(s.key_value.get(b(), "b".into())).unwrap().unwrap(),
            None
        );
        assert_eq!(
            wait(s.key_value.get_keys(b())).unwrap().unwrap(),
            strings(&["a"])
        );
        assert_eq!(stored(dir.path()), 501);
        // Replacing a value counts the new size, not both.
        wait(s.key_value.set(b(), "a".into(), vec![3; 900]))
            .unwrap()
            .unwrap();
        assert_eq!(stored(dir.path()), 901);
        // Deleting frees room.
        wait(s.key_value.delete(b(), "a".into())).unwrap().unwrap();
        wait(s.key_value.set(b(), "b".into(), vec![2; 600]))
            .unwrap()
            .unwrap();
        // Each store has its own quota, even in a shared file.
        let other = s.key_value.open("other".into()).unwrap().unwrap();
        wait(s.key_value.set(other, "c".into(), vec![4; 900]))
            .unwrap()
            .unwrap();
    }
    // After a restart the quota counts what the file already holds.
    let mut s = quota_state(dir.path());
    let st = s.key_value.open("default".into()).unwrap().unwrap();
    let b = || Resource::<KvStore>::new_borrow(st.rep());
    assert!(wait(s.key_value.set(b(), "d".into(), vec![5; 500]))
        .unwrap()
        .is_err());
    assert_eq!(stored(dir.path()), 601);
    wait(s.key_value.set(b(), "d".into(), vec![5; 300]))
        .unwrap()
        .unwrap();
    assert_eq!(stored(dir.path()), 902);
}

// ---- variables 2.0 ---------------------------------------------------------------------------

#[test]
fn variables_resolve_for_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let mut get = |name: &str| var2::Host::get(&mut s.variables, name.into()).unwrap();
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

/// What each unit's host functions get from the store, and the getters wasmtime uses.
type KvData = HasSelf<KeyValueInstance>;
type SqlData = HasSelf<SqliteInstance>;
type VarData = HasSelf<VariablesInstance>;

fn kv_of(host: &mut TestHost) -> &mut KeyValueInstance {
    &mut host.spin.key_value
}

fn sqlite_of(host: &mut TestHost) -> &mut SqliteInstance {
    &mut host.spin.sqlite
}

fn variables_of(host: &mut TestHost) -> &mut VariablesInstance {
    &mut host.spin.variables
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
            let acc = &acc.with_getter::<KvData>(kv_of);
            assert!(matches!(
                KvData::open(acc, "nowhere".into()).await.unwrap(),
                Err(kv3::Error::AccessDenied)
            ));
            assert!(matches!(
                KvData::open(acc, "unbacked".into()).await.unwrap(),
                Err(kv3::Error::NoSuchStore)
            ));
            let st = KvData::open(acc, "default".into()).await.unwrap().unwrap();
            let b = || Resource::<KvStore>::new_borrow(st.rep());
            for key in ["x", "y", "z"] {
                KvData::set(acc, b(), key.into(), key.as_bytes().to_vec())
                    .await
                    .unwrap()
                    .unwrap();
            }
            assert_eq!(
                KvData::get(acc, b(), "y".into()).await.unwrap().unwrap(),
                Some(b"y".to_vec())
            );
            KvData::delete(acc, b(), "y".into()).await.unwrap().unwrap();
            assert!(!KvData::exists(acc, b(), "y".into()).await.unwrap().unwrap());
            assert!(KvData::exists(acc, b(), "z".into()).await.unwrap().unwrap());

            let (keys, outcome) = KvData::get_keys(acc, b()).await.unwrap();
            let mut keys = read_stream(acc, keys).await;
            keys.sort();
            assert_eq!(keys, strings(&["x", "z"]));
            assert!(read_future(acc, outcome).await.is_ok());

            acc.with(|mut a| kv3::HostStore::drop(a.get(), st)).unwrap();
            assert_eq!(acc.with(|mut a| a.get().open_handles()), 0);
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
            let acc = &acc.with_getter::<SqlData>(sqlite_of);
            assert!(matches!(
                SqlData::open_async(acc, "nowhere".into()).await.unwrap(),
                Err(sql3::Error::AccessDenied)
            ));
            let c = SqlData::open_async(acc, "default".into())
                .await
                .unwrap()
                .unwrap();
            let rep = c.rep();
            let b = || Resource::<SqliteConnection>::new_borrow(rep);
            let exec = async |sql: &str, params: Vec<sql3::Value>| {
                SqlData::execute_async(acc, b(), sql.into(), params)
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
            assert_eq!(SqlData::last_insert_rowid_async(acc, b()).await.unwrap(), 3);
            assert_eq!(SqlData::changes_async(acc, b()).await.unwrap(), 3);

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
                let conn = a.get();
                assert_eq!(sql3::HostConnection::last_insert_rowid(conn, b()).unwrap(), 3);
                sql3::HostConnection::drop(conn, c).unwrap();
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
            let acc = &acc.with_getter::<VarData>(variables_of);
            assert_eq!(
                <VarData as var3::HostWithStore<TestHost>>::get(acc, "message".into())
                    .await
                    .unwrap()
                    .unwrap(),
                "hello, nebula!"
            );
            assert!(matches!(
                <VarData as var3::HostWithStore<TestHost>>::get(acc, "greeting".into())
                    .await
                    .unwrap(),
                Err(var3::Error::Undefined(_))
            ));
            assert!(matches!(
                <VarData as var3::HostWithStore<TestHost>>::get(acc, "Bad-Name".into())
                    .await
                    .unwrap(),
                Err(var3::Error::InvalidName(_))
            ));
        })
        .await
        .unwrap();
}

// ---- no SQLite work on the calling thread ----------------------------------------------------
//
// Each test holds a file's write lock on another connection and releases it from a second
// future on the same current-thread runtime. A call that ran its statement on the calling
// thread would block that thread, so the release could not run until the call gave up
// ("database is locked" after the 5 s busy timeout); a call that waits on a blocking thread
// leaves the runtime free, the lock is released, and the call succeeds.

/// Takes `file`'s write lock on a connection of its own; the future releases it.
fn hold_write_lock(file: &Path) -> impl std::future::Future<Output = ()> + Send {
    let holder = rusqlite::Connection::open(file).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    async move {
        // Let the call under test start first.
        tokio::task::yield_now().await;
        holder.execute_batch("COMMIT").unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite3_async_calls_wait_off_the_async_thread() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("data/sqlite.db");
    let kv_file = dir.path().join("kv.db");
    let mut store = test_store(dir.path());
    store
        .run_concurrent(async |acc| {
            let kv = &acc.with_getter::<KvData>(kv_of);
            let acc = &acc.with_getter::<SqlData>(sqlite_of);
            let c = SqlData::open_async(acc, "default".into())
                .await
                .unwrap()
                .unwrap();
            let rep = c.rep();
            let b = || Resource::<SqliteConnection>::new_borrow(rep);
            let (_, rows, _) =
                SqlData::execute_async(acc, b(), "CREATE TABLE t (v)".into(), vec![])
                    .await
                    .unwrap()
                    .unwrap();
            let _ = read_stream(acc, rows).await;

            let release = hold_write_lock(&db_file);
            let insert =
                SqlData::execute_async(acc, b(), "INSERT INTO t VALUES (1)".into(), vec![]);
            let (inserted, ()) = tokio::join!(insert, release);
            let (_, rows, outcome) = inserted
                .unwrap()
                .expect("the insert waited for the lock off the runtime's thread");
            let _ = read_stream(acc, rows).await;
            assert!(read_future(acc, outcome).await.is_ok());
            assert_eq!(SqlData::changes_async(acc, b()).await.unwrap(), 1);

            // Key-value 3.0, the same way.
            let st = kv3::HostStoreWithStore::open(kv, "default".into())
                .await
                .unwrap()
                .unwrap();
            let kb = || Resource::<KvStore>::new_borrow(st.rep());
            kv3::HostStoreWithStore::set(kv, kb(), "k".into(), b"1".to_vec())
                .await
                .unwrap()
                .unwrap();
            let release = hold_write_lock(&kv_file);
            let set = kv3::HostStoreWithStore::set(kv, kb(), "k".into(), b"2".to_vec());
            let (set, ()) = tokio::join!(set, release);
            set.unwrap()
                .expect("the set waited for the lock off the runtime's thread");
            assert_eq!(
                kv3::HostStoreWithStore::get(kv, kb(), "k".into())
                    .await
                    .unwrap()
                    .unwrap(),
                Some(b"2".to_vec())
            );
        })
        .await
        .unwrap();
}

#[test]
fn sqlite2_and_kv2_calls_wait_off_the_async_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = state(dir.path());
    let c = wait(sql2::HostConnection::open(&mut s.sqlite, "default".into()))
        .unwrap()
        .unwrap();
    wait(sql2::HostConnection::execute(
        &mut s.sqlite,
        borrow(&c),
        "CREATE TABLE t (v)".into(),
        vec![],
    ))
    .unwrap()
    .unwrap();
    let st = s.key_value.open("default".into()).unwrap().unwrap();
    let kb = || Resource::<KvStore>::new_borrow(st.rep());
    wait(s.key_value.set(kb(), "k".into(), b"1".to_vec()))
        .unwrap()
        .unwrap();

    let db_file = dir.path().join("data/sqlite.db");
    let kv_file = dir.path().join("kv.db");
    wait(async {
        let release = hold_write_lock(&db_file);
        let insert = sql2::HostConnection::execute(
            &mut s.sqlite,
            borrow(&c),
            "INSERT INTO t VALUES (1)".into(),
            vec![],
        );
        let (inserted, ()) = tokio::join!(insert, release);
        inserted
            .unwrap()
            .expect("the insert waited for the lock off the runtime's thread");

        let release = hold_write_lock(&kv_file);
        let set = s.key_value.set(kb(), "k".into(), b"2".to_vec());
        let (set, ()) = tokio::join!(set, release);
        set.unwrap()
            .expect("the set waited for the lock off the runtime's thread");
    });
    assert_eq!(
        wait(s.key_value.get(kb(), "k".into())).unwrap().unwrap(),
        Some(b"2".to_vec())
    );
}
