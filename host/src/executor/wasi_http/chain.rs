//! Service chaining, as Spin does it: a component's outbound request to
//! `http://COMPONENT.spin.internal/…` goes to that component of the same app
//! in process — no socket, no DNS — when its `allowed_outbound_hosts` grants
//! the name (`http://COMPONENT.spin.internal` or `http://*.spin.internal`).
//! Private endpoints (`route = { private = true }`) are reachable only this
//! way.
//!
//! The called component runs as if a client had asked it: its own pool,
//! limits and deadline, its CPU charged to its own first route, Spin's
//! headers set as for a request matched by `/...` (Spin's synthetic route
//! for a chained call), and its request id the caller's with `.chained`
//! after it, so that the log joins the two.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use wasmtime_wasi_http::handler::ProxyHandler;
use wasmtime_wasi_http::{Error, WasiBody};

use super::handler::{ComponentHandler, RequestTag};
use super::outbound_connect::Sent;
use crate::metrics::RouteStats;

/// The host part of a chained request's URL.
pub const SUFFIX: &str = ".spin.internal";

/// The component a chained request's URL names, if it names one.
pub fn target_of(uri: &http::Uri) -> Option<&str> {
    uri.host()?.strip_suffix(SUFFIX).filter(|id| !id.is_empty())
}

/// An app's components by id, filled as each is prepared; shared by every
/// instance's outbound hooks.
#[derive(Default)]
pub struct Chain {
    targets: RwLock<HashMap<String, Target>>,
}

#[derive(Clone)]
struct Target {
    handler: ProxyHandler<ComponentHandler>,
    route: Arc<RouteStats>,
}

impl Chain {
    /// Makes `id` callable; a component prepared again (a reload) replaces
    /// its earlier handler.
    pub fn register(
        &self,
        id: &str,
        handler: ProxyHandler<ComponentHandler>,
        route: Arc<RouteStats>,
    ) {
        self.targets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), Target { handler, route });
    }

    /// Forgets every component. Each one's instances hold the chain, so the
    /// app calls this when it goes away, or the two would keep each other.
    pub fn clear(&self) {
        self.targets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Sends `request` to component `id` of the app; `caller` is the
    /// calling request's id.
    pub async fn send(
        &self,
        id: &str,
        mut request: http::Request<WasiBody>,
        caller: Arc<str>,
    ) -> Result<Sent, Error> {
        let target = self
            .targets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        let Some(target) = target else {
            tracing::warn!(
                component = id,
                "chained request to a component the app does not have"
            );
            return Err(Error::DestinationNotFound);
        };
        let uri = request.uri().clone();
        let trailing = uri.path().trim_start_matches('/').to_string();
        let headers = request.headers_mut();
        if let Ok(host) = http::HeaderValue::from_str(uri.authority().map_or(id, |a| a.as_str())) {
            headers.insert(http::header::HOST, host);
        }
        super::spin_headers::add_spin_headers(
            headers,
            &uri,
            "/...",
            &[("*".to_string(), trailing)],
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        );
        let tag = RequestTag {
            route: target.route,
            id: Arc::from(format!("{caller}.chained")),
        };
        match super::handle(&target.handler, tag, request).await {
            Ok(response) => {
                let done: Box<dyn std::future::Future<Output = Result<(), Error>> + Send> =
                    Box::new(async { Ok(()) });
                Ok((response, done))
            }
            Err(e) => {
                tracing::warn!(component = id, "chained request failed: {e:#}");
                Err(Error::InternalError(Some(format!(
                    "the chained component {id:?} failed"
                ))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_the_first_label_before_spin_internal() {
        let t = |u: &str| target_of(&u.parse().unwrap()).map(str::to_string);
        assert_eq!(
            t("http://internal.spin.internal/x"),
            Some("internal".into())
        );
        assert_eq!(t("http://a-b.spin.internal:80/"), Some("a-b".into()));
        assert_eq!(t("http://spin.internal/"), None);
        assert_eq!(t("http://.spin.internal/"), None);
        assert_eq!(t("http://example.com/"), None);
    }
}
