//! A pure component reaches nothing: no files, environment, sockets or real
//! clock; and `nebula check` lists what components import.

use crate::support::{build_guests, nebula, repo, Server};

#[test]
fn probe_guest_gets_nothing_real() {
    let s = Server::start("host/tests/apps/probe.toml", &[]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let r = s.get("/probe");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    for key in ["read_file", "read_dir", "write_file", "tcp_connect"] {
        let got = v[key].as_str().unwrap();
        assert!(
            got.starts_with("error"),
            "{key}: the guest reached something: {got}"
        );
    }
    // With no preopened directory the working directory is a bare "/" that
    // holds nothing (read_dir above failed).
    let cwd = v["current_dir"].as_str().unwrap();
    assert!(
        cwd == "ok: /" || cwd.starts_with("error"),
        "current_dir: {cwd}"
    );
    // UDP: std on wasip2 may not support it at all; either way nothing is bound.
    assert!(
        !v["udp_bind"].as_str().unwrap().starts_with("ok"),
        "udp: {}",
        v["udp_bind"]
    );
    assert_eq!(v["env_count"], 0, "environment leaked: {}", v["env_names"]);
    assert_eq!(v["args"], "ok: []");
    // The clock is the request's time, not the host's: both readings agree
    // with now_ms and the monotonic clock does not move during the call.
    let now_ms = v["now_ms"].as_u64().unwrap();
    assert_eq!(v["system_time_ms"].as_u64().unwrap(), now_ms);
    assert_eq!(v["instant_elapsed_ns"], 0);
    assert!(
        now_ms.abs_diff(before) < 60_000,
        "now_ms should be the request's time"
    );

    // Randomness comes from the seed: two requests, two seeds, two values,
    // and never the same as... (checked for equality in the determinism test).
    let v2 = s.get("/probe").json();
    assert_ne!(v["seed"], v2["seed"]);
    assert_ne!(v["random_hex"], v2["random_hex"]);

    // stdout/stderr land in the host's log with the request id.
    let id = r.header("x-request-id").unwrap();
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains(id) && l.contains("purity-probe: a line on stdout")),
        "stdout not logged with the request id {id}:\n{log}"
    );
    assert!(log
        .lines()
        .any(|l| l.contains(id) && l.contains("purity-probe: a line on stderr")));
}

#[test]
fn probe_randomness_is_a_function_of_the_seed() {
    build_guests();
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        nebula::manifest::Manifest::load(&repo().join("host/tests/apps/probe.toml")).unwrap();
    let app = nebula::app::App::load(
        manifest,
        nebula::app::AppOptions {
            database: Some(dir.path().join("p.db")),
            ..Default::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = || {
        http::Request::builder()
            .uri("/probe")
            .body(bytes::Bytes::new())
            .unwrap()
    };
    rt.block_on(async {
        let a = app.handle_with(req(), 7, 1_000).await;
        let b = app.handle_with(req(), 7, 1_000).await;
        let c = app.handle_with(req(), 8, 1_000).await;
        assert_eq!(a.body(), b.body(), "same seed and time, different bytes");
        let ja: serde_json::Value = serde_json::from_slice(a.body()).unwrap();
        let jc: serde_json::Value = serde_json::from_slice(c.body()).unwrap();
        assert_ne!(ja["random_hex"], jc["random_hex"]);
        assert_eq!(ja["system_time_ms"], 1_000);
    });
}

#[test]
fn check_lists_imports_and_rejects_an_escaping_component() {
    build_guests();
    let out = nebula()
        .args(["check", "-f"])
        .arg(repo().join("app.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check of app.toml failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for c in [
        "meme-list",
        "random-meme",
        "render",
        "vote",
        "submit",
        "stats",
        "search",
    ] {
        assert!(
            text.contains(&format!("component {c} (")),
            "{c} not listed:\n{text}"
        );
    }
    assert!(text.contains("wasi:cli/"), "imports not listed:\n{text}");
    assert_eq!(text.matches("ok: pure world").count(), 7, "{text}");

    let out = nebula()
        .args(["check", "-f"])
        .arg(repo().join("host/tests/apps/escape.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "an escaping component passed the check:\n{text}"
    );
    assert!(text.contains("REJECTED: escape-http imports"), "{text}");
    assert!(
        text.contains("wasi:http/outgoing-handler@0.2.12  <- not allowed in a pure component"),
        "{text}"
    );

    // And the host refuses to serve it.
    let out = nebula()
        .args(["up", "--no-build", "--listen", "127.0.0.1:0", "-f"])
        .arg(repo().join("host/tests/apps/escape.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("escape-http") && err.contains("nebula check"),
        "{err}"
    );
}
