//! The admin listener's own guards (`--admin ADDR`): loopback unless
//! `--admin-public`, only requests for this host (no DNS rebinding), a cap
//! on its connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{build_guests, nebula, repo, Server};

const APP: &str = "host/tests/apps/limits.toml";

fn start() -> Server {
    Server::start(APP, &["--admin", "127.0.0.1:0"])
}

fn admin_addr(s: &Server) -> String {
    s.admin
        .as_ref()
        .expect("the banner names the admin listener")
        .trim_start_matches("http://")
        .to_string()
}

/// `GET /metrics` with this `Host` on a fresh connection: the raw answer.
fn scrape_as(addr: &str, host: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_non_loopback_admin_address_without_admin_public_stops_the_start() {
    build_guests();
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = nebula()
        .args(["up", "-f"])
        .arg(repo().join(APP))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-build",
            "--admin",
            "0.0.0.0:0",
        ])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run nebula up");
    // It must stop by itself; one that serves instead is stopped here.
    let t = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out).unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "nebula up --admin 0.0.0.0:0 did not exit 1:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("--admin 0.0.0.0:0 is not a loopback address")
            && stderr.contains("--admin-public"),
        "the error names the address and the flag: {stderr}"
    );
    // It stopped before binding anything: neither listener was announced.
    assert!(
        !stdout.contains("Serving") && !stdout.contains("Metrics at"),
        "{stdout}"
    );
}

#[test]
fn the_admin_listener_serves_only_requests_for_this_host() {
    let s = start();
    let addr = admin_addr(&s);
    let port = addr.rsplit_once(':').unwrap().1;
    for host in [
        addr.clone(),
        format!("localhost:{port}"),
        "127.0.0.1".into(),
    ] {
        let r = scrape_as(&addr, &host);
        assert!(r.starts_with("HTTP/1.1 200"), "Host: {host}: {r}");
        assert!(r.contains("nebula_requests_total"), "Host: {host}");
    }
    // A page on evil.example that points its name at 127.0.0.1 (DNS
    // rebinding) reaches the socket, but not the metrics.
    for host in ["evil.example", &format!("evil.example:{port}")] {
        let r = scrape_as(&addr, host);
        assert!(r.starts_with("HTTP/1.1 421"), "Host: {host}: {r}");
        assert!(!r.contains("nebula_requests_total"), "Host: {host}: {r}");
    }
    assert!(s.log().contains("admin: refused"), "{}", s.log());
}

#[test]
fn the_admin_listener_keeps_at_most_16_connections_open() {
    let s = start();
    let addr = admin_addr(&s);
    // 16 connections that send nothing take every place (the kernel hands
    // connections over in order, so they are accepted before the next)…
    let idle: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let t = Instant::now();
    let mut c = TcpStream::connect(&addr).unwrap();
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    // …so a 17th waits: no answer while they are open…
    c.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut first = [0u8; 1];
    let waited = c.read(&mut first);
    assert!(
        waited.is_err(),
        "the 17th connection was answered while 16 were open ({waited:?} after {:?})",
        t.elapsed()
    );
    // …and is served once one of them closes.
    drop(idle);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}
