//! Spin's Redis trigger: for each `[[trigger.redis]]` a task subscribes to
//! the channel and hands every message to the component's `handle-message`
//! (`executor::wasi_http::inbound_redis`), each in a fresh instance with its
//! own request id, limits and metrics (the route `redis:CHANNEL`).
//!
//! A subscription that fails or ends (Redis restarted) is made again after
//! a wait that doubles from 100 ms up to 10 s and starts over once one
//! succeeds. Messages published while the subscription was down are lost,
//! as with Spin: Redis pub/sub keeps nothing for absent subscribers. An idle
//! subscription is a blocked read on one socket: no wakeups.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;

use crate::host::Host;
use crate::spin::manifest::RedisTrigger;

pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(100);
pub(crate) const LAST_RETRY: Duration = Duration::from_secs(10);
/// Messages of one trigger handled at once; more wait on the subscription
/// (Redis buffers them in its output buffer for this client).
const IN_FLIGHT: usize = 32;

/// Starts a task per Redis trigger of `host`'s app; they run until the
/// runtime ends.
pub fn start(host: &Arc<Host>) {
    for trigger in host.redis_triggers() {
        let host = host.clone();
        let trigger = trigger.clone();
        tokio::spawn(crate::metrics::cpu::background(
            crate::metrics::cpu::Background::Accept,
            subscribe_forever(host, trigger),
        ));
    }
}

async fn subscribe_forever(host: Arc<Host>, trigger: RedisTrigger) {
    let mut wait = FIRST_RETRY;
    loop {
        match serve(&host, &trigger, &mut wait).await {
            Ok(()) => tracing::warn!(
                channel = %trigger.channel,
                address = %trigger.address,
                "Redis closed the subscription; subscribing again"
            ),
            Err(e) => tracing::warn!(
                channel = %trigger.channel,
                address = %trigger.address,
                "Redis trigger: {e:#}; retrying in {wait:?}"
            ),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(LAST_RETRY);
    }
}

/// One subscription, until it ends.
async fn serve(host: &Arc<Host>, trigger: &RedisTrigger, wait: &mut Duration) -> Result<()> {
    let client = redis::Client::open(trigger.address.as_str())
        .with_context(|| format!("bad Redis address {:?}", trigger.address))?;
    let mut pubsub = client.get_async_pubsub().await.context("cannot connect")?;
    pubsub
        .subscribe(&trigger.channel)
        .await
        .context("cannot subscribe")?;
    *wait = FIRST_RETRY;
    tracing::info!(channel = %trigger.channel, component = %trigger.component, "Redis trigger subscribed");
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let payload = message.get_payload_bytes().to_vec();
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let host = host.clone();
        let trigger = trigger.clone();
        tokio::spawn(async move {
            deliver(&host, &trigger, payload).await;
            drop(slot);
        });
    }
    Ok(())
}

/// One message to the trigger's component; the outcome is counted as a
/// status (200 handled, 500 failed) on the trigger's route and logged.
pub async fn deliver(host: &Host, trigger: &RedisTrigger, payload: Vec<u8>) {
    let crate::host::MessageTarget {
        component,
        id,
        route,
    } = match host.message_target(trigger) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(component = %trigger.component, "Redis message not delivered: {e:#}");
            return;
        }
    };
    let Some(handler) = component.message_handler() else {
        tracing::error!(component = %trigger.component, "the component exports no Redis handler (fermyon:spin/inbound-redis or spin:redis/inbound-redis@3)");
        route.count(http::StatusCode::INTERNAL_SERVER_ERROR);
        return;
    };
    let started = std::time::Instant::now();
    let bytes = payload.len();
    match handler
        .handle_message(payload, id.clone(), route.clone())
        .await
    {
        Ok(()) => {
            route.count(http::StatusCode::OK);
            tracing::info!(request = %id, channel = %trigger.channel, component = %trigger.component, bytes, elapsed_us = started.elapsed().as_micros() as u64, "Redis message handled");
        }
        Err(e) => {
            route.count(http::StatusCode::INTERNAL_SERVER_ERROR);
            tracing::warn!(request = %id, channel = %trigger.channel, component = %trigger.component, "Redis message failed: {e:#}");
        }
    }
}
