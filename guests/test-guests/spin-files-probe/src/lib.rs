//! A `wasi:http/incoming-handler@0.2` component (what Spin SDK 5 builds)
//! that reports what it can reach, for host/tests/it/spin_sandbox.rs:
//! - `?list`: every file under `/`, recursively, one absolute path a line,
//!   sorted (`error: …` if `/` cannot be read);
//! - `?open=PATH`: 200 `found N bytes`, 404 `not found`, or 403 `error: …`;
//! - `?fetch=URL`: a GET to URL through `wasi:http/outgoing-handler`;
//!   200 with `status=N` and `location=…` lines, then the body; or 502
//!   `error: CODE` with wasi:http's error code (e.g. `ErrorCode::HttpRequestDenied`).

use std::io::ErrorKind;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasip2::io::streams::StreamError;

struct Probe;

fn respond(out: ResponseOutparam, status: u16, body: &str) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the stream is taken once");
    for piece in body.as_bytes().chunks(4096) {
        if stream.blocking_write_and_flush(piece).is_err() {
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

fn list(dir: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = format!(
            "{}/{}",
            dir.trim_end_matches('/'),
            entry.file_name().to_string_lossy()
        );
        if entry.file_type()?.is_dir() {
            list(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn open(path: &str) -> (u16, String) {
    match std::fs::read(path) {
        Ok(bytes) => (200, format!("found {} bytes", bytes.len())),
        Err(e) if e.kind() == ErrorKind::NotFound => (404, "not found".into()),
        Err(e) => (403, format!("error: {e}")),
    }
}

fn read_all(response: &IncomingResponse) -> String {
    let Ok(body) = response.consume() else {
        return String::new();
    };
    let Ok(stream) = body.stream() else {
        return String::new();
    };
    let mut got = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(bytes) => got.extend(bytes),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                got.extend(format!("\n(body error: {})", e.to_debug_string()).into_bytes());
                break;
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn fetch(url: &str) -> (u16, String) {
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((_, rest)) => (Scheme::Http, rest),
        None => return (400, "error: not a URL".into()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let set = request.set_method(&Method::Get).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !set {
        return (400, format!("error: cannot address {url}"));
    }
    let body = request.body().expect("the body is taken once");
    let _ = OutgoingBody::finish(body, None);
    let pending = match outgoing_handler::handle(request, None) {
        Ok(p) => p,
        Err(e) => return (502, format!("error: {e:?}")),
    };
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => {
            let location = response
                .headers()
                .get("location")
                .first()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let status = response.status();
            let body = read_all(&response);
            (200, format!("status={status}\nlocation={location}\n{body}"))
        }
        Some(Ok(Err(e))) => (502, format!("error: {e:?}")),
        _ => (502, "error: no response".into()),
    }
}

impl Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let (status, body) = if query == "list" {
            let mut found = Vec::new();
            match list("/", &mut found) {
                Ok(()) => {
                    found.sort();
                    (200, found.join("\n"))
                }
                Err(e) => (200, format!("error: {e}")),
            }
        } else if let Some(path) = query.strip_prefix("open=") {
            open(path)
        } else if let Some(url) = query.strip_prefix("fetch=") {
            fetch(url)
        } else {
            (400, "expected ?list, ?open=PATH or ?fetch=URL".into())
        };
        respond(out, status, &body);
    }
}

wasip2::http::proxy::export!(Probe);
