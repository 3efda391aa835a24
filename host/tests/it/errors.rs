//! Errors and bad input: traps, undeclared writes, failed transactions,
//! oversized bodies, missing components, SQL problems in the manifest.

use rusqlite::Connection;

use crate::support::{nebula, repo, Server};

fn notes(s: &Server) -> i64 {
    let conn = Connection::open(s.dir.path().join("app.db")).unwrap();
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_trapping_component_gives_500_with_the_request_id_and_the_host_keeps_serving() {
    let mut s = Server::start("host/tests/apps/probe.toml", &[]);
    assert_eq!(s.get("/trap").text(), "ok");
    let r = s.get("/trap?mode=panic");
    assert_eq!(r.status, 500);
    let id = r.header("x-request-id").unwrap();
    assert!(
        r.text().contains(id),
        "the error page must show the request id"
    );
    assert!(
        s.log().contains("deliberate trap for tests"),
        "the panic message is logged"
    );
    assert!(s.is_running());
    for _ in 0..5 {
        assert_eq!(s.get("/trap").status, 200);
    }
}

#[test]
fn effects_are_applied_all_or_nothing() {
    let s = Server::start("host/tests/apps/probe.toml", &[]);
    let r = s.request("POST", "/effects?mode=ok", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(notes(&s), 1);

    // A declared write followed by an undeclared one: nothing is written.
    let r = s.request("POST", "/effects?mode=undeclared", b"");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("must never reach"));
    assert_eq!(notes(&s), 1);

    // A write that violates a constraint after one that succeeded: rolled back.
    let r = s.request("POST", "/effects?mode=constraint", b"");
    assert_eq!(r.status, 500);
    assert_eq!(notes(&s), 1);
}

#[test]
fn a_body_over_the_limit_gets_413() {
    let s = Server::start("host/tests/apps/probe.toml", &[]);
    let r = s.request("POST", "/effects?mode=ok", &[b'x'; 4096]);
    assert_eq!(r.status, 413);
    // Chunked, without a content-length: still cut off at the limit.
    let chunk = "x".repeat(800);
    let raw = format!(
        "POST /effects?mode=ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    let answer = s.raw(raw.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert_eq!(notes(&s), 0);
}

#[test]
fn a_missing_component_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("app.toml");
    std::fs::write(
        &m,
        "[components.hello]\nsource = \"missing.wasm\"\nbuild = { command = \"true\" }\n[[routes]]\npath = \"/\"\ncomponent = \"hello\"\n",
    )
    .unwrap();
    let out = nebula()
        .args(["up", "--no-build", "-f"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.wasm does not exist; build it with `nebula build`"),
        "{err}"
    );

    // With a build command that produces nothing, `up` says so.
    let out = nebula().args(["up", "-f"]).arg(&m).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the build succeeded but") && err.contains("missing.wasm was not produced"),
        "{err}"
    );
}

#[test]
fn sql_problems_in_the_manifest_name_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = repo().join("guests/target/wasm32-wasip2/release/hello.wasm");
    let cases = [
        (
            "[reads.memes]\nsql = \"SELECT * FROM notes WHERE id = :tag\"\n",
            "reads.memes: SQL parameter :tag has no binding",
        ),
        (
            "[reads.memes]\nsql = \"SELEC 1\"\n",
            "reads.memes.sql does not prepare",
        ),
        (
            "[reads.memes]\nsql = \"DELETE FROM notes\"\n",
            "reads.memes: a read must not change the database",
        ),
        (
            "[reads.memes]\nsql = \"SELECT 1\"\nbind = { tag = \"query.tag\" }\n",
            "reads.memes.bind.tag: the SQL has no parameter :tag",
        ),
        (
            "[writes.vote]\nsql = \"UPDATE nope SET x = 1\"\n",
            "writes.vote.sql does not prepare",
        ),
    ];
    for (i, (extra, expected)) in cases.iter().enumerate() {
        let m = dir.path().join(format!("app{i}.toml"));
        std::fs::write(
            dir.path().join("schema.sql"),
            "CREATE TABLE notes (id INTEGER PRIMARY KEY);",
        )
        .unwrap();
        std::fs::write(
            &m,
            format!(
                "[database]\npath = \"db{i}.db\"\nschema = \"schema.sql\"\n[components.hello]\nsource = {:?}\n{extra}",
                wasm.to_str().unwrap()
            ),
        )
        .unwrap();
        crate::support::build_guests();
        let out = nebula()
            .args(["up", "--no-build", "--listen", "127.0.0.1:0", "-f"])
            .arg(&m)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} started");
        assert!(
            err.contains(expected),
            "case {i}: expected {expected:?} in:\n{err}"
        );
        assert!(
            err.contains(&format!("app{i}.toml")),
            "case {i}: the file is not named:\n{err}"
        );
    }
}

#[test]
fn a_manifest_error_stops_up_with_file_line_and_key() {
    let out = nebula()
        .args(["up", "-f"])
        .arg(repo().join("host/tests/manifests/unknown-component.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown-component.toml:6: routes[0].component: unknown component \"helo\""),
        "{err}"
    );
}
