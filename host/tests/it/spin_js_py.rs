//! Spin applications written with Spin's JavaScript SDK (@spinframework/build-tools,
//! componentize-js; WASI 0.2) and Python SDK (spin-sdk 5, componentize-py; WASI 0.3), built
//! by `nebula build` with their templates' own build commands (`npm install && npm run
//! build`; `componentize-py -w spin:up/http-trigger@4.1.0 …` with requirements.txt installed
//! into Nebula's venv), run unchanged under `nebula up -f spin.toml`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::OnceLock;

use crate::support::{nebula_build, Server};

const JS: &str = "guests/spin-compat/js/spin.toml";
const PY: &str = "guests/spin-compat/python/spin.toml";

/// Builds one app once per test run (npm or pip install included the first time).
fn start(manifest: &'static str, env: &[(&str, &str)]) -> Server {
    static JS_BUILT: OnceLock<()> = OnceLock::new();
    static PY_BUILT: OnceLock<()> = OnceLock::new();
    let built = if manifest == JS { &JS_BUILT } else { &PY_BUILT };
    built.get_or_init(|| nebula_build(manifest));
    Server::start_spin_built(manifest, &[], env)
}

/// A one-shot upstream on 127.0.0.1 for the outbound calls.
fn upstream() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
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

/// `denied`: what the app answers when the host refuses an outbound host.
fn every_route(manifest: &'static str, hello: &str, denied: &str) {
    let s = start(manifest, &[]);

    let r = s.get("/hello");
    assert_eq!(r.status, 200, "{}", s.log());
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.body, hello.as_bytes());

    // Key-value store `default`: granted, and it keeps the counter between requests.
    for want in ["1", "2"] {
        let r = s.get("/kv/counter");
        assert_eq!((r.status, r.text().as_str()), (200, want), "{}", s.log());
    }

    // The component's variable, rendered from the app's default.
    let r = s.get("/vars");
    assert_eq!((r.status, r.text().as_str()), (200, "message=hello, world"));

    // Outbound HTTP reaches the local server on 127.0.0.1, which is granted.
    let (port, t) = upstream();
    let r = s.get(&format!("/outbound?url=http://127.0.0.1:{port}/ping"));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.log());
    assert_eq!(r.body, b"status=200\npong");
    t.join().unwrap();

    // `localhost` is another host than 127.0.0.1 for allowed_outbound_hosts: the host refuses
    // it before connecting (the listener sees nothing) and says so in its log; the SDK turns
    // the refusal into its own error.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let r = s.get(&format!("/outbound?url=http://localhost:{port}/ping"));
    assert_eq!((r.status, r.text().as_str()), (502, denied), "{}", s.log());
    assert!(l.accept().is_err(), "a refused host was connected to");
    let refused = format!(
        "outbound request refused: not in allowed_outbound_hosts url=http://localhost:{port}/ping"
    );
    assert!(s.log().contains(&refused), "{}", s.log());

    // No route: the host's 404.
    assert_eq!(s.get("/nope").status, 404);
}

// One test per app: the second server starts from the compile cache the first one filled
// (two at once would each compile the 12-25 MB component).

#[test]
fn spin_js_sdk_app_runs_unchanged() {
    // StarlingMonkey's fetch() reports every failure as this one TypeError.
    every_route(
        JS,
        "hello from spin-js",
        "error: TypeError: NetworkError when attempting to fetch resource",
    );
    // Variables come from the environment, as in Spin.
    let s = start(JS, &[("SPIN_VARIABLE_GREETING", "hi there")]);
    assert_eq!(s.get("/vars").text(), "message=hi there, world");
}

#[test]
fn spin_python_sdk_app_runs_unchanged() {
    every_route(
        PY,
        "hello from spin-py",
        "error: ErrorCode_HttpRequestDenied",
    );
    let s = start(PY, &[("SPIN_VARIABLE_GREETING", "hi there")]);
    assert_eq!(s.get("/vars").text(), "message=hi there, world");

    // A spin-sdk 5 component imports Spin's whole platform; what Nebula does not implement is
    // linked as traps: calling it fails that request alone, and the app goes on serving.
    let r = s.get("/llm");
    assert_eq!(r.status, 500, "{}", r.text());
    let log = s.log();
    assert!(
        log.contains("`fermyon:spin/llm@2.0.0#infer` is not implemented by Nebula"),
        "{log}"
    );
    let r = s.get("/hello");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from spin-py"));
}
