//! The in-process API, for tests, benchmarks and embedding: an app loaded
//! into a [`Host`] and handed whole requests, without a listener.

pub use crate::host::{Host as App, HostOptions as AppOptions};

/// A request with its body read.
pub type HttpRequest = http::Request<bytes::Bytes>;
/// A response with its body collected.
pub type HttpResponse = http::Response<bytes::Bytes>;
