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
