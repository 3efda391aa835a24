//! Reads are bounded (issue 12, item 6): a read over its `max_rows` or
//! `max_bytes`, or running past its `timeout_ms`, is a 500 with a log line
//! naming the read and the key to raise, and reads run on blocking threads,
//! so a slow one never holds an async worker. And `{{last_insert_rowid}}` is
//! this request's (item 14). The app is host/tests/apps/reads.toml.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::Server;

const APP: &str = "host/tests/apps/reads.toml";

#[test]
fn a_read_over_max_rows_is_a_500_with_a_log_line_naming_the_read_and_the_key() {
    let s = Server::start(APP, &[]);
    // Five rows when five are allowed: served.
    let r = s.get("/rows-at-cap");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.log());
    // Ten rows when five are allowed: refused, and the log says what to raise.
    let r = s.get("/rows");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().contains("could not be read"),
        "the page says what failed: {}",
        r.text()
    );
    let log = s.log();
    assert!(
        log.contains("read \"all_items\" returned more than max_rows = 5 rows")
            && log.contains("raise [reads.all_items] max_rows")
            && log.contains("[limits] read_max_rows"),
        "{log}"
    );
    // The host goes on serving.
    assert_eq!(s.get("/hello").status, 200);
}

#[test]
fn a_read_over_max_bytes_is_a_500_with_a_log_line_naming_the_read_and_the_key() {
    let s = Server::start(APP, &[]);
    let r = s.get("/bytes");
    assert_eq!(r.status, 500, "{}", r.text());
    let log = s.log();
    assert!(
        log.contains("read \"item_texts\" returned more than max_bytes = 200 bytes")
            && log.contains("raise [reads.item_texts] max_bytes")
            && log.contains("[limits] read_max_bytes"),
        "{log}"
    );
    assert_eq!(s.get("/hello").status, 200);
}

#[test]
fn a_read_that_runs_forever_is_stopped_at_its_timeout_and_the_host_keeps_serving() {
    let s = Arc::new(Server::start(APP, &[]));
    // A recursive CTE without end, with a 300 ms deadline.
    let r = s.get("/endless");
    assert_eq!(r.status, 500, "{}", r.text());
    let log = s.log();
    assert!(
        log.contains("read \"endless\" ran longer than timeout_ms = 300 and was stopped")
            && log.contains("raise [reads.endless] timeout_ms"),
        "{log}"
    );

    // Four endless reads at once (more than the host has async workers: one
    // per core), each with the app-wide 5 s deadline. While they run, other
    // requests are answered: the reads hold blocking threads, not workers.
    let finished = Arc::new(AtomicUsize::new(0));
    let endless: Vec<_> = (0..4)
        .map(|_| {
            let (s, finished) = (s.clone(), finished.clone());
            std::thread::spawn(move || {
                let status = s.get("/endless-default").status;
                finished.fetch_add(1, Ordering::SeqCst);
                status
            })
        })
        .collect();
    // Give them time to reach SQLite (not a measurement: the assertions
    // below hold whenever they arrived).
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        assert_eq!(s.get("/hello").status, 200);
    }
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "the endless reads were answered before their deadline"
    );
    for t in endless {
        assert_eq!(t.join().unwrap(), 500);
    }
    let log = s.log();
    assert_eq!(
        log.matches("read \"endless_default\" ran longer than timeout_ms = 5000")
            .count(),
        4,
        "{log}"
    );
    assert!(log.contains("raise [reads.endless_default] timeout_ms (or [limits] read_timeout_ms"));
    assert_eq!(
        s.get("/rows-at-cap").status,
        200,
        "readers work after interrupts"
    );
}

#[test]
fn last_insert_rowid_of_a_request_that_inserts_nothing_is_0() {
    let s = Server::start(APP, &[]);
    let post = |path: &str| {
        let r = s.request("POST", path, b"");
        assert_eq!(r.status, 303, "{path}: {}\n{}", r.text(), s.log());
        r.header("location").unwrap().to_string()
    };
    assert_eq!(post("/insert?mode=rowid-insert"), "/x/1");
    assert_eq!(post("/insert?mode=rowid-insert"), "/x/2");
    // An UPDATE inserts nothing: 0, not the previous request's 2.
    assert_eq!(post("/update?mode=rowid-update"), "/x/0");
    assert_eq!(post("/update?mode=rowid-update"), "/x/0");
    // No effects at all: nothing inserted either.
    assert_eq!(post("/update?mode=rowid-none"), "/x/0");
    assert_eq!(post("/insert?mode=rowid-insert"), "/x/3");
    // The updates did run: each appended a dot to every note.
    let conn = rusqlite::Connection::open(s.dir.path().join("app.db")).unwrap();
    let text: String = conn
        .query_row("SELECT text FROM notes WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(text, "inserted..");
}
