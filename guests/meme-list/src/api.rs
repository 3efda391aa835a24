//! `/api/memes`: the page `/memes` shows, as JSON.

use kit::data::Data;
use kit::http::json;
use kit::meme::Meme;
use kit::{Request, Response};
use serde::Serialize;

use crate::paging::Paging;

#[derive(Serialize)]
struct Page<'a> {
    page: i64,
    per_page: i64,
    total: i64,
    tag: Option<&'a str>,
    memes: Vec<ApiMeme<'a>>,
}

#[derive(Serialize)]
struct ApiMeme<'a> {
    id: i64,
    template: &'a str,
    top_text: &'a str,
    bottom_text: &'a str,
    votes: i64,
    tags: Vec<&'a str>,
    created_ms: i64,
    url: String,
    image: String,
}

impl<'a> From<Meme<'a>> for ApiMeme<'a> {
    fn from(meme: Meme<'a>) -> Self {
        ApiMeme {
            id: meme.id,
            template: meme.template,
            top_text: meme.top_text,
            bottom_text: meme.bottom_text,
            votes: meme.votes,
            url: meme.url(),
            image: meme.image_url(),
            tags: meme.tags,
            created_ms: meme.created_ms,
        }
    }
}

pub fn page(req: &Request, data: &Data) -> Response {
    let paging = Paging::read(req, data);
    let memes = data
        .rows("memes")
        .filter_map(|r| Meme::from_row(&r))
        .map(ApiMeme::from)
        .collect();
    let page = Page {
        page: paging.page,
        per_page: paging.per_page,
        total: paging.total,
        tag: paging.tag,
        memes,
    };
    // Serializing plain structs of strings and integers cannot fail.
    let body = serde_json::to_string(&page).unwrap_or_default();
    json(200, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{body, memes_table, request, response_header, table, TestMeme};
    use kit::Value;

    #[test]
    fn lists_the_page_as_json() {
        let tables = vec![
            table(
                "paging",
                &["page", "per_page", "tag"],
                vec![vec![Value::Integer(1), Value::Integer(12), Value::Null]],
            ),
            memes_table(
                "memes",
                &[TestMeme {
                    id: 3,
                    top: "\"q\" <x>",
                    bottom: "b",
                    votes: 2,
                    tags: "a,b",
                }],
            ),
            table("total", &["total"], vec![vec![Value::Integer(1)]]),
        ];
        let resp = page(
            &request("GET", "/api/memes", "/api/memes"),
            &Data::new(&tables),
        );
        assert_eq!(
            response_header(&resp, "content-type"),
            Some("application/json")
        );
        let v: serde_json::Value = serde_json::from_str(body(&resp)).unwrap();
        assert_eq!(v["page"], 1);
        assert_eq!(v["per_page"], 12);
        assert_eq!(v["total"], 1);
        assert!(v["tag"].is_null());
        let m = &v["memes"][0];
        assert_eq!(m["id"], 3);
        assert_eq!(m["template"], "drake");
        assert_eq!(m["top_text"], "\"q\" <x>");
        assert_eq!(m["tags"], serde_json::json!(["a", "b"]));
        assert_eq!(m["url"], "/memes/3");
        assert_eq!(m["image"], "/memes/3.svg");
        assert_eq!(m["created_ms"], 1_700_000_000_000i64 + 3 * 86_400_000);
    }
}
