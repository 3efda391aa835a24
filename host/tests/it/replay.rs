//! Record and replay (issue 17, part 5): `nebula up --record DIR` (or a
//! route's `record`) writes what a call saw, one file per request named by
//! its request id; `nebula replay FILE [--component PATH.wasm]` runs it
//! again offline and says whether it answers as recorded.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{agent, build_guests, nebula, repo, Resp, Server};

fn wasm(name: &str) -> PathBuf {
    repo().join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"))
}

/// The recording of request `id` in `dir`, once it is there.
fn recording(dir: &Path, id: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{id}.json"));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            return (file, text);
        }
        assert!(Instant::now() < until, "{} was not written", file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The recordings in `dir`.
fn recordings(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn replay(file: &Path, extra: &[&std::ffi::OsStr]) -> Output {
    nebula()
        .arg("replay")
        .arg(file)
        .args(extra)
        .args([
            "--cache-dir".as_ref(),
            repo().join("target/nebula-test-cache").as_os_str(),
        ])
        .output()
        .expect("run nebula replay")
}

/// `nebula replay FILE --json …`: its exit code and what it printed.
fn replay_json(file: &Path, extra: &[&std::ffi::OsStr]) -> (i32, serde_json::Value) {
    let mut args = vec!["--json".as_ref()];
    args.extend_from_slice(extra);
    let out = replay(file, &args);
    let code = out.status.code().unwrap_or(-1);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "replay printed no JSON ({e}), exit {code}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

fn utf8(blob: &serde_json::Value) -> &str {
    blob["utf8"]
        .as_str()
        .unwrap_or_else(|| panic!("not text: {blob}"))
}

#[test]
fn a_recorded_trap_replays_to_the_same_trap_and_a_fixed_component_answers_200() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recordings");
    let s = Server::start(
        "host/tests/apps/probe.toml",
        &["--record", dir.to_str().unwrap()],
    );
    // With --record alone, a call answered 200 is not written down.
    let ok = s.get("/trap");
    assert_eq!((ok.status, ok.text().as_str()), (200, "ok"));

    let r = Resp::from(
        agent()
            .get(s.url("/trap?mode=panic"))
            .header("authorization", "Bearer s3cret-token")
            .header("proxy-authorization", "Basic cHJveHktc2VjcmV0")
            .header("cookie", "nebula_visitor=v1s1tor.s1gnature; theme=dark")
            .header("x-probe", "kept")
            .call()
            .expect("GET"),
    );
    assert_eq!(r.status, 500);
    let id = r.header("x-request-id").unwrap().to_string();
    let (file, text) = recording(&dir, &id);
    assert_eq!(recordings(&dir), vec![format!("{id}.json")]);

    // No credential reaches the file, in any form.
    for secret in [
        "s3cret-token",
        "cHJveHktc2VjcmV0",
        "v1s1tor",
        "nebula_visitor",
        "theme=dark",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} is in the recording:\n{text}"
        );
    }
    let rec: serde_json::Value = serde_json::from_str(&text).unwrap();
    let headers = rec["request"]["headers"].as_array().unwrap();
    let names: Vec<&str> = headers.iter().map(|h| h[0].as_str().unwrap()).collect();
    for gone in ["authorization", "proxy-authorization", "cookie"] {
        assert!(!names.contains(&gone), "{gone} in {names:?}");
    }
    assert!(
        headers.iter().any(|h| h[0] == "x-probe" && h[1] == "kept"),
        "{headers:?}"
    );
    let mut redacted: Vec<&str> = rec["request"]["redacted_headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    redacted.sort();
    assert_eq!(redacted, ["authorization", "cookie", "proxy-authorization"]);
    assert_eq!(rec["nebula_recording"], 1);
    assert_eq!(rec["id"], id.as_str());
    assert_eq!(rec["component"]["name"], "trap");
    assert_eq!(rec["route"], "/trap");
    assert_eq!(rec["request"]["method"], "GET");
    assert_eq!(rec["request"]["uri"], "/trap?mode=panic");
    assert_eq!(rec["outcome"]["kind"], "trap");
    assert!(rec["seed"].is_u64() && rec["now_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(rec["component"]["sha256"].as_str().unwrap().len(), 64);

    // Offline, the same component traps the same way, with the same panic.
    let (code, out) = replay_json(&file, &[]);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["same"], true, "{out:#}");
    assert_eq!(out["component"]["recorded"], true);
    assert_eq!(out["outcome"]["kind"], "trap");
    assert_eq!(out["outcome"], rec["outcome"]);
    assert!(
        utf8(&out["stderr"]).contains("deliberate trap for tests"),
        "{out:#}"
    );
    // The report says as much.
    let human = replay(&file, &[]);
    let report = String::from_utf8_lossy(&human.stdout);
    assert_eq!(human.status.code(), Some(0), "{report}");
    for line in [
        "500, the component trapped",
        "deliberate trap for tests",
        "the same answer as recorded",
        "not recorded, so not given again:",
    ] {
        assert!(report.contains(line), "{line:?} not in:\n{report}");
    }

    // Against a component that does not trap (standing in for a fix), the
    // same recording gives 200 and exactly the bytes that component makes
    // of the recorded request; the exit code says the answer changed.
    let fixed = wasm("hello");
    let (code, out) = replay_json(&file, &["--component".as_ref(), fixed.as_os_str()]);
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["same"], false);
    assert_eq!(out["component"]["recorded"], false);
    assert_eq!(out["outcome"]["kind"], "response");
    assert_eq!(out["outcome"]["status"], 200);
    assert_eq!(
        utf8(&out["outcome"]["body"]),
        "hello from a pure function\nmode=panic\n"
    );
    assert_eq!(out["recorded"]["kind"], "trap");
    let human = replay(&file, &["--component".as_ref(), fixed.as_os_str()]);
    let report = String::from_utf8_lossy(&human.stdout);
    assert_eq!(human.status.code(), Some(1), "{report}");
    assert!(
        report.contains("hello from a pure function\nmode=panic\n")
            && report.contains("a DIFFERENT answer"),
        "{report}"
    );
}

/// An app whose routes record by themselves, without `--record`.
fn app_with_record_keys(dir: &Path) -> PathBuf {
    let manifest = dir.join("app.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"[app]
name = "replay-keys"

[components.hello]
source = "{hello}"

[components.trap]
source = "{trap}"

[[routes]]
path = "/hello/*rest"
component = "hello"
record = "all"

[[routes]]
path = "/trap"
component = "trap"
record = "errors"

[[routes]]
path = "/unrecorded"
component = "trap"

# A read may select what it bound: the recording must not hold it either.
[reads.token]
sql = "SELECT :tok AS tok, 'other' AS kept"
bind = {{ tok = "header.authorization" }}

[[routes]]
path = "/echo/*rest"
component = "hello"
reads = ["token"]
record = "all"
"#,
            hello = wasm("hello").display(),
            trap = wasm("trap").display(),
        ),
    )
    .unwrap();
    manifest
}

#[test]
fn record_all_writes_2xx_too_beside_the_manifest_and_the_replay_gives_the_same_bytes() {
    build_guests();
    let app = tempfile::tempdir().unwrap();
    let manifest = app_with_record_keys(app.path());
    let s = Server::start(manifest.to_str().unwrap(), &[]);
    let dir = app.path().join(".nebula/recordings");

    let hello = s.get("/hello/ada?x=1");
    assert_eq!(hello.status, 200);
    assert_eq!(hello.text(), "hello from a pure function\nrest=ada\nx=1\n");
    let hello_id = hello.header("x-request-id").unwrap().to_string();
    let trapped = s.get("/trap?mode=panic");
    assert_eq!(trapped.status, 500);
    let trap_id = trapped.header("x-request-id").unwrap().to_string();
    // `record = "errors"`: a 200 is not kept; a route without `record` keeps nothing.
    assert_eq!(s.get("/trap").status, 200);
    assert_eq!(s.get("/unrecorded?mode=panic").status, 500);

    let (file, text) = recording(&dir, &hello_id);
    recording(&dir, &trap_id);
    // The others had their chance while these two were written.
    std::thread::sleep(Duration::from_millis(300));
    let mut expected = vec![format!("{hello_id}.json"), format!("{trap_id}.json")];
    expected.sort();
    assert_eq!(recordings(&dir), expected);

    let rec: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rec["outcome"]["kind"], "response");
    assert_eq!(rec["outcome"]["status"], 200);
    assert_eq!(
        utf8(&rec["outcome"]["body"]),
        "hello from a pure function\nrest=ada\nx=1\n"
    );
    assert_eq!(
        rec["request"]["params"],
        serde_json::json!([["rest", "ada"]])
    );
    assert_eq!(rec["route"], "/hello/*rest");

    // The authorization header is not in the file, nor is its value where
    // a read selected it; the replay gives the rest of the data as it was.
    let echo = Resp::from(
        agent()
            .get(s.url("/echo/x"))
            .header("authorization", "Bearer t0ken-in-the-data")
            .call()
            .expect("GET"),
    );
    assert_eq!(echo.status, 200);
    let (echo_file, echo_text) = recording(&dir, echo.header("x-request-id").unwrap());
    assert!(!echo_text.contains("t0ken"), "{echo_text}");
    let echo_rec: serde_json::Value = serde_json::from_str(&echo_text).unwrap();
    assert_eq!(
        echo_rec["data"],
        serde_json::json!([{
            "name": "token",
            "columns": ["tok", "kept"],
            "rows": [[{ "text": "[authorization header]" }, { "text": "other" }]]
        }])
    );
    let (code, out) = replay_json(&echo_file, &[]);
    assert_eq!(
        (code, &out["outcome"]),
        (0, &echo_rec["outcome"]),
        "{out:#}"
    );

    // Replayed from the recorded path, and from the app's manifest.
    for extra in [vec![], vec!["-f".as_ref(), manifest.as_os_str()]] {
        let (code, out) = replay_json(&file, &extra);
        assert_eq!(code, 0, "{out:#}");
        assert_eq!(out["same"], true);
        assert_eq!(out["outcome"], rec["outcome"]);
        assert_eq!(
            utf8(&out["outcome"]["body"]),
            "hello from a pure function\nrest=ada\nx=1\n"
        );
    }
}

#[test]
fn a_bad_recording_file_gives_a_clear_error_naming_it() {
    build_guests();
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let valid = serde_json::json!({
        "nebula_recording": 1,
        "id": "abc-000001",
        "app": { "name": "x", "manifest": "/nowhere/app.toml" },
        "component": { "name": "hello", "path": wasm("hello"), "sha256": null },
        "route": "/hello/*rest",
        "request": {
            "method": "GET", "uri": "/hello/bo?y=2", "headers": [["x-a", "b"]],
            "params": [["rest", "bo"]], "body": { "utf8": "" }
        },
        "seed": 7, "now_ms": 1_700_000_000_000u64,
        "limits": { "timeout_ms": 10000, "max_memory_bytes": 67108864 },
        "data": [],
        "outcome": { "kind": "response", "status": 200,
            "headers": [["content-type", "text/plain; charset=utf-8"]],
            "body": { "utf8": "hello from a pure function\nrest=bo\ny=2\n" }, "effects": [] }
    });
    // A recording written by hand replays: the format is the documented one.
    let good = write("good.json", &valid.to_string());
    let (code, out) = replay_json(&good, &[]);
    assert_eq!(
        (code, &out["same"]),
        (0, &serde_json::json!(true)),
        "{out:#}"
    );

    let mut no_seed = valid.clone();
    no_seed.as_object_mut().unwrap().remove("seed");
    let mut elsewhere = valid.clone();
    elsewhere["component"]["path"] = "/nowhere/hello.wasm".into();
    let mut bad_method = valid.clone();
    bad_method["request"]["method"] = "GE T".into();
    let cases = [
        (write("garbage.json", "GET /x HTTP/1.1"), "not JSON"),
        (
            write("other.json", "{\"status\": 500}"),
            "no \"nebula_recording\" field",
        ),
        (
            write("newer.json", "{\"nebula_recording\": 2}"),
            "newer nebula",
        ),
        (
            write(
                "no-seed.json",
                &serde_json::to_string_pretty(&no_seed).unwrap(),
            ),
            "missing field `seed`",
        ),
        (
            write("elsewhere.json", &elsewhere.to_string()),
            "is not there; give the component with --component",
        ),
        (
            write("bad-method.json", &bad_method.to_string()),
            "request.method \"GE T\" is not an HTTP method",
        ),
        (tmp.path().join("missing.json"), "cannot read the recording"),
    ];
    for (file, what) in cases {
        let out = replay(&file, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", file.display());
        assert!(
            err.contains(&file.display().to_string()),
            "the error must name {}: {err}",
            file.display()
        );
        assert!(err.contains(what), "{what:?} not in: {err}");
    }
}

#[test]
fn record_on_a_spin_app_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = nebula()
        .args(["up", "--no-build", "--listen", "127.0.0.1:0", "-f"])
        .arg(repo().join("host/tests/apps/spin-hog.toml"))
        .arg("--data-dir")
        .arg(tmp.path())
        .arg("--record")
        .arg(tmp.path().join("rec"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("nebula up --record served a Spin app instead of refusing it");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("is a Spin app; only pure components' calls (app.toml) can be recorded"),
        "{err}"
    );
}

#[test]
fn a_write_the_database_refuses_after_the_call_is_recorded_as_the_5xx_it_was() {
    // The component answers 200 with two writes; the second violates the
    // notes table's CHECK, so the host answers 500 and writes nothing. That
    // request was answered 5xx: it is recorded, with the host's failure.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recordings");
    let s = Server::start(
        "host/tests/apps/probe.toml",
        &["--record", dir.to_str().unwrap()],
    );
    let r = s.request("POST", "/effects?mode=constraint", b"");
    assert_eq!(r.status, 500, "{}", r.text());
    let id = r.header("x-request-id").unwrap().to_string();
    let (file, text) = recording(&dir, &id);
    let rec: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rec["outcome"]["kind"], "response", "{text}");
    assert_eq!(rec["outcome"]["status"], 200, "{text}");
    assert_eq!(rec["host_failure"]["status"], 500, "{text}");
    let error = rec["host_failure"]["error"].as_str().unwrap();
    assert!(error.contains("CHECK"), "{error}");
    // The component answers the same again; the report says what the host did.
    let out = replay(&file, &[]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report.contains("host       answered 500 after the call"),
        "{report}"
    );
    // A request that wrote and was answered 200 is not recorded.
    assert_eq!(s.request("POST", "/effects?mode=ok", b"").status, 200);
    assert_eq!(recordings(&dir), vec![format!("{id}.json")]);
}
