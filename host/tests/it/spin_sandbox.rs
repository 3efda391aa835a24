//! What a Spin component can reach, tried as an attacker would: the files of
//! its app folder (only what `files` matches), the network through outbound
//! HTTP (only where `allowed_outbound_hosts` really points), and the memory
//! and time of a reused WASI 0.3 instance.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{agent, nebula_build, repo, Resp, Server};

const PROBE_APP: &str = "host/tests/apps/spin-outbound.toml";
const REUSE_APP: &str = "host/tests/apps/spin-reuse.toml";
/// `[component.shared.tool.nebula.limits] timeout_ms` in spin-reuse.toml.
const REUSE_DEADLINE: Duration = Duration::from_millis(3000);

fn build_probes() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        nebula_build(PROBE_APP);
        nebula_build(REUSE_APP);
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(
                files_under(&path)
                    .into_iter()
                    .map(|p| path.strip_prefix(dir).unwrap().join(p)),
            );
        } else {
            out.push(path.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out
}

#[test]
fn spin_files_mount_exactly_what_the_patterns_match() {
    build_probes();
    // The app in a folder of its own, with what a real one holds beside its
    // manifest: the .wasm, the runtime config, the stores in .spin/ and the
    // compile cache in .nebula/cache.
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    copy_dir(&repo().join("host/tests/apps/spin-files"), &app);
    std::fs::copy(
        repo().join("guests/target/wasm32-wasip2/release/spin_files_probe.wasm"),
        app.join("spin_files_probe.wasm"),
    )
    .unwrap();
    std::fs::create_dir_all(app.join(".spin")).unwrap();
    for store in ["sqlite_key_value.db", "sqlite_db.db"] {
        std::fs::write(app.join(".spin").join(store), b"the host's store").unwrap();
    }
    let cache = app.join(".nebula/cache");
    let s = Server::start_spin(
        app.join("spin.toml").to_str().unwrap(),
        &[
            "--runtime-config-file",
            app.join("runtime-config.toml").to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        !s.log().contains("exclude_files"),
        "exclude_files is applied, not warned about:\n{}",
        s.log()
    );
    let cached = files_under(&cache);
    assert!(
        !cached.is_empty(),
        "the components were compiled into the cache"
    );
    let cache_entry = format!("/.nebula/cache/{}", cached[0].display());

    let list = |component: &str| {
        let r = s.get(&format!("/{component}/?list"));
        assert_eq!(r.status, 200, "{}", s.log());
        r.text()
    };
    let open =
        |component: &str, path: &str| -> Resp { s.get(&format!("/{component}/?open={path}")) };
    let not_found = |component: &str, path: &str| {
        let r = open(component, path);
        assert_eq!(
            (r.status, r.text()),
            (404, "not found".to_string()),
            "{component} opened {path}"
        );
    };
    let host_state = [
        "/spin.toml",
        "/spin_files_probe.wasm",
        "/runtime-config.toml",
        "/.spin/sqlite_key_value.db",
        "/.spin/sqlite_db.db",
        cache_entry.as_str(),
    ];

    // `*.html`: the top-level HTML files, nothing else of the folder.
    assert_eq!(list("glob"), "/about.html\n/index.html");
    assert_eq!(open("glob", "/index.html").text(), "found 14 bytes");
    for path in host_state.iter().chain(&["/notes.txt", "/docs/guide.html"]) {
        not_found("glob", path);
    }

    // An exact path: that file only.
    assert_eq!(list("exact"), "/notes.txt");
    for path in host_state.iter().chain(&["/index.html"]) {
        not_found("exact", path);
    }

    // `{ source, destination }`: the folder's files under the destination.
    assert_eq!(
        list("placed"),
        "/manual/drafts/secret.html\n/manual/guide.html"
    );
    assert_eq!(
        open("placed", "/manual/guide.html").text(),
        "found 15 bytes"
    );
    not_found("placed", "/docs/guide.html");
    not_found("placed", "/spin.toml");

    // exclude_files leaves the drafts out.
    assert_eq!(list("excluded"), "/docs/guide.html");
    not_found("excluded", "/docs/drafts/secret.html");

    // Even `**/*` does not reach the host's stores or compile cache.
    let everything = list("everything");
    assert!(
        everything.lines().any(|l| l == "/spin.toml"),
        "{everything}"
    );
    assert!(
        !everything.contains("/.spin/") && !everything.contains("/.nebula/"),
        "{everything}"
    );
    not_found("everything", "/.spin/sqlite_key_value.db");
    not_found("everything", &cache_entry);
}

/// A loopback HTTP server for outbound tests: `/redirect` answers 302 to
/// `location`, anything else 200 `pong`. It records every connection.
struct Target {
    port: u16,
    connections: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Target {
    fn start(location: &str) -> Target {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped, location) = (connections.clone(), stop.clone(), location.to_string());
        let thread = std::thread::spawn(move || {
            // Bounded: the test stops it, and it gives up after a minute.
            let end = Instant::now() + Duration::from_secs(60);
            while !stopped.load(Ordering::Relaxed) && Instant::now() < end {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 4096];
                let n = c.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let line = head.lines().next().unwrap_or_default().to_string();
                let answer = if line.contains("/redirect") {
                    format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 5\r\nconnection: close\r\n\r\nmoved")
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong"
                        .to_string()
                };
                seen.lock().unwrap().push(line);
                let _ = c.write_all(answer.as_bytes());
            }
        });
        Target {
            port,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<String> {
        self.connections.lock().unwrap().clone()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn outbound_http_checks_the_address_it_connects_to_and_follows_no_redirect() {
    build_probes();
    let s = Server::start_spin(PROBE_APP, &[], &[]);
    let landing = Target::start("-");
    let target = Target::start(&format!("http://127.0.0.1:{}/landed", landing.port));
    let fetch = |component: &str, url: &str| s.get(&format!("/{component}/?fetch={url}"));

    // `http://*:*` allows localhost as text, but localhost is a loopback
    // address that no IP entry allows: refused before any connection.
    let r = fetch("by-name", &format!("http://localhost:{}/ping", target.port));
    assert_eq!(
        (r.status, r.text()),
        (502, "error: ErrorCode::HttpRequestDenied".to_string()),
        "{}",
        s.log()
    );
    assert!(s.log().contains("internal addresses"), "{}", s.log());
    assert_eq!(
        target.seen(),
        Vec::<String>::new(),
        "the target was reached"
    );

    // With the loopback address itself allowed, the same URL goes through.
    let r = fetch(
        "by-name-and-ip",
        &format!("http://localhost:{}/ping", target.port),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "status=200\nlocation=\npong");
    assert_eq!(target.seen(), ["GET /ping HTTP/1.1"]);

    // A redirect reaches the guest as it is; its target is not visited.
    let r = fetch(
        "by-name-and-ip",
        &format!("http://127.0.0.1:{}/redirect", target.port),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        format!(
            "status=302\nlocation=http://127.0.0.1:{}/landed\nmoved",
            landing.port
        )
    );
    assert_eq!(target.seen().len(), 2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        landing.seen(),
        Vec::<String>::new(),
        "the redirect was followed"
    );
}

fn requests_seen(r: &Resp) -> u64 {
    r.header("x-requests-seen")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no x-requests-seen: {} {:?}", r.status, r.headers))
}

#[test]
fn max_instance_reuse_1_gives_each_wasi_p3_request_a_fresh_instance() {
    build_probes();
    let s = Server::start_spin(REUSE_APP, &[], &[]);
    let a = agent();
    let get = |path: &str| Resp::from(a.get(s.url(path)).call().expect("GET"));
    // Reused: one instance's global counts several requests.
    let shared: Vec<u64> = (0..5)
        .map(|_| requests_seen(&get("/shared/count")))
        .collect();
    assert!(
        shared.iter().any(|&n| n > 1),
        "a WASI 0.3 instance is reused by default: {shared:?}"
    );
    // `max_instance_reuse = 1`: every request starts on a fresh instance.
    let fresh: Vec<u64> = (0..5)
        .map(|_| requests_seen(&get("/fresh/count")))
        .collect();
    assert_eq!(fresh, [1, 1, 1, 1, 1], "{}", s.log());
}

#[test]
fn a_spinning_request_on_a_reused_instance_gets_504_at_its_own_deadline() {
    build_probes();
    let s = Server::start_spin(REUSE_APP, &[], &[]);
    // The spinner waits 2 s (its instance meanwhile takes the requests that
    // keep arriving), then spins without ever awaiting.
    let url = s.url("/shared/spin?ms=2000");
    let spinner = std::thread::spawn(move || {
        let t = Instant::now();
        let r = Resp::from(agent().get(&url).call().expect("GET"));
        (r.status, t.elapsed())
    });
    // Later requests on the same instance, every 200 ms for 5 s.
    let mut later = Vec::new();
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(200));
        let url = s.url("/shared/sleep?ms=500");
        later.push(std::thread::spawn(move || {
            Resp::from(agent().get(&url).call().expect("GET")).status
        }));
    }
    let (status, took) = spinner.join().unwrap();
    assert_eq!(status, 504, "{}", s.log());
    // Its deadline is 3 s after it started; a request that started on the
    // instance at 1.8 s would put it at 4.8 s.
    assert!(
        took < REUSE_DEADLINE + Duration::from_millis(1000),
        "the spinning request was answered after {took:?}, its deadline pushed back by later ones"
    );
    for t in later {
        let status = t.join().unwrap();
        assert!(
            [200, 500, 504].contains(&status),
            "a request sharing the spinner's instance ends, one way or another: {status}"
        );
    }
    let r = s.get("/shared/count");
    assert_eq!(r.status, 200, "the app serves on after: {}", s.log());
}
