//! Atomic writes: one vote per POST, nothing lost under concurrency, and a
//! request whose effects include a failing one writes nothing.

use rusqlite::Connection;

use crate::support::{agent, Server};

fn votes(s: &Server, id: i64) -> i64 {
    s.sql_i64(&format!("SELECT votes FROM memes WHERE id = {id}"))
}

#[test]
fn a_vote_from_the_html_form_adds_one_and_redirects_back() {
    let s = Server::start("app.toml", &[]);
    let before = votes(&s, 3);
    let r = s.post_form("/memes/3/vote", &[]);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/memes/3"));
    assert_eq!(votes(&s, 3), before + 1);
    // The page shows the new count.
    assert!(s.get("/memes/3").text().contains(&(before + 1).to_string()));

    let r = s.post_form("/memes/999999/vote", &[]);
    assert_eq!(r.status, 404);
    let r = s.post_form("/memes/abc/vote", &[]);
    assert_eq!(r.status, 404);
}

#[test]
fn a_thousand_concurrent_votes_over_ten_memes_add_exactly_a_thousand() {
    // 1,000 votes from one address: past app.toml's rate_limit without the flag.
    let s = Server::start("app.toml", &["--no-rate-limits"]);
    let ids: Vec<i64> = (1..=10).collect();
    let before: Vec<i64> = ids.iter().map(|&id| votes(&s, id)).collect();
    let total_before = total_votes(&s);
    // 25 threads × 40 votes, each thread cycling through the ten memes from
    // its own offset: every meme gets exactly 100 votes, all at once.
    let threads: Vec<_> = (0..25)
        .map(|t| {
            let urls: Vec<String> = ids
                .iter()
                .map(|id| s.url(&format!("/memes/{id}/vote")))
                .collect();
            std::thread::spawn(move || {
                let a = agent();
                let mut ok = 0;
                for i in 0..40 {
                    let r = a
                        .post(&urls[(t + i) % urls.len()])
                        .header("accept", "application/json")
                        .send_empty()
                        .unwrap();
                    assert_eq!(r.status(), 200, "vote {i} of thread {t}");
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    let ok: i32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(ok, 1000, "every vote is acknowledged");
    for (id, b) in ids.iter().zip(&before) {
        assert_eq!(votes(&s, *id), b + 100, "meme {id} lost or gained votes");
    }
    assert_eq!(total_votes(&s), total_before + 1000);
}

fn total_votes(s: &Server) -> i64 {
    s.sql_i64("SELECT sum(votes) FROM memes")
}

fn notes(s: &Server) -> Vec<String> {
    let conn = Connection::open(s.dir.path().join("app.db")).unwrap();
    let mut stmt = conn.prepare("SELECT text FROM notes ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_request_whose_effects_include_a_failing_one_writes_nothing() {
    let s = Server::start("host/tests/apps/probe.toml", &[]);
    let r = s.request("POST", "/effects?mode=ok", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(notes(&s), ["fine"]);
    for mode in [
        "undeclared",
        "other-route",
        "constraint",
        "many-then-constraint",
        "too-many-args",
        "too-few-args",
    ] {
        let r = s.request("POST", &format!("/effects?mode={mode}"), b"");
        assert_eq!(r.status, 500, "{mode}: {}", r.text());
        assert!(
            !r.text().contains("must never reach"),
            "{mode}: the component's answer was sent although its writes failed"
        );
        assert!(
            r.text().contains("nothing was written"),
            "{mode}: {}",
            r.text()
        );
        // `other-route` asked for `wipe` (DELETE FROM notes): still there.
        assert_eq!(notes(&s), ["fine"], "{mode} wrote something");
    }
    // Failed requests at the same time as good ones: exactly the good ones land.
    let url = s.url("/effects");
    let threads: Vec<_> = (0..10)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let a = agent();
                for i in 0..10 {
                    let mode = if (t + i) % 2 == 0 {
                        "ok"
                    } else {
                        "many-then-constraint"
                    };
                    let r = a.post(format!("{url}?mode={mode}")).send_empty().unwrap();
                    let want = if mode == "ok" { 200 } else { 500 };
                    assert_eq!(r.status(), want, "{mode}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(notes(&s).len(), 1 + 50);
    assert!(notes(&s).iter().all(|n| n == "fine"));
}
