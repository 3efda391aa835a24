//! Backpressure (host/tests/apps/limits.toml: 2 instance slots, a queue of
//! 2, 64 connections): busy slots queue requests, a full queue or a long
//! wait is a 503 with Retry-After, a flood of connections is answered
//! without running out of descriptors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limits::HOG_DEADLINE;
use crate::support::{agent, Server};

const APP: &str = "host/tests/apps/limits.toml";

fn get_in_background(url: String) -> std::thread::JoinHandle<crate::support::Resp> {
    std::thread::spawn(move || crate::support::Resp::from(agent().get(&url).call().expect("GET")))
}

#[test]
fn busy_slots_queue_requests_and_past_the_queue_they_get_503_with_retry_after() {
    let s = Server::start(APP, &[]);
    // Both slots: guests that spin until their deadline.
    let spinning: Vec<_> = (0..2)
        .map(|_| get_in_background(s.url("/hog?mode=loop")))
        .collect();
    std::thread::sleep(HOG_DEADLINE / 4);
    // The queue: these wait for a slot and are served when one frees.
    let queued: Vec<_> = (0..2)
        .map(|_| get_in_background(s.url("/hello/queued")))
        .collect();
    std::thread::sleep(HOG_DEADLINE / 4);
    // Past the queue: refused at once.
    let r = s.get("/hello/refused");
    assert_eq!(r.status, 503, "{}", s.log());
    assert_eq!(
        r.header("retry-after"),
        Some("3"),
        "Retry-After: the queue's wait"
    );
    assert!(s.log().contains("QueueFull"), "{}", s.log());

    for t in spinning {
        assert_eq!(t.join().unwrap().status, 504);
    }
    for t in queued {
        let r = t.join().unwrap();
        assert_eq!(
            r.status, 200,
            "a queued request is served once a slot frees"
        );
        assert!(r.text().contains("hello"));
    }
    assert_eq!(s.get("/hello/after").status, 200);
}

#[test]
fn a_request_that_waits_longer_than_queue_timeout_gets_503() {
    let s = Server::start(APP, &["--queue-timeout-ms", "200"]);
    let spinning: Vec<_> = (0..2)
        .map(|_| get_in_background(s.url("/hog?mode=loop")))
        .collect();
    std::thread::sleep(HOG_DEADLINE / 4);
    let r = s.get("/hello/waits");
    assert_eq!(r.status, 503, "{}", s.log());
    assert!(r.header("retry-after").is_some());
    assert!(s.log().contains("Waited"), "{}", s.log());
    for t in spinning {
        assert_eq!(t.join().unwrap().status, 504);
    }
    assert_eq!(s.get("/hello/after").status, 200);
}

/// `n` clients connect at once, each sends one request and reads the whole
/// answer; returns the status lines (empty when the connection failed).
fn flood(addr: &str, n: usize) -> Vec<String> {
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                let Ok(mut c) = TcpStream::connect(&addr) else {
                    return String::new();
                };
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let req =
                    format!("GET /hello/{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
                if c.write_all(req.as_bytes()).is_err() {
                    return String::new();
                }
                let mut out = Vec::new();
                let _ = c.read_to_end(&mut out);
                String::from_utf8_lossy(&out)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// How many of the flood's status lines have this status.
fn count(answers: &[String], status: &str) -> usize {
    let line = format!("HTTP/1.1 {status}");
    answers.iter().filter(|a| a.starts_with(&line)).count()
}

#[test]
fn a_flood_of_connections_is_answered_and_open_descriptors_stay_under_the_cap() {
    let s = Server::start(APP, &[]);
    assert_eq!(s.get("/hello/warm").status, 200);
    let baseline = s.open_fds();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, peak, pid) = (stop.clone(), peak.clone(), s.pid());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let n = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
                peak.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let answers = flood(&s.addr(), 400);
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    let (ok, busy) = (count(&answers, "200"), count(&answers, "503"));
    assert_eq!(
        ok + busy,
        answers.len(),
        "every connection gets 200 or 503: {answers:?}"
    );
    assert!(ok > 0);
    // max_connections = 64: at most that many connections are open, plus
    // what the host holds anyway (and a blocking-pool thread or two).
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= baseline + 64 + 8,
        "{peak} descriptors open during the flood (baseline {baseline}, cap 64)"
    );
    assert_eq!(s.get("/hello/after").status, 200);
}

#[test]
fn the_open_file_limit_is_raised_and_running_out_of_descriptors_does_not_stop_the_host() {
    let s = Server::start(APP, &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[3], f[4], "soft limit raised to the hard limit: {line}");
    drop(s);

    // 48 descriptors and max_connections = 64: 60 connections that send
    // nothing are accepted until the descriptors run out (EMFILE), whatever
    // the machine's speed; they stay open until header_read_timeout (1 s).
    let s = Server::start_with_nofile(APP, &[], 48);
    let idle: Vec<TcpStream> = (0..60)
        .filter_map(|_| TcpStream::connect(s.addr()).ok())
        .collect();
    let t = Instant::now();
    while !s.log().contains("accept failed") && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        s.log().contains("accept failed"),
        "expected EMFILE with 60 idle connections under 48 descriptors:\n{}",
        s.log()
    );
    // While out of descriptors, new clients wait in the backlog and are
    // served once the slow ones are cut off.
    let answers = flood(&s.addr(), 150);
    drop(idle);
    let (ok, busy) = (count(&answers, "200"), count(&answers, "503"));
    assert_eq!(
        ok + busy,
        answers.len(),
        "every connection is answered in the end: {answers:?}"
    );
    assert!(ok > 0, "some of the flood is served: {answers:?}");
    assert_eq!(s.get("/hello/after").status, 200);
}
