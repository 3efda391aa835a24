//! The home page (`/`): newest memes, top-rated memes and the tag cloud.
//! Nebula's pure `meme-list`, the Spin SDK version (examples/academemes-spin)
//! and the native benchmark server all render it here, from the rows of the
//! same three reads (`newest`, `top`, `tags` in app.toml).

use crate::card::grid;
use std::fmt::Write;

use crate::html::push_escaped;
use crate::layout::{self, SITE_NAME};
use crate::meme::{push_tag_url, Meme};

/// One row of the `tags` read: a tag and how many memes carry it.
pub type TagCount<'a> = (&'a str, i64);

/// The whole page (sent with status 200, `content-type: text/html; charset=utf-8`).
pub fn page(newest: &[Meme], top: &[Meme], tags: &[TagCount]) -> String {
    let mut main = String::with_capacity(12 << 10);
    main.push_str(concat!(
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
        main.push_str(&grid(newest));
        main.push_str("</section>\n");
        main.push_str("<section aria-labelledby=\"top\">\n<div class=\"section-head\"><h2 id=\"top\">Top rated</h2></div>\n");
        main.push_str(&grid(top));
        main.push_str("</section>\n");
    }
    if let Some(cloud) = tag_cloud(tags, None) {
        main.push_str("<section aria-labelledby=\"tags\">\n<div class=\"section-head\"><h2 id=\"tags\">Tags</h2></div>\n");
        main.push_str(&cloud);
        main.push_str("\n</section>\n");
    }
    layout::page(SITE_NAME, "/", &main)
}

const MIN_REM: f32 = 0.9;
const MAX_REM: f32 = 2.0;

/// Every tag as a link, sized by how many memes carry it, or `None` if there
/// are no tags yet. `current` is marked as the page being shown.
pub fn tag_cloud(tags: &[TagCount], current: Option<&str>) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let min = tags.iter().map(|t| t.1).min().unwrap_or(0);
    let max = tags.iter().map(|t| t.1).max().unwrap_or(0);
    let mut out = String::from("<ul class=\"tag-cloud\">");
    for &(tag, count) in tags {
        let weight = if max > min {
            (count - min) as f32 / (max - min) as f32
        } else {
            0.5
        };
        let rem = MIN_REM + weight * (MAX_REM - MIN_REM);
        let noun = if count == 1 { "meme" } else { "memes" };
        // A URL-encoded tag has no character HTML must escape.
        out.push_str("<li><a href=\"");
        push_tag_url(&mut out, tag);
        let _ = write!(
            out,
            "\" style=\"font-size:{rem:.2}rem\" title=\"{count} {noun}\""
        );
        if current == Some(tag) {
            out.push_str(" aria-current=\"page\"");
        }
        out.push_str(">#");
        push_escaped(&mut out, tag);
        out.push_str("</a></li>");
    }
    out.push_str("</ul>");
    Some(out)
}

/// The JSON body of a successful vote for a client that accepts JSON.
pub fn vote_json(id: i64) -> String {
    format!("{{\"id\":{id},\"voted\":true}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meme<'a>(id: i64, top: &'a str, tags: Vec<&'a str>) -> Meme<'a> {
        Meme {
            id,
            template: "drake",
            template_name: None,
            top_text: top,
            bottom_text: "b",
            votes: 0,
            created_ms: 0,
            tags,
        }
    }

    #[test]
    fn shows_newest_top_and_tags() {
        let html = page(
            &[meme(2, "<new>", vec!["x"])],
            &[meme(1, "best", vec![])],
            &[("x", 1)],
        );
        assert!(html.contains("<h2 id=\"newest\">Newest</h2>"));
        assert!(html.contains("<h2 id=\"top\">Top rated</h2>"));
        assert!(html.contains("&lt;new&gt; / b"));
        assert!(!html.contains("<new>"));
        assert!(html.contains("href=\"/memes/1\""));
        assert!(html.contains("class=\"tag-cloud\""));
        assert!(html.contains("<a href=\"/\" aria-current=\"page\">Home</a>"));
    }

    #[test]
    fn empty_site_invites_a_first_meme() {
        let html = page(&[], &[], &[]);
        assert!(html.contains("No memes yet"));
        assert!(!html.contains("tag-cloud"));
    }

    #[test]
    fn cloud_sizes_by_count_and_escapes() {
        let html = tag_cloud(&[("<b>", 1), ("phd", 5)], Some("phd")).unwrap();
        assert!(html.contains(
            "<a href=\"/memes?tag=%3Cb%3E\" style=\"font-size:0.90rem\" title=\"1 meme\">#&lt;b&gt;</a>"
        ));
        assert!(html.contains(
            "<a href=\"/memes?tag=phd\" style=\"font-size:2.00rem\" title=\"5 memes\" aria-current=\"page\">#phd</a>"
        ));
        let even = tag_cloud(&[("a", 2), ("b", 2)], None).unwrap();
        assert_eq!(even.matches("font-size:1.45rem").count(), 2);
    }

    #[test]
    fn vote_json_names_the_meme() {
        assert_eq!(vote_json(7), "{\"id\":7,\"voted\":true}");
    }
}
