//! Crash safety: SIGKILL in the middle of a write load (votes and
//! submissions), then restart on the same database, several times. Every
//! write whose response was a success must be there, and the database must
//! pass SQLite's integrity check.
//!
//! Why it holds: the data layer runs SQLite in WAL mode with
//! synchronous=NORMAL. A transaction's commit record is written to the WAL
//! (in the OS page cache) before COMMIT returns, and the response is sent
//! only after that; a killed process loses nothing the kernel already has.
//! (NORMAL skips the fsync at commit, so a power cut may lose the last
//! commits; FULL would cover that at the price of an fsync per write.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use crate::support::{agent, Server};

const ITERATIONS: usize = 3;
const MEMES: i64 = 10;

fn votes_by_meme(db: &std::path::Path) -> HashMap<i64, i64> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, votes FROM memes WHERE id <= ?1")
        .unwrap();
    stmt.query_map([MEMES], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn integrity(db: &std::path::Path) -> String {
    let conn = Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sigkill_during_writes_loses_no_acknowledged_write_and_the_database_opens_cleanly() {
    let keep = tempfile::tempdir().unwrap();
    let db = keep.path().join("app.db");
    let start = || {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nebula.log");
        // Votes and submissions as fast as they go, from one address.
        Server::start_with("app.toml", &db, dir, log, &["--no-rate-limits"])
    };
    // First start creates the database from schema and seed.
    let s = start();
    let template: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT id FROM templates ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    drop(s);

    for iteration in 0..ITERATIONS {
        let mut s = start();
        let before = votes_by_meme(&db);
        let stop = Arc::new(AtomicBool::new(false));
        let voters: Vec<_> = (0..4)
            .map(|t| {
                let (base, stop) = (s.base.clone(), stop.clone());
                std::thread::spawn(move || {
                    let a = agent();
                    let mut acked: HashMap<i64, i64> = HashMap::new();
                    let mut n = t as i64;
                    while !stop.load(Ordering::SeqCst) {
                        let id = n % MEMES + 1;
                        n += 1;
                        let r = a
                            .post(format!("{base}/memes/{id}/vote"))
                            .header("accept", "application/json")
                            .send_empty();
                        match r {
                            Ok(r) if r.status() == 200 => *acked.entry(id).or_default() += 1,
                            Ok(_) => {}
                            Err(_) => break, // the host is gone
                        }
                    }
                    acked
                })
            })
            .collect();
        let submitters: Vec<_> = (0..2)
            .map(|t| {
                let (base, stop, template) = (s.base.clone(), stop.clone(), template.clone());
                std::thread::spawn(move || {
                    let a = agent();
                    let mut acked = Vec::new();
                    for n in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let title = format!("crash {iteration}-{t}-{n}");
                        let body: String = form_urlencoded::Serializer::new(String::new())
                            .extend_pairs([
                                ("template", template.as_str()),
                                ("top_text", title.as_str()),
                                ("bottom_text", "acknowledged"),
                                ("tags", "crash"),
                            ])
                            .finish();
                        let r = a
                            .post(format!("{base}/memes"))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .send(body.as_bytes());
                        match r {
                            Ok(r) if r.status() == 303 => acked.push(title),
                            Ok(r) => panic!("submission refused: {}", r.status()),
                            Err(_) => break,
                        }
                    }
                    acked
                })
            })
            .collect();

        // Kill it while writes are in flight.
        std::thread::sleep(Duration::from_millis(300 + 150 * iteration as u64));
        s.signal(libc::SIGKILL);
        let status = s.wait_exit(Duration::from_secs(10)).expect("killed");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        stop.store(true, Ordering::SeqCst);
        let mut acked_votes: HashMap<i64, i64> = HashMap::new();
        for t in voters {
            for (id, n) in t.join().unwrap() {
                *acked_votes.entry(id).or_default() += n;
            }
        }
        let acked_titles: Vec<String> = submitters
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let total: i64 = acked_votes.values().sum();
        assert!(
            total > 0 && !acked_titles.is_empty(),
            "iteration {iteration}: the load wrote nothing before the kill ({total} votes, {} memes)",
            acked_titles.len()
        );

        // Restart: the host opens the database the crash left.
        let s = start();
        assert_eq!(s.get("/").status, 200);
        assert_eq!(integrity(&db), "ok", "iteration {iteration}");
        let after = votes_by_meme(&db);
        for (id, n) in &acked_votes {
            assert!(
                after[id] >= before[id] + n,
                "iteration {iteration}: meme {id} had {} votes, {n} acknowledged, now {}",
                before[id],
                after[id]
            );
        }
        let conn = Connection::open(&db).unwrap();
        for title in &acked_titles {
            let found: i64 = conn
                .query_row(
                    "SELECT count(*) FROM memes WHERE top_text = ?1",
                    [title],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                found, 1,
                "iteration {iteration}: acknowledged meme {title:?}"
            );
        }
        // The site shows the newest acknowledged meme.
        let newest = acked_titles.last().unwrap();
        let id: i64 = conn
            .query_row("SELECT id FROM memes WHERE top_text = ?1", [newest], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(s
            .get(&format!("/memes/{id}"))
            .text()
            .contains(newest.as_str()));
    }
}
