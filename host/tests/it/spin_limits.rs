//! Limits and backpressure for Spin apps (host/tests/apps/spin-limits.toml:
//! Nebula's limits in `[application.tool.nebula.limits]` and
//! `[component.http-hog.tool.nebula.limits]`, two instance slots, a queue of
//! two, 4 KiB request bodies, 64 KiB responses, 16 MiB of memory, a 1 s
//! deadline).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{agent, build_guests, Resp, Server};

const APP: &str = "host/tests/apps/spin-limits.toml";
/// `[component.http-hog.tool.nebula.limits] timeout_ms`.
const DEADLINE: Duration = Duration::from_millis(1000);
const MAX_RESPONSE: usize = 65536;

fn start() -> Server {
    build_guests();
    Server::start_spin(APP, &[], &[])
}

/// Sends `head` and then `body` in pieces, and returns everything the
/// server sent back until it closed the connection.
fn raw_exchange(s: &Server, head: &str, body: &[&[u8]]) -> Vec<u8> {
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    for piece in body {
        c.write_all(piece).unwrap();
    }
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    out
}

#[test]
fn busy_slots_queue_spin_requests_and_past_the_queue_they_get_503_with_retry_after() {
    let s = start();
    let bg = |path: &str| {
        let url = s.url(path);
        std::thread::spawn(move || {
            let t = Instant::now();
            (
                Resp::from(agent().get(&url).call().expect("GET")),
                t.elapsed(),
            )
        })
    };
    // Both slots: guests that spin until their deadline.
    let spinning: Vec<_> = (0..2).map(|_| bg("/?mode=loop")).collect();
    std::thread::sleep(DEADLINE / 4);
    // The queue: these wait for a slot and are served when one frees.
    let queued: Vec<_> = (0..2).map(|_| bg("/queued")).collect();
    std::thread::sleep(DEADLINE / 4);
    // Past the queue: refused at once.
    let r = s.get("/refused");
    assert_eq!(r.status, 503, "{}", s.log());
    assert_eq!(r.header("retry-after"), Some("3"), "the queue's wait");
    assert!(s.log().contains("QueueFull"), "{}", s.log());

    for t in spinning {
        let (r, took) = t.join().unwrap();
        assert_eq!(r.status, 504, "the component's own 1 s deadline");
        assert!(took < DEADLINE * 3, "stopped after {took:?}");
    }
    for t in queued {
        let (r, _) = t.join().unwrap();
        assert_eq!(
            r.status, 200,
            "a queued request is served once a slot frees"
        );
        assert_eq!(r.text(), "ok\n");
    }
    assert_eq!(s.get("/after").status, 200);
}

#[test]
fn a_spin_response_over_max_response_bytes_is_refused_or_cut_off() {
    let s = start();
    // Under the cap: whole.
    let r = s.get(&format!("/?mode=big&n={MAX_RESPONSE}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), MAX_RESPONSE);

    // Declared over the cap: refused before a byte of it is sent.
    let r = s.get(&format!("/?mode=declared&n={}", MAX_RESPONSE + 1));
    assert_eq!(r.status, 500, "{}", s.log());
    assert!(r.text().contains("larger than this server allows"));
    assert!(
        s.log().contains("over max_response_bytes = 65536"),
        "{}",
        s.log()
    );

    // Streamed over the cap: the headers are gone already, so the stream is
    // cut off and the client sees an incomplete response, never a whole one.
    let n = 4 * MAX_RESPONSE;
    let out = raw_exchange(
        &s,
        &format!("GET /?mode=big&n={n} HTTP/1.1\r\nHost: a\r\n\r\n"),
        &[],
    );
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(text.contains("transfer-encoding: chunked"), "streamed");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "no final chunk: the response is incomplete"
    );
    // Only the body's bytes: header names (x-request-id, x-frame-options…)
    // have x's too.
    let head_end = text.find("\r\n\r\n").expect("a header block") + 4;
    let xs = out[head_end..].iter().filter(|&&b| b == b'x').count();
    assert!(
        xs <= MAX_RESPONSE,
        "{xs} body bytes passed a {MAX_RESPONSE}-byte cap"
    );
    assert!(s.log().contains("response body cut off"), "{}", s.log());
    // The slot it held is free again.
    assert_eq!(s.get("/after").text(), "ok\n");
}

#[test]
fn a_spin_request_body_over_max_body_bytes_is_413_or_an_error_the_guest_sees() {
    let s = start();
    let r = s.request("POST", "/?mode=read", &[b'y'; 1000]);
    assert_eq!(r.text(), "read 1000 bytes\n");

    // Declared too large: 413 without calling the component.
    let r = s.request("POST", "/?mode=read", &[b'y'; 5000]);
    assert_eq!(r.status, 413);

    // Chunked, so its size is only known as it arrives: the guest reading it
    // gets wasi:http's body-size error, and never more than the limit.
    let chunk = format!("1000\r\n{}\r\n", "y".repeat(4096));
    let out = raw_exchange(
        &s,
        "POST /?mode=read HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        &[chunk.as_bytes(), chunk.as_bytes(), b"0\r\n\r\n"],
    );
    let text = String::from_utf8_lossy(&out);
    let said = text
        .split_once("error after ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("the guest saw no error: {text}"));
    assert!(
        said.contains("body size exceeds limit: 4096 bytes"),
        "what the guest was told: {said}"
    );
    assert!(
        s.log().contains("request body over max_body_bytes = 4096"),
        "{}",
        s.log()
    );
    let got: usize = said
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        got <= 4096,
        "the guest got {got} bytes past a 4096-byte limit"
    );
}

#[test]
fn a_spin_request_body_dribbled_too_slowly_is_cut_off_by_the_read_timeout() {
    let s = start();
    let t = Instant::now();
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"POST /?mode=read HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789")
        .unwrap();
    // …and nothing more: the body_read_timeout (300 ms) ends it, before the
    // component's deadline (1 s).
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("error after 10 bytes: connection read timeout"),
        "{text}"
    );
    assert!(
        s.log()
            .contains("request body not received within body_read_timeout_ms"),
        "{}",
        s.log()
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "cut off after {:?}",
        t.elapsed()
    );
}

#[test]
fn a_spin_components_memory_cap_is_its_own_and_endless_allocation_is_a_500() {
    let s = start();
    let got: u64 = s.get("/?mode=memory").text().trim().parse().unwrap();
    assert!(
        (8..16).contains(&got),
        "the guest reserved {got} MiB under its own 16 MiB cap (the app's is 64)"
    );
    let before = s.rss_kib();
    for _ in 0..4 {
        assert_eq!(s.get("/?mode=alloc").status, 500, "{}", s.log());
    }
    let grown = s.rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "the host grew by {grown} KiB");
    assert_eq!(s.get("/after").text(), "ok\n");
}
