//! Outbound HTTP as a host unit (see `nebula_spin_interfaces::HostUnit`): a component
//! sends requests through wasi:http (`outgoing-handler` in 0.2, `client` in 0.3) to the
//! hosts its `allowed_outbound_hosts` lists, and nowhere else.
//!
//! It lives here rather than beside the other units because wasmtime-wasi-http serves it:
//! the unit's part is the `send_request` hook, which checks the URL against the allowed-hosts
//! unit (`nebula_spin_interfaces::allowed_hosts`) and sends through
//! [`super::outbound_connect`], which connects only to addresses that unit allows.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};
use wasmtime_wasi_http::{WasiBody, WasiHttp, WasiHttpHooks};

use nebula_spin_interfaces::{granted_list, interface_of, HostUnit, InstanceContext};

use super::chain::{self, Chain};
use super::guest_log::CurrentRequest;

// The allowed-hosts unit, under the names it had when it lived here.
pub use nebula_spin_interfaces::allowed_hosts::{is_internal, AllowedHost, AllowedHosts};

/// The interfaces this unit serves, without their versions.
const INTERFACES: [&str; 2] = ["wasi:http/outgoing-handler", "wasi:http/client"];

/// The outbound HTTP unit. It keeps nothing per app: what a component may reach is its own.
pub struct OutboundHttp;

/// What one component may reach.
#[derive(Clone, Debug, Default)]
pub struct OutboundHttpGrants {
    /// `allowed_outbound_hosts = [...]`, as written.
    pub allowed_hosts: Vec<String>,
}

/// One component's allowed hosts, parsed once at load.
pub struct OutboundHttpComponent {
    allowed: Arc<AllowedHosts>,
}

/// One instance's hook: wasmtime-wasi-http calls it for every request the guest sends.
pub struct OutboundHooks {
    allowed: Arc<AllowedHosts>,
    /// The app's components, for `http://COMPONENT.spin.internal` (none: such a
    /// request is refused).
    chain: Option<Arc<Chain>>,
    /// The request the instance serves, whose id a chained request carries on.
    current: CurrentRequest,
}

impl OutboundHooks {
    /// Lets the instance call the app's other components (service chaining).
    pub fn chaining(mut self, chain: Option<Arc<Chain>>, current: CurrentRequest) -> Self {
        self.chain = chain;
        self.current = current;
        self
    }
}

type SendResult = wasmtime_wasi_http::Result<super::outbound_connect::Sent>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn std::future::Future<Output = SendResult> + Send> {
        drop(fut);
        if !self.allowed.allows(request.uri()) {
            tracing::warn!(url = %request.uri(), "outbound request refused: not in allowed_outbound_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if let Some(id) = chain::target_of(request.uri()).map(str::to_string) {
            let Some(chain) = self.chain.clone() else {
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
            };
            let caller = self.current.get();
            return Box::new(async move { chain.send(&id, request, caller).await });
        }
        // The name is resolved and its addresses checked where the
        // connection is made.
        Box::new(super::outbound_connect::send(
            self.allowed.clone(),
            request,
            options,
        ))
    }
}

impl HostUnit for OutboundHttp {
    type AppConfig = ();
    type Grants = OutboundHttpGrants;
    type Component = OutboundHttpComponent;
    type Instance = OutboundHooks;
    /// wasmtime-wasi-http's view, which holds this unit's hooks beside the WASI table its
    /// requests and responses live in.
    type Data = WasiHttp;

    /// Adds the functions that send: 0.2's `outgoing-handler` and 0.3's `client`. wasi:http's
    /// `types` are the host's to add, since they carry the incoming request too.
    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> <WasiHttp as HasData>::Data<'_>,
    ) -> anyhow::Result<()> {
        wasmtime_wasi_http::p2::bindings::http::outgoing_handler::add_to_linker::<T, WasiHttp>(
            linker, get,
        )?;
        wasmtime_wasi_http::p3::bindings::http::client::add_to_linker::<T, WasiHttp>(linker, get)?;
        Ok(())
    }

    fn configure_app((): ()) -> anyhow::Result<Self> {
        Ok(OutboundHttp)
    }

    /// Fails on an entry that is not a valid pattern, quoting it.
    fn configure_component(
        self: &Arc<Self>,
        grants: OutboundHttpGrants,
    ) -> anyhow::Result<OutboundHttpComponent> {
        Ok(OutboundHttpComponent {
            allowed: Arc::new(AllowedHosts::parse(&grants.allowed_hosts)?),
        })
    }

    fn prepare(component: &Arc<OutboundHttpComponent>, _: &InstanceContext) -> OutboundHooks {
        OutboundHooks {
            allowed: component.allowed.clone(),
            chain: None,
            current: CurrentRequest::default(),
        }
    }

    fn serves(import: &str, grants: &OutboundHttpGrants) -> Option<String> {
        INTERFACES.contains(&interface_of(import)).then(|| {
            format!(
                "outbound HTTP to allowed_outbound_hosts only: {}",
                granted_list(&grants.allowed_hosts)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_sending_interfaces_only() {
        let grants = OutboundHttpGrants {
            allowed_hosts: vec!["http://127.0.0.1:*".into()],
        };
        for import in [
            "wasi:http/outgoing-handler@0.2.6",
            "wasi:http/client@0.3.0-rc-2025-09-16",
        ] {
            assert_eq!(
                OutboundHttp::serves(import, &grants).as_deref(),
                Some("outbound HTTP to allowed_outbound_hosts only: http://127.0.0.1:*"),
                "{import}"
            );
        }
        for import in ["wasi:http/types@0.2.6", "wasi:http/handler@0.3.0"] {
            assert_eq!(OutboundHttp::serves(import, &grants), None, "{import}");
        }
        assert!(
            OutboundHttp::serves("wasi:http/client@0.3.0", &Default::default())
                .unwrap()
                .ends_with("none granted")
        );
    }
}
