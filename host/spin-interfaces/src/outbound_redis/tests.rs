//! Against the Redis server on 127.0.0.1:6379: every key and channel is unique to the test
//! and removed at its end.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wasmtime::component::{HasSelf, Resource};
use wasmtime::{Engine, Store};

use super::*;
use crate::bindings::fermyon::spin::redis::HostConnection as _;
use crate::bindings::spin::redis::redis::HostConnectionWithStore as _;
use crate::{Blocking, MAX_OPEN_HANDLES};

const SERVER: &str = "redis://127.0.0.1:6379";

/// A name no other test (or run) uses.
fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("nebula-test-{what}-{}-{nanos}", std::process::id())
}

fn component(entries: &[&str], limits: CallLimits) -> Arc<RedisComponent> {
    let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
    Arc::new(RedisComponent::new(
        RedisGrants {
            allowed_hosts: Arc::new(AllowedHosts::parse(&entries).unwrap()),
            allowed_outbound_hosts: entries,
            limits,
        },
        REDIS_IDLE,
    ))
}

fn instance(component: &Arc<RedisComponent>) -> RedisInstance {
    OutboundRedis::prepare(component, &InstanceContext::new(Blocking::tokio()))
}

fn limits() -> CallLimits {
    CallLimits {
        statement_timeout: Duration::from_millis(500),
        ..Default::default()
    }
}

fn borrow(r: &Resource<RedisConnection>) -> Resource<RedisConnection> {
    Resource::new_borrow(r.rep())
}

async fn open(
    s: &mut RedisInstance,
    address: &str,
) -> Result<Resource<RedisConnection>, v2::Error> {
    v2::HostConnection::open(s, address.into()).await.unwrap()
}

#[tokio::test]
async fn get_set_incr_del_sets_and_execute() {
    let c = component(&[SERVER], limits());
    let mut s = instance(&c);
    let conn = open(&mut s, SERVER).await.unwrap();
    let b = || borrow(&conn);
    let (key, counter, set) = (unique("key"), unique("counter"), unique("set"));

    assert_eq!(s.get(b(), key.clone()).await.unwrap().unwrap(), None);
    s.set(b(), key.clone(), b"v\0alue".to_vec())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.get(b(), key.clone()).await.unwrap().unwrap(),
        Some(b"v\0alue".to_vec())
    );
    s.set(b(), key.clone(), Vec::new()).await.unwrap().unwrap();
    assert_eq!(
        s.get(b(), key.clone()).await.unwrap().unwrap(),
        Some(vec![])
    );

    assert_eq!(s.incr(b(), counter.clone()).await.unwrap().unwrap(), 1);
    assert_eq!(s.incr(b(), counter.clone()).await.unwrap().unwrap(), 2);
    // Not a number: Spin answers `other` with the server's message.
    match s.incr(b(), key.clone()).await.unwrap() {
        Err(v2::Error::Other(m)) => assert!(m.contains("not an integer"), "{m}"),
        other => panic!("incr of a non-number: {other:?}"),
    }

    let members = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        s.sadd(b(), set.clone(), members(&["a", "b", "c", "a"]))
            .await
            .unwrap()
            .unwrap(),
        3
    );
    assert_eq!(
        s.srem(b(), set.clone(), members(&["b", "x"]))
            .await
            .unwrap()
            .unwrap(),
        1
    );
    let mut got = s.smembers(b(), set.clone()).await.unwrap().unwrap();
    got.sort();
    assert_eq!(got, members(&["a", "c"]));

    // `execute`: parameters of both kinds; replies flattened as Spin does.
    use v2::{RedisParameter as P, RedisResult as R};
    let exec = |cmd: &str, args: Vec<P>| (cmd.to_string(), args);
    let (cmd, args) = exec(
        "INCRBY",
        vec![P::Binary(counter.clone().into_bytes()), P::Int64(40)],
    );
    assert!(matches!(
        s.execute(b(), cmd, args).await.unwrap().unwrap().as_slice(),
        [R::Int64(42)]
    ));
    let (cmd, args) = exec(
        "SET",
        vec![
            P::Binary(key.clone().into_bytes()),
            P::Binary(b"x".to_vec()),
        ],
    );
    assert!(matches!(
        s.execute(b(), cmd, args).await.unwrap().unwrap().as_slice(),
        [R::Status(ok)] if ok == "OK"
    ));
    let (cmd, args) = exec(
        "MGET",
        vec![
            P::Binary(key.clone().into_bytes()),
            P::Binary(unique("missing").into_bytes()),
        ],
    );
    assert!(matches!(
        s.execute(b(), cmd, args).await.unwrap().unwrap().as_slice(),
        [R::Binary(x), R::Nil] if x == b"x"
    ));
    assert!(matches!(
        s.execute(b(), "NOSUCHCOMMAND".into(), vec![])
            .await
            .unwrap(),
        Err(v2::Error::Other(_))
    ));

    assert_eq!(
        s.del(
            b(),
            vec![key.clone(), counter.clone(), set.clone(), unique("none")]
        )
        .await
        .unwrap()
        .unwrap(),
        3
    );
    assert_eq!(s.get(b(), key).await.unwrap().unwrap(), None);
    assert_eq!(s.open_handles(), 1);
    v2::HostConnection::drop(&mut s, conn).await.unwrap();
    assert_eq!(s.open_handles(), 0);
}

/// Subscribes with the plain protocol and waits until the server confirmed.
async fn subscribe(channel: &str) -> TcpStream {
    let mut sub = TcpStream::connect("127.0.0.1:6379").await.unwrap();
    let cmd = format!(
        "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
        channel.len()
    );
    sub.write_all(cmd.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    read_until(&mut sub, &mut seen, channel.as_bytes()).await;
    sub
}

/// Reads until `want` appears (at most 5 s).
async fn read_until(s: &mut TcpStream, seen: &mut Vec<u8>, want: &[u8]) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !seen.windows(want.len()).any(|w| w == want) {
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "the server closed: {}",
                String::from_utf8_lossy(seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not seen {:?}: {}",
            String::from_utf8_lossy(want),
            String::from_utf8_lossy(seen)
        )
    });
}

#[tokio::test]
async fn publish_reaches_a_subscriber() {
    let channel = unique("channel");
    let mut sub = subscribe(&channel).await;
    let c = component(&["redis://127.0.0.1:*"], limits());
    let mut s = instance(&c);
    let conn = open(&mut s, SERVER).await.unwrap();
    s.publish(borrow(&conn), channel.clone(), b"hello subscriber".to_vec())
        .await
        .unwrap()
        .unwrap();
    let mut seen = Vec::new();
    read_until(&mut sub, &mut seen, b"hello subscriber").await;
}

/// Refused addresses answer `invalid-address`, as in Spin, and nothing connects.
#[tokio::test]
async fn refused_addresses_make_no_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cases = [
        // Not in the allowed hosts: another port, another scheme, another host.
        (
            vec![SERVER.to_string()],
            format!("redis://127.0.0.1:{port}"),
        ),
        (
            vec![format!("rediss://127.0.0.1:{port}")],
            format!("redis://127.0.0.1:{port}"),
        ),
        (
            vec![format!("redis://127.0.0.2:{port}")],
            format!("redis://127.0.0.1:{port}"),
        ),
        // Allowed as text by a wildcard, but the name is the host's loopback: it needs an IP
        // entry (or `localhost` written out).
        (
            vec![format!("redis://*:{port}")],
            format!("redis://localhost:{port}"),
        ),
        (
            vec!["*://*:*".to_string()],
            format!("redis://localhost:{port}"),
        ),
        // Not a Redis address at all.
        (
            vec!["*://*:*".to_string()],
            "redis+unix:///tmp/redis.sock".to_string(),
        ),
        (vec!["*://*:*".to_string()], "not a url".to_string()),
    ];
    for (entries, address) in cases {
        let entries: Vec<&str> = entries.iter().map(String::as_str).collect();
        let c = component(&entries, limits());
        let mut s = instance(&c);
        assert!(
            matches!(open(&mut s, &address).await, Err(v2::Error::InvalidAddress)),
            "{entries:?} {address}"
        );
        assert_eq!(s.open_handles(), 0);
    }
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "a refused address was connected to");

    // `localhost` written out is the loopback, as in Spin: this one connects.
    let c = component(&[&format!("redis://localhost:{port}")], limits());
    let mut s = instance(&c);
    let opening = tokio::spawn(async move {
        open(&mut s, &format!("redis://localhost:{port}"))
            .await
            .map(drop)
    });
    let (stream, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("localhost written out connects")
        .unwrap();
    drop(stream);
    let _ = opening.await;
}

/// A reply larger than the component may receive is `other`, for every call that returns
/// data; `GET` reads no more than the cap from the server.
#[tokio::test]
async fn results_are_capped_by_the_components_memory() {
    let c = component(
        &[SERVER],
        CallLimits {
            max_result_bytes: 1024,
            ..limits()
        },
    );
    let mut s = instance(&c);
    let conn = open(&mut s, SERVER).await.unwrap();
    let b = || borrow(&conn);
    let (key, set) = (unique("big"), unique("bigset"));
    s.set(b(), key.clone(), vec![7u8; 4096])
        .await
        .unwrap()
        .unwrap();
    let too_large = |r: Result<_, v2::Error>| match r {
        Err(v2::Error::Other(m)) => assert!(m.contains("larger than this component"), "{m}"),
        Ok(_) => panic!("a result over the cap was returned"),
        Err(e) => panic!("{e:?}"),
    };
    too_large(s.get(b(), key.clone()).await.unwrap().map(drop));
    too_large(
        s.execute(
            b(),
            "GET".into(),
            vec![v2::RedisParameter::Binary(key.clone().into_bytes())],
        )
        .await
        .unwrap()
        .map(drop),
    );
    let members: Vec<String> = (0..100).map(|i| format!("member-{i:04}")).collect();
    s.sadd(b(), set.clone(), members).await.unwrap().unwrap();
    too_large(s.smembers(b(), set.clone()).await.unwrap().map(drop));
    // Under the cap, the same calls answer.
    s.set(b(), key.clone(), vec![7u8; 1000])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.get(b(), key.clone())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .len(),
        1000
    );
    s.del(b(), vec![key, set]).await.unwrap().unwrap();
}

/// Instances of one component share a pooled connection; a handle that starts a
/// transaction gets its own, so its queued commands never capture another request's.
#[tokio::test]
async fn pooled_connections_stay_stateless() {
    let c = component(&[SERVER], limits());
    let (mut a, mut b) = (instance(&c), instance(&c));
    let ca = open(&mut a, SERVER).await.unwrap();
    let cb = open(&mut b, SERVER).await.unwrap();
    assert_eq!(c.pool.len(), 1);
    let key = unique("tx");
    use v2::{RedisParameter as P, RedisResult as R};
    a.execute(borrow(&ca), "MULTI".into(), vec![])
        .await
        .unwrap()
        .unwrap();
    let queued = a
        .execute(
            borrow(&ca),
            "SET".into(),
            vec![P::Binary(key.clone().into_bytes()), P::Int64(1)],
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(queued.as_slice(), [R::Status(q)] if q == "QUEUED"),
        "{queued:?}"
    );
    // The other request's commands run at once, outside the transaction.
    assert_eq!(
        b.get(borrow(&cb), key.clone()).await.unwrap().unwrap(),
        None
    );
    let done = a
        .execute(borrow(&ca), "EXEC".into(), vec![])
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(done.as_slice(), [R::Status(ok)] if ok == "OK"),
        "{done:?}"
    );
    assert_eq!(
        b.get(borrow(&cb), key.clone()).await.unwrap().unwrap(),
        Some(b"1".to_vec())
    );
    b.del(borrow(&cb), vec![key]).await.unwrap().unwrap();
    // The pooled connection was not the transaction's.
    assert_eq!(c.pool.len(), 1);
}

/// A call is bounded by the component's deadline; the connection it blocked leaves the
/// pool with it.
#[tokio::test]
async fn calls_stop_at_the_components_deadline() {
    let c = component(
        &[SERVER],
        CallLimits {
            statement_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let mut s = instance(&c);
    let conn = open(&mut s, SERVER).await.unwrap();
    let started = std::time::Instant::now();
    let r = s
        .execute(
            borrow(&conn),
            "BLPOP".into(),
            vec![
                v2::RedisParameter::Binary(unique("empty").into_bytes()),
                v2::RedisParameter::Int64(5),
            ],
        )
        .await
        .unwrap();
    match r {
        Err(v2::Error::Other(m)) => assert!(m.contains("deadline"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn handles_count_in_the_instances_bound() {
    let c = component(&[SERVER], limits());
    let mut s = instance(&c);
    let mut open_ones = Vec::new();
    for _ in 0..MAX_OPEN_HANDLES {
        open_ones.push(open(&mut s, SERVER).await.unwrap());
    }
    assert!(matches!(
        open(&mut s, SERVER).await,
        Err(v2::Error::TooManyConnections)
    ));
    v2::HostConnection::drop(&mut s, open_ones.pop().unwrap())
        .await
        .unwrap();
    assert!(open(&mut s, SERVER).await.is_ok());
}

struct Host {
    redis: RedisInstance,
}

fn redis_of(h: &mut Host) -> &mut RedisInstance {
    &mut h.redis
}

/// The 3.0 functions, called as wasmtime calls them.
#[tokio::test]
async fn v3_async_functions() {
    let c = component(&[SERVER], limits());
    let mut store = Store::new(
        &Engine::default(),
        Host {
            redis: instance(&c),
        },
    );
    let key = unique("v3");
    store
        .run_concurrent(async |acc| {
            type D = HasSelf<RedisInstance>;
            let acc = &acc.with_getter::<D>(redis_of);
            assert!(matches!(
                D::open(acc, "redis://127.0.0.1:6380".into()).await.unwrap(),
                Err(v3::Error::InvalidAddress)
            ));
            let conn = D::open(acc, SERVER.into()).await.unwrap().unwrap();
            let b = || Resource::<RedisConnection>::new_borrow(conn.rep());
            assert_eq!(D::incr(acc, b(), key.clone()).await.unwrap().unwrap(), 1);
            D::set(acc, b(), key.clone(), b"9".to_vec())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                D::get(acc, b(), key.clone()).await.unwrap().unwrap(),
                Some(b"9".to_vec())
            );
            let r = D::execute(
                acc,
                b(),
                "EXISTS".into(),
                vec![v3::RedisParameter::Binary(key.clone().into_bytes())],
            )
            .await
            .unwrap()
            .unwrap();
            assert!(matches!(r.as_slice(), [v3::RedisResult::Int64(1)]));
            assert_eq!(
                D::del(acc, b(), vec![key.clone()]).await.unwrap().unwrap(),
                1
            );
            acc.with(|mut a| v3::HostConnection::drop(a.get(), conn))
                .unwrap();
            assert_eq!(acc.with(|mut a| a.get().open_handles()), 0);
        })
        .await
        .unwrap();
}

/// `nebula check` shows the entries that can allow a Redis address, as written.
#[test]
fn serves_says_where_connections_may_go() {
    let grants = crate::ComponentGrants {
        allowed_outbound_hosts: [
            "http://127.0.0.1:*",
            "redis://127.0.0.1:6379",
            "rediss://{{ host }}:6380",
            "*://10.0.0.0/8:*",
            "mqtt://127.0.0.1:1883",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Default::default()
    };
    for import in ["fermyon:spin/redis@2.0.0", "spin:redis/redis@3.0.0"] {
        assert_eq!(
            grants.serves(import).as_deref(),
            Some(
                "outbound Redis to allowed_outbound_hosts only: redis://127.0.0.1:6379, \
                 rediss://{{ host }}:6380, *://10.0.0.0/8:*"
            )
        );
    }
    for import in ["fermyon:spin/mqtt@2.0.0", "spin:mqtt/mqtt@3.0.0"] {
        assert_eq!(
            grants.serves(import).as_deref(),
            Some("outbound MQTT to allowed_outbound_hosts only: *://10.0.0.0/8:*, mqtt://127.0.0.1:1883")
        );
    }
    assert_eq!(
        crate::ComponentGrants::default()
            .serves("spin:redis/redis@3.0.0")
            .as_deref(),
        Some("outbound Redis to allowed_outbound_hosts only: none granted")
    );
}
