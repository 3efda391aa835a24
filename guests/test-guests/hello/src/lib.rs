//! A trivial pure function, for benchmarks and smoke tests: a greeting, then
//! the route's params and the query string as `k=v` lines.

use kit::http::text;
use kit::{Request, Response, Table};

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, _data: Vec<Table>) -> Response {
        let mut body = String::from("hello from a pure function\n");
        for (k, v) in req.params.iter().chain(&req.query) {
            body.push_str(k);
            body.push('=');
            body.push_str(v);
            body.push('\n');
        }
        text(200, body)
    }
}

kit::export!(Component with_types_in kit::bindings);

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{body, request, response_header};
    use kit::Guest;

    #[test]
    fn greets_and_echoes() {
        let mut req = request("GET", "/hello/:name", "/hello/ada");
        req.params = vec![("name".into(), "ada".into())];
        req.query = vec![("x".into(), "1".into())];
        let resp = Component::handle(req, vec![]);
        assert_eq!(resp.status, 200);
        assert_eq!(
            response_header(&resp, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(body(&resp), "hello from a pure function\nname=ada\nx=1\n");
    }
}
