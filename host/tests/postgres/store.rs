//! What only a shared store shows: the host's own tables, exactly-once
//! writes, health, and a database that goes away.

use crate::support::{agent, psql, PgDatabase, Server};

/// A new visitor's cookie (`name=value`), as the node at `url` sets it.
fn visitor_cookie(url: &str) -> String {
    let r = agent().get(url).call().unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

#[test]
fn the_site_starts_on_postgres_with_its_migrations_recorded_once() {
    let s = Server::start("app.toml", &[]);
    let versions = s.sql("SELECT version, name FROM nebula_migrations ORDER BY version");
    assert_eq!(
        versions,
        [["1", "schema"], ["2", "seed"], ["3", "identity"]],
        "schema, seed and the PostgreSQL-only migration; 0004 is SQLite's"
    );
    // The seed's explicit ids did not leave the identity behind: a new meme
    // gets the next id, not 1.
    let max = s.sql_i64("SELECT max(id) FROM memes");
    let r = s.post_form(
        "/memes",
        &[
            ("template", "thesis"),
            ("top_text", "a"),
            ("bottom_text", "b"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("/memes/{}", max + 1).as_str())
    );
}

#[test]
fn a_retried_vote_with_the_same_idempotency_key_counts_once_and_gets_the_same_answer() {
    let s = Server::start("app.toml", &["--no-rate-limits"]);
    let before = s.sql_i64("SELECT votes FROM memes WHERE id = 4");
    let a = agent();
    // A retrying client keeps its visitor cookie (the key is scoped by it).
    let cookie = visitor_cookie(&s.url("/"));
    let vote = |key: &str| {
        a.post(s.url("/memes/4/vote"))
            .header("accept", "application/json")
            .header("cookie", &cookie)
            .header("idempotency-key", key)
            .send_empty()
            .unwrap()
    };
    let mut first = vote("3f1c9a52-0d5e-4b8e-9a43-7e1f00000001");
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.body_mut().read_to_string().unwrap();
    for _ in 0..3 {
        let mut again = vote("3f1c9a52-0d5e-4b8e-9a43-7e1f00000001");
        assert_eq!(again.status(), 200);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.body_mut().read_to_string().unwrap(), first_body);
    }
    assert_eq!(
        s.sql_i64("SELECT votes FROM memes WHERE id = 4"),
        before + 1
    );
    assert_eq!(s.sql_i64("SELECT count(*) FROM nebula_idempotency"), 1);
    // The same key on another request is refused, and writes nothing.
    let five = s.sql_i64("SELECT votes FROM memes WHERE id = 5");
    let r = a
        .post(s.url("/memes/5/vote"))
        .header("cookie", &cookie)
        .header("idempotency-key", "3f1c9a52-0d5e-4b8e-9a43-7e1f00000001")
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(s.sql_i64("SELECT votes FROM memes WHERE id = 5"), five);

    // A client that keeps no cookie (curl, an API client) is a new visitor
    // on every request, its retry too: the retry still finds the record.
    let cookieless = |key: &str| {
        agent()
            .post(s.url("/memes/5/vote"))
            .header("accept", "application/json")
            .header("idempotency-key", key)
            .send_empty()
            .unwrap()
    };
    assert_eq!(cookieless("cookieless-1").status(), 200);
    let again = cookieless("cookieless-1");
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(s.sql_i64("SELECT votes FROM memes WHERE id = 5"), five + 1);
}

#[test]
fn two_nodes_share_data_and_visitors() {
    // Two processes, one database: a vote on one is on the other's page,
    // and the visitor cookie one node set is valid on the other (the
    // signing key lives in the database).
    let db = PgDatabase::create();
    let url = db.url();
    let a = Server::start_on_db("app.toml", &url, &["--no-rate-limits"]);
    let b = Server::start_on_db("app.toml", &url, &["--no-rate-limits"]);
    let client = agent();
    let before = a.sql_i64("SELECT votes FROM memes WHERE id = 6");
    // A cookie node A set…
    let cookie = visitor_cookie(&a.url("/"));
    let r = client
        .post(a.url("/memes/6/vote"))
        .header("accept", "application/json")
        .header("cookie", &cookie)
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 200);
    // …is the same visitor on node B: voting again there changes nothing,
    // and B keeps the cookie rather than making a new visitor.
    let r = client
        .post(b.url("/memes/6/vote"))
        .header("accept", "application/json")
        .header("cookie", &cookie)
        .send_empty()
        .unwrap();
    assert!(
        r.headers().get("set-cookie").is_none(),
        "node B did not accept node A's cookie"
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        psql(&db.name, "SELECT votes FROM memes WHERE id = 6")[0][0],
        (before + 1).to_string()
    );
    let page = b.get("/memes/6").text();
    assert!(page.contains(&(before + 1).to_string()));
}

#[test]
fn health_is_ok_with_the_database_and_503_without_it_and_requests_get_503_not_500() {
    // A database that goes away under a running node: dropped (terminating
    // the node's connections) while it serves.
    let db = PgDatabase::create();
    let s = Server::start_on_db("app.toml", &db.url(), &[]);
    let r = s.get("/.well-known/nebula/health");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "ok");
    psql(
        "postgres",
        &format!("DROP DATABASE {} WITH (FORCE)", db.name),
    );
    let r = s.get("/.well-known/nebula/health");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["status"], "unavailable");
    // Liveness does not depend on the database.
    assert_eq!(s.get("/.well-known/nebula/health?live").status, 200);
    let r = s.get("/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    let r = s.post_form("/memes/3/vote", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
}

/// The home page with `cookie`, as node `s` answers it: (ETag, body).
fn home_page(s: &Server, cookie: &str) -> (Option<String>, String) {
    let r = agent()
        .get(s.url("/"))
        .header("cookie", cookie)
        .call()
        .unwrap();
    let etag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    (etag, r.into_body().read_to_string().unwrap())
}

/// Waits up to 10 s for `ok`, else fails with `what`.
fn until(what: &str, ok: &dyn Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Two nodes on one new database, a visitor's cookie, and node B
/// memoising its home page (its listener may take a moment to start; until
/// then it memoises nothing: no ETag).
fn two_nodes_with_b_memoising() -> (PgDatabase, Server, Server, String) {
    let db = PgDatabase::create();
    let url = db.url();
    let a = Server::start_on_db("app.toml", &url, &["--no-rate-limits"]);
    let b = Server::start_on_db("app.toml", &url, &["--no-rate-limits"]);
    let cookie = visitor_cookie(&b.url("/"));
    until("node B never memoised its home page", &|| {
        home_page(&b, &cookie).0.is_some()
    });
    (db, a, b, cookie)
}

/// The meme at the top of the home page.
fn top_meme(db: &PgDatabase) -> i64 {
    psql(
        &db.name,
        "SELECT id FROM memes ORDER BY votes DESC, id DESC LIMIT 1",
    )[0][0]
        .parse()
        .unwrap()
}

/// The visitor's vote for meme `id` through `node`.
fn vote(node: &Server, id: i64, cookie: &str) {
    let r = agent()
        .post(node.url(&format!("/memes/{id}/vote")))
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn a_vote_on_one_node_freshens_the_other_nodes_memoised_pages() {
    // Both nodes memoise the home page; the table versions live in the
    // database, bumped in the vote's transaction, and node B hears of
    // them through LISTEN/NOTIFY.
    let (db, a, b, cookie) = two_nodes_with_b_memoising();
    let home = |s: &Server| home_page(s, &cookie);
    let etag = home(&b).0;
    // Both nodes agree on the key: the same data, the same tag.
    until("node A never memoised its home page", &|| {
        home(&a).0.is_some()
    });
    let a_etag = home(&a).0;
    assert_eq!(a_etag, etag, "nodes disagree on the home page's ETag");
    let votes = |id: i64| {
        psql(
            &db.name,
            &format!("SELECT votes FROM memes WHERE id = {id}"),
        )[0][0]
            .clone()
    };
    let top = top_meme(&db);
    let before = votes(top);
    vote(&a, top, &cookie);
    let after: i64 = votes(top).parse().unwrap();
    assert_eq!(after, before.parse::<i64>().unwrap() + 1);
    // The notification is sent at commit; B's next answer is fresh within
    // its delivery time (milliseconds on one machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (now, body) = home(&b);
        if now != etag {
            assert!(
                body.contains(&after.to_string()),
                "B's new page lacks the vote"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node B kept serving its old home page after node A's vote"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let versions = psql(
        &db.name,
        "SELECT count(*) FROM nebula_table_versions WHERE version > 0",
    );
    assert_ne!(
        versions[0][0], "0",
        "the vote bumped no version in the database"
    );
}

#[test]
fn a_node_that_loses_its_listener_serves_nothing_stale_and_memoises_again_once_back() {
    // Node B's LISTEN connection is cut (its backend terminated) and a vote
    // commits on node A while B may not hear it: B's next answers must show
    // the vote, and B memoises again once it has listened and re-read the
    // versions.
    let (db, a, b, cookie) = two_nodes_with_b_memoising();
    let home = |s: &Server| home_page(s, &cookie);
    let listeners = || {
        psql(
            &db.name,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'nebula-listen'",
        )[0][0]
            .parse::<i64>()
            .unwrap()
    };
    // Each node listens from its first read.
    home(&a);
    until("two listeners (A's and B's)", &|| listeners() == 2);
    // Cut every listener, then vote on A at once.
    psql(
        &db.name,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'nebula-listen'",
    );
    vote(&a, top_meme(&db), &cookie);
    // A applied the vote itself: its page is the fresh one.
    let fresh = home(&a).1;
    // Whatever B has heard, it never answers with the page from before the vote.
    for _ in 0..20 {
        assert!(home(&b).1 == fresh, "node B served a page without the vote");
    }
    // Back: it listens again and memoises again.
    until("node B never listened again", &|| listeners() == 2);
    until("node B never memoised again", &|| home(&b).0.is_some());
    assert!(home(&b).1 == fresh);
}
