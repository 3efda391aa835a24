//! Isolation: nothing of one request's instance reaches the next — not a
//! static, not the heap, not a byte of linear memory — however many requests
//! run one after another or at once, and however the earlier ones ended
//! (panic, trap, stack overflow, exit).

use crate::support::{agent, Server};

/// The state a fresh instance of the isolation guest reports.
fn assert_initial(v: &serde_json::Value, pages: &serde_json::Value, what: &str) {
    assert_eq!(v["counter"], 0, "{what}: a static survived: {v}");
    assert_eq!(v["heap_len"], 0, "{what}: the heap survived: {v}");
    assert_eq!(v["leaked_runs"], 0, "{what}: memory was not cleared: {v}");
    // What this call itself scattered is found: the detector works.
    assert!(
        v["runs_after_writing"].as_u64().unwrap() >= 6,
        "{what}: the marker detector is blind: {v}"
    );
    assert_eq!(
        &v["memory_pages"], pages,
        "{what}: memory did not start at its initial size: {v}"
    );
}

fn first_state(s: &Server) -> serde_json::Value {
    let r = s.get("/isolation");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["counter"], 0, "{v}");
    v["memory_pages"].clone()
}

#[test]
fn every_request_sees_the_initial_state_sequentially_and_concurrently() {
    let s = Server::start("host/tests/apps/probe.toml", &[]);
    let pages = first_state(&s);
    for i in 0..100 {
        assert_initial(&s.get("/isolation").json(), &pages, &format!("request {i}"));
    }

    let url = s.url("/isolation");
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let a = agent();
                (0..25)
                    .map(|i| {
                        let mut r = a.get(&url).call().unwrap();
                        assert_eq!(r.status(), 200, "thread {t} request {i}");
                        let body = r.body_mut().read_to_vec().unwrap();
                        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = 0;
    for t in threads {
        for v in t.join().unwrap() {
            assert_initial(&v, &pages, "concurrent request");
            seen += 1;
        }
    }
    assert_eq!(seen, 400);
}

#[test]
fn a_panic_trap_stack_overflow_or_exit_is_that_requests_500_and_leaves_nothing_behind() {
    let mut s = Server::start("host/tests/apps/probe.toml", &[]);
    let pages = first_state(&s);
    for fail in [
        "panic",
        "unreachable",
        "stack-overflow",
        "call-stack",
        "exit",
        "oob",
    ] {
        for round in 0..3 {
            let r = s.get(&format!("/isolation?fail={fail}"));
            assert_eq!(r.status, 500, "{fail}: {}", r.text());
            let id = r.header("x-request-id").unwrap();
            assert!(
                r.text().contains(id),
                "{fail}: the error page names the request"
            );
            assert!(s.is_running(), "{fail}: the host died");
            // The failed call changed every kind of state before it failed;
            // the next one sees none of it.
            assert_initial(
                &s.get("/isolation").json(),
                &pages,
                &format!("after {fail} (round {round})"),
            );
        }
    }
    let log = s.log();
    for cause in [
        "isolation guest: deliberate panic",
        "wasm trap: call stack exhausted",
        "wasm trap: out of bounds memory access",
        "wasm trap: wasm `unreachable` instruction executed",
    ] {
        assert!(log.contains(cause), "{cause:?} not logged:\n{log}");
    }

    // Failures and successes interleaved from many threads: every failure is
    // a 500, every success starts clean.
    let url = s.url("/isolation");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let a = agent();
                let mut clean = Vec::new();
                for i in 0..20 {
                    if (t + i) % 2 == 0 {
                        let fail = ["panic", "stack-overflow", "call-stack", "exit"][i % 4];
                        let r = a.get(format!("{url}?fail={fail}")).call().unwrap();
                        assert_eq!(r.status(), 500, "{fail}");
                    } else {
                        let mut r = a.get(&url).call().unwrap();
                        assert_eq!(r.status(), 200);
                        let body = r.body_mut().read_to_vec().unwrap();
                        clean.push(serde_json::from_slice::<serde_json::Value>(&body).unwrap());
                    }
                }
                clean
            })
        })
        .collect();
    for t in threads {
        for v in t.join().unwrap() {
            assert_initial(&v, &pages, "interleaved with failures");
        }
    }
    assert!(s.is_running());
}
