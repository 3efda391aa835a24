//! Clients that hold what others need: one that sends requests and never
//! reads the answers (`[limits] write_timeout_ms`), one that opens too many
//! connections (`[limits] max_connections_per_ip`). host/tests/apps/
//! slow-clients.toml and spin-slow-clients.toml.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use crate::support::{build_guests, Server};

const APP: &str = "host/tests/apps/slow-clients.toml";
const SPIN_APP: &str = "host/tests/apps/spin-slow-clients.toml";
/// slow-clients.toml's and spin-slow-clients.toml's write_timeout_ms.
const WRITE_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a client that should be served may wait: the write timeout
/// plus scheduling on a busy machine, far less than anything on main frees.
const PATIENCE: Duration = Duration::from_secs(10);

/// A connection to `server` (`host:port` on 127.0.0.1) from the loopback
/// address `from` (127.0.0.0/8 is all loopback), with a small receive
/// buffer so that a client that does not read fills it quickly.
fn connect_from(from: Ipv4Addr, server: &str) -> TcpStream {
    let server: SocketAddrV4 = server.parse().expect("an IPv4 server address");
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; each
    // pointer is to a live local of the size given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let rcvbuf: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &rcvbuf as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let local = sockaddr(SocketAddrV4::new(from, 0));
        assert_eq!(
            libc::bind(fd, &local as *const _ as *const libc::sockaddr, len),
            0,
            "bind {from}: {}",
            std::io::Error::last_os_error()
        );
        let remote = sockaddr(server);
        assert_eq!(
            libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len),
            0,
            "connect {server} from {from}: {}",
            std::io::Error::last_os_error()
        );
        stream
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Sends one GET and reads until the server closes or `wait` passes:
/// what it got back, or an empty string if the connection was closed (or
/// reset) without an answer.
fn exchange(mut c: TcpStream, path: &str, wait: Duration) -> String {
    c.set_read_timeout(Some(wait)).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if c.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Pipelines `n` requests for `path` on `c` and reads nothing.
fn pipeline_without_reading(c: &mut TcpStream, path: &str, n: usize) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").repeat(n);
    c.set_write_timeout(Some(PATIENCE)).unwrap();
    // The server reads requests only as it answers them; what does not fit
    // in the buffers is simply not sent, which is fine.
    let _ = c.write_all(req.as_bytes());
}

/// Reads what is left on a connection the server should have closed: it
/// must end (EOF or reset) well before `expected` bytes, at once.
fn assert_closed_by_server(s: &Server, mut c: TcpStream, expected: usize, what: &str) {
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let started = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "{what}: the connection is still open after {got} bytes: {e}\n{}",
                s.log()
            ),
        }
    }
    assert!(
        got < expected,
        "{what}: read all {got} bytes; the server never gave up on the connection\n{}",
        s.log()
    );
    assert!(started.elapsed() < PATIENCE, "{what}");
}

#[test]
fn a_client_that_never_reads_its_answers_is_cut_off_and_its_connection_comes_back() {
    let s = Server::start(APP, &[]);
    let addr = s.addr();
    let big = "/hog?mode=big-response&bytes=1048576";
    const REQUESTS: usize = 16;
    // max_connections = 3, all taken by clients that ask for 16 MiB and
    // read none of it (two per address at most).
    let mut stalled: Vec<TcpStream> = [1, 1, 2]
        .iter()
        .map(|&i| connect_from(ip(i), &addr))
        .collect();
    for c in &mut stalled {
        pipeline_without_reading(c, big, REQUESTS);
    }
    // A fourth client waits in the listen backlog for one of those
    // connections to close; the server closes them once their writes have
    // been blocked for write_timeout_ms (on main, never).
    let started = Instant::now();
    let answer = exchange(connect_from(ip(3), &addr), "/hog", PATIENCE);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a client waiting behind three that do not read was not served within {PATIENCE:?}: {answer:?}\n{}",
        s.log()
    );
    assert!(
        started.elapsed() >= WRITE_TIMEOUT / 2,
        "served after {:?}: the stalled clients did not hold the connections",
        started.elapsed()
    );
    // Each of the three is cut off (on a busy machine some may start
    // blocking later than others: wait for the server to say so, then read
    // what the server had sent before it reset them).
    let t = Instant::now();
    while s.log().matches("stopped reading").count() < 3 && t.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.log().matches("stopped reading").count(), 3, "{}", s.log());
    for (i, c) in stalled.into_iter().enumerate() {
        assert_closed_by_server(&s, c, REQUESTS << 20, &format!("stalled client {i}"));
    }
    // And everything is back: a fresh client from the first address is served.
    let again = exchange(connect_from(ip(1), &addr), "/hog", PATIENCE);
    assert!(again.starts_with("HTTP/1.1 200"), "{again:?}");
}

#[test]
fn a_spin_response_nobody_reads_gives_its_instance_slot_back_after_the_write_timeout() {
    build_guests();
    let s = Server::start_spin(SPIN_APP, &[], &[]);
    let addr = s.addr();
    // One instance slot, held by a 256 MiB streamed answer nobody reads;
    // the component's own deadline (60 s) does not end it.
    let mut stalled = connect_from(ip(1), &addr);
    pipeline_without_reading(&mut stalled, "/?mode=big&n=268435456", 1);
    std::thread::sleep(WRITE_TIMEOUT / 4);
    let answer = exchange(connect_from(ip(2), &addr), "/?mode=ok", PATIENCE);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\r\nok\n"),
        "the next request did not get the slot within {PATIENCE:?}: {answer:?}\n{}",
        s.log()
    );
    assert_closed_by_server(&s, stalled, 256 << 20, "the stalled client");
}

#[test]
fn past_max_connections_per_ip_new_connections_from_that_address_are_closed() {
    let s = Server::start(APP, &[]);
    let addr = s.addr();
    // max_connections_per_ip = 2: two idle connections from 127.0.0.1
    // (header_read_timeout_ms is 20 s, so they stay open)…
    let idle: Vec<TcpStream> = (0..2).map(|_| connect_from(ip(1), &addr)).collect();
    // …both accepted: the kernel hands connections over in order, so once
    // a later one is answered, the server holds those two.
    let other = exchange(connect_from(ip(2), &addr), "/hog", PATIENCE);
    assert!(other.starts_with("HTTP/1.1 200"), "{other:?}");
    // A third from the same address is closed without an answer…
    let refused = exchange(connect_from(ip(1), &addr), "/hog", PATIENCE);
    assert_eq!(
        refused,
        "",
        "a third connection from 127.0.0.1 was served\n{}",
        s.log()
    );
    assert!(
        s.log().contains("max_connections_per_ip"),
        "the refusal is logged: {}",
        s.log()
    );
    // …while another address is served.
    let other = exchange(connect_from(ip(2), &addr), "/hog", PATIENCE);
    assert!(other.starts_with("HTTP/1.1 200"), "{other:?}");
    // Once one of the two closes, the address gets its place back.
    drop(idle);
    let t = Instant::now();
    loop {
        let again = exchange(connect_from(ip(1), &addr), "/hog", PATIENCE);
        if again.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            t.elapsed() < PATIENCE,
            "127.0.0.1 was still refused after its connections closed: {again:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
