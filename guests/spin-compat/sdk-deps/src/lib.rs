//! A Spin app (spin-sdk 7, `#[http_service]`) that calls into a component
//! dependency: its imports `nebula-test:calc/adder@0.1.0` and
//! `nebula-test:math/times@0.1.0` are satisfied by `dep-adder`, composed by
//! the host from `[component.sdk-deps.dependencies]` (spin.toml).
//!
//! | route                     | behaviour                                  |
//! |---------------------------|--------------------------------------------|
//! | `GET /deps/add?a=2&b=3`   | 200 `5`: dep-adder's `adder.add`           |
//! | `GET /deps/mul?a=4&b=5`   | 200 `20`: dep-adder's `mul`, as `times`    |
//!
//! A missing or non-integer `a` or `b` is 400; anything else 404.

use spin_sdk::http::{IntoResponse, Request, Response, StatusCode};
use spin_sdk::http_service;

spin_sdk::dependencies!();

use nebula_test::calc::adder;
use nebula_test::math::times;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let op: fn(i64, i64) -> i64 = match path.as_str() {
        "/deps/add" => adder::add,
        "/deps/mul" => times::mul,
        _ => return text(404, format!("no route in sdk-deps: {path}")),
    };
    match (int_param(&query, "a"), int_param(&query, "b")) {
        (Some(a), Some(b)) => text(200, op(a, b).to_string()),
        _ => text(400, "give integers a and b: ?a=2&b=3".to_string()),
    }
}

fn int_param(query: &str, name: &str) -> Option<i64> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn text(status: u16, body: String) -> Response<String> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "text/plain")
        .body(body)
        .expect("a valid response")
}
