//! A `wasi:http/handler@0.3.0` component (what spin-sdk 7 builds) for
//! instance reuse and deadlines of WASI 0.3 components:
//! - every request answers `x-requests-seen: N`, the number of requests this
//!   instance has served, counted in a global: 1 on a fresh instance;
//! - a path containing `/sleep` waits `?ms=N` milliseconds (awaiting, so the
//!   instance may take other requests meanwhile) and then answers;
//! - a path containing `/spin` waits `?ms=N` milliseconds the same way and
//!   then spins forever without ever awaiting again.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use wasip3::clocks::monotonic_clock;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_future;

wasip3::http::service::export!(Reuse);

struct Reuse;

/// Requests this instance has served.
static SEEN: AtomicU64 = AtomicU64::new(0);

fn param(query: &str, name: &str) -> Option<u64> {
    query
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

impl wasip3::exports::http::handler::Guest for Reuse {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let seen = SEEN.fetch_add(1, Ordering::Relaxed) + 1;
        let target = request.get_path_with_query().unwrap_or_default();
        let wait_ns = param(&target, "ms").unwrap_or(0) * 1_000_000;
        if target.contains("/spin") {
            monotonic_clock::wait_for(wait_ns).await;
            let mut x: u64 = 0;
            loop {
                x = black_box(x.wrapping_add(1));
            }
        }
        if target.contains("/sleep") {
            monotonic_clock::wait_for(wait_ns).await;
        }
        let headers =
            Fields::from_list(&[("x-requests-seen".to_string(), seen.to_string().into_bytes())])
                .map_err(|_| ErrorCode::InternalError(Some("bad header".into())))?;
        // No trailers: the writer dropped resolves the future to `Ok(None)`.
        let (trailers_tx, trailers) = wit_future::new(|| Ok(None));
        drop(trailers_tx);
        let (response, _sent) = Response::new(headers, None, trailers);
        Ok(response)
    }
}
