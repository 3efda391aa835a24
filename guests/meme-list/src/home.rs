//! The home page: newest memes, top-rated memes and the tag cloud.

use kit::card::grid;
use kit::data::Data;
use kit::http::html;
use kit::layout::{self, SITE_NAME};
use kit::meme::Meme;
use kit::Response;

use crate::tag_cloud::tag_cloud;

pub fn page(data: &Data) -> Response {
    let newest = memes(data, "newest");
    let top = memes(data, "top");
    let mut main = String::from(concat!(
        "<section class=\"hero\">\n",
        "<h1>Academemes</h1>\n",
        "<p class=\"lede\">Memes from the ivory tower: peer review, deadlines, ",
        "the thesis that is almost done. Every page here is computed by a pure ",
        "WebAssembly function.</p>\n",
        "<p class=\"actions\"><a class=\"button\" href=\"/new\">Make a meme</a> ",
        "<a class=\"button button-secondary\" href=\"/random\">Show me a random one</a></p>\n",
        "</section>\n",
    ));
    if newest.is_empty() {
        main.push_str(concat!(
            "<section class=\"empty\">\n<h2>No memes yet</h2>\n",
            "<p>The literature on this topic is thin. <a href=\"/new\">Be the first to publish</a>.</p>\n",
            "</section>\n",
        ));
    } else {
        main.push_str("<section aria-labelledby=\"newest\">\n<div class=\"section-head\"><h2 id=\"newest\">Newest</h2><a href=\"/memes\">All memes →</a></div>\n");
        main.push_str(&grid(&newest));
        main.push_str("</section>\n");
        main.push_str("<section aria-labelledby=\"top\">\n<div class=\"section-head\"><h2 id=\"top\">Top rated</h2></div>\n");
        main.push_str(&grid(&top));
        main.push_str("</section>\n");
    }
    if let Some(cloud) = tag_cloud(data, None) {
        main.push_str("<section aria-labelledby=\"tags\">\n<div class=\"section-head\"><h2 id=\"tags\">Tags</h2></div>\n");
        main.push_str(&cloud);
        main.push_str("\n</section>\n");
    }
    html(200, layout::page(SITE_NAME, "/", &main))
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
