//! Spin's `[[trigger.redis]]` on the platform. A trigger is a standing
//! subscription, so unlike an HTTP route it cannot wait for a request to
//! load its app: the platform subscribes for every deployed app, and loads
//! the app when a message comes (then unloads it when idle, as for HTTP).
//!
//! What an idle trigger costs is kept per Redis server, not per app: one
//! connection and one task per address, subscribed to the channels of every
//! app that listens there, and a table entry per trigger. A message is
//! handed to every app whose trigger names its channel.
//!
//! Tenants may not make the platform connect anywhere they like: only the
//! addresses the operator allows (`--allow-redis ADDR`) are accepted at
//! deploy ([`check_addresses`]).
//!
//! With several nodes (the PostgreSQL store) pub/sub would deliver each
//! message to every node, and each would run it. So one node at a time
//! subscribes to an address: the one holding a PostgreSQL advisory lock
//! named for it ([`SharedStore::lead`]). The others wait for the lock inside
//! PostgreSQL (no polling); when the leader dies its session ends, the lock
//! goes to another node, and that node subscribes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;

use super::shared_store::SharedStore;
use crate::spin::manifest::RedisTrigger;

// Retried as `nebula up`'s triggers are: 100 ms doubling to 10 s.
use crate::trigger::redis::{FIRST_RETRY, LAST_RETRY};
/// Messages of one address handled at once, all its apps together; more
/// wait in Redis's output buffer for this client. Each app has a much lower
/// bound of its own (the platform sheds its messages beyond it at once), so
/// one tenant's flood cannot fill this and hold up the others.
const IN_FLIGHT: usize = 4096;

/// Where a message goes: the platform loads the app and calls the trigger's
/// component. A trait so that this module does not own the platform.
pub trait Deliver: Send + Sync + 'static {
    fn deliver(
        self: Arc<Self>,
        host: String,
        trigger: RedisTrigger,
        payload: Vec<u8>,
    ) -> futures::future::BoxFuture<'static, ()>;
}

/// `(app host, its trigger)` for each channel of one address.
type Table = HashMap<String, Vec<(String, RedisTrigger)>>;

struct Subscriber {
    table: Arc<Mutex<Table>>,
    /// Wakes the subscriber to subscribe to new channels and leave old ones.
    changed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

pub struct RedisTriggers {
    allowed: Vec<String>,
    store: Option<Arc<SharedStore>>,
    deliver: Weak<dyn Deliver>,
    by_address: Mutex<HashMap<String, Subscriber>>,
}

impl RedisTriggers {
    pub fn new(
        allowed: Vec<String>,
        store: Option<Arc<SharedStore>>,
        deliver: Weak<dyn Deliver>,
    ) -> RedisTriggers {
        RedisTriggers {
            allowed,
            store,
            deliver,
            by_address: Mutex::new(HashMap::new()),
        }
    }

    /// `host` listens on `triggers` from now on (none: it stops listening).
    /// Must be called inside the runtime: it may start a subscriber.
    pub fn set(&self, host: &str, triggers: &[RedisTrigger]) {
        let mut by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        for (address, sub) in by_address.iter() {
            let mut table = sub.table.lock().unwrap_or_else(|p| p.into_inner());
            let before: usize = table.values().map(Vec::len).sum();
            for targets in table.values_mut() {
                targets.retain(|(h, _)| h != host);
            }
            table.retain(|_, targets| !targets.is_empty());
            if table.values().map(Vec::len).sum::<usize>() != before {
                tracing::debug!(app = host, address, "Redis triggers removed");
                sub.changed.notify_one();
            }
        }
        for trigger in triggers {
            if check_addresses(std::slice::from_ref(trigger), &self.allowed).is_err() {
                // Allowed when deployed, no longer by the operator.
                tracing::error!(app = host, address = %trigger.address, channel = %trigger.channel,
                    "Redis trigger not subscribed: the platform no longer allows this address (--allow-redis)");
                continue;
            }
            let sub = by_address
                .entry(trigger.address.clone())
                .or_insert_with(|| self.start(&trigger.address));
            sub.table
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(trigger.channel.clone())
                .or_default()
                .push((host.to_string(), trigger.clone()));
            sub.changed.notify_one();
        }
        // An address nobody listens on any more: its connection goes.
        by_address.retain(|address, sub| {
            let empty = sub
                .table
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
            if empty {
                tracing::info!(
                    address,
                    "no app listens on this Redis any more; unsubscribed"
                );
                sub.task.abort();
            }
            !empty
        });
    }

    /// The channels subscribed at `address`, for the status page and tests.
    pub fn channels(&self, address: &str) -> Vec<String> {
        let by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        by_address
            .get(address)
            .map(|s| {
                let t = s.table.lock().unwrap_or_else(|p| p.into_inner());
                t.keys().cloned().collect()
            })
            .unwrap_or_default()
    }

    fn start(&self, address: &str) -> Subscriber {
        let table = Arc::new(Mutex::new(Table::new()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(crate::metrics::cpu::background(
            crate::metrics::cpu::Background::Accept,
            subscribe_forever(
                address.to_string(),
                table.clone(),
                changed.clone(),
                self.store.clone(),
                self.deliver.clone(),
            ),
        ));
        Subscriber {
            table,
            changed,
            task,
        }
    }
}

impl Drop for RedisTriggers {
    fn drop(&mut self) {
        for sub in self
            .by_address
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            sub.task.abort();
        }
    }
}

/// Refuses a trigger on an address the operator has not allowed, saying
/// which and how to allow it.
pub fn check_addresses(triggers: &[RedisTrigger], allowed: &[String]) -> Result<(), String> {
    for t in triggers {
        let address = normalise(&t.address);
        if !allowed.iter().any(|a| normalise(a) == address) {
            let allowed = if allowed.is_empty() {
                "none (the operator allows an address with `nebula platform --allow-redis redis://HOST:PORT`)".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(format!(
                "[[trigger.redis]] channel {:?}: this platform does not subscribe to Redis at {:?}; addresses it allows: {allowed}",
                t.channel, t.address
            ));
        }
    }
    Ok(())
}

/// `redis://127.0.0.1:6379/` and `redis://127.0.0.1:6379` are one address.
fn normalise(address: &str) -> &str {
    address.trim().trim_end_matches('/')
}

async fn subscribe_forever(
    address: String,
    table: Arc<Mutex<Table>>,
    changed: Arc<tokio::sync::Notify>,
    store: Option<Arc<SharedStore>>,
    deliver: Weak<dyn Deliver>,
) {
    let mut wait = FIRST_RETRY;
    loop {
        let outcome = async {
            // With several nodes: only the lock's holder subscribes. The
            // lease is held for as long as this subscription lives.
            let lease = match &store {
                Some(store) => Some(store.lead(&format!("redis-trigger {address}")).await?),
                None => None,
            };
            serve(&address, &table, &changed, lease, &deliver, &mut wait).await
        }
        .await;
        match outcome {
            Ok(()) => tracing::warn!(%address, "Redis closed the subscription; subscribing again"),
            Err(e) => tracing::warn!(%address, "Redis trigger: {e:#}; retrying in {wait:?}"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(LAST_RETRY);
    }
}

/// One subscription, until it (or the lease) ends.
async fn serve(
    address: &str,
    table: &Mutex<Table>,
    changed: &tokio::sync::Notify,
    lease: Option<super::shared_store::Lease>,
    deliver: &Weak<dyn Deliver>,
    wait: &mut Duration,
) -> Result<()> {
    let client =
        redis::Client::open(address).with_context(|| format!("bad Redis address {address:?}"))?;
    let (mut sink, mut messages) = client
        .get_async_pubsub()
        .await
        .context("cannot connect")?
        .split();
    let mut subscribed = BTreeSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    // Without a store nothing can take the subscription away: a lease
    // that is never lost (its sender kept here until this returns).
    let (_lease, _never, mut lost) = match lease {
        Some(l) => (Some(l.client), None, l.lost),
        None => {
            let (never, lost) = tokio::sync::oneshot::channel();
            (None, Some(never), lost)
        }
    };
    loop {
        let wanted: BTreeSet<String> = table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for channel in wanted.difference(&subscribed) {
            sink.subscribe(channel).await.context("cannot subscribe")?;
            tracing::info!(%address, %channel, "Redis trigger subscribed");
        }
        for channel in subscribed.difference(&wanted) {
            sink.unsubscribe(channel)
                .await
                .context("cannot unsubscribe")?;
        }
        subscribed = wanted;
        *wait = FIRST_RETRY;
        tokio::select! {
            _ = changed.notified() => continue,
            _ = &mut lost => {
                anyhow::bail!("lost the PostgreSQL lock that makes this node the one subscriber");
            }
            message = messages.next() => {
                let Some(message) = message else { return Ok(()) };
                let channel = message.get_channel_name().to_string();
                let targets = table
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&channel)
                    .cloned()
                    .unwrap_or_default();
                let Some(deliver) = deliver.upgrade() else { return Ok(()) };
                for (host, trigger) in targets {
                    let slot = slots.clone().acquire_owned().await.expect("never closed");
                    let payload = message.get_payload_bytes().to_vec();
                    let run = deliver.clone().deliver(host, trigger, payload);
                    tokio::spawn(async move {
                        run.await;
                        drop(slot);
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(address: &str) -> RedisTrigger {
        RedisTrigger {
            address: address.into(),
            channel: "c".into(),
            component: "x".into(),
        }
    }

    #[test]
    fn only_addresses_the_operator_allows_are_accepted() {
        let allowed = vec!["redis://127.0.0.1:6379/".to_string()];
        assert!(check_addresses(&[trigger("redis://127.0.0.1:6379")], &allowed).is_ok());
        let e = check_addresses(&[trigger("redis://10.0.0.9:6379")], &allowed).unwrap_err();
        assert!(e.contains("\"redis://10.0.0.9:6379\""), "{e}");
        assert!(e.contains("redis://127.0.0.1:6379/"), "{e}");
        let e = check_addresses(&[trigger("redis://127.0.0.1:6379")], &[]).unwrap_err();
        assert!(e.contains("--allow-redis"), "{e}");
    }
}
