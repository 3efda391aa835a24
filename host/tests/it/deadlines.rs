//! A deadline holds while a guest waits, not only while it computes: a guest
//! sleeping in a host call runs no code, so the epoch trap never fires for
//! it; the wall-clock deadline must answer 504, free its instance slot for
//! the next request and let the epoch ticker sleep again.
//! host/tests/apps/waits.toml (pure) and spin-waits.toml (Spin), both with
//! one instance slot and a 1 s deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::{build_guests, Server};

/// timeout_ms of the waiting component in both manifests.
const DEADLINE: Duration = Duration::from_millis(1000);
/// Scheduling slack on a busy machine.
const SLACK: Duration = Duration::from_secs(3);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Far past the deadline, far short of the guest's hour of sleep.
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into()
}

/// GET `url`: status, body and how long it took.
fn get(url: &str) -> (u16, String, Duration) {
    let t = Instant::now();
    let mut r = agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: no answer within 15 s: {e}"));
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (r.status().as_u16(), body, t.elapsed())
}

/// CPU seconds the epoch ticker thread has used, from the admin listener.
fn epoch_cpu_seconds(s: &Server) -> f64 {
    let admin = s.admin.as_ref().expect("started with --admin");
    let text = agent()
        .get(format!("{admin}/metrics"))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .unwrap();
    let series: HashMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .collect();
    series
        .get(r#"nebula_background_cpu_seconds_total{task="epoch"}"#)
        .unwrap_or_else(|| panic!("no epoch series in:\n{text}"))
        .parse()
        .unwrap()
}

/// A sleeping guest gets 504 at its deadline; a request queued behind it
/// for the only slot is then served; afterwards the epoch ticker is idle.
fn a_waiting_guest_is_stopped_at_its_deadline(s: &Server, sleep: &str, ok: &str, ok_body: &str) {
    let queued = {
        let url = s.url(ok);
        std::thread::spawn(move || {
            // Let the sleeper take the only slot first.
            std::thread::sleep(DEADLINE / 4);
            get(&url)
        })
    };
    let (status, _, took) = get(&s.url(sleep));
    assert_eq!(status, 504, "{sleep}\n{}", s.log());
    assert!(
        took >= DEADLINE - Duration::from_millis(50) && took < DEADLINE + SLACK,
        "{sleep} answered after {took:?}, deadline {DEADLINE:?}"
    );
    assert!(s.log().contains("deadline exceeded"), "{}", s.log());

    // The request that waited for the slot got it.
    let (status, body, _) = queued.join().unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, ok_body),
        "queued behind the sleeper\n{}",
        s.log()
    );
    let (status, body, _) = get(&s.url(ok));
    assert_eq!((status, body.as_str()), (200, ok_body), "{}", s.log());

    // Nothing is in flight, so the epoch ticker has stopped: its CPU time
    // stands still. (While a call is in flight it ticks every 10 ms and
    // every tick is charged.)
    std::thread::sleep(Duration::from_millis(100));
    let before = epoch_cpu_seconds(s);
    assert!(before > 0.0, "the ticker ran during the calls");
    std::thread::sleep(Duration::from_millis(500));
    let after = epoch_cpu_seconds(s);
    assert_eq!(
        before, after,
        "the epoch ticker kept running with no request in flight"
    );
}

#[test]
fn a_pure_guest_sleeping_in_a_host_call_gets_504_and_frees_its_slot() {
    let s = Server::start("host/tests/apps/waits.toml", &["--admin", "127.0.0.1:0"]);
    a_waiting_guest_is_stopped_at_its_deadline(&s, "/hog?mode=sleep", "/hog", "ok\n");
}

#[test]
fn a_spin_guest_sleeping_in_a_host_call_gets_504_and_frees_its_slot() {
    build_guests();
    let s = Server::start_spin(
        "host/tests/apps/spin-waits.toml",
        &["--admin", "127.0.0.1:0"],
        &[],
    );
    a_waiting_guest_is_stopped_at_its_deadline(&s, "/?mode=sleep", "/?mode=ok", "ok\n");
}
