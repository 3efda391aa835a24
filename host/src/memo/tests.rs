use super::*;
use crate::metrics::AppMetrics;

/// A route's model from a manifest text: `/p` on component `c`, reading
/// `r` (`SELECT x FROM t WHERE x = :q`, q bound to the query).
fn route(cache: &str) -> RouteModel {
    let text = format!(
        r#"
[components.c]
source = "c.wasm"
[reads.r]
sql = "SELECT x FROM t WHERE x = :q"
bind = {{ q = "query.q" }}
[[routes]]
path = "/p"
component = "c"
reads = ["r"]
cache = {cache}
"#
    );
    let m = crate::manifest::Manifest::parse(std::path::Path::new("app.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    crate::model::AppModel::from(m).routes.remove(0)
}

fn versions() -> Arc<TableVersions> {
    use crate::data::versions::{Footprint, Tables};
    let mut f = Footprint::default();
    f.reads.insert("r".into(), Tables::Known(vec!["t".into()]));
    f.writes.insert("w".into(), Tables::Known(vec!["t".into()]));
    f.writes
        .insert("other".into(), Tables::Known(vec!["u".into()]));
    Arc::new(TableVersions::new(&f, 7))
}

fn get(uri: &str, headers: &[(&str, &str)]) -> http::Request<Payload> {
    let mut b = http::Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Payload::Whole(Bytes::new())).unwrap()
}

fn plans(route: &RouteModel, q: &str) -> Vec<ReadPlan> {
    route
        .reads
        .iter()
        .map(|r| ReadPlan::bind(r, |_| Some(q.to_string())))
        .collect()
}

/// The cache of the one route `r`.
fn memo_with(r: &RouteModel, versions: Arc<TableVersions>, settings: CacheSettings) -> Memo {
    Memo::new(std::slice::from_ref(r), || Some(versions), settings).expect("memoised")
}

fn stats() -> Arc<RouteStats> {
    AppMetrics::new(["c"], [("c", "/p")]).route_at(0).clone()
}

#[test]
fn keys_follow_inputs_vary_headers_and_table_versions_only() {
    let r = route(r#"{ max_age_s = 60, vary = ["accept-language"] }"#);
    let v = versions();
    let memo = memo_with(&r, v.clone(), CacheSettings::default());
    let key = |req: &http::Request<Payload>, q: &str, now: u64| {
        memo.prepare(0, req, &plans(&r, q), b"digest", now)
            .unwrap()
            .key
    };
    let base = key(&get("/p?q=1", &[("accept-language", "en")]), "1", 1_000);
    // Same inputs, another header, a later moment in the same window.
    assert_eq!(
        base,
        key(
            &get("/p?q=1", &[("accept-language", "en"), ("user-agent", "x")]),
            "1",
            59_999
        )
    );
    assert_ne!(
        base,
        key(&get("/p?q=1", &[("accept-language", "de")]), "1", 1_000)
    );
    assert_ne!(
        base,
        key(&get("/p?q=2", &[("accept-language", "en")]), "2", 1_000)
    );
    assert_ne!(
        base,
        key(&get("/p?q=1", &[("accept-language", "en")]), "1", 60_000)
    );
    // A write of another table changes nothing; one of the route's table does.
    v.committed(["other"]);
    assert_eq!(
        base,
        key(&get("/p?q=1", &[("accept-language", "en")]), "1", 1_000)
    );
    v.committed(["w"]);
    let after = key(&get("/p?q=1", &[("accept-language", "en")]), "1", 1_000);
    assert_ne!(base, after);
    // A write nobody could name starts a new generation.
    v.committed(["unknown"]);
    assert_ne!(
        after,
        key(&get("/p?q=1", &[("accept-language", "en")]), "1", 1_000)
    );
}

#[test]
fn the_component_sees_only_vary_headers() {
    let r = route(r#"{ max_age_s = 5, vary = ["accept-language"] }"#);
    let memo = memo_with(&r, versions(), CacheSettings::default());
    let mut h = http::HeaderMap::new();
    h.insert("accept-language", HeaderValue::from_static("en"));
    h.insert("user-agent", HeaderValue::from_static("x"));
    h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
    memo.hide_headers(0, &mut h);
    assert_eq!(h.len(), 1);
    assert_eq!(h["accept-language"], "en");
}

#[test]
fn if_none_match_gets_304_and_hits_come_from_memory() {
    let r = route("{ max_age_s = 10 }");
    let memo = memo_with(&r, versions(), CacheSettings::default());
    let st = stats();
    let req = get("/p?q=1", &[]);
    let p = memo
        .prepare(0, &req, &plans(&r, "1"), b"d", 12_345)
        .unwrap();
    assert_eq!(p.now_ms, 10_000, "the clock is rounded down to the window");
    assert!(
        memo.answer(&p, &req, 12_345, &st).is_none(),
        "nothing kept yet"
    );
    let mut resp = http::Response::new(Payload::Whole(Bytes::from_static(b"page")));
    memo.keep(&p, &mut resp, false, false, &st);
    let etag = resp.headers()[ETAG].clone();
    assert_eq!(resp.headers()[CACHE_CONTROL], "public, max-age=0");
    let hit = memo.answer(&p, &req, 12_346, &st).expect("kept");
    assert_eq!(hit.body().as_ref(), b"page");
    assert_eq!(hit.headers()[ETAG], etag);
    // Past the window the entry is gone.
    assert!(memo.answer(&p, &req, 20_000, &st).is_none());
    let conditional = get("/p?q=1", &[("if-none-match", etag.to_str().unwrap())]);
    let not_modified = memo.answer(&p, &conditional, 12_347, &st).unwrap();
    assert_eq!(not_modified.status(), http::StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.headers()[ETAG], etag);
    let other = get("/p?q=1", &[("if-none-match", "\"0000\", W/\"1111\"")]);
    assert!(memo.answer(&p, &other, 12_348, &st).is_none());
}

#[test]
fn cookies_effects_and_errors_are_never_kept() {
    let r = route("{ max_age_s = 10 }");
    let memo = memo_with(&r, versions(), CacheSettings::default());
    let st = stats();
    let req = get("/p", &[]);
    let p = memo.prepare(0, &req, &plans(&r, ""), b"d", 0).unwrap();
    let mut cookie = http::Response::new(Payload::Whole(Bytes::from_static(b"x")));
    cookie
        .headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_static("a=b"));
    memo.keep(&p, &mut cookie, false, false, &st);
    let mut effects = http::Response::new(Payload::Whole(Bytes::from_static(b"x")));
    memo.keep(&p, &mut effects, true, false, &st);
    let mut error = http::Response::new(Payload::Whole(Bytes::from_static(b"x")));
    *error.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    memo.keep(&p, &mut error, false, false, &st);
    assert_eq!(memo.size().0, 0);
    assert!(!error.headers().contains_key(ETAG));
    assert!(!effects.headers().contains_key(ETAG));
    // A cookie's answer is labelled, but for no shared cache.
    assert_eq!(cookie.headers()[CACHE_CONTROL], "private, max-age=0");
}

#[test]
fn eviction_keeps_memory_under_the_cap() {
    let r = route("{ max_age_s = 10 }");
    let cap = 64 * 1024;
    let memo = memo_with(&r, versions(), CacheSettings { max_bytes: cap });
    let st = stats();
    for i in 0..200 {
        let q = i.to_string();
        let req = get(&format!("/p?q={q}"), &[]);
        let p = memo.prepare(0, &req, &plans(&r, &q), b"d", 0).unwrap();
        let mut resp = http::Response::new(Payload::Whole(Bytes::from(vec![b'x'; 4000])));
        memo.keep(&p, &mut resp, false, false, &st);
        assert!(memo.size().1 <= cap, "{:?} after {i}", memo.size());
    }
    let (n, bytes) = memo.size();
    assert!((10..20).contains(&n), "{n} entries, {bytes} bytes");
    assert_eq!(st.memo().evictions(), 200 - n as u64);
    assert_eq!(st.memo().bytes(), bytes);
    // The newest is kept, the oldest is not.
    let newest = get("/p?q=199", &[]);
    let p = memo
        .prepare(0, &newest, &plans(&r, "199"), b"d", 1)
        .unwrap();
    assert!(memo.answer(&p, &newest, 1, &st).is_some());
    let oldest = get("/p?q=0", &[]);
    let p = memo.prepare(0, &oldest, &plans(&r, "0"), b"d", 1).unwrap();
    assert!(memo.answer(&p, &oldest, 1, &st).is_none());
}
