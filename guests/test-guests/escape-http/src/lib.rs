//! A pure component that imports `wasi:http/outgoing-handler`.
//!
//! It exists so that `nebula check` (and loading) can be tested to reject a
//! pure component that imports anything outside the closed WASI set. Were it
//! ever run, it would try a request to a port where nothing listens.

use kit::http::text;
use kit::{Request, Response, Table};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

struct Component;

impl kit::Guest for Component {
    fn handle(_req: Request, _data: Vec<Table>) -> Response {
        text(200, try_outgoing_request())
    }
}

fn try_outgoing_request() -> String {
    let request = OutgoingRequest::new(Fields::new());
    // The setters only fail on malformed values; these are constants.
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some("127.0.0.1:9"));
    let _ = request.set_path_with_query(Some("/"));
    match outgoing_handler::handle(request, None) {
        Ok(_) => "ok: outgoing request started".to_string(),
        Err(e) => format!("error: {e}"),
    }
}

kit::export!(Component with_types_in kit::bindings);
