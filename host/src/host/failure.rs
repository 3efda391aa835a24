//! Why a request was not answered by its component, as one typed error for
//! every stage of the request path, and the one place that says what each
//! costs the client: its status, its page and its log line.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;

use super::admission::Refused;
use crate::data::{ReadError, WriteError};
use crate::server::pages;

/// What stopped a request, with what its log line needs.
#[derive(Debug)]
pub enum Failure {
    // Route
    NotFound {
        path: String,
    },
    MethodNotAllowed {
        allow: Vec<String>,
    },
    // Admit
    CrossSite {
        route: String,
        method: String,
        why: String,
        hint: String,
    },
    RateLimited {
        route: String,
        client: std::net::IpAddr,
        limit: String,
        retry_after_secs: u64,
    },
    BodyTooLarge {
        limit: usize,
    },
    BodyTimeout {
        limit: Duration,
    },
    BadBody(String),
    Busy {
        route: String,
        why: Refused,
        waiting: usize,
        retry_after_secs: u64,
    },
    Unavailable {
        component: String,
        error: anyhow::Error,
    },
    /// An `Idempotency-Key` used before with a different request.
    KeyReused,
    // Read
    ReadFailed {
        route: String,
        error: ReadError,
    },
    // Call
    Timeout {
        component: String,
        timeout: Duration,
    },
    Trapped {
        component: String,
        message: String,
    },
    BadResponse {
        component: String,
        message: String,
    },
    // Check the response
    TooLarge {
        component: String,
        size: u64,
        limit: usize,
        hint: String,
    },
    // Apply effects
    WriteFailed {
        component: String,
        error: WriteError,
    },
}

impl Failure {
    /// Logs the failure with the request id and answers it.
    pub fn respond(self, id: &str) -> http::Response<Bytes> {
        self.log(id);
        self.page(id)
    }

    fn page(&self, id: &str) -> http::Response<Bytes> {
        use Failure::*;
        let error = |status, message| pages::error(status, id, message);
        match self {
            NotFound { path } => pages::not_found(path),
            MethodNotAllowed { allow } => {
                let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
                pages::method_not_allowed(&allow)
            }
            CrossSite { .. } => error(
                StatusCode::FORBIDDEN,
                "This request came from another site and was refused; nothing was changed.",
            ),
            RateLimited {
                retry_after_secs, ..
            } => retry_after(
                error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests from your address; please wait a little and try again.",
                ),
                *retry_after_secs,
            ),
            BodyTooLarge { limit } => pages::payload_too_large(*limit),
            BodyTimeout { limit } => pages::request_timeout(*limit),
            BadBody(message) => pages::bad_request(message),
            Busy {
                retry_after_secs, ..
            } => retry_after(
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is busy; please try again in a moment.",
                ),
                *retry_after_secs,
            ),
            Unavailable { .. } => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The app could not be loaded.",
            ),
            KeyReused => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This Idempotency-Key was already used for a different request; use a new key for a new request.",
            ),
            ReadFailed {
                error: ReadError::Unavailable(_),
                ..
            }
            | WriteFailed {
                error: WriteError::Unavailable(_),
                ..
            } => retry_after(
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database cannot be reached right now; please try again in a moment.",
                ),
                1,
            ),
            ReadFailed { .. } => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The data for this page could not be read.",
            ),
            Timeout { .. } => error(
                StatusCode::GATEWAY_TIMEOUT,
                "The component took too long and was stopped.",
            ),
            Trapped { .. } => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The component failed while handling this request.",
            ),
            BadResponse { .. } => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The component returned a response that is not valid HTTP.",
            ),
            TooLarge { .. } => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The component's response was larger than this server allows.",
            ),
            WriteFailed {
                error: WriteError::StorageFull(_),
                ..
            } => error(
                StatusCode::INSUFFICIENT_STORAGE,
                "This site has no room left for what this request asked to save; nothing was written.",
            ),
            WriteFailed { .. } => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The changes this request asked for could not be saved; nothing was written.",
            ),
        }
    }

    /// For a failure of the host after the component answered (its
    /// response over `max_response_bytes`, its writes refused): the status
    /// answered and why, as a recording keeps them.
    pub(super) fn after_call(&self) -> Option<(u16, String)> {
        let why = match self {
            Failure::TooLarge {
                component,
                size,
                limit,
                ..
            } => format!(
                "component {component:?}: response of {size} bytes over max_response_bytes {limit}"
            ),
            Failure::WriteFailed { component, error } => {
                format!("component {component:?}: {error}")
            }
            _ => return None,
        };
        Some((self.page("").status().as_u16(), why))
    }

    fn log(&self, id: &str) {
        use Failure::*;
        match self {
            NotFound { .. } | MethodNotAllowed { .. } | BodyTooLarge { .. } => {}
            CrossSite {
                route,
                method,
                why,
                hint,
            } => tracing::info!(
                request = id,
                route = %route,
                "cross-site {method} refused with 403: {why} ({hint})"
            ),
            RateLimited {
                route,
                client,
                limit,
                retry_after_secs,
            } => tracing::info!(
                request = id,
                route = %route,
                %client,
                "over rate_limit = {limit}; answered 429, retry after {retry_after_secs} s"
            ),
            BodyTimeout { limit } => tracing::info!(
                request = id,
                timeout_ms = limit.as_millis() as u64,
                "request body not received in time; answered 408"
            ),
            BadBody(message) => tracing::info!(request = id, "answered 400: {message}"),
            KeyReused => tracing::info!(
                request = id,
                "Idempotency-Key reused for a different request; answered 422"
            ),
            Busy {
                route,
                why,
                waiting,
                ..
            } => tracing::warn!(
                request = id,
                route = %route,
                waiting,
                "all instance slots busy ({why:?}); answered 503"
            ),
            Unavailable { component, error } => tracing::error!(
                request = id,
                component = %component,
                "cannot load the component: {error:#}"
            ),
            ReadFailed {
                route,
                error: error @ ReadError::Unavailable(_),
            } => tracing::warn!(request = id, route = %route, "answered 503: {error}"),
            ReadFailed { route, error } => {
                tracing::error!(request = id, route = %route, "answered 500: {error}")
            }
            Timeout { component, timeout } => tracing::error!(
                request = id,
                component = %component,
                timeout_ms = timeout.as_millis() as u64,
                "deadline exceeded; the call was stopped"
            ),
            Trapped { component, message } => {
                tracing::error!(request = id, component = %component, "trapped: {message}")
            }
            BadResponse { component, message } => {
                tracing::error!(request = id, component = %component, "bad response: {message}")
            }
            TooLarge {
                component,
                size,
                limit,
                hint,
            } => tracing::error!(
                request = id,
                component = %component,
                "response of {size} bytes is over max_response_bytes = {limit}; answered 500 and applied no writes ({hint})"
            ),
            WriteFailed {
                component,
                error: error @ WriteError::Unavailable(_),
            } => tracing::warn!(
                request = id,
                component = %component,
                "answered 503, nothing written (or, if the commit's answer was lost, a retry with the same Idempotency-Key is safe): {error}"
            ),
            WriteFailed { component, error } => {
                tracing::error!(request = id, component = %component, "writes refused: {error}")
            }
        }
    }
}

fn retry_after(mut r: http::Response<Bytes>, secs: u64) -> http::Response<Bytes> {
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    r
}
