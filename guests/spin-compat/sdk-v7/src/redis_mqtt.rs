//! Outbound Redis and MQTT routes (the table in ../../README.md), as in `sdk-v5`. Every
//! address comes from the query, so a test can point them anywhere; the manifest's
//! `allowed_outbound_hosts` decides what the host lets through.
//!
//! | route | behaviour |
//! |---|---|
//! | `GET /redis/counter?address=A&key=K` | `INCR K` on A; 200 with the new value |
//! | `POST /redis/publish?address=A&channel=C` | publishes the body on C; 200 `published` |
//! | `POST /mqtt/publish?address=A&topic=T` | publishes the body on T at QoS 1; 200 `published` |
//!
//! A host error answers 500 `error: <Debug of the SDK's error>`.

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{Method, Request};
use spin_sdk::{mqtt, redis};

use crate::{query_param, text, Reply, SDK};

pub async fn handle(req: Request, segments: &[&str]) -> Reply {
    let query = req.uri().query().unwrap_or_default().to_string();
    let param = |name: &str| query_param(&query, name);
    let (Some(address), Some(target)) = (
        param("address"),
        param("key")
            .or_else(|| param("channel"))
            .or_else(|| param("topic")),
    ) else {
        return text(400, "missing ?address= or ?key= / ?channel= / ?topic=");
    };
    let method = req.method().clone();
    let outcome = match (method, segments) {
        (Method::GET, ["redis", "counter"]) => redis_counter(&address, &target).await,
        (Method::POST, ["redis", "publish"]) => match req.into_body().bytes().await {
            Ok(body) => redis_publish(&address, &target, &body).await,
            Err(e) => return text(400, &format!("error reading body: {e:?}")),
        },
        (Method::POST, ["mqtt", "publish"]) => match req.into_body().bytes().await {
            Ok(body) => mqtt_publish(&address, &target, &body).await,
            Err(e) => return text(400, &format!("error reading body: {e:?}")),
        },
        _ => {
            return text(
                404,
                &format!("no route in sdk-{SDK}: /{}", segments.join("/")),
            )
        }
    };
    match outcome {
        Ok(body) => text(200, &body),
        Err(e) => text(500, &format!("error: {e}")),
    }
}

async fn redis_counter(address: &str, key: &str) -> Result<String, String> {
    let conn = redis::Connection::open(address)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let n = conn.incr(key).await.map_err(|e| format!("{e:?}"))?;
    Ok(n.to_string())
}

async fn redis_publish(address: &str, channel: &str, body: &[u8]) -> Result<String, String> {
    let conn = redis::Connection::open(address)
        .await
        .map_err(|e| format!("{e:?}"))?;
    conn.publish(channel, body)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok("published".into())
}

async fn mqtt_publish(address: &str, topic: &str, body: &[u8]) -> Result<String, String> {
    let address = with_client_id(address);
    let conn = mqtt::Connection::open(&address, "", "", 30)
        .await
        .map_err(|e| format!("{e:?}"))?;
    conn.publish(topic, body.to_vec(), mqtt::Qos::AtLeastOnce)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok("published".into())
}

/// Spin's MQTT client needs a `client_id` in the address; one per SDK unless given.
fn with_client_id(address: &str) -> String {
    if address.contains("client_id=") {
        address.to_string()
    } else {
        let sep = if address.contains('?') { '&' } else { '?' };
        format!("{address}{sep}client_id=nebula-spin-compat-{SDK}")
    }
}
