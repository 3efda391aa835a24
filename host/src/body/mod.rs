//! The HTTP body types every layer passes along: a request or response
//! body is a boxed stream of bytes, whole or streamed; [`capped`] ends a
//! stream past a size or time limit.

pub mod capped;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body: whole (pure components, the host's pages) or streamed (wasi:http).
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body of these bytes.
pub fn full_body(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}
