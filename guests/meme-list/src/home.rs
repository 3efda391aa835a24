//! The home page: newest memes, top-rated memes and the tag cloud. The
//! markup is `kit::home` (academemes-html), which the Spin and native
//! versions of the site render with too.

use kit::data::Data;
use kit::http::html;
use kit::meme::Meme;
use kit::Response;

use crate::tag_cloud::tag_counts;

pub fn page(data: &Data) -> Response {
    let newest = memes(data, "newest");
    let top = memes(data, "top");
    html(200, kit::home::page(&newest, &top, &tag_counts(data)))
}

fn memes<'a>(data: &Data<'a>, table: &str) -> Vec<Meme<'a>> {
    data.rows(table)
        .filter_map(|r| Meme::from_row(&r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{body, memes_table, response_header, table, text, TestMeme};
    use kit::Value;

    #[test]
    fn shows_newest_top_and_tags() {
        let tables = vec![
            memes_table(
                "newest",
                &[TestMeme {
                    id: 2,
                    top: "<new>",
                    bottom: "b",
                    votes: 0,
                    tags: "x",
                }],
            ),
            memes_table(
                "top",
                &[TestMeme {
                    id: 1,
                    top: "best",
                    bottom: "b",
                    votes: 9,
                    tags: "",
                }],
            ),
            table(
                "tags",
                &["tag", "memes"],
                vec![vec![text("x"), Value::Integer(1)]],
            ),
        ];
        let resp = page(&Data::new(&tables));
        assert_eq!(resp.status, 200);
        assert_eq!(
            response_header(&resp, "content-type"),
            Some("text/html; charset=utf-8")
        );
        let html = body(&resp);
        assert!(html.contains("<h2 id=\"newest\">Newest</h2>"));
        assert!(html.contains("<h2 id=\"top\">Top rated</h2>"));
        assert!(html.contains("&lt;new&gt; / b"));
        assert!(!html.contains("<new>"));
        assert!(html.contains("href=\"/memes/1\""));
        assert!(html.contains("class=\"tag-cloud\""));
    }

    #[test]
    fn empty_site_invites_a_first_meme() {
        let tables = vec![
            memes_table("newest", &[]),
            memes_table("top", &[]),
            table("tags", &["tag", "memes"], vec![]),
        ];
        let html = body(&page(&Data::new(&tables))).to_string();
        assert!(html.contains("No memes yet"));
        assert!(!html.contains("tag-cloud"));
    }
}
