//! Voting: one vote per POST, nothing lost under concurrency.

use rusqlite::Connection;

use crate::support::{agent, Server};

fn votes(s: &Server, id: i64) -> i64 {
    let conn = Connection::open(s.dir.path().join("app.db")).unwrap();
    conn.query_row("SELECT votes FROM memes WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
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
fn two_hundred_concurrent_votes_add_exactly_two_hundred() {
    let s = Server::start("app.toml", &[]);
    let id = 7;
    let before = votes(&s, id);
    let url = s.url(&format!("/memes/{id}/vote"));
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let a = agent();
                let mut ok = 0;
                for _ in 0..10 {
                    let r = a
                        .post(&url)
                        .header("accept", "application/json")
                        .send_empty()
                        .unwrap();
                    if r.status() == 200 {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let ok: i32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(ok, 200, "every vote is acknowledged");
    assert_eq!(votes(&s, id), before + 200);
    let api = s.get("/api/memes?page=1").json();
    let _ = api;
}
