//! The health check a load balancer asks, and exactly-once writes, on
//! whichever store the crate runs the site on (`it`: SQLite, `postgres`).

use std::time::{Duration, Instant};

use crate::support::{agent, Server};

#[test]
fn health_is_ok_then_fails_first_on_sigterm_while_requests_are_still_served() {
    let mut s = Server::start("app.toml", &["--drain-delay-ms", "1500"]);
    let r = s.get("/.well-known/nebula/health");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.json()["status"], "ok");
    s.signal(libc::SIGTERM);
    let start = Instant::now();
    // Within the drain delay: health says 503 "draining", pages still work.
    let mut saw_draining = false;
    while start.elapsed() < Duration::from_millis(1000) {
        let r = s.get("/.well-known/nebula/health");
        if r.status == 503 {
            assert_eq!(r.json()["reason"], "draining");
            saw_draining = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_draining, "health did not fail after SIGTERM");
    assert_eq!(
        s.get("/").status,
        200,
        "still serving during the drain delay"
    );
    assert_eq!(s.get("/.well-known/nebula/health?live").status, 503);
    let status = s
        .wait_exit(Duration::from_secs(15))
        .expect("exits after the drain");
    assert!(status.success(), "{status:?}\n{}", s.log());
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "stopped accepting before the drain delay ran out"
    );
}

#[test]
fn a_write_retried_with_its_idempotency_key_is_applied_once() {
    let s = Server::start("app.toml", &["--no-rate-limits"]);
    let votes = || s.sql_i64("SELECT votes FROM memes WHERE id = 11");
    let before = votes();
    let post = |key: &str, meme: u32| {
        agent()
            .post(s.url(&format!("/memes/{meme}/vote")))
            .header("accept", "application/json")
            .header("idempotency-key", key)
            .send_empty()
            .unwrap()
    };
    let mut first = post("7d3c2a10-5f43-4c55-8f0e-0000000000aa", 11);
    assert_eq!(first.status(), 200);
    let body = first.body_mut().read_to_string().unwrap();
    // The retry (a new visitor: this client keeps no cookie) gets the same
    // answer, marked as a replay, and nothing is written again.
    let mut again = post("7d3c2a10-5f43-4c55-8f0e-0000000000aa", 11);
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.body_mut().read_to_string().unwrap(), body);
    assert_eq!(votes(), before + 1);
    // The key on a different request: 422, nothing written.
    let twelve = s.sql_i64("SELECT votes FROM memes WHERE id = 12");
    assert_eq!(
        post("7d3c2a10-5f43-4c55-8f0e-0000000000aa", 12).status(),
        422
    );
    assert_eq!(s.sql_i64("SELECT votes FROM memes WHERE id = 12"), twelve);
    // A malformed key is a 400 before anything runs.
    assert_eq!(post("", 12).status(), 400);
    assert_eq!(post("has space", 12).status(), 400);
    // Without a key, two requests are two votes, as before.
    let r = agent()
        .post(s.url("/memes/11/vote"))
        .header("accept", "application/json")
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(votes(), before + 2);
}
