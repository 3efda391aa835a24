//! The web as the attacker's tool: cross-site writes, one vote per visitor,
//! rate limits and response headers (issue 12, items 8–11).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rusqlite::Connection;

use crate::support::{agent, build_guests, Resp, Server};

const WEB: &str = "host/tests/apps/web.toml";

/// `POST path` with `headers` and a urlencoded `body`.
fn post(s: &Server, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut req = agent()
        .post(s.url(path))
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Resp::from(req.send(body.as_bytes()).expect("POST"))
}

fn get(s: &Server, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(s.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Resp::from(req.call().expect("GET"))
}

fn db(s: &Server) -> Connection {
    Connection::open(s.dir.path().join("app.db")).unwrap()
}

fn votes(s: &Server, id: i64) -> i64 {
    db(s)
        .query_row("SELECT votes FROM memes WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

fn count(s: &Server, table: &str) -> i64 {
    db(s)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn notes(s: &Server) -> Vec<String> {
    let conn = db(s);
    let mut stmt = conn.prepare("SELECT text FROM notes ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `name=value` of the response's `Set-Cookie` for `name`, if it sets one.
fn set_cookie<'r>(r: &'r Resp, name: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

#[test]
fn cross_site_writes_are_refused_with_403_and_write_nothing() {
    let s = Server::start("app.toml", &[]);
    let own = s.base.clone();
    let before = votes(&s, 3);
    let memes = count(&s, "memes");
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        // The right origin does not excuse a browser that says cross-site.
        vec![("origin", own.as_str()), ("sec-fetch-site", "cross-site")],
    ] {
        let r = post(&s, "/memes/3/vote", &headers, "");
        assert_eq!(r.status, 403, "{headers:?}");
        assert!(r.text().contains("another site"), "{headers:?}");
        let r = post(
            &s,
            "/memes",
            &headers,
            "template=lab&top_text=cross&bottom_text=site",
        );
        assert_eq!(r.status, 403, "{headers:?}");
    }
    assert_eq!(votes(&s, 3), before, "a refused vote was counted");
    assert_eq!(count(&s, "memes"), memes, "a refused submission was stored");
    assert!(s.log().contains("cross-site POST refused with 403"));

    // Its own pages, and clients that are not browsers, still write.
    let r = post(
        &s,
        "/memes/3/vote",
        &[("origin", &own), ("sec-fetch-site", "same-origin")],
        "",
    );
    assert_eq!(r.status, 303);
    assert_eq!(post(&s, "/memes/3/vote", &[], "").status, 303);
    assert_eq!(votes(&s, 3), before + 2);

    // A route that opts out (`cross_site = "allow"`) takes it; the others
    // of the same app do not.
    let w = Server::start(WEB, &[]);
    let evil = [("origin", "https://evil.example")];
    assert_eq!(post(&w, "/web/note", &evil, "text=refused").status, 403);
    assert_eq!(post(&w, "/web/api", &evil, "text=api").status, 303);
    let got = notes(&w);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("api by "), "{got:?}");
}

#[test]
fn spin_apps_refuse_cross_site_writes_and_get_the_security_headers() {
    build_guests();
    let s = Server::start_spin("host/tests/apps/spin-web.toml", &[], &[]);
    let evil = [("origin", "https://evil.example")];
    let r = post(&s, "/site/x", &evil, "");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("another site"));
    assert_eq!(
        post(&s, "/site/x", &[("sec-fetch-site", "cross-site")], "").status,
        403
    );
    for method in ["PUT", "PATCH", "DELETE"] {
        let r = Resp::from(
            agent()
                .run(
                    http::Request::builder()
                        .method(method)
                        .uri(s.url("/site/x"))
                        .header("origin", "https://evil.example")
                        .body(Vec::new())
                        .unwrap(),
                )
                .unwrap(),
        );
        assert_eq!(r.status, 403, "{method}");
    }
    // Same origin, no origin, and the component that allows it: served.
    let own = s.base.clone();
    let r = post(&s, "/site/x", &[("origin", &own)], "");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(post(&s, "/site/x", &[], "").status, 200);
    assert_eq!(post(&s, "/api/x", &evil, "").status, 200);

    // The component's framing headers are the host's to set.
    let r = get(&s, "/site/x?mode=frame", &[]);
    assert_eq!(r.status, 200);
    let all = |name: &str| -> Vec<String> {
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(all("x-frame-options"), ["DENY"]);
    let csp = all("content-security-policy");
    assert!(csp.contains(&"img-src 'none'".to_string()), "{csp:?}");
    assert!(
        csp.iter().any(|p| p.contains("frame-ancestors 'none'")),
        "{csp:?}"
    );
    assert!(
        !csp.iter().any(|p| p.contains("frame-ancestors *")),
        "{csp:?}"
    );
    assert_eq!(all("referrer-policy"), ["no-referrer"]);
    assert_eq!(all("x-content-type-options"), ["nosniff"]);
    // The host's own pages too.
    let r = get(&s, "/nowhere", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[test]
fn one_vote_per_visitor_and_the_page_says_voted() {
    let s = Server::start("app.toml", &[]);
    let before = votes(&s, 3);

    // The first visit sets the signed, HttpOnly, SameSite=Lax cookie.
    let page = s.get("/memes/3");
    let cookie = set_cookie(&page, "nebula_visitor").expect("a visitor cookie");
    for attr in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Max-Age="] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(page.text().contains("action=\"/memes/3/vote\""));
    let mine = pair(cookie).to_string();

    // Two votes from that browser count once.
    for _ in 0..2 {
        let r = post(&s, "/memes/3/vote", &[("cookie", &mine)], "");
        assert_eq!(r.status, 303);
        assert_eq!(
            set_cookie(&r, "nebula_visitor"),
            None,
            "a valid cookie is kept"
        );
    }
    assert_eq!(votes(&s, 3), before + 1);
    let rows: i64 = db(&s)
        .query_row("SELECT count(*) FROM votes WHERE meme_id = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(rows, 1);

    // The page says so to that visitor, and only to that visitor.
    let html = get(&s, "/memes/3", &[("cookie", &mine)]).text();
    assert!(html.contains("✓ Voted"), "{html}");
    assert!(!html.contains("action=\"/memes/3/vote\""));
    let html = s.get("/memes/3").text();
    assert!(!html.contains("✓ Voted"));
    assert!(html.contains("action=\"/memes/3/vote\""));
    // Another meme is not voted by this visitor.
    assert!(!get(&s, "/memes/4", &[("cookie", &mine)])
        .text()
        .contains("✓ Voted"));

    // Forged cookies: a changed signature, another id under the same
    // signature, no signature. Each is a new visitor with a new cookie.
    let value = mine.strip_prefix("nebula_visitor=").unwrap();
    let (id, sig) = value.strip_prefix("v1.").unwrap().split_once('.').unwrap();
    let flipped_sig = format!(
        "{}{}",
        &sig[..sig.len() - 1],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    let other_id = format!(
        "{}{}",
        if id.starts_with('0') { '1' } else { '0' },
        &id[1..]
    );
    let forged = [
        format!("nebula_visitor=v1.{id}.{flipped_sig}"),
        format!("nebula_visitor=v1.{other_id}.{sig}"),
        format!("nebula_visitor=v1.{id}"),
    ];
    for (n, f) in forged.iter().enumerate() {
        let r = post(&s, "/memes/3/vote", &[("cookie", f)], "");
        assert_eq!(r.status, 303, "{f}");
        let new = set_cookie(&r, "nebula_visitor").expect("a forged cookie is replaced");
        assert_ne!(pair(new), mine);
        assert_eq!(votes(&s, 3), before + 2 + n as i64, "{f}: a new visitor");
    }
    // Without a cookie every request is a new visitor, as before.
    assert_eq!(s.post_form("/memes/3/vote", &[]).status, 303);
    assert_eq!(s.post_form("/memes/3/vote", &[]).status, 303);
    assert_eq!(votes(&s, 3), before + 6);
}

#[test]
fn the_guest_never_sees_the_session_cookie_but_reads_and_writes_get_the_visitor() {
    let s = Server::start(WEB, &[]);
    let first = get(&s, "/web/echo", &[]);
    let cookie = set_cookie(&first, "probe_visitor").expect("a visitor cookie");
    assert!(cookie.contains("Max-Age=2592000"), "30 days: {cookie}");
    let mine = pair(cookie).to_string();
    let id = mine.split('.').nth(1).unwrap().to_string();
    assert_eq!(id.len(), 32);

    let r = get(
        &s,
        "/web/echo",
        &[("cookie", &format!("theme=dark; {mine}; lang=en"))],
    );
    let echo = r.text();
    assert!(echo.contains("cookie: theme=dark; lang=en\n"), "{echo}");
    assert!(!echo.contains("probe_visitor"), "{echo}");
    assert!(
        !echo.contains(&mine[mine.len() - 20..]),
        "the signature leaked: {echo}"
    );
    assert!(echo.contains(&format!("visitor = {id}\n")), "{echo}");
    // Only the session cookie: the header goes.
    let echo = get(&s, "/web/echo", &[("cookie", &mine)]).text();
    assert!(!echo.contains("cookie:"), "{echo}");

    // A write gets the visitor id from the host, not from the guest.
    let r = post(&s, "/web/api", &[("cookie", &mine)], "text=hello");
    assert_eq!(r.status, 303);
    assert_eq!(notes(&s), [format!("hello by {id}")]);
}

#[test]
fn the_eleventh_vote_within_a_minute_gets_429_with_retry_after_and_writes_nothing() {
    let s = Server::start("app.toml", &[]);
    let before = votes(&s, 5);
    for i in 0..10 {
        assert_eq!(s.post_form("/memes/5/vote", &[]).status, 303, "vote {i}");
    }
    assert_eq!(votes(&s, 5), before + 10);
    // Any meme: the limit is the route's, per client address.
    for id in [5, 6] {
        let r = s.post_form(&format!("/memes/{id}/vote"), &[]);
        assert_eq!(r.status, 429);
        let wait: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    }
    assert_eq!(votes(&s, 5), before + 10, "a limited vote was counted");
    assert!(s.log().contains("over rate_limit"));
    // Other routes are not limited by it.
    assert_eq!(s.get("/memes/5").status, 200);

    // Submissions are limited too.
    let tpl: String = db(&s)
        .query_row("SELECT id FROM templates LIMIT 1", [], |r| r.get(0))
        .unwrap();
    let memes = count(&s, "memes");
    let mut statuses = Vec::new();
    for i in 0..11 {
        let top = format!("limited {i}");
        statuses.push(
            s.post_form(
                "/memes",
                &[("template", &tpl), ("top_text", &top), ("bottom_text", "b")],
            )
            .status,
        );
    }
    assert_eq!(statuses[..10], [303; 10]);
    assert_eq!(statuses[10], 429);
    assert_eq!(count(&s, "memes"), memes + 10);

    // Load tests have a documented way out.
    let free = Server::start("app.toml", &["--no-rate-limits"]);
    for i in 0..12 {
        assert_eq!(free.post_form("/memes/5/vote", &[]).status, 303, "vote {i}");
    }
}

#[test]
fn every_response_gets_the_security_headers_and_the_pages_work_under_the_csp() {
    let s = Server::start("app.toml", &[]);
    let tpl: String = db(&s)
        .query_row("SELECT id FROM templates LIMIT 1", [], |r| r.get(0))
        .unwrap();
    for path in [
        "/",
        "/memes",
        "/memes/3",
        "/new",
        "/stats",
        "/search?q=a",
        "/nowhere",
        "/memes/3.svg",
        "/api/memes",
        "/static/style.css",
        &format!("/static/templates/{tpl}.svg"),
    ] {
        let r = s.get(path);
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
        let csp = r.header("content-security-policy").expect(path);
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        if !r
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/html")
        {
            continue;
        }
        // The page needs nothing the policy forbids: no inline script or
        // event handler, resources only from this site. (Inline styles
        // are allowed: the tag cloud and /stats size things with them.)
        let html = r.text();
        for banned in [
            "<script>",
            " onclick=",
            " onload=",
            " onerror=",
            "javascript:",
            "src=\"http",
        ] {
            assert!(!html.contains(banned), "{path} has {banned}");
        }
        if html.contains("style=\"") {
            assert!(csp.contains("style-src 'self' 'unsafe-inline'"), "{path}");
        }
    }
    // A host error page from the server itself (413).
    let big = "x".repeat(20_000);
    let r = s.request("POST", "/memes", big.as_bytes());
    assert_eq!(r.status, 413);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));

    // The manifest's [headers] change them.
    let w = Server::start(WEB, &[]);
    let r = get(&w, "/web/echo", &[]);
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("permissions-policy"), Some("camera=()"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

/// Reads one HTTP/1.1 response with a Content-Length from `buf` starting at
/// `at`: (status line, headers, body, where the next response starts).
fn one_response(buf: &[u8], at: usize) -> (String, Vec<(String, String)>, Vec<u8>, usize) {
    let rest = &buf[at..];
    let end = rest
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(rest)));
    let head = String::from_utf8_lossy(&rest[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let body = rest[end + 4..end + 4 + len].to_vec();
    (status, headers, body, at + end + 4 + len)
}

#[test]
fn a_guest_cannot_set_framing_or_hop_by_hop_headers_and_pipelined_requests_stay_in_step() {
    let s = Server::start(WEB, &[]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Two requests in one write: the second must get its own answer, not
    // the rest of the first's body.
    c.write_all(
        b"GET /web/headers HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /web/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let (status, headers, body, next) = one_response(&buf, 0);
    assert_eq!(
        status,
        "HTTP/1.1 200 OK",
        "{}",
        String::from_utf8_lossy(&buf)
    );
    assert_eq!(body, b"<!doctype html><p>framed body</p>\n");
    let all = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(all("content-length"), ["34"]);
    for dropped in [
        "transfer-encoding",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "connection",
    ] {
        assert!(all(dropped).is_empty(), "{dropped}: {headers:?}");
    }
    assert_eq!(all("x-frame-options"), ["DENY"]);
    let csp = all("content-security-policy");
    assert!(csp.contains(&"img-src 'none'"), "{csp:?}");
    assert!(
        !csp.iter().any(|p| p.contains("frame-ancestors *")),
        "{csp:?}"
    );
    assert_eq!(all("x-guest"), ["kept"]);

    let (status, _, body, end) = one_response(&buf, next);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        String::from_utf8_lossy(&body).starts_with("host: a\n"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(end, buf.len(), "nothing after the second response");
    let log = s.log();
    for h in ["content-length", "x-frame-options", "upgrade"] {
        assert!(
            log.contains(&format!("header={h}")) && log.contains("dropped a header"),
            "{h} not logged: {log}"
        );
    }
}
