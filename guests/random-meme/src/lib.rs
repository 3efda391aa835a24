//! `/random`: a redirect to a meme picked with the request's seed.
//!
//! The pick is made in SQL (the read `random_pick`, app.toml), by id range
//! with the seed the host binds as `request.seed`, so it costs a few index
//! lookups however many memes there are; the choice is random for visitors
//! yet reproducible given the request.

use kit::data::Data;
use kit::http::{redirect, ResponseExt};
use kit::{Request, Response, Table};

struct Component;

impl kit::Guest for Component {
    fn handle(_req: Request, data: Vec<Table>) -> Response {
        let picked = Data::new(&data)
            .first("random_pick")
            .and_then(|r| r.int("id"));
        let location = match picked {
            Some(id) => format!("/memes/{id}"),
            None => "/".to_string(),
        };
        // Each visit should land somewhere new, so nobody may cache this.
        redirect(302, &location).with_header("cache-control", "no-store")
    }
}

kit::export!(Component with_types_in kit::bindings);

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{request, response_header, table};
    use kit::{Guest, Value};

    fn visit(picked: &[i64]) -> Response {
        let rows = picked.iter().map(|&id| vec![Value::Integer(id)]).collect();
        Component::handle(
            request("GET", "/random", "/random"),
            vec![table("random_pick", &["id"], rows)],
        )
    }

    #[test]
    fn redirects_to_the_picked_meme() {
        let resp = visit(&[8]);
        assert_eq!(resp.status, 302);
        assert_eq!(response_header(&resp, "location"), Some("/memes/8"));
        assert_eq!(response_header(&resp, "cache-control"), Some("no-store"));
    }

    #[test]
    fn no_memes_goes_home() {
        let resp = visit(&[]);
        assert_eq!(resp.status, 302);
        assert_eq!(response_header(&resp, "location"), Some("/"));
    }
}
