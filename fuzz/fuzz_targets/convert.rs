//! The HTTP-to-WIT request conversion (and WIT-to-HTTP response): any
//! request `http` accepts converts faithfully; any component response
//! converts or is refused with a message.
#![no_main]

#[path = "../../host/tests/props/checks.rs"]
#[allow(dead_code)]
mod checks;

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    method: Vec<u8>,
    uri: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    params: Vec<(String, String)>,
    seed: u64,
    now_ms: u64,
    status: u16,
    response_headers: Vec<(String, String)>,
    rowid: Option<i64>,
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    checks::request_converts_faithfully(&checks::RawRequest {
        method: &input.method,
        uri: &input.uri,
        headers: &input.headers,
        body: &input.body,
        params: input.params.clone(),
        seed: input.seed,
        now_ms: input.now_ms,
    });
    checks::response_converts_or_is_refused(
        input.status,
        input.response_headers,
        input.body,
        input.rowid,
    );
});
