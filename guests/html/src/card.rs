//! Meme cards: the tile that lists show for each meme.

use crate::html::{escape, push_escaped};
use crate::meme::{tag_url, Meme};

/// One meme as a card: the image linking to its page, votes and tags.
pub fn card(meme: &Meme) -> String {
    let caption = escape(&meme.caption());
    let url = meme.url();
    let mut out = String::with_capacity(512);
    out.push_str("<article class=\"card\">\n");
    out.push_str(&format!(
        "<a class=\"card-image\" href=\"{url}\"><img src=\"{}\" alt=\"{caption}\" width=\"600\" height=\"600\" loading=\"lazy\"></a>\n",
        meme.image_url()
    ));
    out.push_str("<div class=\"card-body\">\n");
    out.push_str(&format!(
        "<a class=\"card-title\" href=\"{url}\">{caption}</a>\n"
    ));
    out.push_str("<div class=\"card-meta\">");
    out.push_str(&votes(meme.votes));
    out.push_str(&tag_list(&meme.tags));
    out.push_str("</div>\n</div>\n</article>\n");
    out
}

/// A grid of cards.
pub fn grid(memes: &[Meme]) -> String {
    let mut out = String::from("<div class=\"grid\">\n");
    for meme in memes {
        out.push_str(&card(meme));
    }
    out.push_str("</div>\n");
    out
}

/// The vote count, e.g. "▲ 3" with an accessible label.
pub fn votes(votes: i64) -> String {
    let noun = if votes == 1 { "vote" } else { "votes" };
    format!("<span class=\"votes\" title=\"{votes} {noun}\"><span aria-hidden=\"true\">▲</span> {votes}<span class=\"visually-hidden\"> {noun}</span></span>")
}

/// Tags as links to the memes with that tag; "" for none.
pub fn tag_list(tags: &[&str]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ul class=\"tags\">");
    for tag in tags {
        out.push_str("<li><a class=\"tag\" href=\"");
        push_escaped(&mut out, &tag_url(tag));
        out.push_str("\">#");
        push_escaped(&mut out, tag);
        out.push_str("</a></li>");
    }
    out.push_str("</ul>");
    out
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
