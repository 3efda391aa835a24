//! `nebula up --admin ADDR`: per-request accounting at `/metrics` on a
//! separate listener, and the per-component summary at shutdown.

use std::collections::HashMap;

use crate::support::{agent, Server};

const ADMIN: [&str; 2] = ["--admin", "127.0.0.1:0"];

/// Series (name and labels, as written) → value.
fn scrape(s: &Server) -> HashMap<String, f64> {
    let admin = s
        .admin
        .as_ref()
        .expect("the banner names the admin listener");
    let mut r = agent()
        .get(format!("{admin}/metrics"))
        .call()
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.body_mut().read_to_string().unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (
                series.to_string(),
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series).unwrap_or_else(|| {
        let mut keys: Vec<_> = m.keys().collect();
        keys.sort();
        panic!("no series {series}; have:\n{keys:#?}")
    })
}

#[test]
fn admin_listener_is_off_by_default() {
    let s = Server::start("app.toml", &[]);
    assert!(
        s.admin.is_none(),
        "an admin listener started without --admin"
    );
    // The app's own listener never serves metrics.
    let r = s.get("/metrics");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("nebula_requests_total"));
}

#[test]
fn pure_app_requests_cpu_instantiation_and_memory_are_counted() {
    // Every request runs its component: the home page is memoised otherwise.
    let mut s = Server::start("app.toml", &["--admin", "127.0.0.1:0", "--no-cache"]);
    assert_eq!(
        s.get("/metrics").status,
        404,
        "metrics leaked onto the app's listener"
    );
    for _ in 0..5 {
        assert_eq!(s.get("/").status, 200);
    }
    assert_eq!(s.get("/no/such/page").status, 404);
    let m1 = scrape(&s);
    let home = r#"{component="meme-list",route="/",status="200"}"#;
    assert_eq!(get(&m1, &format!("nebula_requests_total{home}")), 5.0);
    assert_eq!(
        get(
            &m1,
            r#"nebula_requests_total{component="-",route="(unmatched)",status="404"}"#
        ),
        2.0,
        "the two 404s (/metrics and /no/such/page) are counted under their status"
    );
    let cpu = r#"nebula_request_cpu_seconds_total{component="meme-list",route="/"}"#;
    let inst = r#"nebula_instantiate_seconds_total{component="meme-list"}"#;
    let insts = r#"nebula_instantiations_total{component="meme-list"}"#;
    let peak = r#"nebula_guest_memory_peak_bytes{component="meme-list"}"#;
    assert!(get(&m1, cpu) > 0.0);
    assert!(get(&m1, inst) > 0.0);
    assert_eq!(get(&m1, insts), 5.0);
    assert!(get(&m1, r#"nebula_call_seconds_total{component="meme-list"}"#) > 0.0);
    assert!(get(&m1, peak) >= 65536.0, "memory peak below one Wasm page");
    assert!(get(&m1, "nebula_connection_cpu_seconds_total") >= get(&m1, cpu));
    let accounted = get(&m1, "nebula_accounted_cpu_seconds_total");
    assert!(accounted >= get(&m1, "nebula_connection_cpu_seconds_total"));
    assert!(get(&m1, "process_cpu_seconds_total") > 0.0);
    assert!(get(&m1, "process_resident_memory_bytes") > 0.0);
    // Components that served nothing are listed, at zero.
    assert_eq!(
        get(&m1, r#"nebula_instantiations_total{component="vote"}"#),
        0.0
    );

    for _ in 0..3 {
        assert_eq!(s.get("/").status, 200);
    }
    let m2 = scrape(&s);
    assert_eq!(get(&m2, &format!("nebula_requests_total{home}")), 8.0);
    assert!(get(&m2, cpu) > get(&m1, cpu), "request CPU did not grow");
    assert!(
        get(&m2, inst) > get(&m1, inst),
        "instantiate time did not grow"
    );
    assert_eq!(get(&m2, insts), 8.0);
    assert!(get(&m2, "nebula_accounted_cpu_seconds_total") > accounted);

    let log = s.terminate();
    let line = log
        .lines()
        .find(|l| l.contains("component meme-list:"))
        .unwrap_or_else(|| panic!("no summary line for meme-list on SIGTERM:\n{log}"));
    assert!(line.contains("8 requests"), "{line}");
    assert!(
        line.contains("µs CPU/request") && line.contains("µs instantiate"),
        "{line}"
    );
    assert!(line.contains("guest memory peak"), "{line}");
}

#[test]
fn spin_app_reports_its_component_and_routes() {
    let s = Server::start_spin(
        "guests/spin-compat/sdk-v5/spin.toml",
        &ADMIN,
        &[("SPIN_VARIABLE_API_KEY", "s3cret-key")],
    );
    for _ in 0..3 {
        assert_eq!(s.get("/hello").status, 200, "{}", s.log());
    }
    assert_eq!(s.get("/status/418").status, 418);
    assert_eq!(s.get("/nothing-here").status, 404);
    let m = scrape(&s);
    assert_eq!(
        get(
            &m,
            r#"nebula_requests_total{component="sdk-v5",route="/hello",status="200"}"#
        ),
        3.0
    );
    assert_eq!(
        get(
            &m,
            r#"nebula_requests_total{component="sdk-v5",route="/status/:code",status="418"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"nebula_requests_total{component="-",route="(unmatched)",status="404"}"#
        ),
        1.0
    );
    assert!(
        get(
            &m,
            r#"nebula_request_cpu_seconds_total{component="sdk-v5",route="/hello"}"#
        ) > 0.0
    );
    // WASI 0.2: a fresh instance per request.
    assert_eq!(
        get(&m, r#"nebula_instantiations_total{component="sdk-v5"}"#),
        4.0
    );
    assert!(
        get(
            &m,
            r#"nebula_instantiate_seconds_total{component="sdk-v5"}"#
        ) > 0.0
    );
    assert!(get(&m, r#"nebula_guest_memory_peak_bytes{component="sdk-v5"}"#) >= 65536.0);
}
