//! Asks for a write that no route declares, so the host's tests can check
//! that undeclared writes are refused (and nothing is applied).

use kit::http::{effect, text, ResponseExt};
use kit::{Request, Response, Table};

struct Component;

impl kit::Guest for Component {
    fn handle(_req: Request, _data: Vec<Table>) -> Response {
        text(200, "this response must never reach a client")
            .with_effect(effect("drop_everything", Vec::new()))
    }
}

kit::export!(Component with_types_in kit::bindings);
