//! Spin's `[[trigger.redis]]` on `nebula platform`: apps deployed over the
//! API get the messages of their channels (loaded on the message, unloaded
//! when idle), two apps on one Redis share one subscription, only addresses
//! the operator allows are accepted, a deleted app stops listening, and with
//! several nodes on one PostgreSQL store one node subscribes, so each
//! message runs once; when that node dies another takes over.

use std::time::{Duration, Instant};

use crate::platform::Platform;
use crate::spin_redis_trigger::{free_port, redis_app, Redis};
use crate::support::{build_spin_guests, PgDatabase};

/// Waits (at most 15 s) until the nodes' logs together hold `needle`
/// `times` times.
fn wait_for_logs(nodes: &[&Platform], needle: &str, times: usize) {
    let count = || -> usize { nodes.iter().map(|n| n.log().matches(needle).count()).sum() };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if count() >= times {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs: Vec<String> = nodes.iter().map(|n| n.log()).collect();
    panic!(
        "{needle:?} seen {} time(s), not {times}:\n{}",
        count(),
        logs.join("\n----\n")
    );
}

/// How many clients Redis has subscribed to `channel`.
fn subscribers(redis: &Redis, channel: &str) -> i64 {
    let mut c = redis.client().get_connection().unwrap();
    let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(&mut c)
        .unwrap();
    counts[0].1
}

fn wait_subscribers(redis: &Redis, channel: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while subscribers(redis, channel) != want {
        assert!(
            Instant::now() < deadline,
            "{channel} has {} subscriber(s), not {want}",
            subscribers(redis, channel)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn apps_on_the_platform_get_their_channels_messages_through_one_subscription() {
    build_spin_guests();
    let redis = Redis::start(free_port());
    let address = format!("redis://127.0.0.1:{}", redis.port);
    let work = tempfile::tempdir().unwrap();
    let p = Platform::start(
        tempfile::tempdir().unwrap(),
        &["--allow-redis", &address, "--unload-after", "1"],
    );
    let alice = p.tenant("alice");
    let bob = p.tenant("bob");
    let ch = format!("nebula-platform-{}", std::process::id());

    // A trigger on an address the operator did not allow: refused, and
    // nothing subscribed or deployed.
    let elsewhere = redis_app(work.path(), "elsewhere", "redis://127.0.0.2:6390", &ch);
    let (ok, said) = p.deploy(&elsewhere, &alice, "elsewhere.test");
    assert!(!ok, "{said}");
    assert!(
        said.contains("422") && said.contains("redis://127.0.0.2:6390") && said.contains(&address),
        "{said}"
    );
    assert_eq!(
        p.admin("GET", "/apps/elsewhere.test", &alice, b"").status,
        404
    );

    // Two tenants' apps on one channel, one on a channel of its own.
    let (ok, said) = p.deploy(
        &redis_app(work.path(), "a", &address, &ch),
        &alice,
        "a.test",
    );
    assert!(ok, "{said}");
    let (ok, said) = p.deploy(&redis_app(work.path(), "b", &address, &ch), &bob, "b.test");
    assert!(ok, "{said}");
    let only_c = format!("{ch}-c");
    let (ok, said) = p.deploy(
        &redis_app(work.path(), "c", &address, &only_c),
        &bob,
        "c.test",
    );
    assert!(ok, "{said}");
    wait_subscribers(&redis, &format!("{ch}-v5"), 1);
    wait_subscribers(&redis, &format!("{only_c}-v7"), 1);
    // Not loaded until a message comes.
    let status = p.admin("GET", "/apps/a.test", &alice, b"").json();
    assert_eq!(status["loads"], 0, "{status}");

    // One connection for every app: Redis counts one subscriber, and
    // both apps handle the message, each in its own instance.
    assert_eq!(redis.publish(&format!("{ch}-v5"), "hello five"), 1);
    wait_for_logs(&[&p], "redis-v5 got: hello five", 2);
    let log = p.log();
    for host in ["a.test", "b.test"] {
        assert!(
            log.lines()
                .any(|l| l.contains("redis-v5 got: hello five") && l.contains(host)),
            "{host} did not handle it:\n{log}"
        );
    }
    assert!(!log
        .lines()
        .any(|l| l.contains("hello five") && l.contains("c.test")));
    let status = p.admin("GET", "/apps/a.test", &alice, b"").json();
    assert_eq!(status["loads"], 1, "{status}");

    // Idle past its unload time, the app goes, and the next message loads it again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while p.admin("GET", "/apps/a.test", &alice, b"").json()["loaded"] != false {
        assert!(Instant::now() < deadline, "a.test never unloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(redis.publish(&format!("{ch}-v7"), "after unload"), 1);
    wait_for_logs(&[&p], "redis-v7 got: after unload", 2);
    let status = p.admin("GET", "/apps/a.test", &alice, b"").json();
    assert_eq!(status["loads"], 2, "{status}");

    // A handler's failure is counted and logged, not fatal.
    redis.publish(&format!("{only_c}-v5"), "fail");
    wait_for_logs(&[&p], "Redis message failed", 1);

    // Deleted: its channel is left; the others still listen.
    let r = p.admin("DELETE", "/apps/c.test", &bob, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_subscribers(&redis, &format!("{only_c}-v7"), 0);
    assert_eq!(subscribers(&redis, &format!("{ch}-v7")), 1);
    // So is the last app's on a channel, when it is deleted too.
    for (host, token) in [("a.test", &alice), ("b.test", &bob)] {
        assert_eq!(
            p.admin("DELETE", &format!("/apps/{host}"), token, b"")
                .status,
            200
        );
    }
    wait_subscribers(&redis, &format!("{ch}-v7"), 0);
}

#[test]
fn with_several_nodes_one_subscribes_and_another_takes_over_when_it_dies() {
    build_spin_guests();
    let redis = Redis::start(free_port());
    let address = format!("redis://127.0.0.1:{}", redis.port);
    let pg = PgDatabase::create();
    let url = pg.url();
    let args = ["--allow-redis", address.as_str()];
    let n1 = Platform::start_on(tempfile::tempdir().unwrap(), Some(&url), &args);
    let n2 = Platform::start_on(tempfile::tempdir().unwrap(), Some(&url), &args);
    let t = n1.tenant("t");
    let ch = format!("nebula-nodes-{}", std::process::id());
    let work = tempfile::tempdir().unwrap();
    let (ok, said) = n1.deploy(&redis_app(work.path(), "a", &address, &ch), &t, "a.test");
    assert!(ok, "{said}");
    let v7 = format!("{ch}-v7");
    wait_subscribers(&redis, &v7, 1);
    // Both nodes have the app; only one subscribed.
    for n in [&n1, &n2] {
        let deadline = Instant::now() + Duration::from_secs(15);
        while n.admin("GET", "/apps/a.test", &t, b"").status != 200 {
            assert!(Instant::now() < deadline, "{}", n.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(subscribers(&redis, &v7), 1);

    // Each message runs once, on the platform as a whole.
    for i in 0..5 {
        assert_eq!(redis.publish(&v7, &format!("once {i}")), 1);
    }
    wait_for_logs(&[&n1, &n2], "redis-v7 got: once 4", 1);
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..5 {
        let needle = format!("redis-v7 got: once {i}");
        let seen = n1.log().matches(&needle).count() + n2.log().matches(&needle).count();
        assert_eq!(seen, 1, "{needle:?} ran {seen} times");
    }

    // The subscribing node dies: the other takes the lock and subscribes.
    let (leader, survivor) = if n1.log().contains("Redis trigger subscribed") {
        (n1, n2)
    } else {
        (n2, n1)
    };
    assert!(!survivor.log().contains("Redis trigger subscribed"));
    drop(leader);
    wait_for_logs(&[&survivor], "Redis trigger subscribed", 2);
    wait_subscribers(&redis, &v7, 1);
    assert_eq!(redis.publish(&v7, "after failover"), 1);
    wait_for_logs(&[&survivor], "redis-v7 got: after failover", 1);
}

/// `nebula_requests` of one route and status in an app's metrics text.
fn requests(metrics: &str, route: &str, status: u16) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("nebula_requests"))
        .filter(|l| l.contains(&format!("route=\"{route}\"")))
        .filter(|l| l.contains(&format!("status=\"{status}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Alice's app `a.test` on channel `NAME-a` and Bob's `b.test` on `NAME-b`
/// (each with a `-v5` and a `-v7` trigger), on a platform started with
/// `extra` beside `--allow-redis` for a Redis of the test's own.
struct TwoTenants {
    redis: Redis,
    p: Platform,
    alice: String,
    bob: String,
    a_ch: String,
    b_ch: String,
    _work: tempfile::TempDir,
}

fn two_tenants(name: &str, extra: &[&str]) -> TwoTenants {
    build_spin_guests();
    let redis = Redis::start(free_port());
    let address = format!("redis://127.0.0.1:{}", redis.port);
    let work = tempfile::tempdir().unwrap();
    let mut args = vec!["--allow-redis", &address];
    args.extend_from_slice(extra);
    let p = Platform::start(tempfile::tempdir().unwrap(), &args);
    let (alice, bob) = (p.tenant("alice"), p.tenant("bob"));
    let ch = format!("nebula-{name}-{}", std::process::id());
    let (a_ch, b_ch) = (format!("{ch}-a"), format!("{ch}-b"));
    for (app, channel, token) in [("a", &a_ch, &alice), ("b", &b_ch, &bob)] {
        let manifest = redis_app(work.path(), app, &address, channel);
        let (ok, said) = p.deploy(&manifest, token, &format!("{app}.test"));
        assert!(ok, "{said}");
    }
    wait_subscribers(&redis, &format!("{a_ch}-v7"), 1);
    wait_subscribers(&redis, &format!("{b_ch}-v7"), 1);
    TwoTenants {
        redis,
        p,
        alice,
        bob,
        a_ch,
        b_ch,
        _work: work,
    }
}

#[test]
fn one_tenants_message_flood_is_shed_on_its_own_trigger_and_others_are_not_held_up() {
    // Two instances per app, so an app may have 4 messages in flight; a
    // handler may compute for 4 s.
    let TwoTenants {
        redis,
        p,
        alice,
        bob,
        a_ch,
        b_ch,
        ..
    } = two_tenants(
        "flood",
        &["--max-instances-per-app", "2", "--timeout-ms", "4000"],
    );
    // Both loaded, so that their counters exist.
    redis.publish(&format!("{a_ch}-v7"), "warm a");
    redis.publish(&format!("{b_ch}-v7"), "warm b");
    wait_for_logs(&[&p], "redis-v7 got: warm", 2);

    // Alice floods her channel with handlers that hold their instance until
    // the deadline: more than the whole subscription once handled at a time.
    for _ in 0..100 {
        redis.publish(&format!("{a_ch}-v7"), "spin");
    }
    redis.publish(&format!("{b_ch}-v7"), "bob's message");
    wait_for_logs(&[&p], "redis-v7 got: bob's message", 1);
    // Bob's message was handled while Alice's handlers still ran: none of
    // them has reached its deadline yet.
    let log = p.log();
    assert!(
        !log.contains("Redis message failed"),
        "bob's message waited for alice's flood:\n{log}"
    );
    // Alice's messages beyond her 4 places were shed at once, as 503s on
    // her trigger's route, and said so in the log.
    let a_route = format!("redis:{a_ch}-v7");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let m = p.admin("GET", "/apps/a.test/metrics", &alice, b"").text();
        let shed = requests(&m, &a_route, 503);
        if shed == 96 {
            break;
        }
        assert!(Instant::now() < deadline && shed < 96, "{shed} shed:\n{m}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(log.contains("Redis message dropped: the app has as many messages in flight as it may"));
    // Her 4 in flight end at their deadline, counted as failures.
    wait_for_logs(&[&p], "Redis message failed", 4);
    let a_metrics = p.admin("GET", "/apps/a.test/metrics", &alice, b"").text();
    assert_eq!(requests(&a_metrics, &a_route, 500), 4, "{a_metrics}");
    let b_metrics = p.admin("GET", "/apps/b.test/metrics", &bob, b"").text();
    assert_eq!(
        requests(&b_metrics, &format!("redis:{b_ch}-v7"), 503),
        0,
        "{b_metrics}"
    );
    assert_eq!(
        requests(&b_metrics, &format!("redis:{b_ch}-v7"), 200),
        2,
        "{b_metrics}"
    );
}

#[test]
fn messages_over_an_apps_request_rate_are_refused_as_429() {
    let TwoTenants {
        redis,
        p,
        alice,
        b_ch,
        a_ch,
        ..
    } = two_tenants("rate", &["--max-rate-per-app", "5/min"]);

    // Alice's app may take 5 a minute, HTTP and messages together. One
    // loads it (refusals are counted on its counters, made at its first
    // load); then of 20 sent at once, 4 run and 16 are refused.
    redis.publish(&format!("{a_ch}-v7"), "a-first");
    wait_for_logs(&[&p], "redis-v7 got: a-first", 1);
    for i in 0..20 {
        redis.publish(&format!("{a_ch}-v7"), &format!("a{i}"));
    }
    wait_for_logs(
        &[&p],
        "Redis message dropped: the app gets more requests",
        1,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let route = format!("redis:{a_ch}-v7");
    loop {
        let m = p.admin("GET", "/apps/a.test/metrics", &alice, b"").text();
        let (ran, refused) = (requests(&m, &route, 200), requests(&m, &route, 429));
        if ran + refused == 21 {
            assert_eq!((ran, refused), (5, 16), "{m}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{ran} ran, {refused} refused:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(p.log().matches("redis-v7 got: a").count(), 5);
    // Bob's app has its own bucket.
    redis.publish(&format!("{b_ch}-v7"), "bob");
    wait_for_logs(&[&p], "redis-v7 got: bob", 1);
}
