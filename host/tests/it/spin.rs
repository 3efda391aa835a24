//! Spin applications built with the real Spin SDK (spin-sdk 5.2, WASI 0.2;
//! spin-sdk 7, WASI 0.3) run under `nebula up -f spin.toml`.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::support::{agent, nebula, repo, succeeded, Server};

const V5: &str = "guests/spin-compat/sdk-v5/spin.toml";
const V7: &str = "guests/spin-compat/sdk-v7/spin.toml";

fn start(manifest: &str) -> Server {
    Server::start_spin(manifest, &[], &[("SPIN_VARIABLE_API_KEY", "s3cret-key")])
}

/// A one-shot upstream on 127.0.0.1 for the outbound tests.
fn upstream() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
            );
        }
    });
    (port, t)
}

fn every_feature(manifest: &str, sdk: &str) {
    let s = start(manifest);

    let r = s.get("/hello");
    assert_eq!(r.status, 200, "{}", s.log());
    assert_eq!(r.header("x-hello"), Some("spin"));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.text(), format!("hello from spin-sdk {sdk}"));

    assert_eq!(s.get("/status/418").status, 418);

    // Key-value: the default store is granted and persists between requests.
    assert_eq!(s.get("/kv/counter").text(), "1");
    assert_eq!(s.get("/kv/counter").text(), "2");
    assert_eq!(s.get("/kv/counter").text(), "3");
    let other = s.get("/kv/other").text();
    assert!(
        other.starts_with("denied:") && other.contains("ccess"),
        "an ungranted store opened: {other}"
    );

    // SQLite with parameters.
    assert_eq!(s.request("POST", "/sql/notes", b"buy milk").status, 201);
    assert_eq!(
        s.request("POST", "/sql/notes", b"it's 'quoted'; DROP TABLE notes; --")
            .status,
        201
    );
    assert_eq!(s.request("POST", "/sql/notes", b"walk the dog").status, 201);
    let found = s.get("/sql/notes?q=milk").json();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["body"], "buy milk");
    let quoted = s.get("/sql/notes?q=quoted").json();
    assert_eq!(quoted[0]["body"], "it's 'quoted'; DROP TABLE notes; --");

    // Variables: the default, and the secret from SPIN_VARIABLE_API_KEY.
    assert_eq!(s.get("/vars").text(), "greeting=hello\nsecret_len=10");

    // Route parameters, wildcard and Spin's headers.
    let h = s.get("/users/42/posts/2024/hello?x=1").text();
    let port = s.base.rsplit(':').next().unwrap();
    for line in [
        format!("spin-full-url: http://127.0.0.1:{port}/users/42/posts/2024/hello?x=1"),
        "spin-path-info: /2024/hello".to_string(),
        "spin-matched-route: /users/:id/posts/...".to_string(),
        "spin-component-route: /users/:id/posts".to_string(),
        "spin-raw-component-route: /users/:id/posts/...".to_string(),
        "spin-base-path: /".to_string(),
        "spin-path-match-id: 42".to_string(),
    ] {
        assert!(h.lines().any(|l| l == line), "missing {line:?} in:\n{h}");
    }
    assert!(
        h.lines()
            .any(|l| l.starts_with("spin-client-addr: 127.0.0.1:")),
        "{h}"
    );

    // The private endpoint has no route.
    assert_eq!(s.get("/internal").status, 404);

    // Outbound HTTP: 127.0.0.1 is allowed, `localhost` is another host and is not.
    let (port, t) = upstream();
    let r = s.get(&format!("/outbound?url=http://127.0.0.1:{port}/ping"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "status=200\npong");
    t.join().unwrap();
    let r = s.get(&format!("/outbound?url=http://localhost:{port}/ping"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().to_lowercase().contains("denied"), "{}", r.text());
}

#[test]
fn spin_sdk_v5_wasi_p2_app_runs_unchanged() {
    every_feature(V5, "v5");
}

#[test]
fn spin_sdk_v7_wasi_p3_app_runs_unchanged() {
    every_feature(V7, "v7");
}

#[test]
fn variables_come_from_the_environment_and_required_ones_must_be_set() {
    let s = Server::start_spin(
        V5,
        &[],
        &[
            ("SPIN_VARIABLE_API_KEY", "k"),
            ("SPIN_VARIABLE_GREETING", "hi there"),
        ],
    );
    assert_eq!(s.get("/vars").text(), "greeting=hi there\nsecret_len=1");
    drop(s);

    crate::support::build_spin_guests();
    let dir = tempfile::tempdir().unwrap();
    let out = nebula()
        .env_remove("SPIN_VARIABLE_API_KEY")
        .args(["up", "--no-build", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("-f")
        .arg(repo().join(V5))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api_key"),
        "the missing variable is not named:\n{err}"
    );

    // `check` validates the app; the value is the deployment's: it warns.
    let said = succeeded(
        nebula()
            .env_remove("SPIN_VARIABLE_API_KEY")
            .args(["check", "-f"])
            .arg(repo().join(V5)),
    );
    assert!(
        said.contains("warning: variable \"api_key\" is required and has no value here; `nebula up` needs SPIN_VARIABLE_API_KEY set"),
        "{said}"
    );
}

#[test]
fn each_request_gets_a_fresh_instance_for_p2() {
    // Nothing a WASI 0.2 component keeps in memory survives its request:
    // the counter lives in the key-value store, not the instance.
    let s = start(V5);
    let a = agent();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let r = a.get(s.url("/kv/counter")).call().unwrap();
        seen.push(r.into_body().read_to_string().unwrap());
    }
    assert_eq!(seen, ["1", "2", "3", "4", "5"]);
}

#[test]
fn academemes_spin_lists_the_memes_like_the_pure_component() {
    // The Spin version reads the same database through Spin's SQLite
    // interface: build one with the pure app, then point Spin's default
    // database at it with a runtime config file.
    let pure = Server::start("app.toml", &[]);
    let pure_home = pure.get("/").text();
    let db = pure.dir.path().join("app.db");
    let cfg = pure.dir.path().join("runtime-config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sqlite_database.default]\ntype = \"spin\"\npath = {:?}\n",
            db.to_str().unwrap()
        ),
    )
    .unwrap();
    let s = Server::start_spin(
        "examples/academemes-spin/spin.toml",
        &["--runtime-config-file", cfg.to_str().unwrap()],
        &[],
    );
    let r = s.get("/");
    assert_eq!(r.status, 200, "{}", s.log());
    let html = r.text();
    assert!(
        html.contains("/memes/") && html.contains(".svg"),
        "{html:.300}"
    );
    // Same memes in the same order as the pure component renders them.
    let ids = |h: &str| -> Vec<String> {
        h.match_indices("/memes/")
            .map(|(i, _)| h[i..].chars().take_while(|c| *c != '"').collect())
            .collect()
    };
    assert_eq!(ids(&html), ids(&pure_home));
}

#[test]
fn check_lists_each_spin_components_imports_and_what_it_was_granted() {
    crate::support::build_spin_guests();
    let text = succeeded(
        nebula()
            .args(["check", "-f"])
            .arg(repo().join("guests/spin-compat/sdk-v7/spin.toml"))
            .env("SPIN_VARIABLE_API_KEY", "k"),
    );
    // The component with grants, and the private one without.
    let granted = text
        .split("component ")
        .find(|b| b.starts_with("sdk-v7 "))
        .unwrap_or_else(|| panic!("{text}"));
    // Each import on its own line, then what serves it (columns as wide as
    // the longest import).
    for (import, served) in [
        ("spin:key-value/key-value@3.0.0", "stores: default"),
        ("spin:sqlite/sqlite@3.1.0", "databases: default"),
        (
            "wasi:http/client@0.3.0",
            "outbound HTTP to allowed_outbound_hosts only: http://127.0.0.1:*",
        ),
        (
            "spin:variables/variables@3.0.0",
            "variables: api_key, greeting",
        ),
    ] {
        assert!(
            granted.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with(import) && l[import.len()..].trim_start().starts_with(served)
            }),
            "{import} {served:?} in:\n{granted}"
        );
    }
    let private = text
        .split("component ")
        .find(|b| b.starts_with("internal "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(private.contains("stores: none granted"), "{private}");
    assert!(text.contains("ok: "), "{text}");
}
