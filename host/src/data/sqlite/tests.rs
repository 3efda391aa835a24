//! The SQLite store through the [`DataStore`] trait, as the request path
//! uses it.

use std::sync::Arc;

use crate::contract::{Effect, Table, Value};
use crate::data::{self, DataStore, ReadError, ReadPlan, WriteError};
use crate::manifest::{Binding, Manifest};

const SCHEMA: &str = "
CREATE TABLE items (id INTEGER PRIMARY KEY, text TEXT NOT NULL CHECK (length(text) > 0));
INSERT INTO items (text) VALUES ('one'), ('two'), ('three');
CREATE TABLE votes (item INTEGER NOT NULL, visitor TEXT NOT NULL);
";

const MANIFEST: &str = r#"
[app]
name = "store"

[database]
path = "data/store.db"
schema = "schema.sql"

[session]

[reads.items]
sql = "SELECT id, text FROM items ORDER BY id"

[reads.capped]
sql = "SELECT id FROM items"
max_rows = 2

[reads.bytes]
sql = "SELECT text FROM items"
max_bytes = 5

[reads.endless]
sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) AS n FROM r"
timeout_ms = 50

[reads.by_text]
sql = "SELECT id FROM items WHERE text = :t OR text = @u OR (:t IS NULL AND id = 3)"
bind = { t = "query.t", u = "query.u" }

[reads.my_votes]
sql = "SELECT item FROM votes WHERE visitor = :me"
bind = { me = "session.id" }

[writes.add]
sql = "INSERT INTO items (text) VALUES (?1)"

[writes.rename]
sql = "UPDATE items SET text = ?2 WHERE id = ?1"

[writes.vote]
sql = "INSERT INTO votes (item, visitor) VALUES (?1, :session_id)"
"#;

/// A manifest in a fresh folder, with its schema beside it.
fn app(manifest: &str) -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.sql"), SCHEMA).unwrap();
    let file = dir.path().join("app.toml");
    std::fs::write(&file, manifest).unwrap();
    let m = Manifest::load(&file).unwrap();
    (dir, m)
}

fn store() -> (tempfile::TempDir, Manifest, Arc<dyn DataStore>) {
    let (dir, m) = app(MANIFEST);
    let s = data::open(&m, None).unwrap();
    (dir, m, s)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn plan(m: &Manifest, read: &str, query: &[(&str, &str)]) -> ReadPlan {
    ReadPlan::bind(&m.reads[read], |b| match b {
        Binding::Query(n) => query
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.to_string()),
        Binding::Session => Some("visitor-1".into()),
        _ => None,
    })
}

fn effect(write: &str, args: Vec<Value>) -> Effect {
    Effect {
        write: write.into(),
        args,
    }
}

fn declared(m: &Manifest, writes: &[&str]) -> Vec<(String, String)> {
    writes
        .iter()
        .map(|w| (w.to_string(), m.writes[*w].sql.clone()))
        .collect()
}

/// The first column of `table`, which holds integers.
fn ints(table: &Table) -> Vec<i64> {
    table
        .rows
        .iter()
        .map(|r| match r[0] {
            Value::Integer(n) => n,
            ref v => panic!("{v:?}"),
        })
        .collect()
}

fn texts(s: &dyn DataStore, m: &Manifest) -> Vec<String> {
    let tables = block_on(s.read(vec![plan(m, "items", &[])])).unwrap();
    tables[0]
        .rows
        .iter()
        .map(|r| match &r[1] {
            Value::Text(t) => t.clone(),
            v => panic!("{v:?}"),
        })
        .collect()
}

#[test]
fn a_new_database_is_made_from_the_schema_in_its_folder_and_described() {
    let (dir, _m, s) = store();
    let db = dir.path().join("data/store.db");
    assert!(db.exists());
    assert_eq!(s.describe(), format!("sqlite:{}", db.display()));
    assert_eq!(
        s.host_file("session-key"),
        Some(dir.path().join("data/store.db.session-key"))
    );
}

#[test]
fn reads_return_one_table_per_plan_in_order_with_their_bindings() {
    let (_dir, m, s) = store();
    let tables = block_on(s.read(vec![
        plan(&m, "items", &[]),
        // `:t` and `@u` both bind by their bare names; NULL when absent.
        plan(&m, "by_text", &[("t", "two"), ("u", "one")]),
        plan(&m, "by_text", &[]),
    ]))
    .unwrap();
    assert_eq!(tables.len(), 3);
    assert_eq!(tables[0].name, "items");
    assert_eq!(tables[0].columns, ["id", "text"]);
    assert_eq!(tables[0].rows.len(), 3);
    assert_eq!(ints(&tables[1]), [1, 2]);
    assert_eq!(ints(&tables[2]), [3]);
    assert!(block_on(s.read(Vec::new())).unwrap().is_empty());
}

#[test]
fn reads_past_their_limits_fail_naming_the_read() {
    let (_dir, m, s) = store();
    let err = |read: &str| block_on(s.read(vec![plan(&m, read, &[])])).unwrap_err();
    assert!(matches!(
        err("capped"),
        ReadError::TooManyRows { max_rows: 2, .. }
    ));
    assert!(matches!(
        err("bytes"),
        ReadError::TooManyBytes { max_bytes: 5, .. }
    ));
    let e = err("endless");
    assert!(
        matches!(e, ReadError::Timeout { timeout_ms: 50, .. }),
        "{e}"
    );
    assert!(e.to_string().starts_with(
        "read \"endless\" ran longer than timeout_ms = 50 and was stopped; raise [reads.endless] timeout_ms"
    ));
    // A reader that was interrupted is dropped, and the next read works.
    assert_eq!(texts(&*s, &m), ["one", "two", "three"]);
}

#[test]
fn effects_apply_together_and_return_this_requests_last_insert() {
    let (_dir, m, s) = store();
    let writes = declared(&m, &["add", "rename"]);
    let id = block_on(s.apply(
        vec![
            effect("add", vec![Value::Text("four".into())]),
            effect("rename", vec![Value::Integer(1), Value::Text("uno".into())]),
        ],
        None,
        writes.clone(),
    ))
    .unwrap();
    assert_eq!(id, 4);
    // An update only: 0, not the earlier request's insert.
    let id = block_on(s.apply(
        vec![effect(
            "rename",
            vec![Value::Integer(2), Value::Text("dos".into())],
        )],
        None,
        writes,
    ))
    .unwrap();
    assert_eq!(id, 0);
    assert_eq!(texts(&*s, &m), ["uno", "dos", "three", "four"]);
}

#[test]
fn a_refused_effect_writes_nothing() {
    let (_dir, m, s) = store();
    let apply = |effects: Vec<Effect>| {
        block_on(s.apply(effects, None, declared(&m, &["add", "rename"]))).unwrap_err()
    };
    let add = || effect("add", vec![Value::Text("new".into())]);
    let e = apply(vec![add(), effect("vote", vec![Value::Integer(1)])]);
    assert!(
        matches!(&e, WriteError::Undeclared(w) if w == "vote"),
        "{e}"
    );
    let e = apply(vec![add(), effect("rename", vec![Value::Integer(1)])]);
    assert_eq!(
        e.to_string(),
        "write \"rename\" takes 2 argument(s), the component gave 1"
    );
    // The second breaks a CHECK: the first is rolled back with it.
    let e = apply(vec![add(), effect("add", vec![Value::Text(String::new())])]);
    assert!(
        e.to_string()
            .starts_with("the transaction failed and was rolled back: CHECK constraint failed"),
        "{e}"
    );
    assert_eq!(texts(&*s, &m), ["one", "two", "three"]);
}

#[test]
fn the_visitor_id_binds_session_id_in_writes_and_session_in_reads() {
    let (_dir, m, s) = store();
    block_on(s.apply(
        vec![effect("vote", vec![Value::Integer(2)])],
        Some("visitor-1".into()),
        declared(&m, &["vote"]),
    ))
    .unwrap();
    let tables = block_on(s.read(vec![plan(&m, "my_votes", &[])])).unwrap();
    assert_eq!(ints(&tables[0]), [2]);
}

#[test]
fn close_checkpoints_the_wal_into_the_database_file() {
    let (dir, m, s) = store();
    block_on(s.apply(
        vec![effect("add", vec![Value::Text("four".into())])],
        None,
        declared(&m, &["add"]),
    ))
    .unwrap();
    s.trim();
    s.close().unwrap();
    let wal = dir.path().join("data/store.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    // Still serving after close: a late request gets a working store.
    assert_eq!(texts(&*s, &m), ["one", "two", "three", "four"]);
}

#[test]
fn a_statement_that_does_not_prepare_stops_the_open_naming_its_key() {
    let (dir, m) = app(&MANIFEST.replace("FROM items ORDER BY id\"", "FROM itemz\""));
    let e = data::open(&m, Some(&dir.path().join("other.db")))
        .err()
        .unwrap();
    let e = format!("{e:#}");
    assert!(
        e.contains("reads.items.sql does not prepare against the database")
            && e.contains("no such table: itemz"),
        "{e}"
    );
    // `path` overrides the manifest's: the manifest's was never made.
    assert!(!dir.path().join("data/store.db").exists());
}
