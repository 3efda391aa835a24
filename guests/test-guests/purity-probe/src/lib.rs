//! Tries every way out of the sandbox that the Rust standard library offers
//! on wasm32-wasip2 (plus WASI random, which std uses only for hash seeds)
//! and reports what happened, so the host's tests can check that a pure
//! component sees no files, no environment, no network, a clock fixed at the
//! request's `now-ms`, and randomness drawn from its `seed`.
//!
//! Every probe is "ok: …" or "error: …"; the clock readings are numbers.

use std::fmt::Display;
use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kit::http::json;
use kit::{Request, Response, Table};
use serde_json::json;

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, _data: Vec<Table>) -> Response {
        let env: Vec<String> = std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        let first = Instant::now();
        let second = Instant::now();
        let report = json!({
            "read_file": describe(std::fs::read_to_string("/etc/passwd").map(|s| format!("{} bytes", s.len()))),
            "read_dir": describe(std::fs::read_dir("/").map(|entries| {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                format!("{} entries: {}", names.len(), names.join(","))
            })),
            "write_file": describe(std::fs::write("/tmp/x", "y").map(|()| "wrote /tmp/x")),
            "env_count": env.len(),
            "env_names": env,
            "args": format!("ok: {:?}", std::env::args_os().collect::<Vec<_>>()),
            "current_dir": describe(std::env::current_dir().map(|d| d.display().to_string())),
            "tcp_connect": describe(std::net::TcpStream::connect("127.0.0.1:80").map(|_| "connected to 127.0.0.1:80")),
            "udp_bind": describe(std::net::UdpSocket::bind("0.0.0.0:0").map(|s| format!("bound {:?}", s.local_addr()))),
            "system_time_ms": SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .ok(),
            "instant_elapsed_ns": second.duration_since(first).as_nanos() as u64,
            "random_hex": hex(&wasip2::random::random::get_random_bytes(16)),
            "stdout": describe(writeln!(std::io::stdout(), "purity-probe: a line on stdout").map(|()| "written")),
            "stderr": describe(writeln!(std::io::stderr(), "purity-probe: a line on stderr").map(|()| "written")),
            "now_ms": req.now_ms,
            "seed": req.seed,
        });
        json(200, report.to_string())
    }
}

fn describe<T: Display, E: Display>(result: Result<T, E>) -> String {
    match result {
        Ok(v) => format!("ok: {v}"),
        Err(e) => format!("error: {e}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

kit::export!(Component with_types_in kit::bindings);
