//! A `wasi:http/incoming-handler@0.2` component (what Spin SDK 5 builds)
//! that misbehaves on request, for the limits of Spin apps:
//! - `?mode=loop` spins forever without ever awaiting, which must neither
//!   hold one of the host's tokio workers nor outlive the request's deadline;
//! - `?mode=big&n=N` streams N bytes with no Content-Length;
//! - `?mode=declared&n=N` declares Content-Length N and writes N bytes;
//! - `?mode=read` reads the request body and says how many bytes it got,
//!   or what error the host gave it and after how many bytes;
//! - `?mode=memory` reserves memory 1 MiB at a time until the cap refuses,
//!   and answers how many MiB it got;
//! - `?mode=alloc` allocates and touches memory without end;
//! - `?mode=frame` answers HTML with `X-Frame-Options: ALLOWALL` and a CSP
//!   allowing any frame ancestor, which the host must not pass on;
//! - `?mode=sleep` sleeps for an hour before answering: it waits on a
//!   `subscribe-duration` pollable and runs no code, so only a wall-clock
//!   deadline can stop it;
//! - `?mode=print&tag=T` writes `stdout says T` to stdout and `stderr says T`
//!   to stderr, which the host must log with the request's id;
//! - `?mode=noanswer` returns without ever setting the response;
//! - `?mode=panic` traps before setting the response;
//!
//! any other request answers `ok`.

use std::hint::black_box;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::StreamError;

struct Component;

fn param(query: &str, name: &str) -> Option<u64> {
    query
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn respond(
    out: ResponseOutparam,
    status: u16,
    headers: Fields,
    chunks: impl Iterator<Item = Vec<u8>>,
) {
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let body = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("the stream is taken once");
    for chunk in chunks {
        // At most 4 KiB per blocking write; the host may cut the stream off,
        // and then writing stops.
        for piece in chunk.chunks(4096) {
            if stream.blocking_write_and_flush(piece).is_err() {
                return;
            }
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

fn read_body(request: IncomingRequest) -> String {
    let body = request.consume().expect("the body is taken once");
    let stream = body.stream().expect("the stream is taken once");
    let mut got = 0usize;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(bytes) => got += bytes.len(),
            Err(StreamError::Closed) => return format!("read {got} bytes\n"),
            Err(StreamError::LastOperationFailed(e)) => {
                return format!("error after {got} bytes: {}\n", e.to_debug_string())
            }
        }
    }
}

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let query = request.path_with_query().unwrap_or_default();
        let n = param(&query, "n").unwrap_or(0) as usize;
        let chunks = move || {
            (0..n.div_ceil(16 * 1024)).map(move |i| vec![b'x'; (n - i * 16 * 1024).min(16 * 1024)])
        };
        if query.contains("mode=loop") {
            let mut x: u64 = 0;
            loop {
                x = black_box(x.wrapping_add(1));
            }
        } else if query.contains("mode=memory") {
            // Room for the chunk list up front, so only chunks can fail.
            let mut hoard: Vec<Vec<u8>> = Vec::with_capacity(4096);
            loop {
                let mut chunk = Vec::new();
                if chunk.try_reserve_exact(1 << 20).is_err() {
                    break;
                }
                hoard.push(black_box(chunk));
            }
            let got = format!("{}\n", hoard.len());
            respond(out, 200, Fields::new(), std::iter::once(got.into_bytes()));
        } else if query.contains("mode=alloc") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touch every page, so the memory is really used.
                hoard.push(vec![1u8; 1 << 20]);
                black_box(&hoard);
            }
        } else if query.contains("mode=sleep") {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            respond(
                out,
                200,
                Fields::new(),
                std::iter::once(b"slept\n".to_vec()),
            );
        } else if query.contains("mode=big") {
            respond(out, 200, Fields::new(), chunks());
        } else if query.contains("mode=declared") {
            let headers =
                Fields::from_list(&[("content-length".to_string(), n.to_string().into_bytes())])
                    .expect("a valid header");
            respond(out, 200, headers, chunks());
        } else if query.contains("mode=frame") {
            // Framing is the host's call: both must be dropped or trimmed.
            let headers = Fields::from_list(&[
                ("x-frame-options".to_string(), b"ALLOWALL".to_vec()),
                (
                    "content-security-policy".to_string(),
                    b"frame-ancestors *; img-src 'none'".to_vec(),
                ),
                ("content-type".to_string(), b"text/html".to_vec()),
            ])
            .expect("valid headers");
            respond(
                out,
                200,
                headers,
                std::iter::once(b"<p>frame me</p>\n".to_vec()),
            );
        } else if query.contains("mode=print") {
            let tag = query
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("tag="))
                .unwrap_or("-");
            println!("stdout says {tag}");
            eprintln!("stderr says {tag}");
            respond(
                out,
                200,
                Fields::new(),
                std::iter::once(b"printed\n".to_vec()),
            );
        } else if query.contains("mode=noanswer") {
            drop(out);
        } else if query.contains("mode=panic") {
            panic!("the guest panics before it answers");
        } else if query.contains("mode=read") {
            let said = read_body(request);
            respond(out, 200, Fields::new(), std::iter::once(said.into_bytes()));
        } else {
            respond(out, 200, Fields::new(), std::iter::once(b"ok\n".to_vec()));
        }
    }
}

wasip2::http::proxy::export!(Component);
