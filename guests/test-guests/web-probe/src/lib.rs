//! What the host does about the web's attacks, seen from a guest
//! (host/tests/apps/web.toml, host/tests/it/web.rs):
//! - `GET /web/headers`: an HTML page whose response also sets every
//!   header a guest may not (a `content-length: 0` over its body, hop-by-hop
//!   headers, framing); the host must drop them;
//! - `GET /web/echo`: the request headers it was given, one `name: value`
//!   per line, and the `visitor` read's row (the host's `session.id`);
//! - `POST /web/note`, `/web/api`: asks for the write `note_visitor` with
//!   the form's `text`, then 303 to /web/echo.

use kit::data::Data;
use kit::http::{effect, redirect, response, text, ResponseExt};
use kit::{Request, Response, Table, Value};

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, data: Vec<Table>) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/web/headers") => {
                let mut r = response(
                    200,
                    "text/html; charset=utf-8",
                    "<!doctype html><p>framed body</p>\n",
                );
                for (k, v) in [
                    ("content-length", "0"),
                    ("connection", "close"),
                    ("keep-alive", "timeout=1"),
                    ("transfer-encoding", "identity"),
                    ("te", "trailers"),
                    ("trailer", "x-after"),
                    ("upgrade", "websocket"),
                    ("x-frame-options", "ALLOWALL"),
                    (
                        "content-security-policy",
                        "frame-ancestors *; img-src 'none'",
                    ),
                    ("x-guest", "kept"),
                ] {
                    r.headers.push((k.into(), v.into()));
                }
                r
            }
            ("GET", "/web/echo") => {
                let mut body = String::new();
                for (k, v) in &req.headers {
                    body.push_str(&format!("{k}: {v}\n"));
                }
                let data = Data::new(&data);
                if let Some(v) = data.first("visitor").and_then(|r| r.text("visitor")) {
                    body.push_str(&format!("visitor = {v}\n"));
                }
                text(200, body)
            }
            ("POST", "/web/note" | "/web/api") => {
                let text_field = form_text(&req.body);
                redirect(303, "/web/echo")
                    .with_effect(effect("note_visitor", vec![Value::Text(text_field)]))
            }
            _ => text(404, "no such probe\n"),
        }
    }
}

/// The urlencoded body's `text` field, or "note".
fn form_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|kv| kv.strip_prefix("text="))
        .map(|v| v.replace('+', " "))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "note".to_string())
}

kit::export!(Component with_types_in kit::bindings);
