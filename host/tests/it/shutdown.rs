//! Graceful shutdown: on SIGTERM or Ctrl-C (SIGINT) the host stops
//! accepting, lets requests in flight finish within the grace period,
//! checkpoints the database and exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::support::Server;

fn wal_is_gone_or_empty(db: &Path) -> bool {
    let wal = db.with_extension("db-wal");
    std::fs::metadata(&wal).map_or(true, |m| m.len() == 0)
}

fn votes(db: &Path, id: i64) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT votes FROM memes WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

/// Waits until connecting to `addr` is refused.
fn refused_within(addr: &str, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if TcpStream::connect(addr).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A vote whose body arrives slowly: the request is in flight, its
/// response not yet computed, while the host is told to stop.
fn start_slow_vote(addr: &str, id: i64, body: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /memes/{id}/vote HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&body[..body.len() / 2]).unwrap();
    c
}

fn check_stops_gracefully(sig: i32) {
    let mut s = Server::start("app.toml", &[]);
    let db = s.dir.path().join("app.db");
    let addr = s.addr();
    let before = votes(&db, 5);
    for _ in 0..3 {
        assert_eq!(s.request("POST", "/memes/5/vote", b"").status, 303);
    }
    assert!(
        !wal_is_gone_or_empty(&db),
        "the votes are in the WAL before shutdown"
    );

    let body = b"from=slow-client&x=1";
    let mut slow = start_slow_vote(&addr, 5, body);
    std::thread::sleep(Duration::from_millis(200));
    s.signal(sig);
    assert!(
        refused_within(&addr, Duration::from_secs(5)),
        "new connections still accepted after the signal"
    );
    assert!(s.is_running(), "exited with a request in flight");

    // The in-flight request completes.
    slow.write_all(&body[body.len() / 2..]).unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let status = s.wait_exit(Duration::from_secs(10)).expect("exited");
    assert_eq!(status.code(), Some(0), "exit status\n{}", s.log());
    assert!(
        s.log().contains("database checkpointed and closed"),
        "{}",
        s.log()
    );
    assert!(wal_is_gone_or_empty(&db), "the WAL was checkpointed");
    assert_eq!(votes(&db, 5), before + 4);
    let ok: String = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn sigterm_finishes_the_request_in_flight_refuses_new_ones_checkpoints_and_exits_0() {
    check_stops_gracefully(libc::SIGTERM);
}

#[test]
fn ctrl_c_stops_the_host_the_same_way() {
    check_stops_gracefully(libc::SIGINT);
}

#[test]
fn a_request_stuck_past_the_shutdown_grace_does_not_keep_the_host_running() {
    let mut s = Server::start("app.toml", &["--shutdown-grace-ms", "300"]);
    let db = s.dir.path().join("app.db");
    assert_eq!(s.request("POST", "/memes/2/vote", b"").status, 303);
    // Half a body, and the rest never comes.
    let _stuck = start_slow_vote(&s.addr(), 2, b"never=finished");
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(10)).expect("exited");
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_millis(300) + Duration::from_secs(2),
        "exited {:?} after SIGTERM with a 300 ms grace",
        t.elapsed()
    );
    assert!(s.log().contains("after the shutdown grace"), "{}", s.log());
    assert!(wal_is_gone_or_empty(&db));
}

/// SIGTERM while the components are still compiling in the background (a
/// cold cache): the host exits at once, not when the compiler is done, and
/// the half-filled cache serves the next start. (It waited for every
/// compile: the runtime's drop waited for the loader's blocking section.)
#[test]
fn sigterm_during_the_background_compile_exits_at_once_and_the_cache_still_serves() {
    let scratch = tempfile::tempdir().unwrap();
    // A folder inside the tempdir: the cache keeps its key beside it.
    let cache = scratch.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let cwasm = || {
        std::fs::read_dir(&cache).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
    };
    let mut s = Server::start("app.toml", &["--cache-dir", cache_arg]);
    assert_eq!(s.get("/.well-known/nebula/health").status, 200);
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some(),
        "still running 5 s after SIGTERM, {} of 7 components compiled:\n{}",
        cwasm(),
        s.log()
    );
    assert_eq!(status.unwrap().code(), Some(0), "{}", s.log());
    assert!(s.log().contains("shutting down"), "{}", s.log());
    assert!(
        cwasm() < 7,
        "every component was compiled before the exit: the test did not \
         stop a compile"
    );

    let again = Server::start("app.toml", &["--cache-dir", cache_arg]);
    assert_eq!(again.get("/").status, 200, "{}", again.log());
}
