//! `GET` anything → `200 text/plain` "Hello, world!\n".
//!
//! The smallest useful `wasi:http/incoming-handler` component, exported with
//! the `wasip2` crate's proxy world and nothing else: no SDK, so what a host
//! spends on it is the host's own cost of receiving a request, instantiating,
//! calling and sending the response. The native benchmark server answers its
//! `/hello` with the same bytes ([`BODY`] is not shared with it only because
//! this crate is a wasm cdylib; benches/native's test compares them).

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The response body.
pub const BODY: &[u8] = b"Hello, world!\n";

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[
            (
                "content-type".to_string(),
                b"text/plain; charset=utf-8".to_vec(),
            ),
            (
                "content-length".to_string(),
                BODY.len().to_string().into_bytes(),
            ),
        ])
        .expect("valid header names and values");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let out = body.write().expect("the stream is taken once");
        // A write error means the client went away: nothing left to tell it.
        // (The body is far below the 4096 bytes one blocking write may take.)
        let _ = out.blocking_write_and_flush(BODY);
        drop(out);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Hello);
