//! Tries every way out of the sandbox a wasm32-wasip2 component has — through
//! the Rust standard library and through the WASI 0.2 imports directly — and
//! reports what happened, so the host's tests can check that a pure component
//! sees no files, no environment, no network, clocks fixed at the request's
//! `now-ms`, randomness drawn from its `seed`, and an empty stdin.
//!
//! Every probe is "ok: …" or "error: …"; clock readings are numbers. The
//! query may name targets the test has set up on the host: `file=` (a file
//! with known content), `tcp=` and `udp=` (loopback ports the test listens
//! on). `?exit=N` calls `exit(N)` instead of answering.

use std::fmt::Display;
use std::io::{Read, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kit::http::{json, query};
use kit::{Request, Response, Table};
use serde_json::{json, Value};
use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, Network,
};
use wasip2::sockets::{instance_network, ip_name_lookup, tcp_create_socket, udp_create_socket};

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, _data: Vec<Table>) -> Response {
        if let Some(code) = query(&req, "exit") {
            std::process::exit(code.parse().unwrap_or(1));
        }
        let tcp_port: u16 = query(&req, "tcp")
            .and_then(|p| p.parse().ok())
            .unwrap_or(80);
        let udp_port: u16 = query(&req, "udp")
            .and_then(|p| p.parse().ok())
            .unwrap_or(53);
        let file = query(&req, "file").unwrap_or("/etc/hostname").to_string();

        let mut report = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            report.insert(k.to_string(), v);
        };

        // Files: preopens, absolute and relative paths, writes.
        put("preopens", json!(describe_preopens()));
        put(
            "read_file",
            json!(describe(
                std::fs::read_to_string("/etc/passwd").map(|s| format!("{} bytes", s.len()))
            )),
        );
        put(
            "read_given_file",
            json!(describe(
                std::fs::read(&file).map(|s| format!("{} bytes", s.len()))
            )),
        );
        put(
            "read_relative",
            json!(describe(
                std::fs::read("Cargo.toml").map(|s| format!("{} bytes", s.len()))
            )),
        );
        put(
            "read_parent",
            json!(describe(
                std::fs::read("../app.toml").map(|s| format!("{} bytes", s.len()))
            )),
        );
        put(
            "read_dot",
            json!(describe(
                std::fs::read_dir(".").map(|d| format!("{} entries", d.count()))
            )),
        );
        put(
            "read_proc",
            json!(describe(
                std::fs::read("/proc/self/environ").map(|s| format!("{} bytes", s.len()))
            )),
        );
        put(
            "read_dir",
            json!(describe(std::fs::read_dir("/").map(|entries| {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                format!("{} entries: {}", names.len(), names.join(","))
            }))),
        );
        put(
            "metadata_root",
            json!(describe(
                std::fs::metadata("/").map(|m| format!("is_dir {}", m.is_dir()))
            )),
        );
        put(
            "write_file",
            json!(describe(
                std::fs::write("/tmp/x", "y").map(|()| "wrote /tmp/x")
            )),
        );
        put(
            "write_relative",
            json!(describe(
                std::fs::write("nebula-probe-was-here", "y")
                    .map(|()| "wrote ./nebula-probe-was-here")
            )),
        );
        put(
            "create_dir",
            json!(describe(
                std::fs::create_dir("/nebula-probe-dir").map(|()| "created /nebula-probe-dir")
            )),
        );
        put(
            "current_dir",
            json!(describe(
                std::env::current_dir().map(|d| d.display().to_string())
            )),
        );
        put(
            "initial_cwd",
            json!(format!("{:?}", wasip2::cli::environment::initial_cwd())),
        );

        // Environment and arguments, through std and through WASI.
        let env: Vec<String> = std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        put("env_count", json!(env.len()));
        put("env_names", json!(env));
        put("env_path", json!(describe(std::env::var("PATH"))));
        put(
            "wasi_env_count",
            json!(wasip2::cli::environment::get_environment().len()),
        );
        put(
            "args",
            json!(format!("ok: {:?}", std::env::args_os().collect::<Vec<_>>())),
        );
        put(
            "wasi_args",
            json!(wasip2::cli::environment::get_arguments()),
        );

        // Network: std, then the WASI socket and name-lookup imports.
        put(
            "tcp_connect",
            json!(describe(
                std::net::TcpStream::connect(("127.0.0.1", tcp_port))
                    .map(|_| format!("connected to 127.0.0.1:{tcp_port}"))
            )),
        );
        put(
            "tcp_connect_v6",
            json!(describe(
                std::net::TcpStream::connect(("::1", tcp_port))
                    .map(|_| format!("connected to [::1]:{tcp_port}"))
            )),
        );
        put(
            "tcp_listen",
            json!(describe(
                std::net::TcpListener::bind("127.0.0.1:0")
                    .map(|l| format!("listening on {:?}", l.local_addr()))
            )),
        );
        put(
            "udp_bind",
            json!(describe(
                std::net::UdpSocket::bind("0.0.0.0:0")
                    .map(|s| format!("bound {:?}", s.local_addr()))
            )),
        );
        put(
            "dns_std",
            json!(describe(
                std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80))
                    .map(|a| format!("{:?}", a.collect::<Vec<_>>()))
            )),
        );
        let net = instance_network::instance_network();
        put(
            "wasi_tcp_connect",
            json!(wasi_tcp_connect(&net, v4(tcp_port))),
        );
        put(
            "wasi_tcp_connect_v6",
            json!(wasi_tcp_connect(&net, v6_loopback(tcp_port))),
        );
        put("wasi_tcp_bind", json!(wasi_tcp_bind(&net)));
        put("wasi_udp_send", json!(wasi_udp_send(&net, v4(udp_port))));
        put("wasi_dns", json!(wasi_lookup(&net, "localhost")));

        // Clocks: std and WASI, before and after a real 20 ms wait.
        let first = Instant::now();
        let wall_ms = wasi_wall_ms();
        let mono = monotonic_clock::now();
        monotonic_clock::subscribe_duration(20_000_000).block();
        put(
            "system_time_ms",
            json!(SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .ok()),
        );
        put("wasi_wall_ms", json!(wall_ms));
        put("wasi_wall_ms_after_sleep", json!(wasi_wall_ms()));
        put("wasi_monotonic_ns", json!(mono));
        put(
            "wasi_monotonic_ns_after_sleep",
            json!(monotonic_clock::now()),
        );
        put(
            "instant_elapsed_ns",
            json!(first.elapsed().as_nanos() as u64),
        );
        put(
            "wall_resolution_ns",
            json!(wall_clock::resolution().nanoseconds),
        );
        put(
            "monotonic_resolution_ns",
            json!(monotonic_clock::resolution()),
        );

        // Randomness, every source WASI has.
        put(
            "random_hex",
            json!(hex(&wasip2::random::random::get_random_bytes(16))),
        );
        put(
            "random_u64",
            json!(wasip2::random::random::get_random_u64()),
        );
        put(
            "insecure_hex",
            json!(hex(&wasip2::random::insecure::get_insecure_random_bytes(
                16
            ))),
        );
        put(
            "insecure_seed",
            json!(format!(
                "{:?}",
                wasip2::random::insecure_seed::insecure_seed()
            )),
        );
        let h = std::collections::hash_map::RandomState::new();
        put(
            "hash_of_x",
            json!(std::hash::BuildHasher::hash_one(&h, "x")),
        );

        // Standard streams.
        let mut stdin = Vec::new();
        put(
            "stdin",
            json!(describe(
                std::io::stdin()
                    .read_to_end(&mut stdin)
                    .map(|n| format!("{n} bytes"))
            )),
        );
        put(
            "stdout",
            json!(describe(
                writeln!(std::io::stdout(), "purity-probe: a line on stdout").map(|()| "written")
            )),
        );
        put(
            "stderr",
            json!(describe(
                writeln!(std::io::stderr(), "purity-probe: a line on stderr").map(|()| "written")
            )),
        );

        put("now_ms", json!(req.now_ms));
        put("seed", json!(req.seed));
        json(200, Value::Object(report).to_string())
    }
}

fn describe<T: Display, E: Display>(result: Result<T, E>) -> String {
    match result {
        Ok(v) => format!("ok: {v}"),
        Err(e) => format!("error: {e}"),
    }
}

fn describe_preopens() -> String {
    let dirs = wasip2::filesystem::preopens::get_directories();
    let names: Vec<&str> = dirs.iter().map(|(_, name)| name.as_str()).collect();
    format!("{} preopened: {}", dirs.len(), names.join(","))
}

fn v4(port: u16) -> IpSocketAddress {
    IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    })
}

fn v6_loopback(port: u16) -> IpSocketAddress {
    IpSocketAddress::Ipv6(Ipv6SocketAddress {
        port,
        address: (0, 0, 0, 0, 0, 0, 0, 1),
        flow_info: 0,
        scope_id: 0,
    })
}

fn family(addr: &IpSocketAddress) -> IpAddressFamily {
    match addr {
        IpSocketAddress::Ipv4(_) => IpAddressFamily::Ipv4,
        IpSocketAddress::Ipv6(_) => IpAddressFamily::Ipv6,
    }
}

fn err(step: &str, e: ErrorCode) -> String {
    format!("error: {step}: {e:?}")
}

fn wasi_tcp_connect(net: &Network, addr: IpSocketAddress) -> String {
    let sock = match tcp_create_socket::create_tcp_socket(family(&addr)) {
        Ok(s) => s,
        Err(e) => return err("create", e),
    };
    if let Err(e) = sock.start_connect(net, addr) {
        return err("start-connect", e);
    }
    sock.subscribe().block();
    match sock.finish_connect() {
        Ok(_) => format!("ok: connected to {addr:?}"),
        Err(e) => err("finish-connect", e),
    }
}

fn wasi_tcp_bind(net: &Network) -> String {
    let sock = match tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(s) => s,
        Err(e) => return err("create", e),
    };
    if let Err(e) = sock.start_bind(net, v4(0)) {
        return err("start-bind", e);
    }
    sock.subscribe().block();
    if let Err(e) = sock.finish_bind() {
        return err("finish-bind", e);
    }
    if let Err(e) = sock.start_listen() {
        return err("start-listen", e);
    }
    sock.subscribe().block();
    match sock.finish_listen() {
        Ok(()) => format!("ok: listening on {:?}", sock.local_address()),
        Err(e) => err("finish-listen", e),
    }
}

fn wasi_udp_send(net: &Network, to: IpSocketAddress) -> String {
    let sock = match udp_create_socket::create_udp_socket(family(&to)) {
        Ok(s) => s,
        Err(e) => return err("create", e),
    };
    if let Err(e) = sock.start_bind(net, v4(0)) {
        return err("start-bind", e);
    }
    sock.subscribe().block();
    if let Err(e) = sock.finish_bind() {
        return err("finish-bind", e);
    }
    let (_incoming, outgoing) = match sock.stream(Some(to)) {
        Ok(s) => s,
        Err(e) => return err("stream", e),
    };
    if let Err(e) = outgoing.check_send() {
        return err("check-send", e);
    }
    let datagram = wasip2::sockets::udp::OutgoingDatagram {
        data: b"purity-probe".to_vec(),
        remote_address: None,
    };
    match outgoing.send(&[datagram]) {
        Ok(n) => format!("ok: sent {n} datagram(s) to {to:?}"),
        Err(e) => err("send", e),
    }
}

fn wasi_lookup(net: &Network, name: &str) -> String {
    let stream = match ip_name_lookup::resolve_addresses(net, name) {
        Ok(s) => s,
        Err(e) => return err("resolve-addresses", e),
    };
    let mut found = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(a)) => found.push(format!("{a:?}")),
            Ok(None) => break,
            Err(ErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(e) => return err("resolve-next-address", e),
        }
    }
    format!("ok: {name} is {}", found.join(","))
}

fn wasi_wall_ms() -> u64 {
    let t = wall_clock::now();
    t.seconds * 1000 + u64::from(t.nanoseconds) / 1_000_000
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

kit::export!(Component with_types_in kit::bindings);
