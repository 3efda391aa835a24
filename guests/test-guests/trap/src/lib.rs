//! Traps on request (`?mode=panic`), so the host's tests can check that a
//! trapping call gives a 500 and leaves the next call unharmed.

use kit::http::{query, text};
use kit::{Request, Response, Table};

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, _data: Vec<Table>) -> Response {
        if query(&req, "mode") == Some("panic") {
            panic!("deliberate trap for tests");
        }
        text(200, "ok")
    }
}

kit::export!(Component with_types_in kit::bindings);
