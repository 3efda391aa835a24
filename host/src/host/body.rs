//! The request body stage: a component that wants its body whole gets it
//! read here, within `max_body_bytes` and `body_read_timeout_ms` (a slow or
//! oversized upload is answered 408 or 413 before it takes an instance
//! slot); one that streams it gets a stream that ends in an error past
//! either limit.

use std::time::Duration;

use http_body_util::BodyExt;

use super::failure::Failure;
use crate::body::capped::{CapExceeded, Capped};
use crate::executor::{Body, BoxError, Payload};
use crate::manifest::Limits;

/// The body as the component will get it.
pub async fn prepare(
    req: http::Request<Payload>,
    limits: &Limits,
    whole: bool,
) -> Result<http::Request<Payload>, Failure> {
    let max = limits.max_body_bytes;
    if crate::server::content_length(req.headers()).is_some_and(|n| n > max as u64) {
        return Err(Failure::BodyTooLarge { limit: max });
    }
    let timeout = Duration::from_millis(limits.body_read_timeout_ms);
    let (parts, body) = req.into_parts();
    let payload = match (body, whole) {
        // Already whole (the in-process API): only its size is checked.
        (Payload::Whole(b), true) if b.len() > max => {
            return Err(Failure::BodyTooLarge { limit: max })
        }
        (Payload::Whole(b), true) => Payload::Whole(b),
        (Payload::Whole(b), false) => {
            Payload::Stream(capped_stream(crate::server::full_body(b), max, timeout))
        }
        (Payload::Stream(s), true) => Payload::Whole(read_whole(s, max, timeout).await?),
        (Payload::Stream(s), false) => Payload::Stream(capped_stream(s, max, timeout)),
    };
    Ok(http::Request::from_parts(parts, payload))
}

async fn read_whole(body: Body, max: usize, timeout: Duration) -> Result<bytes::Bytes, Failure> {
    match tokio::time::timeout(timeout, collect_within(body, max)).await {
        Err(_) => Err(Failure::BodyTimeout { limit: timeout }),
        Ok(read) => read,
    }
}

/// The body's bytes, refused past `max`. (`http_body_util::Limited` does the
/// same, but its error bound trips the compiler's `Send` check of the
/// host's request future.)
async fn collect_within(mut body: Body, max: usize) -> Result<bytes::Bytes, Failure> {
    let mut whole = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| Failure::BadBody(format!("The request body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if whole.len() + data.len() > max {
                return Err(Failure::BodyTooLarge { limit: max });
            }
            whole.extend_from_slice(&data);
        }
    }
    Ok(whole.freeze())
}

/// Past `max` bytes or `timeout` the component reading the stream gets an
/// error (wasi:http's body-size or read-timeout error) rather than more bytes.
fn capped_stream(body: Body, max: usize, timeout: Duration) -> Body {
    Capped::new(body, max as u64)
        .within(timeout)
        .map_err(move |e: BoxError| {
            match e.downcast_ref::<CapExceeded>() {
                Some(CapExceeded::Size(max)) => tracing::info!(
                    "request body over max_body_bytes = {max}; the component was given an error instead"
                ),
                Some(CapExceeded::Time(_)) => tracing::info!(
                    "request body not received within body_read_timeout_ms = {}; the component was given an error instead",
                    timeout.as_millis()
                ),
                None => {}
            }
            e
        })
        .boxed_unsync()
}
