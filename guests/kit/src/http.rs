//! Reading requests and building responses.

use crate::{Effect, Request, Response, Value};

pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const SVG: &str = "image/svg+xml; charset=utf-8";

/// The first query-string value named `name`.
pub fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    lookup(&req.query, name)
}

/// The value the route pattern bound to `:name`.
pub fn param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    lookup(&req.params, name)
}

/// The first header named `name`; the host gives header names in lower case.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether the client asked for JSON (`accept: application/json`).
pub fn wants_json(req: &Request) -> bool {
    header(req, "accept").is_some_and(|accept| accept.contains("application/json"))
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A response with `status`, one content-type header and `body`.
pub fn response(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    Response {
        status,
        headers: vec![("content-type".to_string(), content_type.to_string())],
        body: body.into(),
        effects: Vec::new(),
    }
}

pub fn html(status: u16, body: String) -> Response {
    response(status, HTML, body)
}

pub fn json(status: u16, body: String) -> Response {
    response(status, JSON, body)
}

pub fn text(status: u16, body: impl Into<String>) -> Response {
    response(status, TEXT, body.into())
}

/// A redirect (302, 303, …) to `location`, with no body.
pub fn redirect(status: u16, location: &str) -> Response {
    Response {
        status,
        headers: vec![("location".to_string(), location.to_string())],
        body: Vec::new(),
        effects: Vec::new(),
    }
}

/// An effect asking for the manifest's write `write` with `args` bound to ?1, ?2, ….
pub fn effect(write: &str, args: Vec<Value>) -> Effect {
    Effect {
        write: write.to_string(),
        args,
    }
}

/// Builder-style additions to a [`Response`].
pub trait ResponseExt {
    /// Adds a header (names are written in lower case, as HTTP/2 needs).
    fn with_header(self, name: &str, value: &str) -> Self;
    fn with_effect(self, effect: Effect) -> Self;
}

impl ResponseExt for Response {
    fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    fn with_effect(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{request, response_header};

    #[test]
    fn reads_query_params_and_headers() {
        let mut req = request("GET", "/memes/:id", "/memes/3");
        req.query = vec![("tag".into(), "phd".into()), ("tag".into(), "x".into())];
        req.params = vec![("id".into(), "3".into())];
        req.headers = vec![("accept".into(), "text/html, application/json;q=0.9".into())];
        assert_eq!(query(&req, "tag"), Some("phd"));
        assert_eq!(query(&req, "page"), None);
        assert_eq!(param(&req, "id"), Some("3"));
        assert_eq!(
            header(&req, "Accept"),
            Some("text/html, application/json;q=0.9")
        );
        assert!(wants_json(&req));
    }

    #[test]
    fn builds_responses() {
        let resp = redirect(303, "/memes/1")
            .with_header("Cache-Control", "no-store")
            .with_effect(effect("vote", vec![Value::Integer(1)]));
        assert_eq!(resp.status, 303);
        assert_eq!(response_header(&resp, "location"), Some("/memes/1"));
        assert_eq!(response_header(&resp, "cache-control"), Some("no-store"));
        assert_eq!(resp.effects[0].write, "vote");
        assert_eq!(
            response_header(&html(200, String::new()), "content-type"),
            Some(HTML)
        );
    }
}
