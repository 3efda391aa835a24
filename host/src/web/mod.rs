//! The web's own attacks, answered by the host for every app: cross-site
//! requests ([`csrf`]), one visitor per browser ([`session`]), per-client
//! rate limits ([`rate_limit`]) and response headers ([`security_headers`]).

pub mod csrf;
pub mod rate_limit;
pub mod security_headers;
pub mod session;
