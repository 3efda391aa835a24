//! `POST /memes/:id/vote`: one more vote for a meme.
//!
//! The vote itself is an effect (the manifest's `vote` write); the host
//! applies it before it sends the response. A browser's form post is
//! redirected back to the meme (303, so a reload does not vote again); a
//! client that accepts JSON gets JSON instead.

use kit::data::Data;
use kit::http::{effect, json, param, redirect, wants_json, ResponseExt};
use kit::layout::error_page;
use kit::{Request, Response, Table, Value};

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, data: Vec<Table>) -> Response {
        let Some(id) = Data::new(&data).first("meme").and_then(|r| r.int("id")) else {
            let id = param(&req, "id").unwrap_or("");
            return error_page(
                404,
                &req.path,
                &format!("There is no meme “{id}” to vote for."),
            );
        };
        let response = if wants_json(&req) {
            json(200, format!("{{\"id\":{id},\"voted\":true}}"))
        } else {
            redirect(303, &format!("/memes/{id}"))
        };
        response.with_effect(effect("vote", vec![Value::Integer(id)]))
    }
}

kit::export!(Component with_types_in kit::bindings);

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{body, memes_table, request, response_header, TestMeme};
    use kit::Guest;

    fn vote(id: &str, exists: bool, accept: Option<&str>) -> Response {
        let mut req = request("POST", "/memes/:id/vote", &format!("/memes/{id}/vote"));
        req.params = vec![("id".into(), id.into())];
        if let Some(accept) = accept {
            req.headers = vec![("accept".into(), accept.into())];
        }
        let memes = if exists {
            vec![TestMeme {
                id: 7,
                top: "t",
                bottom: "b",
                votes: 1,
                tags: "",
            }]
        } else {
            vec![]
        };
        Component::handle(req, vec![memes_table("meme", &memes)])
    }

    #[test]
    fn form_post_redirects_back_with_the_vote() {
        let resp = vote("7", true, Some("text/html"));
        assert_eq!(resp.status, 303);
        assert_eq!(response_header(&resp, "location"), Some("/memes/7"));
        assert_eq!(resp.effects, [effect("vote", vec![Value::Integer(7)])]);
    }

    #[test]
    fn json_client_gets_json() {
        let resp = vote("7", true, Some("application/json"));
        assert_eq!(resp.status, 200);
        assert_eq!(
            response_header(&resp, "content-type"),
            Some("application/json")
        );
        assert_eq!(body(&resp), "{\"id\":7,\"voted\":true}");
        assert_eq!(resp.effects, [effect("vote", vec![Value::Integer(7)])]);
    }

    #[test]
    fn unknown_meme_is_404_without_effects() {
        let resp = vote("<9>", false, None);
        assert_eq!(resp.status, 404);
        assert!(resp.effects.is_empty());
        assert!(body(&resp).contains("“&lt;9&gt;”"));
    }
}
