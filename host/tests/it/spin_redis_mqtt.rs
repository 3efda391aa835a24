//! Spin's outbound Redis and MQTT from the real Spin SDK apps (spin-sdk 5.2 and 7) under
//! `nebula up`, against the Redis server on 127.0.0.1:6379 and the MQTT broker on
//! 127.0.0.1:1883: what the guests write and publish is read back with plain clients here.
//! Keys, channels and topics are unique to each run and removed at the end.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{nebula, repo, succeeded, Server};

const V5: &str = "guests/spin-compat/sdk-v5/spin.toml";
const V7: &str = "guests/spin-compat/sdk-v7/spin.toml";
const REDIS: &str = "redis://127.0.0.1:6379";
const MQTT: &str = "mqtt://127.0.0.1:1883";

fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("nebula-it-{what}-{}-{nanos}", std::process::id())
}

/// A plain connection that reads until it has seen `want` (at most 10 s).
fn read_until(s: &mut TcpStream, seen: &mut Vec<u8>, want: &[u8]) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !seen.windows(want.len()).any(|w| w == want) {
        assert!(
            Instant::now() < end,
            "not seen {:?} in {:?}",
            String::from_utf8_lossy(want),
            String::from_utf8_lossy(seen)
        );
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => panic!("closed: {:?}", String::from_utf8_lossy(seen)),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// One Redis command in the plain protocol; its raw reply, read until `want` appears.
fn redis(args: &[&str], want: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect("127.0.0.1:6379").unwrap();
    s.write_all(&resp(args)).unwrap();
    let mut seen = Vec::new();
    read_until(&mut s, &mut seen, want);
    seen
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
    }
    out
}

/// A Redis subscriber to `channel`, subscribed when this returns.
fn redis_subscriber(channel: &str) -> TcpStream {
    let mut s = TcpStream::connect("127.0.0.1:6379").unwrap();
    s.write_all(&resp(&["SUBSCRIBE", channel])).unwrap();
    let mut seen = Vec::new();
    read_until(&mut s, &mut seen, b":1\r\n");
    s
}

/// An MQTT 3.1.1 subscriber to `topic` (QoS 0), in the plain protocol: CONNECT, SUBSCRIBE,
/// subscribed (SUBACK read) when this returns.
fn mqtt_subscriber(topic: &str) -> TcpStream {
    fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        let mut len = body.len();
        loop {
            let mut byte = (len % 128) as u8;
            len /= 128;
            if len > 0 {
                byte |= 0x80;
            }
            out.push(byte);
            if len == 0 {
                break;
            }
        }
        out.extend_from_slice(body);
        out
    }
    fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }
    let mut s = TcpStream::connect("127.0.0.1:1883").unwrap();
    // CONNECT: protocol "MQTT" level 4, clean session, keep-alive 60 s, the client id.
    let mut connect = string("MQTT");
    connect.extend_from_slice(&[4, 0x02, 0, 60]);
    connect.extend(string(&unique("sub")));
    s.write_all(&packet(0x10, &connect)).unwrap();
    let mut seen = Vec::new();
    read_until(&mut s, &mut seen, &[0x20, 0x02, 0x00, 0x00]); // CONNACK, accepted
                                                              // SUBSCRIBE, packet id 1, the topic at QoS 0.
    let mut subscribe = vec![0, 1];
    subscribe.extend(string(topic));
    subscribe.push(0);
    s.write_all(&packet(0x82, &subscribe)).unwrap();
    read_until(&mut s, &mut seen, &[0x90, 0x03, 0x00, 0x01, 0x00]); // SUBACK, QoS 0 granted
    s
}

fn outbound(manifest: &str, sdk: &str) {
    let s = Server::start_spin(manifest, &[], &[("SPIN_VARIABLE_API_KEY", "s3cret")]);

    // Redis: the counter the guest increments is the server's.
    let key = unique(&format!("counter-{sdk}"));
    for want in ["1", "2", "3"] {
        let r = s.get(&format!("/redis/counter?address={REDIS}&key={key}"));
        assert_eq!((r.status, r.text()), (200, want.to_string()), "{}", s.log());
    }
    redis(&["GET", &key], b"$1\r\n3\r\n");

    // Redis publish, seen by a subscriber.
    let channel = unique(&format!("channel-{sdk}"));
    let mut sub = redis_subscriber(&channel);
    let body = format!("hello redis from {sdk}");
    let r = s.request(
        "POST",
        &format!("/redis/publish?address={REDIS}&channel={channel}"),
        body.as_bytes(),
    );
    assert_eq!((r.status, r.text()), (200, "published".to_string()));
    let mut seen = Vec::new();
    read_until(&mut sub, &mut seen, body.as_bytes());

    // MQTT publish (QoS 1), seen by a subscriber.
    let topic = unique(&format!("topic-{sdk}"));
    let mut sub = mqtt_subscriber(&topic);
    let body = format!("hello mqtt from {sdk}");
    let r = s.request(
        "POST",
        &format!("/mqtt/publish?address={MQTT}&topic={topic}"),
        body.as_bytes(),
    );
    assert_eq!(
        (r.status, r.text()),
        (200, "published".to_string()),
        "{}",
        s.log()
    );
    let mut seen = Vec::new();
    read_until(&mut sub, &mut seen, body.as_bytes());
    // A second request reuses the pooled connection and is delivered too.
    let r = s.request(
        "POST",
        &format!("/mqtt/publish?address={MQTT}&topic={topic}"),
        b"again",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    read_until(&mut sub, &mut seen, b"again");

    // Addresses the manifest does not allow: Spin's errors, as the SDK shows them.
    let r = s.get(&format!(
        "/redis/counter?address=redis://127.0.0.2:6379&key={key}"
    ));
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("InvalidAddress"), "{}", r.text());
    let r = s.request(
        "POST",
        &format!("/mqtt/publish?address=mqtt://127.0.0.2:1883&topic={topic}"),
        b"x",
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().contains("ConnectionFailed") && r.text().contains("not permitted"),
        "{}",
        r.text()
    );

    redis(&["DEL", &key], b":1\r\n");
}

#[test]
fn spin_sdk_v5_outbound_redis_and_mqtt() {
    outbound(V5, "v5");
}

#[test]
fn spin_sdk_v7_outbound_redis_and_mqtt() {
    outbound(V7, "v7");
}

#[test]
fn check_says_where_redis_and_mqtt_may_go() {
    crate::support::build_spin_guests();
    for (manifest, imports) in [
        (V5, ["fermyon:spin/redis@2.0.0", "fermyon:spin/mqtt@2.0.0"]),
        (V7, ["spin:redis/redis@3.0.0", "spin:mqtt/mqtt@3.0.0"]),
    ] {
        let said = succeeded(
            nebula()
                .env("SPIN_VARIABLE_API_KEY", "s3cret")
                .args(["check", "-f"])
                .arg(repo().join(manifest)),
        );
        // The app's own component (the private `internal` one is granted no hosts).
        let block = said
            .split("\ncomponent ")
            .find(|b| b.starts_with("sdk-v") || b.starts_with("component sdk-v"))
            .unwrap_or_else(|| panic!("no sdk-vN component:\n{said}"));
        let line = |import: &str| {
            block
                .lines()
                .find(|l| l.trim_start().starts_with(import))
                .unwrap_or_else(|| panic!("{import} not listed:\n{said}"))
                .to_string()
        };
        assert!(
            line(imports[0])
                .ends_with("outbound Redis to allowed_outbound_hosts only: redis://127.0.0.1:6379"),
            "{said}"
        );
        assert!(
            line(imports[1])
                .ends_with("outbound MQTT to allowed_outbound_hosts only: mqtt://127.0.0.1:1883"),
            "{said}"
        );
    }
}
