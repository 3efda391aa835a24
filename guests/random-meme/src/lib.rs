//! `/random`: a redirect to a meme picked with the request's seed.
//!
//! The host chooses the seed, so the choice is random for visitors yet
//! reproducible given the request.

use kit::data::Data;
use kit::http::{redirect, ResponseExt};
use kit::{Request, Response, Table};

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, data: Vec<Table>) -> Response {
        let ids: Vec<i64> = Data::new(&data)
            .rows("meme_ids")
            .filter_map(|r| r.int("id"))
            .collect();
        let location = match pick(&ids, req.seed) {
            Some(id) => format!("/memes/{id}"),
            None => "/".to_string(),
        };
        // Each visit should land somewhere new, so nobody may cache this.
        redirect(302, &location).with_header("cache-control", "no-store")
    }
}

/// `ids[seed % len]`, or `None` if there are no memes.
fn pick(ids: &[i64], seed: u64) -> Option<i64> {
    if ids.is_empty() {
        return None;
    }
    let index = (seed % ids.len() as u64) as usize;
    Some(ids[index])
}

kit::export!(Component with_types_in kit::bindings);

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{ids_table, request, response_header};
    use kit::Guest;

    fn visit(ids: &[i64], seed: u64) -> Response {
        let mut req = request("GET", "/random", "/random");
        req.seed = seed;
        Component::handle(req, vec![ids_table(ids)])
    }

    #[test]
    fn picks_by_seed_modulo_count() {
        let resp = visit(&[4, 8, 15], 7);
        assert_eq!(resp.status, 302);
        assert_eq!(response_header(&resp, "location"), Some("/memes/8"));
        assert_eq!(response_header(&resp, "cache-control"), Some("no-store"));
        assert_eq!(
            response_header(&visit(&[4, 8, 15], u64::MAX), "location"),
            Some("/memes/4")
        );
    }

    #[test]
    fn no_memes_goes_home() {
        let resp = visit(&[], 3);
        assert_eq!(resp.status, 302);
        assert_eq!(response_header(&resp, "location"), Some("/"));
    }
}
