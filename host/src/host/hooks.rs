//! Hooks around the call, for what sits in front of components without
//! being one: a response cache answers before the call, a recorder keeps
//! what the call saw and gave. The host runs them in the order they were
//! added; with none (today's default) the request path pays nothing.

use bytes::Bytes;

use crate::contract::Table;
use crate::executor::Outcome;

/// What a hook sees of a call: the request, its route and the rows its
/// reads gave the component.
pub struct CallView<'a> {
    pub id: &'a str,
    pub component: &'a str,
    pub route: &'a str,
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a http::HeaderMap,
    pub seed: u64,
    pub now_ms: u64,
    pub data: &'a [Table],
}

pub trait CallHook: Send + Sync + 'static {
    /// Before the call: a response here is sent instead of calling the
    /// component (a cache hit); no effects are applied for it.
    fn before(&self, _call: &CallView<'_>) -> Option<http::Response<Bytes>> {
        None
    }

    /// After a call that answered, before its response is checked and its
    /// effects applied.
    fn after(&self, _call: &CallView<'_>, _outcome: &Outcome) {}
}
