//! Outbound TCP through `wasi:sockets` for Spin components: a guest may connect to the
//! `tcp://` (or `*://`) addresses its `allowed_outbound_hosts` names, as IP literals, CIDR
//! ranges or `localhost`, with a port, as Spin allows them; nothing else. No listening,
//! no explicit bind, no UDP. Name lookups are allowed only when an entry could use one.
//!
//! wasmtime-wasi asks the check for every address a socket uses, so the decision is made
//! on the address the connection actually goes to, never on a name.

use std::sync::Arc;

use nebula_spin_interfaces::allowed_hosts::AllowedHosts;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::WasiCtxBuilder;

/// The scheme a socket connection is matched under.
const SCHEME: &str = "tcp";

/// Grants the instance built by `b` the TCP connections `allowed` permits. Does nothing
/// (sockets stay denied) when no entry could permit one.
pub fn grant(b: &mut WasiCtxBuilder, allowed: &Arc<AllowedHosts>) {
    if !allowed.any_for_scheme(SCHEME) {
        return;
    }
    let allowed = allowed.clone();
    b.allow_tcp(true);
    b.allow_ip_name_lookup(true);
    b.socket_addr_check(move |addr, usage| {
        let ok = match usage {
            SocketAddrUse::TcpConnect => allowed.allows_socket(SCHEME, addr),
            // The implicit bind a connect makes (the wildcard address, any port); an
            // explicit bind or a listener would let the guest serve, which it may not.
            SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
            _ => false,
        };
        if !ok && matches!(usage, SocketAddrUse::TcpConnect) {
            tracing::warn!(%addr, "outbound TCP refused: not in allowed_outbound_hosts");
        }
        Box::pin(async move { ok })
    });
}
