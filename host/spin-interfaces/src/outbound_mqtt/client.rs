//! One MQTT connection (rumqttc), shared by the handles of one component that open the same
//! address with the same credentials.

use std::sync::Mutex;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};

use super::MqttError;

/// Requests rumqttc queues before `publish` waits; one is in flight at a time here.
const CHANNEL_CAP: usize = 10;

pub(crate) struct Client {
    client: AsyncClient,
    /// rumqttc makes progress only while its event loop is polled; the lock also keeps one
    /// publish at a time on the connection, so the acknowledgement a call waits for is its
    /// own.
    events: tokio::sync::Mutex<EventLoop>,
    /// Why the connection can no longer be trusted (it failed, or a call was abandoned
    /// half-way, leaving acknowledgements that would be taken for the next call's).
    broken: Mutex<Option<String>>,
}

impl Client {
    /// Connects at the first publish, as Spin's client does.
    pub(crate) fn new(options: MqttOptions) -> Self {
        let (client, events) = AsyncClient::new(options, CHANNEL_CAP);
        Self {
            client,
            events: tokio::sync::Mutex::new(events),
            broken: Mutex::new(None),
        }
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken.lock().unwrap().is_some()
    }

    fn break_with(&self, why: String) {
        self.broken.lock().unwrap().get_or_insert(why);
    }

    /// Publishes and waits, as Spin does, until the message left (QoS 0) or the broker
    /// acknowledged it (QoS 1: `PUBACK`, QoS 2: `PUBCOMP`), at most `within`.
    pub(crate) async fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        within: Duration,
    ) -> Result<(), MqttError> {
        if let Some(why) = self.broken.lock().unwrap().clone() {
            return Err(MqttError::ConnectionFailed(format!(
                "this connection failed earlier ({why}); open a new one"
            )));
        }
        // Marks the connection broken unless the call ends normally (the deadline, or the
        // guest dropping the call, may stop it anywhere).
        let mut guard = Unfinished(Some(self));
        let outcome = tokio::time::timeout(within, self.publish_now(topic, payload, qos)).await;
        guard.0 = None;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                if let MqttError::ConnectionFailed(why) = &e {
                    self.break_with(why.clone());
                }
                Err(e)
            }
            Err(_) => {
                let why = format!(
                    "MQTT: no acknowledgement within the component's deadline ({} ms)",
                    within.as_millis()
                );
                self.break_with(why.clone());
                Err(MqttError::ConnectionFailed(why))
            }
        }
    }

    async fn publish_now(
        &self,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
    ) -> Result<(), MqttError> {
        let mut events = self.events.lock().await;
        self.client
            .publish(topic, qos, false, payload)
            .await
            .map_err(|e| MqttError::Other(e.to_string()))?;
        loop {
            let event = events
                .poll()
                .await
                .map_err(|e| MqttError::ConnectionFailed(e.to_string()))?;
            match (qos, event) {
                (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
                | (QoS::AtLeastOnce, Event::Incoming(Incoming::PubAck(_)))
                | (QoS::ExactlyOnce, Event::Incoming(Incoming::PubComp(_))) => return Ok(()),
                _ => continue,
            }
        }
    }
}

/// Marks its client broken when dropped armed.
struct Unfinished<'a>(Option<&'a Client>);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.break_with("a publish on it was abandoned half-way".into());
        }
    }
}
