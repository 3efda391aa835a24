//! Bad input everywhere: malformed HTTP, invalid UTF-8, impossible page
//! numbers and ids, SQL-looking text in every field, and `.wasm` files that
//! are not pure components. Each gets a 4xx (or, for HTTP that cannot be
//! parsed, a closed connection) or a clear message — never a crash — and the
//! host goes on serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rusqlite::Connection;

use crate::support::{nebula, repo, Server};

/// Sends raw bytes on a fresh connection and returns whatever comes back
/// before the server closes it (or 5 s pass).
fn raw(s: &Server, bytes: &[u8]) -> Vec<u8> {
    let addr = s.base.trim_start_matches("http://");
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before it has read everything.
    let _ = c.write_all(bytes);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    out
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let head = std::str::from_utf8(answer.get(..12)?).ok()?;
    head.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// The host answered (or closed) and still serves `path`, a normal request.
fn still_serving(s: &mut Server, path: &str, after: &str) {
    assert!(s.is_running(), "the host died after {after}");
    assert_eq!(
        s.get(path).status,
        200,
        "the host stopped serving after {after}"
    );
}

#[test]
fn malformed_http_gets_a_4xx_or_a_closed_connection_and_the_host_keeps_serving() {
    let mut s = Server::start("app.toml", &[]);
    let long_path = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        ("binary junk", b"\x00\x01\x02\x03\xff\xfe\r\n\r\n".to_vec()),
        ("a header line without a colon", b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_vec()),
        ("a space in a header name", b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n".to_vec()),
        ("a header name that is not a token", b"GET / HTTP/1.1\r\nHost: x\r\n\xff\xfe: x\r\n\r\n".to_vec()),
        ("a bare LF between headers", b"GET / HTTP/1.1\r\nHost: x\n\rX: y\r\n\r\n".to_vec()),
        ("a method that is not a token", b"G\xffT / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("invalid bytes in the target", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("a space in the target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("HTTP/0.9", b"GET /\r\n\r\n".to_vec()),
        ("an unknown HTTP version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()),
        ("not HTTP at all", b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        ("a TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
        ("a huge request line", long_path.into_bytes()),
        ("a chunk size that is not hex", b"POST /memes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n".to_vec()),
        ("a chunk size that overflows", b"POST /memes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n".to_vec()),
        ("a chunk longer than its size", b"POST /memes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n".to_vec()),
        ("an unknown transfer coding", b"POST /memes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc".to_vec()),
        ("two different Content-Lengths", b"POST /memes HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef".to_vec()),
        ("a negative Content-Length", b"POST /memes HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec()),
        ("a Content-Length that is not a number", b"POST /memes HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n".to_vec()),
        ("a Content-Length past u64", b"POST /memes HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec()),
        ("a body shorter than its Content-Length", b"POST /memes HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc".to_vec()),
        ("headers cut off", b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ".to_vec()),
    ];
    for (what, bytes) in &cases {
        let answer = raw(&s, bytes);
        if let Some(status) = status_of(&answer) {
            assert!(
                (400..500).contains(&status) || status == 505,
                "{what}: answered {status}:\n{}",
                String::from_utf8_lossy(&answer[..answer.len().min(300)])
            );
        } else {
            assert!(
                answer.is_empty(),
                "{what}: an answer that is not HTTP: {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(300)])
            );
        }
        still_serving(&mut s, "/", what);
    }
    // Nothing malformed above was stored.
    let conn = Connection::open(s.dir.path().join("app.db")).unwrap();
    let memes: i64 = conn
        .query_row("SELECT count(*) FROM memes", [], |r| r.get(0))
        .unwrap();
    let total = s.get("/api/memes").json()["total"].as_i64().unwrap();
    assert_eq!(memes, total);
}

/// A missing, repeated or invalid `Host` gets 400 on `s`, which goes on
/// serving `path`; HTTP/1.0 without Host and an empty Host are served.
fn host_header_problems_are_400_on(mut s: Server, path: &str) {
    for (what, head) in [
        ("HTTP/1.1 without Host", "HTTP/1.1\r\nConnection: close"),
        (
            "two Host headers",
            "HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close",
        ),
        (
            "a Host that is not host[:port]",
            "HTTP/1.1\r\nHost: a b/c\r\nConnection: close",
        ),
    ] {
        let answer = raw(&s, format!("GET {path} {head}\r\n\r\n").as_bytes());
        assert_eq!(
            status_of(&answer),
            Some(400),
            "{what}: {}",
            String::from_utf8_lossy(&answer)
        );
        assert!(
            String::from_utf8_lossy(&answer).contains("Host header"),
            "{what}: the page says why"
        );
        still_serving(&mut s, path, what);
    }
    let answer = raw(&s, format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
    assert_eq!(status_of(&answer), Some(200));
    let answer = raw(
        &s,
        format!("GET {path} HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&answer), Some(200));
}

#[test]
fn host_header_problems_are_400() {
    host_header_problems_are_400_on(Server::start("app.toml", &[]), "/");
}

#[test]
fn host_header_problems_are_400_for_spin_apps_too() {
    crate::support::build_spin_guests();
    let s = Server::start_spin(
        "guests/spin-compat/sdk-v5/spin.toml",
        &[],
        &[("SPIN_VARIABLE_API_KEY", "k")],
    );
    host_header_problems_are_400_on(s, "/vars");
}

#[test]
fn invalid_utf8_in_paths_queries_and_headers_is_replaced_not_fatal() {
    let mut s = Server::start("host/tests/apps/probe.toml", &[]);
    // Percent-encoded bytes that are not UTF-8 reach the guest as U+FFFD.
    let r = s.get("/hello/%ff%fe/x?q=%c3%28&%ff=1");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("rest=\u{fffd}\u{fffd}/x"), "{text}");
    assert!(text.contains("q=\u{fffd}("), "{text}");
    assert!(text.contains("\u{fffd}=1"), "{text}");
    // Raw header bytes that are not UTF-8.
    let answer = raw(
        &s,
        b"GET /hello/a HTTP/1.1\r\nHost: x\r\nX-Bin: \xff\xfe\x80\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&answer), Some(200));
    still_serving(&mut s, "/hello/a", "a binary header value");
    // A lone surrogate, overlong encodings and NUL, percent-encoded.
    for path in [
        "/hello/%ed%a0%80",
        "/hello/%c0%af",
        "/hello/%00",
        "/hello/%",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert!(
            std::str::from_utf8(&r.body).is_ok(),
            "{path}: the answer is not UTF-8"
        );
    }

    let mut site = Server::start("app.toml", &[]);
    for path in [
        "/memes/%ff",
        "/memes/%ff%fe.svg",
        "/static/%ff",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/tags/%ff",
    ] {
        let r = site.get(path);
        assert!((400..500).contains(&r.status), "{path}: {}", r.status);
    }
    for path in ["/memes?tag=%ff%fe", "/memes?page=%ff", "/?x=%ff"] {
        let r = site.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert!(std::str::from_utf8(&r.body).is_ok());
    }
    let api = site.get("/api/memes?tag=%ff%00");
    assert_eq!(api.status, 200);
    assert_eq!(api.json()["total"], 0);
    still_serving(&mut site, "/", "invalid UTF-8");
}

#[test]
fn impossible_page_numbers_and_ids_get_a_page_or_a_404() {
    let s = Server::start("app.toml", &[]);
    let total = s.get("/api/memes").json()["total"].as_i64().unwrap();
    assert!(total > 12, "the seed data has more than one page");
    for (page, shown) in [
        ("-1", 1),
        ("0", 1),
        ("abc", 1),
        ("", 1),
        ("%00", 1),
        ("1e9", 1),
        ("0x10", 1),
        // Only digits are a page number (the same SQL on SQLite and
        // PostgreSQL, where a bad cast is an error): "2.5" is no number.
        ("2.5", 1),
        ("99999999999999999999", 100_000),
        ("-99999999999999999999", 1),
        ("100001", 100_000),
        ("1;DROP TABLE memes", 1),
    ] {
        // A space is the one character here a request target cannot hold.
        let enc = page.replace(' ', "%20");
        let r = s.get(&format!("/memes?page={enc}"));
        assert_eq!(r.status, 200, "page={page}");
        let api = s.get(&format!("/api/memes?page={enc}")).json();
        assert_eq!(api["page"], shown, "page={page}: {api}");
        assert_eq!(api["total"], total, "page={page}");
        let listed = api["memes"].as_array().unwrap().len();
        assert_eq!(
            listed > 0,
            shown == 1 || shown == 2,
            "page={page}: {listed} memes"
        );
    }
    // Only the canonical spelling of an existing id names a meme.
    assert_eq!(s.get("/memes/1").status, 200);
    assert_eq!(s.get("/memes/1.svg").status, 200);
    for id in [
        "-5",
        "0",
        "01",
        "1.5",
        "1e9",
        "1e0",
        "+1",
        " 1",
        "%201",
        "1%00",
        "abc",
        "0x1",
        "99999999999999999999",
        "9223372036854775807",
        "-9223372036854775809",
    ] {
        let enc = id.replace(' ', "%20").replace('+', "%2B");
        assert_eq!(s.get(&format!("/memes/{enc}")).status, 404, "/memes/{id}");
        assert_eq!(
            s.get(&format!("/memes/{enc}.svg")).status,
            404,
            "/memes/{id}.svg"
        );
    }
    // A vote for a non-canonical id is refused and lands nowhere.
    let conn = Connection::open(s.dir.path().join("app.db")).unwrap();
    let votes = || -> i64 {
        conn.query_row("SELECT sum(votes) FROM memes", [], |r| r.get(0))
            .unwrap()
    };
    let before = votes();
    for id in ["1e9", "1.5", "01", "-1", "99999999999999999999", "abc"] {
        let r = s.post_form(&format!("/memes/{id}/vote"), &[]);
        assert_eq!(r.status, 404, "vote for {id}");
    }
    assert_eq!(votes(), before);
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sql_in_every_field_is_stored_and_shown_verbatim_never_run() {
    let s = Server::start("app.toml", &[]);
    let conn = Connection::open(s.dir.path().join("app.db")).unwrap();
    let (memes, tags, templates) = (
        count(&conn, "memes"),
        count(&conn, "meme_tags"),
        count(&conn, "templates"),
    );
    let top = "'); DROP TABLE memes; --";
    let bottom = "\" OR 1=1; DELETE FROM meme_tags WHERE '1'='1";
    let r = s.post_form(
        "/memes",
        &[
            ("template", "lab"),
            ("top_text", top),
            ("bottom_text", bottom),
            ("tags", "drop-table, select"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let loc = r.header("location").unwrap().to_string();
    let id: i64 = loc.strip_prefix("/memes/").unwrap().parse().unwrap();
    assert_eq!(count(&conn, "memes"), memes + 1);
    assert_eq!(count(&conn, "meme_tags"), tags + 2);
    assert_eq!(count(&conn, "templates"), templates);
    let stored: (String, String) = conn
        .query_row(
            "SELECT top_text, bottom_text FROM memes WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(stored, (top.to_string(), bottom.to_string()));
    // Shown escaped in HTML and SVG, verbatim in JSON.
    let page = s.get(&loc).text();
    assert!(page.contains("&#39;); DROP TABLE memes; --"), "{page}");
    assert!(page.contains("&quot; OR 1=1; DELETE FROM meme_tags WHERE &#39;1&#39;=&#39;1"));
    let svg = s.get(&format!("{loc}.svg"));
    assert_eq!(svg.status, 200);
    roxmltree::Document::parse(&svg.text()).expect("the SVG is still well-formed XML");
    let api = s.get("/api/memes?tag=drop-table").json();
    assert_eq!(api["total"], 1);
    let newest = &api["memes"][0];
    assert_eq!(newest["id"], id);
    assert_eq!(newest["top_text"], top);
    assert_eq!(newest["bottom_text"], bottom);

    // SQL as the template, as a tag, or in a query: refused or matched as text.
    for (field, value) in [
        ("template", "lab' OR '1'='1"),
        ("template", "'; DROP TABLE templates; --"),
        ("tags", "x'); DELETE FROM memes; --"),
    ] {
        let mut fields = vec![("template", "lab"), ("top_text", "a"), ("bottom_text", "b")];
        fields.retain(|(k, _)| *k != field);
        fields.push((field, value));
        let r = s.post_form("/memes", &fields);
        assert_eq!(r.status, 400, "{field}={value}");
        let html = r.text();
        assert!(!html.contains(value), "{field}: shown unescaped");
        assert!(
            html.contains(&kit_escape(value)),
            "{field}: not shown back escaped:\n{html}"
        );
    }
    for tag in ["' OR 1=1 --", "%' OR '%'='", "lab\"; DROP TABLE memes"] {
        let q: String = form_urlencoded::byte_serialize(tag.as_bytes()).collect();
        let api = s.get(&format!("/api/memes?tag={q}")).json();
        assert_eq!(api["total"], 0, "tag {tag:?} matched something");
    }
    assert_eq!(count(&conn, "memes"), memes + 1);
    assert_eq!(count(&conn, "meme_tags"), tags + 2);
    assert_eq!(count(&conn, "templates"), templates);
}

/// The HTML escaping the site uses, to find a value shown back.
fn kit_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[test]
fn an_unknown_template_is_refused_with_the_form_back() {
    let s = Server::start("app.toml", &[]);
    let conn = Connection::open(s.dir.path().join("app.db")).unwrap();
    let before = count(&conn, "memes");
    for template in [
        "nope",
        "",
        "../../etc/passwd",
        "<b>lab</b>",
        "LAB",
        " lab x",
    ] {
        let r = s.post_form(
            "/memes",
            &[
                ("template", template),
                ("top_text", "t"),
                ("bottom_text", "b"),
            ],
        );
        assert_eq!(r.status, 400, "template {template:?}");
        assert!(r.text().contains("<form"), "the form comes back");
    }
    assert_eq!(count(&conn, "memes"), before);
}

/// A manifest in its own folder whose only component is `wasm`.
fn app_with(dir: &std::path::Path, wasm: &[u8]) -> std::path::PathBuf {
    std::fs::write(dir.join("c.wasm"), wasm).unwrap();
    let m = dir.join("app.toml");
    std::fs::write(
        &m,
        "[components.c]\nsource = \"c.wasm\"\n\n[[routes]]\npath = \"/\"\ncomponent = \"c\"\n",
    )
    .unwrap();
    m
}

#[test]
fn a_wasm_that_is_not_a_pure_component_is_refused_with_a_clear_message() {
    crate::support::build_guests();
    let hello =
        std::fs::read(repo().join("guests/target/wasm32-wasip2/release/hello.wasm")).unwrap();
    let wrong_type = wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $f (result u32) (canon lift (core func $i "f")))
            (export "handle" (func $f)))"#,
    )
    .unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("an empty file", Vec::new(), "c.wasm is empty"),
        (
            "random bytes",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
            "c.wasm is not WebAssembly",
        ),
        (
            "a text file",
            b"hello, I am not wasm\n".to_vec(),
            "c.wasm is not WebAssembly",
        ),
        (
            "a core module",
            wat::parse_str("(module (func (export \"handle\")))").unwrap(),
            "c.wasm is a core WebAssembly module without the `component-type` section",
        ),
        (
            "a truncated component",
            hello[..hello.len() / 2].to_vec(),
            "c.wasm is not a valid WebAssembly component",
        ),
        (
            "a component that exports nothing",
            wat::parse_str("(component)").unwrap(),
            "does not export the pure world",
        ),
        (
            "a component whose handle has the wrong type",
            wrong_type,
            "does not export the pure world",
        ),
    ];
    for (what, wasm, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let m = app_with(dir.path(), &wasm);
        let check = nebula().args(["check", "-f"]).arg(&m).output().unwrap();
        let out = String::from_utf8_lossy(&check.stdout).into_owned()
            + &String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(1), "check, {what}:\n{out}");
        assert!(
            out.contains(expected),
            "check, {what}: expected {expected:?} in:\n{out}"
        );
        assert!(!out.contains("panicked"), "check, {what}: panicked:\n{out}");

        let up = nebula()
            .args(["up", "--no-build", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("app.db"))
            .arg("-f")
            .arg(&m)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&up.stderr);
        assert_eq!(up.status.code(), Some(1), "up, {what}:\n{err}");
        assert!(
            err.contains(expected),
            "up, {what}: expected {expected:?} in:\n{err}"
        );
        assert!(
            err.contains("component \"c\""),
            "up, {what}: the component is not named:\n{err}"
        );
        assert!(!err.contains("panicked"), "up, {what}: panicked:\n{err}");
        assert!(
            err.lines().count() < 12,
            "up, {what}: the message is a dump:\n{err}"
        );
    }
}
