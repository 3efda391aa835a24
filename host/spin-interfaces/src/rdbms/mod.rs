//! Spin's outbound relational databases: PostgreSQL ([`postgres`]) and MySQL ([`mysql`]),
//! two units of their own, and what they share: a per-component pool of idle connections,
//! the allowed-hosts check of a connection string's hosts, and the messages for a call that
//! runs past the component's deadline or returns more than it may receive.
//!
//! The guest names the server in its connection string; the component's
//! `allowed_outbound_hosts` decide whether it may be reached (scheme `postgres` / `mysql`,
//! host and port as Spin matches them, the port defaulting to 5432 / 3306), and the name
//! is resolved once and only addresses the list permits are connected to
//! ([`AllowedHosts::connect`], [`AllowedHosts::resolve`]): an internal address needs an IP
//! or CIDR entry, or `localhost` written out.
//!
//! Both drivers are async (`tokio-postgres`, `mysql_async`): their calls are awaited where
//! they are made and never block the worker thread. Each call is bounded by the
//! component's deadline ([`CallLimits::statement_timeout`]), on the client and on the
//! server (PostgreSQL's `statement_timeout`, MariaDB's `max_statement_time` or MySQL's
//! `max_execution_time`), and a query's rows by [`CallLimits::result_cap`].
//!
//! [`CallLimits::statement_timeout`]: crate::CallLimits::statement_timeout
//! [`CallLimits::result_cap`]: crate::CallLimits

pub mod mysql;
mod pg_values;
pub mod postgres;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::allowed_hosts::{AllowedHosts, ConnectError};

/// How long a connection may wait in a component's pool before it is closed. Nothing wakes
/// up to close it: the server closes its end after this long (PostgreSQL's
/// `idle_session_timeout`, MySQL's `wait_timeout`), and the pool drops stale entries
/// whenever it is used, or all of them with the component (when the app is reloaded).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections kept per component and address; more are opened under load and closed
/// when the guest drops them.
const MAX_IDLE_PER_ADDRESS: usize = 8;

/// One component's idle connections, by connection string (which includes the
/// credentials, so two users of one server never share a connection).
pub(crate) struct IdlePool<C> {
    idle: Mutex<HashMap<String, Vec<(C, Instant)>>>,
}

impl<C> Default for IdlePool<C> {
    fn default() -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
        }
    }
}

impl<C> IdlePool<C> {
    /// The most recently used idle connection to `address` still within [`IDLE_TIMEOUT`];
    /// older ones are closed (dropped).
    pub(crate) fn take(&self, address: &str) -> Option<C> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(address)?;
        list.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
        let found = list.pop().map(|(conn, _)| conn);
        if list.is_empty() {
            idle.remove(address);
        }
        found
    }

    /// Keeps `conn` for the next guest, unless enough are idle already.
    pub(crate) fn put(&self, address: &str, conn: C) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(address.to_string()).or_default();
        list.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push((conn, Instant::now()));
        }
    }

    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap();
        idle.values().map(Vec::len).sum()
    }
}

/// Whether `allowed` lets the component reach `scheme://host:port`, as Spin checks a
/// database address. `host` may be an IPv6 literal without brackets.
pub(crate) fn allows(allowed: &AllowedHosts, scheme: &str, host: &str, port: u16) -> bool {
    format!("{scheme}://{}:{port}", bracketed(host))
        .parse::<http::Uri>()
        .is_ok_and(|uri| allowed.allows(&uri))
}

/// `host` as it is written in a URL.
pub(crate) fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Why a connection was refused before any connection was made, in the words Spin uses
/// ("address … is not permitted"), with what to do about it.
pub(crate) fn not_permitted(scheme: &str, host: &str, port: u16) -> String {
    format!(
        "address {scheme}://{}:{port} is not permitted: add it to the component's \
         allowed_outbound_hosts (an internal address needs an IP or CIDR entry, or \
         `localhost` written out)",
        bracketed(host)
    )
}

/// The message for a connection that [`AllowedHosts::connect`] refused or could not make.
pub(crate) fn connect_failed(scheme: &str, host: &str, port: u16, err: &ConnectError) -> String {
    match err {
        ConnectError::Internal(_) => format!("{}: {err}", not_permitted(scheme, host, port)),
        _ => format!(
            "cannot connect to {scheme}://{}:{port}: {err}",
            bracketed(host)
        ),
    }
}

/// The message for a call stopped at the component's deadline.
pub(crate) fn past_deadline(what: &str, timeout: Duration) -> String {
    format!(
        "the {what} ran past the component's time limit of {} ms and was stopped",
        timeout.as_millis()
    )
}

/// The message for a query whose rows would not fit in the component.
pub(crate) fn too_large(cap: usize) -> String {
    format!(
        "the query's result is larger than this component may receive ({cap} bytes, its \
         memory limit); select fewer rows or smaller columns"
    )
}

/// How an outbound database unit serves its imports, for `nebula check`: the
/// `allowed_outbound_hosts` entries that can reach a `scheme` server.
pub(crate) fn serves_text(what: &str, scheme: &str, entries: &[String]) -> String {
    let reach: Vec<&str> = entries
        .iter()
        .map(String::as_str)
        .filter(|e| {
            e.split_once("://")
                .is_some_and(|(s, _)| s == scheme || s == "*")
        })
        .collect();
    if reach.is_empty() {
        format!("outbound {what}: no allowed_outbound_hosts entry for {scheme}://, so none")
    } else {
        format!(
            "outbound {what} to allowed_outbound_hosts only: {}",
            reach.join(", ")
        )
    }
}
