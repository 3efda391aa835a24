//! A pure component reaches nothing: no files, environment, sockets or real
//! clock; and `nebula check` lists what components import.

use crate::support::{build_guests, nebula, repo, succeeded, Server};

/// Every probe named here must have failed.
fn assert_all_failed(v: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        let got = v[key]
            .as_str()
            .unwrap_or_else(|| panic!("probe {key} missing: {v}"));
        assert!(
            got.starts_with("error"),
            "{key}: the guest reached something: {got}"
        );
    }
}

#[test]
fn probe_guest_gets_nothing_real() {
    let s = Server::start("host/tests/apps/probe.toml", &[]);
    // Real targets on this machine, so a probe that got through would show.
    let secret = s.dir.path().join("secret.txt");
    std::fs::write(&secret, "the guest must never read this").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("file", secret.to_str().unwrap())
        .append_pair("tcp", &tcp.local_addr().unwrap().port().to_string())
        .append_pair("udp", &udp.local_addr().unwrap().port().to_string())
        .finish();
    let r = s.get(&format!("/probe?{query}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();

    // Files: nothing preopened, nothing readable or writable by any path.
    assert_eq!(v["preopens"], "0 preopened: ");
    assert_all_failed(
        &v,
        &[
            "read_file",
            "read_given_file",
            "read_relative",
            "read_parent",
            "read_dot",
            "read_proc",
            "read_dir",
            "metadata_root",
            "write_file",
            "write_relative",
            "create_dir",
        ],
    );
    assert!(!std::path::Path::new("nebula-probe-was-here").exists());
    // With no preopened directory the working directory is a bare "/" that
    // holds nothing (read_dir above failed).
    let cwd = v["current_dir"].as_str().unwrap();
    assert!(
        cwd == "ok: /" || cwd.starts_with("error"),
        "current_dir: {cwd}"
    );
    assert_eq!(v["initial_cwd"], "None");

    // Environment and arguments: empty, through std and through WASI.
    assert!(std::env::var_os("PATH").is_some());
    assert_eq!(v["env_count"], 0, "environment leaked: {}", v["env_names"]);
    assert_eq!(v["wasi_env_count"], 0);
    assert_all_failed(&v, &["env_path"]);
    assert_eq!(v["args"], "ok: []");
    assert_eq!(v["wasi_args"], serde_json::json!([]));

    // Network: every socket and lookup denied, and nothing arrived.
    assert_all_failed(
        &v,
        &[
            "tcp_connect",
            "tcp_connect_v6",
            "tcp_listen",
            "udp_bind",
            "dns_std",
            "wasi_tcp_connect",
            "wasi_tcp_connect_v6",
            "wasi_tcp_bind",
            "wasi_udp_send",
            "wasi_dns",
        ],
    );
    assert!(
        tcp.accept().is_err(),
        "the guest opened a TCP connection to the test's listener"
    );
    let mut buf = [0u8; 64];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "the guest sent a datagram to the test's socket"
    );

    // The clock is the request's time, not the host's: every reading agrees
    // with now_ms, and none moves during the call, not even across a real
    // 20 ms wait.
    let now_ms = v["now_ms"].as_u64().unwrap();
    for key in ["system_time_ms", "wasi_wall_ms", "wasi_wall_ms_after_sleep"] {
        assert_eq!(v[key].as_u64(), Some(now_ms), "{key}: {v}");
    }
    let mono = now_ms * 1_000_000;
    assert_eq!(v["wasi_monotonic_ns"].as_u64(), Some(mono));
    assert_eq!(v["wasi_monotonic_ns_after_sleep"].as_u64(), Some(mono));
    assert_eq!(v["instant_elapsed_ns"], 0);
    assert!(
        now_ms.abs_diff(before) < 60_000,
        "now_ms should be the request's time"
    );

    // stdin is empty.
    assert_eq!(v["stdin"], "ok: 0 bytes");

    // Randomness comes from the seed: two requests, two seeds, and every
    // source differs (that the same seed gives the same bytes is checked in
    // the determinism test).
    let v2 = s.get("/probe").json();
    assert_ne!(v["seed"], v2["seed"]);
    for key in [
        "random_hex",
        "random_u64",
        "insecure_hex",
        "insecure_seed",
        "hash_of_x",
    ] {
        assert_ne!(v[key], v2[key], "{key} does not depend on the seed");
    }

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
fn exit_ends_only_that_request() {
    let mut s = Server::start("host/tests/apps/probe.toml", &[]);
    for code in ["0", "1", "255"] {
        let r = s.get(&format!("/probe?exit={code}"));
        assert_eq!(r.status, 500, "exit({code}) must not look like an answer");
        assert!(s.is_running(), "the host exited with the guest");
        assert_eq!(s.get("/probe").status, 200);
    }
}

fn probe_app() -> (nebula::app::App, tempfile::TempDir) {
    build_guests();
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        nebula::manifest::Manifest::load(&repo().join("host/tests/apps/probe.toml")).unwrap();
    let app = nebula::app::App::load(
        manifest,
        nebula::app::AppOptions {
            database: Some(nebula::data::Location::Sqlite(dir.path().join("p.db"))),
            ..Default::default()
        },
    )
    .unwrap();
    (app, dir)
}

#[test]
fn same_request_seed_and_time_give_the_same_bytes() {
    let (app, _dir) = probe_app();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = || {
        http::Request::builder()
            .method("POST")
            .uri("/probe?a=1&b=%C3%A9")
            .header("x-test", "yes")
            .body(bytes::Bytes::from_static(b"some body"))
            .unwrap()
    };
    rt.block_on(async {
        let a = app.handle_with(req(), 7, 1_000).await;
        let b = app.handle_with(req(), 7, 1_000).await;
        assert_eq!(a.status(), 200);
        assert_eq!(a.body(), b.body(), "same seed and time, different bytes");
        let ja: serde_json::Value = serde_json::from_slice(a.body()).unwrap();
        assert_eq!(ja["system_time_ms"], 1_000);
        assert_eq!(ja["wasi_monotonic_ns"], 1_000_000_000u64);

        // Another seed changes every random source and nothing else.
        let c = app.handle_with(req(), 8, 1_000).await;
        let jc: serde_json::Value = serde_json::from_slice(c.body()).unwrap();
        let random = [
            "random_hex",
            "random_u64",
            "insecure_hex",
            "insecure_seed",
            "hash_of_x",
            "seed",
        ];
        for key in random {
            assert_ne!(ja[key], jc[key], "{key} does not depend on the seed");
        }
        let mut ja_rest = ja.as_object().unwrap().clone();
        let mut jc_rest = jc.as_object().unwrap().clone();
        for key in random {
            ja_rest.remove(key);
            jc_rest.remove(key);
        }
        assert_eq!(
            ja_rest, jc_rest,
            "a different seed changed more than randomness"
        );

        // Another time changes the clocks.
        let d = app.handle_with(req(), 7, 2_000).await;
        let jd: serde_json::Value = serde_json::from_slice(d.body()).unwrap();
        assert_eq!(jd["wasi_wall_ms"], 2_000);
        assert_eq!(ja["random_hex"], jd["random_hex"]);
    });
}

#[test]
fn check_lists_imports_and_rejects_an_escaping_component() {
    build_guests();
    let text = succeeded(nebula().args(["check", "-f"]).arg(repo().join("app.toml")));
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
