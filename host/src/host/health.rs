//! `GET /.well-known/nebula/health`: whether this node should get requests.
//!
//! A load balancer (HAProxy's `option httpchk`, a Kubernetes readiness
//! probe) asks this before it sends a node traffic. 200 means the node can
//! serve: its components are loaded and its data store answers. 503 means
//! route around it: the database is unreachable from here (the node would
//! only answer 503s), or the node got SIGTERM and is draining, so the
//! balancer stops sending before the node stops accepting.
//!
//! `?live` asks only whether the process is alive and not draining (a
//! liveness probe): a database outage must not make an orchestrator
//! restart every node.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};

use super::Host;

pub const PATH: &str = "/.well-known/nebula/health";

impl Host {
    /// The health answer, as a small JSON document.
    pub(super) async fn health(&self, uri: &http::Uri) -> http::Response<Bytes> {
        let live_only = uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "live"));
        let (status, reason) = if self.is_draining() {
            (StatusCode::SERVICE_UNAVAILABLE, "draining".to_string())
        } else if live_only {
            (StatusCode::OK, "ok".to_string())
        } else {
            match &self.store {
                Some(store) => {
                    let answer = store.ping().await;
                    // Logged when it changes, not at every check (a
                    // balancer asks twice a second during an outage).
                    let was_up = self
                        .store_answers
                        .swap(answer.is_ok(), std::sync::atomic::Ordering::Relaxed);
                    match answer {
                        Ok(()) => {
                            if !was_up {
                                tracing::info!(db = %store.describe(), "health: the data store answers again");
                            }
                            (StatusCode::OK, "ok".to_string())
                        }
                        Err(e) => {
                            if was_up {
                                tracing::warn!(db = %store.describe(), "health: the data store does not answer, answering 503: {e}");
                            }
                            (StatusCode::SERVICE_UNAVAILABLE, format!("data store: {e}"))
                        }
                    }
                }
                None => (StatusCode::OK, "ok".to_string()),
            }
        };
        let body = serde_json::json!({
            "status": if status == StatusCode::OK { "ok" } else { "unavailable" },
            "reason": reason,
            "components": self.model.components.len(),
        });
        let mut resp = http::Response::new(Bytes::from(body.to_string()));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }

    /// From now on the health check fails; requests are still served until
    /// the server stops accepting (after its drain delay).
    pub fn begin_drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }
}
