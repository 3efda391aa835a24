//! A Spin app on several nodes: two `nebula up` processes serve the same
//! spin.toml, each with its own data folder, and the runtime config puts the
//! key-value store `default` on a shared server (Redis on 127.0.0.1:6379, or
//! PostgreSQL on 127.0.0.1:5432 as `postgres` with trust auth). A write
//! through one node is read through the other. The app's SQLite database
//! stays per node, and each node says so at start.
//!
//! The servers are driven with their own clients (`redis-cli`, `psql`), which
//! come with them.

use std::path::Path;
use std::process::Command;

use crate::support::Server;

const V5: &str = "guests/spin-compat/sdk-v5/spin.toml";

/// One node of the app, with `cfg` as its runtime config.
fn node(cfg: &Path) -> Server {
    Server::start_spin(
        V5,
        &["--runtime-config-file", cfg.to_str().unwrap()],
        &[("SPIN_VARIABLE_API_KEY", "s3cret-key")],
    )
}

fn write_config(dir: &Path, kind: &str, url: &str) -> std::path::PathBuf {
    let cfg = dir.join("runtime-config.toml");
    std::fs::write(
        &cfg,
        format!("[key_value_store.default]\ntype = {kind:?}\nurl = {url:?}\n"),
    )
    .unwrap();
    cfg
}

/// The guest's counter goes up by one per request, whichever node serves it:
/// each node reads what the other wrote.
fn counter_is_shared(a: &Server, b: &Server) {
    for (i, n) in [a, b, a, b].into_iter().enumerate() {
        let r = n.get("/kv/counter");
        assert_eq!(r.status, 200, "{}", n.log());
        assert_eq!(r.text(), (i + 1).to_string(), "{}", n.log());
    }
}

/// Each node warns, naming the labels, that its SQLite database is its own.
fn warns_of_local_sqlite(n: &Server) {
    let log = n.log();
    assert!(
        log.contains("key-value store(s) \"default\" are shared")
            && log.contains("SQLite database(s) \"default\" are local files")
            && log.contains("each node has its own copy"),
        "{log}"
    );
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn redis(db: u32, args: &[&str]) -> String {
    let db = db.to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", "6379", "-n", &db];
    all.extend_from_slice(args);
    run("redis-cli", &all)
}

/// A Redis database (1–15) holding no keys, so that the app's raw key
/// `counter` is this test's alone; the key is deleted on drop.
struct RedisDb(u32);

impl RedisDb {
    fn claim() -> Self {
        let start = std::process::id() % 15;
        (0..15)
            .map(|i| 1 + (start + i) % 15)
            .find(|&db| redis(db, &["DBSIZE"]) == "0")
            .map(RedisDb)
            .expect("an empty Redis database among 1-15")
    }
}

impl Drop for RedisDb {
    fn drop(&mut self) {
        redis(self.0, &["DEL", "counter"]);
    }
}

#[test]
fn spin_app_on_two_nodes_shares_a_redis_store_and_warns_of_local_sqlite() {
    let db = RedisDb::claim();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "redis",
        &format!("redis://127.0.0.1:6379/{}", db.0),
    );
    let a = node(&cfg);
    let b = node(&cfg);
    counter_is_shared(&a, &b);
    // Spin's layout on Redis: the key as the guest named it.
    assert_eq!(redis(db.0, &["GET", "counter"]), "4");
    warns_of_local_sqlite(&a);
    warns_of_local_sqlite(&b);
}

fn psql(sql: &str) -> String {
    run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            sql,
        ],
    )
}

/// A database of this test's own, dropped on drop.
struct PgDb(String);

impl PgDb {
    fn create() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("nebula_kv_{}_{nanos}", std::process::id());
        psql(&format!("CREATE DATABASE {name}"));
        PgDb(name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

#[test]
fn spin_app_on_two_nodes_shares_a_postgres_store() {
    let db = PgDb::create();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "postgres",
        &format!("postgres://postgres@127.0.0.1:5432/{}", db.0),
    );
    let mut a = node(&cfg);
    let mut b = node(&cfg);
    counter_is_shared(&a, &b);
    // Nebula's layout on PostgreSQL: the label, the key, the value.
    let row = run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            &db.0,
            "-Atc",
            "SELECT store, key, convert_from(value, 'UTF8') FROM spin_key_value",
        ],
    );
    assert_eq!(row, "default|counter|4");
    warns_of_local_sqlite(&a);
    // The nodes hold pooled connections to the database: stop them first.
    a.terminate();
    b.terminate();
}
