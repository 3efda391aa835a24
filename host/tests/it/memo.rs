//! Memoised responses (`cache = { max_age_s, vary }` on a GET route): a hit
//! runs no SQL and no instance, a write to a table the page reads makes
//! the next one fresh, `If-None-Match` gets 304, `vary` headers split the
//! cache and others are hidden from the component.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{agent, build_guests, guest_wasm as wasm, Resp, Server};

const ADMIN: [&str; 2] = ["--admin", "127.0.0.1:0"];

/// Series (name and labels, as written) → value.
fn scrape(s: &Server) -> HashMap<String, f64> {
    let admin = s.admin.as_ref().expect("--admin");
    let mut r = agent().get(format!("{admin}/metrics")).call().unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// A series' value, 0 when it was never written.
fn metric(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

fn route(name: &str, component: &str, route: &str) -> String {
    format!("{name}{{component=\"{component}\",route=\"{route}\"}}")
}

/// The session cookie (`name=value`) a response sets.
fn cookie_of(r: &Resp) -> String {
    let set = r.header("set-cookie").expect("a new visitor gets a cookie");
    set.split(';').next().unwrap().to_string()
}

fn get_with(s: &Server, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(s.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Resp::from(req.call().unwrap())
}

#[test]
fn a_hit_runs_no_sql_and_no_instance_and_is_byte_identical_to_an_uncached_answer() {
    let s = Server::start("app.toml", &ADMIN);
    let first = s.get("/");
    assert_eq!(first.status, 200);
    let etag = first
        .header("etag")
        .expect("a memoised page has an ETag")
        .to_string();
    // A new visitor's answer carries the session cookie: for no shared cache.
    assert!(first.header("set-cookie").is_some());
    assert_eq!(first.header("cache-control"), Some("private, max-age=0"));
    let cookie = cookie_of(&first);
    let known = get_with(&s, "/", &[("cookie", &cookie)]);
    assert_eq!(known.header("set-cookie"), None);
    assert_eq!(known.header("cache-control"), Some("public, max-age=0"));
    assert_eq!(known.header("etag"), Some(etag.as_str()));
    let before = scrape(&s);
    let second = s.get("/");
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body, "a hit is the same bytes");
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    let after = scrape(&s);
    let delta = |series: &str| metric(&after, series) - metric(&before, series);
    assert_eq!(
        delta(&route("nebula_memo_hits_total", "meme-list", "/")),
        1.0
    );
    assert_eq!(
        delta(&route("nebula_reads_total", "meme-list", "/")),
        0.0,
        "no SQL"
    );
    assert_eq!(
        delta("nebula_instantiations_total{component=\"meme-list\"}"),
        0.0,
        "no instance"
    );
    assert_eq!(
        metric(&after, &route("nebula_memo_misses_total", "meme-list", "/")),
        1.0
    );
    assert_eq!(
        metric(&after, &route("nebula_memo_hits_total", "meme-list", "/")),
        2.0
    );
    assert_eq!(
        metric(&after, &route("nebula_reads_total", "meme-list", "/")),
        3.0
    );
    assert!(
        metric(&after, &route("nebula_memo_bytes", "meme-list", "/")) >= first.body.len() as f64
    );

    // The same page from a host that memoises nothing, on the same data.
    let plain = Server::start("app.toml", &["--no-cache"]);
    let uncached = plain.get("/");
    assert_eq!(uncached.header("etag"), None);
    assert_eq!(
        uncached.text(),
        first.text(),
        "the memoised page differs from the uncached one"
    );
    // (Not /memes/ID: its "another meme" link is picked with the seed,
    // which is one of the inputs; memoised, it comes from the key.)
    for path in [
        "/memes",
        "/memes/2.svg",
        "/stats",
        "/search?q=phd",
        "/api/memes?page=2",
    ] {
        let (a, b) = (s.get(path), plain.get(path));
        assert_eq!((a.status, b.status), (200, 200), "{path}");
        assert!(a.header("etag").is_some(), "{path} is memoised");
        assert!(
            a.body == b.body,
            "{path}: memoised and uncached answers differ"
        );
    }
}

#[test]
fn a_vote_or_a_new_meme_makes_the_next_page_fresh() {
    let s = Server::start("app.toml", &ADMIN);
    // The meme page reads whether this visitor voted: kept per visitor.
    let cookie = cookie_of(&s.get("/"));
    let me = [("cookie", cookie.as_str())];
    let page = get_with(&s, "/memes/3", &me);
    let votes = s.sql_i64("SELECT votes FROM memes WHERE id = 3");
    assert!(page.text().contains(&votes.to_string()));
    assert_eq!(
        get_with(&s, "/memes/3", &me).header("etag"),
        page.header("etag"),
        "kept"
    );
    let home = s.get("/");

    let r = Resp::from(
        agent()
            .post(s.url("/memes/3/vote"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .send("")
            .unwrap(),
    );
    assert_eq!(r.status, 303);
    let fresh = get_with(&s, "/memes/3", &me);
    assert_ne!(fresh.header("etag"), page.header("etag"));
    assert!(
        fresh.text().contains(&(votes + 1).to_string()),
        "the page after a vote shows it"
    );
    assert_ne!(
        s.get("/").header("etag"),
        home.header("etag"),
        "votes are on the home page"
    );

    // A new meme is on the home page at once.
    let home = s.get("/");
    let template = s.sql("SELECT id FROM templates ORDER BY id LIMIT 1")[0][0].clone();
    let r = s.post_form(
        "/memes",
        &[
            ("template", template.as_str()),
            ("top_text", "memoised responses"),
            ("bottom_text", "fresh after every post"),
            ("tags", "caching"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let after = s.get("/");
    assert_ne!(after.header("etag"), home.header("etag"));
    assert!(after.text().contains("fresh after every post"));
    let m = scrape(&s);
    assert!(metric(&m, &route("nebula_memo_misses_total", "meme-list", "/")) >= 3.0);
}

#[test]
fn if_none_match_gets_304_with_the_same_etag_and_runs_nothing() {
    let s = Server::start("app.toml", &ADMIN);
    let page = s.get("/memes/2.svg");
    assert_eq!(page.status, 200);
    let etag = page.header("etag").unwrap().to_string();
    // Browsers may keep it `client_max_age_s` = 60 s, or what is left of
    // the route's hour window when less is (the last minute of each hour).
    let max_age = page
        .header("cache-control")
        .and_then(|v| v.strip_prefix("private, max-age="))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("a new visitor's: {:?}", page.header("cache-control")));
    let left_of_hour = 3600 - now_s() % 3600;
    assert!(
        max_age <= 60 && max_age + 2 >= left_of_hour.min(60),
        "max-age={max_age} with {left_of_hour} s left of the window"
    );
    let before = scrape(&s);
    let r = get_with(&s, "/memes/2.svg", &[("if-none-match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    // Another tag, or a weak form of another: the whole page.
    let r = get_with(
        &s,
        "/memes/2.svg",
        &[("if-none-match", "\"abc\", W/\"def\"")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, page.body);
    let after = scrape(&s);
    assert_eq!(
        metric(
            &after,
            &route("nebula_memo_not_modified_total", "render", "/memes/:id.svg")
        ) - metric(
            &before,
            &route("nebula_memo_not_modified_total", "render", "/memes/:id.svg")
        ),
        1.0
    );
    assert_eq!(
        metric(&after, "nebula_instantiations_total{component=\"render\"}"),
        metric(&before, "nebula_instantiations_total{component=\"render\"}")
    );
    // After a vote on it the old tag is stale: the whole page again.
    assert_eq!(s.post_form("/memes/2/vote", &[]).status, 303);
    let r = get_with(&s, "/memes/2.svg", &[("if-none-match", &etag)]);
    assert_eq!(r.status, 200);
    assert_ne!(r.header("etag"), Some(etag.as_str()));
}

#[test]
fn vary_headers_split_the_cache_and_other_headers_are_hidden() {
    let s = Server::start("host/tests/apps/memo.toml", &[]);
    let en = get_with(
        &s,
        "/web/headers",
        &[("accept-language", "en"), ("x-other", "1")],
    );
    assert_eq!(en.status, 200);
    let en_again = get_with(
        &s,
        "/web/headers",
        &[("accept-language", "en"), ("x-other", "2")],
    );
    assert_eq!(
        en_again.header("etag"),
        en.header("etag"),
        "x-other does not split"
    );
    let de = get_with(&s, "/web/headers", &[("accept-language", "de")]);
    assert_ne!(de.header("etag"), en.header("etag"), "accept-language does");

    // The component sees the vary header, not the others.
    let echo = get_with(
        &s,
        "/web/echo",
        &[("accept-language", "en"), ("x-secret", "s3")],
    );
    let text = echo.text();
    assert!(text.contains("accept-language: en"), "{text}");
    assert!(
        !text.contains("x-secret"),
        "a header outside vary reached the component: {text}"
    );
    assert!(!text.contains("user-agent"), "{text}");
}

#[test]
fn a_page_that_reads_the_visitor_is_kept_per_visitor_and_private() {
    let s = Server::start("host/tests/apps/memo.toml", &[]);
    let first = s.get("/web/echo");
    let cookie = cookie_of(&first);
    assert!(first
        .header("cache-control")
        .unwrap()
        .starts_with("private"));
    let mine = get_with(&s, "/web/echo", &[("cookie", &cookie)]);
    let visitor = |r: &Resp| {
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix("visitor = ").map(str::to_string))
            .expect("the visitor row")
    };
    let me = visitor(&mine);
    assert_eq!(
        visitor(&get_with(&s, "/web/echo", &[("cookie", &cookie)])),
        me
    );
    // Another visitor never gets my page.
    let other = s.get("/web/echo");
    assert_ne!(visitor(&other), me);
    assert_ne!(other.header("etag"), mine.header("etag"));
}

#[test]
fn the_component_gets_a_seed_from_the_key_and_a_clock_rounded_to_the_window() {
    let s = Server::start("host/tests/apps/memo.toml", &[]);
    // Three requests in one 60 s window: not in its last seconds.
    while now_s() % 60 >= 57 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let a = s.get("/probe?x=1").json();
    let b = s.get("/probe?x=1").json();
    assert_eq!(a, b, "the same request is answered the same");
    let now = a["now_ms"].as_u64().unwrap();
    assert_eq!(now % 60_000, 0, "now-ms is rounded down to the 60 s window");
    let other = s.get("/probe?x=2").json();
    assert_ne!(other["seed"], a["seed"], "another key gets another seed");
    assert_eq!(other["now_ms"], a["now_ms"]);
}

fn load(dir: &Path, source: &Path) -> Arc<nebula::app::App> {
    let file = dir.join("app.toml");
    std::fs::write(
        &file,
        format!(
            "[app]\nname = \"memo-swap\"\n\n[components.live]\nsource = {:?}\n\n[[routes]]\npath = \"/live\"\ncomponent = \"live\"\ncache = {{ max_age_s = 600 }}\n",
            source.display().to_string()
        ),
    )
    .unwrap();
    let manifest = nebula::manifest::Manifest::load(&file).unwrap();
    let app = nebula::app::App::load(
        manifest,
        nebula::app::AppOptions {
            database: Some(nebula::data::Location::Sqlite(dir.join("memo.db"))),
            cache_dir: Some(dir.join("cache")),
            timeout: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .unwrap();
    Arc::new(app)
}

#[test]
fn a_component_swap_makes_the_next_answer_fresh() {
    build_guests();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.wasm");
    std::fs::copy(wasm("hog"), &live).unwrap();
    let app = load(dir.path(), &live);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let get = || {
            http::Request::get("/live")
                .body(bytes::Bytes::new())
                .unwrap()
        };
        let old = app.handle(get()).await;
        assert_eq!(old.body().as_ref(), b"ok\n");
        let kept = app.handle(get()).await;
        assert_eq!(kept.headers()["etag"], old.headers()["etag"]);
        std::fs::copy(wasm("hello"), &live).unwrap();
        app.swap_component("live").unwrap();
        let new = app.handle(get()).await;
        assert!(
            new.body().starts_with(b"hello from a pure function"),
            "the old component's answer was served after the swap: {:?}",
            String::from_utf8_lossy(new.body())
        );
        assert_ne!(new.headers()["etag"], old.headers()["etag"]);
    });
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}
