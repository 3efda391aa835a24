//! Per-request limits (host/tests/apps/limits.toml, guest `hog`): deadlines
//! that stop endless loops without stalling other requests, the memory cap,
//! the response cap, header and body limits, slow clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{agent, Server};

/// The hog's deadline in limits.toml ([components.hog.limits] timeout_ms).
pub const HOG_DEADLINE: Duration = Duration::from_millis(1000);
/// Slack for "answered within the deadline": scheduling on a busy machine.
pub const SLACK: Duration = Duration::from_secs(2);

/// Sends `bytes` on a fresh connection and reads the answer until the
/// server closes it or `timeout` passes.
pub fn raw(addr: &str, bytes: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Enough spinning guests to occupy every tokio worker twice over.
fn spinners() -> usize {
    2 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Starts `n` requests to `url` on their own threads; each reports its
/// status and how long it took, and bumps `finished` when it has its answer.
fn spawn_requests(
    url: String,
    n: usize,
    finished: Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<(u16, Duration)>> {
    (0..n)
        .map(|_| {
            let (url, finished) = (url.clone(), finished.clone());
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = agent().get(&url).call().expect("GET");
                finished.fetch_add(1, Ordering::SeqCst);
                (r.status().as_u16(), t.elapsed())
            })
        })
        .collect()
}

/// While guests spin, other requests are answered before any spinner's
/// deadline; every spinner gets 504 within its deadline (plus slack).
fn spinning_guests_are_stopped_and_do_not_stall_others(s: &Server, spin_path: &str, hello: &str) {
    let n = spinners();
    let finished = Arc::new(AtomicUsize::new(0));
    let loops = spawn_requests(s.url(spin_path), n, finished.clone());
    // Let the spinners reach their guests (well inside their deadline).
    std::thread::sleep(HOG_DEADLINE / 4);
    for i in 0..3 {
        let r = s.get(hello);
        assert_eq!(r.status, 200, "{hello} while guests spin");
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "request {i} to {hello} waited until a spinning guest was stopped: \
             the spinners held the host's workers\n{}",
            s.log()
        );
    }
    for t in loops {
        let (status, took) = t.join().unwrap();
        assert_eq!(status, 504, "{spin_path}\n{}", s.log());
        assert!(
            took < HOG_DEADLINE + SLACK,
            "{spin_path} answered after {took:?}, deadline {HOG_DEADLINE:?}"
        );
    }
    assert!(s.log().contains("deadline exceeded"), "{}", s.log());
    // Nothing is left running: the next request is served.
    assert_eq!(s.get(hello).status, 200);
}

#[test]
fn an_endless_loop_gets_504_within_its_deadline_and_others_keep_being_served() {
    let slots = (spinners() + 4).to_string();
    let s = Server::start("host/tests/apps/limits.toml", &["--max-instances", &slots]);
    spinning_guests_are_stopped_and_do_not_stall_others(&s, "/hog?mode=loop", "/hello/x");
}

#[test]
fn a_spin_component_spinning_without_yielding_gets_504_and_does_not_hold_a_worker() {
    let slots = (spinners() + 4).to_string();
    let s = Server::start_spin(
        "host/tests/apps/spin-hog.toml",
        &[
            "--timeout-ms",
            &HOG_DEADLINE.as_millis().to_string(),
            "--max-instances",
            &slots,
        ],
        &[],
    );
    spinning_guests_are_stopped_and_do_not_stall_others(&s, "/?mode=loop", "/hello");
}

/// A WASI 0.2 guest that returns without setting its response, or traps
/// before it, is a 500 that says so in the log; its instance is dropped and
/// its slot freed, so with one instance slot every later request is served
/// (each one's instance may find the pool still full for a moment after the
/// previous response, and waits for it rather than failing).
#[test]
fn a_wasi_p2_guest_that_never_answers_or_traps_is_a_500_and_frees_its_instance() {
    crate::support::build_guests();
    let s = Server::start_spin(
        "host/tests/apps/spin-hog.toml",
        &["--max-instances", "1"],
        &[],
    );
    let r = s.get("/?mode=noanswer");
    assert_eq!(r.status, 500, "{}", r.text());
    let r = s.get("/?mode=panic");
    assert_eq!(r.status, 500, "{}", r.text());
    for i in 0..20 {
        let r = s.get(&format!("/hello/{i}"));
        assert_eq!(
            (r.status, r.text()),
            (200, "ok\n".to_string()),
            "request {i}"
        );
    }
    let log = s.log();
    assert!(
        log.contains("response-outparam::set"),
        "the log names what the guest did not do:\n{log}"
    );
    assert!(
        log.contains("the guest panics before it answers"),
        "the log has the guest's panic:\n{log}"
    );
}

#[test]
fn the_memory_cap_is_the_components_and_endless_allocation_is_a_500() {
    let s = Server::start("host/tests/apps/limits.toml", &[]);
    // What the guest can get: under its own 16 MiB cap, not the app's 64.
    let got: u64 = s.get("/hog?mode=memory").text().trim().parse().unwrap();
    assert!(
        (8..16).contains(&got),
        "the guest reserved {got} MiB under a 16 MiB cap"
    );

    let before = s.rss_kib();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let url = s.url("/hog?mode=alloc");
            std::thread::spawn(move || {
                (0..4)
                    .map(|_| agent().get(&url).call().unwrap().status().as_u16())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), vec![500; 4]);
    }
    let after = s.rss_kib();
    // Two calls at a time, each capped at 16 MiB, memory given back when the
    // instance is dropped: the host grows by far less than 8 × 16 MiB.
    assert!(
        after < before + 48 * 1024,
        "host RSS grew from {before} KiB to {after} KiB"
    );
    assert!(s.log().contains("trapped"), "{}", s.log());
    assert_eq!(s.get("/hello/x").status, 200);
}

#[test]
fn a_response_over_max_response_bytes_is_a_500_with_a_clear_log_line() {
    let s = Server::start("host/tests/apps/limits.toml", &[]);
    let r = s.get("/hog?mode=big-response&bytes=65536");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 65536);
    let r = s.get("/hog?mode=big-response&bytes=65537");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("xxxx"), "none of the body is sent");
    let log = s.log();
    assert!(
        log.contains("response of 65537 bytes is over max_response_bytes = 65536"),
        "{log}"
    );
}

#[test]
fn headers_over_the_limits_get_431_and_bodies_413() {
    let s = Server::start("host/tests/apps/limits.toml", &[]);
    let addr = s.addr();
    let t = Duration::from_secs(5);
    let ok = raw(
        &addr,
        b"GET /hello/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        t,
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    // max_header_bytes = 8192: one 9000-byte header.
    let big = format!(
        "GET /hello/x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    let r = raw(&addr, big.as_bytes(), t);
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");

    // max_headers = 32: forty small ones.
    let mut many = String::from("GET /hello/x HTTP/1.1\r\nHost: a\r\n");
    for i in 0..40 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    let r = raw(&addr, many.as_bytes(), t);
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");

    // max_body_bytes = 4096.
    let r = s.request("POST", "/hello/x", &[b'a'; 4097]);
    assert_eq!(r.status, 413);
    let r = s.request("POST", "/hello/x", &[b'a'; 4096]);
    assert_eq!(r.status, 200);
}

/// Sends `head` then `tail` one byte every 100 ms; returns what the server
/// answered, how long until it closed, and how many bytes of `tail` it took.
fn dribble(addr: &str, head: &[u8], tail: &[u8]) -> (String, Duration, usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t = Instant::now();
    s.write_all(head).unwrap();
    let mut out = Vec::new();
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    while t.elapsed() < Duration::from_secs(15) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if sent < tail.len() {
            if s.write_all(&tail[sent..sent + 1]).is_err() {
                break;
            }
            sent += 1;
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        t.elapsed(),
        sent,
    )
}

#[test]
fn slow_clients_are_cut_off_by_the_read_timeouts() {
    let s = Server::start("host/tests/apps/limits.toml", &[]);
    let addr = s.addr();
    let limit = Duration::from_millis(1000); // header/body_read_timeout_ms

    // Headers dribbled byte by byte: 200 bytes would take 20 s.
    let tail = format!("X-Slow: {}\r\n\r\n", "s".repeat(200));
    let (answer, took, sent) = dribble(
        &addr,
        b"GET /hello/x HTTP/1.1\r\nHost: a\r\n",
        tail.as_bytes(),
    );
    assert!(sent < tail.len(), "the server read all the slow headers");
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(took < limit + SLACK, "connection closed after {took:?}");

    // A body dribbled byte by byte: 408.
    let (answer, took, sent) = dribble(
        &addr,
        b"POST /hello/x HTTP/1.1\r\nHost: a\r\nContent-Length: 200\r\n\r\n",
        &[b'b'; 200],
    );
    assert!(sent < 200, "the server read all the slow body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < limit + SLACK, "answered after {took:?}");

    // Prompt clients are still served.
    assert_eq!(s.get("/hello/x").status, 200);
}
