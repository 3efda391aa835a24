//! Spin apps on the one host: what pure apps always had — request ids in
//! the response and in every log line (the guest's output included), idle
//! trim and exit, `--watch` and graceful shutdown — Spin apps get too.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{build_guests, nebula_build, repo, Server};

const HOG: &str = "host/tests/apps/spin-hog.toml";

/// The test guests these apps use: http-hog (0.2) and http-reuse (0.3).
fn start(manifest: &str, extra: &[&str]) -> Server {
    build_guests();
    nebula_build("host/tests/apps/spin-reuse.toml");
    Server::start_spin(manifest, extra, &[])
}

fn wasm(name: &str) -> std::path::PathBuf {
    repo().join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"))
}

fn wait_for(what: &str, s: &Server, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "no {what} after {limit:?}; log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn spin_responses_and_log_lines_carry_the_request_id() {
    let s = start(HOG, &[]);
    let r = s.get("/?mode=print&tag=tag-17");
    assert_eq!(r.status, 200, "{}", s.log());
    assert_eq!(r.text(), "printed\n");
    let id = r.header("x-request-id").expect("x-request-id").to_string();
    assert!(!id.is_empty() && id != "-", "{id:?}");
    let other = s.get("/").header("x-request-id").unwrap().to_string();
    assert_ne!(id, other, "every request has its own id");
    wait_for(
        "guest output in the log",
        &s,
        Duration::from_secs(5),
        || s.log().contains("stderr says tag-17"),
    );
    let log = s.log();
    for said in ["stdout says tag-17", "stderr says tag-17"] {
        let line = log
            .lines()
            .find(|l| l.contains(said))
            .unwrap_or_else(|| panic!("{said:?} not logged:\n{log}"));
        assert!(
            line.contains(&id),
            "{said:?} logged without the request id {id}: {line}"
        );
    }
}

#[test]
fn spin_idle_trim_drops_components_and_the_next_request_loads_them_again() {
    let s = start(HOG, &["--idle-trim", "0.3"]);
    assert_eq!(s.get("/").status, 200);
    let loads = |log: &str| {
        log.lines()
            .filter(|l| l.contains("loaded") && l.contains("http-hog"))
            .count()
    };
    assert_eq!(loads(&s.log()), 1, "{}", s.log());
    wait_for("an idle trim", &s, Duration::from_secs(10), || {
        s.log().contains("idle: trimming memory")
    });
    let r = s.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(
        loads(&s.log()),
        2,
        "loaded again after the trim:\n{}",
        s.log()
    );
}

#[test]
fn spin_idle_exit_ends_the_process_cleanly() {
    let mut s = start(HOG, &["--idle-exit", "0.5"]);
    assert_eq!(s.get("/").status, 200);
    let status = s
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running after --idle-exit 0.5:\n{}", s.log()));
    assert!(status.success(), "{status:?}\n{}", s.log());
    assert!(s.log().contains("idle: exiting"), "{}", s.log());
}

#[test]
fn spin_watch_swaps_a_rebuilt_component_without_a_restart() {
    build_guests();
    nebula_build("host/tests/apps/spin-reuse.toml");
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.wasm");
    let next = dir.path().join("next.wasm");
    std::fs::copy(wasm("http_hog"), &live).unwrap();
    std::fs::copy(wasm("http_hog"), &next).unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        "spin_manifest_version = 2\n[application]\nname = \"live\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"live\"\n\
         [component.live]\nsource = \"live.wasm\"\n\
         [component.live.build]\ncommand = \"cp next.wasm live.wasm\"\nwatch = [\"next.wasm\"]\n",
    )
    .unwrap();
    let s = Server::start_spin(manifest.to_str().unwrap(), &["--watch"], &[]);
    let pid = s.pid();
    let r = s.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert!(r.header("x-requests-seen").is_none());
    wait_for("the watcher", &s, Duration::from_secs(10), || {
        s.log().contains("watching the sources of: live")
    });
    // The "new build": another wasi:http component (0.3), whose answers
    // carry x-requests-seen.
    std::fs::copy(wasm("http_reuse"), dir.path().join("next.tmp")).unwrap();
    std::fs::rename(dir.path().join("next.tmp"), &next).unwrap();
    wait_for("the new version", &s, Duration::from_secs(60), || {
        s.get("/").header("x-requests-seen").is_some()
    });
    assert!(s
        .log()
        .contains("rebuilt; new requests get the new version"));
    assert_eq!(s.pid(), pid, "the same process serves the new version");
}

#[test]
fn spin_sigterm_lets_a_request_in_flight_finish_then_exits() {
    let mut s = start("host/tests/apps/spin-reuse.toml", &[]);
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"GET /shared/sleep?ms=1500 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.signal(libc::SIGTERM);
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}\n{}", s.log());
    let status = s
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running after SIGTERM:\n{}", s.log()));
    assert!(status.success(), "{status:?}");
    assert!(
        s.log().contains("requests in flight finished"),
        "{}",
        s.log()
    );
    assert!(TcpStream::connect(s.addr()).is_err(), "still accepting");
}
