//! Meme cards: the tile that lists show for each meme.

use std::fmt::Write;

use crate::html::push_escaped;
use crate::meme::{push_tag_url, Meme};

// The cards are written straight into the page's buffer: a `format!` per
// piece made a string only to copy it, and a guest pays for every
// allocation in its own (wasm) allocator. `write!` into a `String` cannot
// fail, hence the ignored results.

/// One meme as a card: the image linking to its page, votes and tags.
pub fn card(meme: &Meme) -> String {
    let mut out = String::with_capacity(512);
    push_card(&mut out, meme);
    out
}

/// Appends [`card`] to `out`.
pub fn push_card(out: &mut String, meme: &Meme) {
    let id = meme.id;
    let mut caption = String::with_capacity(64);
    push_escaped(&mut caption, &meme.caption());
    let _ = write!(
        out,
        "<article class=\"card\">\n<a class=\"card-image\" href=\"/memes/{id}\"><img src=\"/memes/{id}.svg\" alt=\"{caption}\" width=\"600\" height=\"600\" loading=\"lazy\"></a>\n\
         <div class=\"card-body\">\n<a class=\"card-title\" href=\"/memes/{id}\">{caption}</a>\n<div class=\"card-meta\">"
    );
    push_votes(out, meme.votes);
    push_tag_list(out, &meme.tags);
    out.push_str("</div>\n</div>\n</article>\n");
}

/// A grid of cards.
pub fn grid(memes: &[Meme]) -> String {
    let mut out = String::with_capacity(32 + memes.len() * 900);
    out.push_str("<div class=\"grid\">\n");
    for meme in memes {
        push_card(&mut out, meme);
    }
    out.push_str("</div>\n");
    out
}

/// The vote count, e.g. "▲ 3" with an accessible label.
pub fn votes(votes: i64) -> String {
    let mut out = String::new();
    push_votes(&mut out, votes);
    out
}

fn push_votes(out: &mut String, votes: i64) {
    let noun = if votes == 1 { "vote" } else { "votes" };
    let _ = write!(out, "<span class=\"votes\" title=\"{votes} {noun}\"><span aria-hidden=\"true\">▲</span> {votes}<span class=\"visually-hidden\"> {noun}</span></span>");
}

/// Tags as links to the memes with that tag; "" for none.
pub fn tag_list(tags: &[&str]) -> String {
    let mut out = String::new();
    push_tag_list(&mut out, tags);
    out
}

fn push_tag_list(out: &mut String, tags: &[&str]) {
    if tags.is_empty() {
        return;
    }
    out.push_str("<ul class=\"tags\">");
    for tag in tags {
        // A URL-encoded tag has no character HTML must escape.
        out.push_str("<li><a class=\"tag\" href=\"");
        push_tag_url(out, tag);
        out.push_str("\">#");
        push_escaped(out, tag);
        out.push_str("</a></li>");
    }
    out.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meme<'a>(top: &'a str, tags: Vec<&'a str>) -> Meme<'a> {
        Meme {
            id: 9,
            template: "drake",
            template_name: None,
            top_text: top,
            bottom_text: "bottom",
            votes: 1,
            created_ms: 0,
            tags,
        }
    }

    #[test]
    fn card_links_image_and_page() {
        let html = card(&meme("top", vec!["phd"]));
        assert!(html.contains("<img src=\"/memes/9.svg\" alt=\"top / bottom\""));
        assert!(html.contains("href=\"/memes/9\""));
        assert!(html.contains("<a class=\"tag\" href=\"/memes?tag=phd\">#phd</a>"));
        assert!(html.contains("1<span class=\"visually-hidden\"> vote</span>"));
    }

    #[test]
    fn card_escapes_user_text() {
        let html = card(&meme("<script>alert(\"x\")</script>", vec!["a&b", "\"q\""]));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; / bottom"));
        assert!(html.contains("href=\"/memes?tag=a%26b\">#a&amp;b</a>"));
        assert!(html.contains("href=\"/memes?tag=%22q%22\">#&quot;q&quot;</a>"));
    }

    #[test]
    fn no_tags_no_list() {
        assert_eq!(tag_list(&[]), "");
        assert!(!card(&meme("x", vec![])).contains("class=\"tags\""));
    }
}
