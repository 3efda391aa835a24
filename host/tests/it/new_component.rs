//! `nebula new LANG NAME` into a temporary app, then `nebula up` (which
//! builds it) serves the new route at once.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::support::{agent, nebula, repo, Resp};

/// One cargo target folder for every component the tests create, so the
/// template's dependencies (wit-bindgen) compile once, not once per test.
pub fn shared_target_dir() -> PathBuf {
    repo().join("target/nebula-new-components")
}

/// `nebula new ARGS…` in `app`; panics with its output if it fails.
pub fn new(app: &Path, args: &[&str]) -> String {
    let out = new_output(app, args);
    assert!(
        out.status.success(),
        "nebula new {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn new_output(app: &Path, args: &[&str]) -> std::process::Output {
    nebula()
        .arg("new")
        .args(args)
        .arg("-f")
        .arg(app.join("app.toml"))
        .output()
        .expect("run nebula new")
}

/// `nebula up` on an app in a temporary folder, building what it needs.
pub struct Up {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Up {
    pub fn start(app: &Path, extra: &[&str]) -> Up {
        Self::try_start(app, extra)
            .unwrap_or_else(|log| panic!("nebula up exited before serving:\n{log}"))
    }

    /// Like `start`; an `Err` holds the log of a `nebula up` that exited.
    pub fn try_start(app: &Path, extra: &[&str]) -> Result<Up, String> {
        let log = app.join("nebula.log");
        let mut child = nebula()
            .env("CARGO_TARGET_DIR", shared_target_dir())
            .arg("up")
            .arg("-f")
            .arg(app.join("app.toml"))
            .args(["--listen", "127.0.0.1:0", "--cache-dir"])
            .arg(repo().join("target/nebula-test-cache"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start nebula up");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("Serving ") => {
                    let url = line.split(" at ").nth(1).expect("an address");
                    break url.trim().trim_end_matches('/').to_string();
                }
                Some(Ok(_)) => {}
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(std::fs::read_to_string(&log).unwrap_or_default());
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Up { child, base, log })
    }

    pub fn get(&self, path: &str) -> Resp {
        Resp::from(
            agent()
                .get(format!("{}{path}", self.base))
                .call()
                .expect("GET"),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_new_rust_component_is_served_at_once() {
    let app = tempfile::tempdir().unwrap();
    let said = new(app.path(), &["rust", "hello-rust"]);
    assert!(said.contains("/hello-rust"), "{said}");
    // A second one on a route of its choosing, in the manifest the first made.
    new(app.path(), &["rust", "second", "--route", "/api/second"]);

    let up = Up::start(app.path(), &[]);
    let r = up.get("/hello-rust");
    assert_eq!(r.status, 200, "{}", up.log());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.text(),
        "Hello from hello-rust, a pure function in Rust!\n"
    );
    let r = up.get("/api/second");
    assert_eq!(r.status, 200, "{}", up.log());
    assert_eq!(r.text(), "Hello from second, a pure function in Rust!\n");
}

#[test]
fn new_refuses_a_taken_name_or_route_and_changes_nothing() {
    let app = tempfile::tempdir().unwrap();
    new(app.path(), &["rust", "taken"]);
    let manifest = std::fs::read_to_string(app.path().join("app.toml")).unwrap();

    let out = new_output(app.path(), &["rust", "taken", "--route", "/elsewhere"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already has a component named \"taken\""),
        "{err}"
    );

    let out = new_output(app.path(), &["rust", "other", "--route", "/taken"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("route /taken is already served by component \"taken\""),
        "{err}"
    );
    assert!(!app.path().join("other").exists());
    assert_eq!(
        std::fs::read_to_string(app.path().join("app.toml")).unwrap(),
        manifest
    );
}

/// `nebula new LANG NAME` in a fresh app, then `nebula up --watch` builds it
/// (installing the language's toolchain into the app first) and serves it;
/// an edit to its source is rebuilt and swapped in by the same process.
fn served_at_once_and_swapped(lang: &str, name: &str, source: &str, body: &str) {
    let app = tempfile::tempdir().unwrap();
    new(app.path(), &[lang, name]);
    let up = Up::start(app.path(), &["--watch"]);
    let r = up.get(&format!("/{name}"));
    assert_eq!(r.status, 200, "{}", up.log());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), body);

    let file = app.path().join(name).join(source);
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replace("a pure function in", "edited under --watch, in");
    assert_ne!(edited, text);
    std::fs::write(&file, edited).unwrap();
    let want = body.replace("a pure function in", "edited under --watch, in");
    let started = std::time::Instant::now();
    loop {
        let r = up.get(&format!("/{name}"));
        assert_eq!(
            r.status,
            200,
            "a request failed during the swap: {}",
            up.log()
        );
        if r.text() == want {
            break;
        }
        assert_eq!(r.text(), body);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "the edit was not swapped in:\n{}",
            up.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(up
        .log()
        .contains("rebuilt; new requests get the new version"));
}

#[test]
fn a_new_python_component_is_served_at_once_and_swapped_when_edited() {
    served_at_once_and_swapped(
        "python",
        "hello-py",
        "app.py",
        "Hello from hello-py, a pure function in Python!\n",
    );
}

#[test]
fn a_new_js_component_is_served_at_once_and_swapped_when_edited() {
    served_at_once_and_swapped(
        "js",
        "hello-js",
        "app.js",
        "Hello from hello-js, a pure function in JavaScript!\n",
    );
}
