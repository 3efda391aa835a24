//! Against the MQTT broker on 127.0.0.1:1883, with a rumqttc subscriber; every topic and
//! client id is unique to the test.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wasmtime::component::{HasSelf, Resource};
use wasmtime::{Engine, Store};

use super::*;
use crate::bindings::spin::mqtt::mqtt::HostConnectionWithStore as _;
use crate::Blocking;

fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("nebula-test-{what}-{}-{nanos}", std::process::id())
}

fn address(host: &str, port: u16) -> String {
    format!("mqtt://{host}:{port}?client_id={}", unique("pub"))
}

fn component(entries: &[&str]) -> Arc<MqttComponent> {
    let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
    Arc::new(MqttComponent::new(
        MqttGrants {
            allowed_hosts: Arc::new(AllowedHosts::parse(&entries).unwrap()),
            allowed_outbound_hosts: entries,
            limits: CallLimits {
                statement_timeout: Duration::from_secs(5),
                ..Default::default()
            },
        },
        MQTT_IDLE,
    ))
}

fn instance(component: &Arc<MqttComponent>) -> MqttInstance {
    OutboundMqtt::prepare(component, &InstanceContext::new(Blocking::tokio()))
}

async fn open(s: &mut MqttInstance, address: &str) -> Result<Resource<MqttConnection>, v2::Error> {
    v2::HostConnection::open(s, address.into(), String::new(), String::new(), 30)
        .await
        .unwrap()
}

/// A subscriber to `topic`, ready when this returns; its messages' payloads come on the
/// channel.
async fn subscriber(topic: &str) -> (AsyncClient, mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut opts = MqttOptions::new(unique("sub"), "127.0.0.1", 1883);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 10);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(r) = ready_tx.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if tx.send(p.payload.to_vec()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), ready)
        .await
        .expect("the broker acknowledged the subscription")
        .unwrap();
    (client, rx)
}

async fn received(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the subscriber received the message")
        .unwrap()
}

#[tokio::test]
async fn publish_at_qos_0_and_1_reaches_a_subscriber() {
    let topic = unique("topic");
    let (sub, mut rx) = subscriber(&topic).await;
    let c = component(&["mqtt://127.0.0.1:1883"]);
    let mut s = instance(&c);
    let conn = open(&mut s, &address("127.0.0.1", 1883)).await.unwrap();
    for (qos, body) in [
        (v2::Qos::AtLeastOnce, "at least once"),
        (v2::Qos::AtMostOnce, "at most once"),
    ] {
        v2::HostConnection::publish(
            &mut s,
            Resource::new_borrow(conn.rep()),
            topic.clone(),
            body.as_bytes().to_vec(),
            qos,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(received(&mut rx).await, body.as_bytes());
    }
    // A second instance of the component reuses the connection.
    let mut s2 = instance(&c);
    let again = v2::HostConnection::open(
        &mut s2,
        s.table.get(&conn).unwrap().key.address.clone(),
        String::new(),
        String::new(),
        30,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(Arc::ptr_eq(
        &s.table.get(&conn).unwrap().client,
        &s2.table.get(&again).unwrap().client
    ));
    assert_eq!(c.pool.len(), 1);
    assert_eq!(s.open_handles(), 1);
    v2::HostConnection::drop(&mut s, conn).await.unwrap();
    assert_eq!(s.open_handles(), 0);
    sub.disconnect().await.unwrap();
}

/// Refused addresses answer as Spin does and nothing connects.
#[tokio::test]
async fn refused_hosts_make_no_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let not_permitted = |r: Result<Resource<MqttConnection>, v2::Error>, what: &str| match r {
        Err(v2::Error::ConnectionFailed(m)) => {
            assert!(m.contains("is not permitted"), "{what}: {m}")
        }
        Err(e) => panic!("{what}: {e:?}"),
        Ok(_) => panic!("{what}: opened"),
    };
    for (entries, addr) in [
        (
            vec!["mqtt://127.0.0.1:1883".to_string()],
            address("127.0.0.1", port),
        ),
        (
            vec![format!("mqtt://127.0.0.2:{port}")],
            address("127.0.0.1", port),
        ),
        (
            vec![format!("redis://127.0.0.1:{port}")],
            address("127.0.0.1", port),
        ),
        // The name is allowed by a wildcard, the loopback it resolves to is not.
        (vec![format!("mqtt://*:{port}")], address("localhost", port)),
        (vec!["*://*:*".to_string()], address("localhost", port)),
    ] {
        let entries: Vec<&str> = entries.iter().map(String::as_str).collect();
        let c = component(&entries);
        let mut s = instance(&c);
        not_permitted(open(&mut s, &addr).await, &format!("{entries:?} {addr}"));
        assert_eq!(s.open_handles(), 0);
    }
    // Allowed, but rumqttc needs a client id: `invalid-address`, as in Spin.
    let c = component(&[&format!("mqtt://127.0.0.1:{port}")]);
    let mut s = instance(&c);
    assert!(matches!(
        open(&mut s, &format!("mqtt://127.0.0.1:{port}")).await,
        Err(v2::Error::InvalidAddress)
    ));
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "a refused address was connected to");
}

/// A broker that does not answer fails the publish with `connection-failed` at the
/// component's deadline, and the connection is not pooled again.
#[tokio::test]
async fn a_silent_broker_fails_at_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let keep = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(s);
    });
    let entries = [format!("mqtt://127.0.0.1:{port}")];
    let c = Arc::new(MqttComponent::new(
        MqttGrants {
            allowed_hosts: Arc::new(AllowedHosts::parse(&entries).unwrap()),
            allowed_outbound_hosts: entries.to_vec(),
            limits: CallLimits {
                statement_timeout: Duration::from_millis(300),
                ..Default::default()
            },
        },
        MQTT_IDLE,
    ));
    let mut s = instance(&c);
    let conn = open(&mut s, &address("127.0.0.1", port)).await.unwrap();
    let started = std::time::Instant::now();
    match v2::HostConnection::publish(
        &mut s,
        conn,
        "t".into(),
        b"x".to_vec(),
        v2::Qos::AtLeastOnce,
    )
    .await
    .unwrap()
    {
        Err(v2::Error::ConnectionFailed(m)) => assert!(m.contains("deadline"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(c.pool.len(), 0);
    keep.abort();
}

struct Host {
    mqtt: MqttInstance,
}

fn mqtt_of(h: &mut Host) -> &mut MqttInstance {
    &mut h.mqtt
}

/// The 3.0 functions, called as wasmtime calls them.
#[tokio::test]
async fn v3_async_functions() {
    let topic = unique("topic3");
    let (sub, mut rx) = subscriber(&topic).await;
    let c = component(&["mqtt://127.0.0.1:1883"]);
    let mut store = Store::new(&Engine::default(), Host { mqtt: instance(&c) });
    store
        .run_concurrent(async |acc| {
            type D = HasSelf<MqttInstance>;
            let acc = &acc.with_getter::<D>(mqtt_of);
            match D::open(
                acc,
                address("10.0.0.1", 1883),
                String::new(),
                String::new(),
                0,
            )
            .await
            .unwrap()
            {
                Err(v3::Error::ConnectionFailed(m)) => assert!(m.contains("not permitted"), "{m}"),
                other => panic!("{:?}", other.map(drop)),
            }
            let conn = D::open(
                acc,
                address("127.0.0.1", 1883),
                String::new(),
                String::new(),
                0,
            )
            .await
            .unwrap()
            .unwrap();
            D::publish(
                acc,
                Resource::new_borrow(conn.rep()),
                topic.clone(),
                b"from v3".to_vec(),
                v3::Qos::ExactlyOnce,
            )
            .await
            .unwrap()
            .unwrap();
            acc.with(|mut a| v3::HostConnection::drop(a.get(), conn))
                .unwrap();
            assert_eq!(acc.with(|mut a| a.get().open_handles()), 0);
        })
        .await
        .unwrap();
    assert_eq!(received(&mut rx).await, b"from v3");
    sub.disconnect().await.unwrap();
}
