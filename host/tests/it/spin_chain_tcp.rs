//! Service chaining and outbound TCP for Spin apps built with the real SDKs:
//! `http://internal.spin.internal/…` reaches the app's private component in
//! process when `allowed_outbound_hosts` grants it (and only then), and a TCP
//! connection through wasi:sockets reaches only the `tcp://` addresses it
//! lists.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::support::Server;

const V5: &str = "guests/spin-compat/sdk-v5/spin.toml";
const V7: &str = "guests/spin-compat/sdk-v7/spin.toml";

fn start(manifest: &str) -> Server {
    Server::start_spin(manifest, &[], &[("SPIN_VARIABLE_API_KEY", "s3cret-key")])
}

fn chains(manifest: &str, sdk: &str) {
    let s = start(manifest);
    // The private endpoint runs the same code: its /hello answers.
    let r = s.get("/outbound?url=http://internal.spin.internal/hello");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.log());
    assert_eq!(r.text(), format!("status=200\nhello from spin-sdk {sdk}"));
    // Not reachable from outside, still.
    assert_eq!(s.get("/internal").status, 404);
    // The component's own name is not in its allowed hosts: refused.
    let r = s.get(&format!(
        "/outbound?url=http://sdk-{sdk}.spin.internal/hello"
    ));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
}

#[test]
fn a_spin_sdk_v5_component_calls_a_private_one_in_process() {
    chains(V5, "v5");
}

#[test]
fn a_spin_sdk_v7_component_calls_a_private_one_in_process() {
    chains(V7, "v7");
}

/// A TCP echo server on `ip`: answers `pong` to one connection per accept,
/// for at most `n` connections; counts them.
fn echo(ip: &str, n: usize) -> (u16, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let t = std::thread::spawn(move || {
        let mut served = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while served < n && std::time::Instant::now() < deadline {
            match l.accept() {
                Ok((mut c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 16];
                    let _ = c.read(&mut buf);
                    let _ = c.write_all(b"pong");
                    served += 1;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        served
    });
    (port, t)
}

fn tcp(manifest: &str) {
    let s = start(manifest);
    let (port, t) = echo("127.0.0.1", 1);
    let r = s.get(&format!("/tcp?addr=127.0.0.1:{port}"));
    assert_eq!(
        (r.status, r.text()),
        (200, "echo: pong".to_string()),
        "{}",
        s.log()
    );
    assert_eq!(t.join().unwrap(), 1);

    // 127.0.0.2 is not in allowed_outbound_hosts (tcp://127.0.0.1:*): refused
    // by the host before any connection.
    let (port, t) = echo("127.0.0.2", 1);
    let r = s.get(&format!("/tcp?addr=127.0.0.2:{port}"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("PermissionDenied"), "{}", r.text());
    assert!(s.log().contains("outbound TCP refused"), "{}", s.log());
    drop(s);
    assert_eq!(t.join().unwrap(), 0, "the refused address was reached");
}

#[test]
fn spin_sdk_v5_tcp_reaches_allowed_addresses_only() {
    tcp(V5);
}

#[test]
fn spin_sdk_v7_tcp_reaches_allowed_addresses_only() {
    tcp(V7);
}
