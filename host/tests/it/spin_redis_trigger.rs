//! Spin's Redis trigger: handlers built with spin-sdk 5.2
//! (`fermyon:spin/inbound-redis`) and spin-sdk 7 (`spin:redis/inbound-redis@3`,
//! async) get the messages published on their channels, each with its own
//! request id, a failure counted as one; and the subscription comes back when
//! the Redis server restarts. The test runs its own redis-server on a free
//! port so that it can kill and restart it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{build_spin_guests, repo, Server};

/// A redis-server of the test's own (platform_redis.rs uses it too).
pub struct Redis {
    pub port: u16,
    child: Child,
}

impl Redis {
    pub fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) must be installed");
        let r = Redis { port, child };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.client().get_connection().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap()
    }

    /// Publishes and says how many subscribers got it.
    pub fn publish(&self, channel: &str, message: &str) -> i64 {
        let mut c = self.client().get_connection().unwrap();
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .query(&mut c)
            .unwrap()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 15 s) until `s`'s log holds `needle` `times` times.
fn wait_for_log(s: &Server, needle: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if s.log().matches(needle).count() >= times {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{needle:?} not seen {times} time(s) in the log:\n{}",
        s.log()
    );
}

/// The app of guests/spin-compat/redis in `dir/name/spin.toml`, on Redis at
/// `address` (the application's default, and the v7 trigger's own) and the
/// channels `CHANNEL-v5` and `CHANNEL-v7` (platform_redis.rs uses it too).
pub fn redis_app(dir: &Path, name: &str, address: &str, channel: &str) -> PathBuf {
    let target = repo().join("guests/spin-compat/target/wasm32-wasip2/release");
    let text = format!(
        r#"spin_manifest_version = 2
[application]
name = "{name}"
[application.trigger.redis]
address = "{address}"
[[trigger.redis]]
channel = "{channel}-v5"
component = "redis-v5"
[[trigger.redis]]
address = "{address}"
channel = "{channel}-v7"
component = "redis-v7"
[component.redis-v5]
source = "{v5}"
[component.redis-v7]
source = "{v7}"
"#,
        v5 = target.join("redis_v5.wasm").display(),
        v7 = target.join("redis_v7.wasm").display(),
    );
    let app = dir.join(name);
    std::fs::create_dir_all(&app).unwrap();
    let file = app.join("spin.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn redis_messages_reach_both_sdks_handlers_and_the_subscription_survives_a_restart() {
    build_spin_guests();
    let port = free_port();
    let mut redis = Redis::start(port);
    let dir = tempfile::tempdir().unwrap();
    let channel = format!("nebula-test-{}", std::process::id());
    let address = format!("redis://127.0.0.1:{port}");
    let app = redis_app(dir.path(), "redis-trigger-test", &address, &channel);
    let s = Server::start_spin(&app.to_string_lossy(), &[], &[]);
    wait_for_log(&s, "Redis trigger subscribed", 2);

    assert_eq!(redis.publish(&format!("{channel}-v5"), "hello five"), 1);
    assert_eq!(redis.publish(&format!("{channel}-v7"), "hello seven"), 1);
    wait_for_log(&s, "redis-v5 got: hello five", 1);
    wait_for_log(&s, "redis-v7 got: hello seven", 1);
    // The guest's line carries the id of the message it handled.
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("redis-v5 got: hello five"))
        .unwrap();
    assert!(line.contains("request="), "{line}");

    // A handler's error is the message's failure, logged and counted.
    redis.publish(&format!("{channel}-v5"), "fail");
    redis.publish(&format!("{channel}-v7"), "fail");
    wait_for_log(&s, "Redis message failed", 2);
    wait_for_log(&s, "Redis message handled", 2);

    // Redis restarts: the trigger subscribes again and gets new messages.
    redis.stop();
    let mut redis = Redis::start(port);
    wait_for_log(&s, "Redis trigger subscribed", 4);
    assert_eq!(redis.publish(&format!("{channel}-v7"), "after restart"), 1);
    wait_for_log(&s, "redis-v7 got: after restart", 1);
    redis.stop();
}
