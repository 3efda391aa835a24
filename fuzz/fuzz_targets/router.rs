//! The router: any routes, method and path; consistent matches, and every
//! filled-in pattern found.
#![no_main]

#[path = "../../host/tests/props/checks.rs"]
#[allow(dead_code)]
mod checks;

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    routes: Vec<(String, Vec<Method>)>,
    method: Method,
    path: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, arbitrary::Arbitrary)]
enum Method {
    Get,
    Head,
    Post,
    Delete,
    Other(String),
}

impl Method {
    fn name(&self) -> String {
        match self {
            Method::Get => "GET".into(),
            Method::Head => "HEAD".into(),
            Method::Post => "POST".into(),
            Method::Delete => "DELETE".into(),
            Method::Other(m) => m.clone(),
        }
    }
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let defs: Vec<(String, Vec<String>)> = input
        .routes
        .iter()
        .map(|(p, ms)| (p.clone(), ms.iter().map(Method::name).collect()))
        .collect();
    checks::router_matches_consistently(&defs, &input.method.name(), &input.path);
    if let Some((pattern, _)) = input.routes.first() {
        checks::router_finds_a_filled_in_pattern(pattern, &input.values);
    }
});
