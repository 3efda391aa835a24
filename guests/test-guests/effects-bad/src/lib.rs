//! Asks for writes in ways the host must refuse, so the host's tests can
//! check that a request's effects are applied all or none:
//! - `?mode=ok`: one declared write (`note`), which must be applied;
//! - `?mode=undeclared`: a declared write, then one no route declares;
//! - `?mode=constraint`: a declared write, then one that violates a CHECK.

use kit::http::{effect, query, text, ResponseExt};
use kit::{Request, Response, Table, Value};

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, _data: Vec<Table>) -> Response {
        let note = |s: &str| effect("note", vec![Value::Text(s.to_string())]);
        match query(&req, "mode").unwrap_or("undeclared") {
            "ok" => text(200, "noted").with_effect(note("fine")),
            "constraint" => text(200, "this response must never reach a client")
                .with_effect(note("first"))
                .with_effect(note("")),
            _ => text(200, "this response must never reach a client")
                .with_effect(note("before"))
                .with_effect(effect("drop_everything", Vec::new())),
        }
    }
}

kit::export!(Component with_types_in kit::bindings);
