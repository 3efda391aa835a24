//! `/memes/:id`: one meme with its details and a vote button (or "Voted"
//! when this visitor has voted for it).

use kit::card::{tag_list, votes};
use kit::data::Data;
use kit::date::format_date;
use kit::html::escape;
use kit::http::{html, param};
use kit::layout::{self, error_page};
use kit::meme::Meme;
use kit::{Request, Response};

pub fn page(req: &Request, data: &Data) -> Response {
    // A non-numeric id matches no row (the read casts it), so one check covers both.
    let Some(meme) = data.first("meme").and_then(|r| Meme::from_row(&r)) else {
        let id = param(req, "id").unwrap_or("");
        return error_page(404, &req.path, &format!("There is no meme “{id}”."));
    };
    let id = meme.id;
    let caption = escape(&meme.caption());
    let mut main = String::with_capacity(2048);
    main.push_str("<article class=\"meme-detail\">\n");
    main.push_str(&format!(
        "<figure class=\"meme-figure\"><img src=\"/memes/{id}.svg\" alt=\"{caption}\" width=\"600\" height=\"600\"></figure>\n"
    ));
    main.push_str("<div class=\"meme-info\">\n<h1 class=\"meme-caption\">");
    for line in [meme.top_text, meme.bottom_text] {
        if !line.trim().is_empty() {
            main.push_str(&format!("<span>{}</span> ", escape(line.trim())));
        }
    }
    main.push_str("</h1>\n<dl class=\"facts\">\n");
    let template = meme.template_name.unwrap_or(meme.template);
    let date = format_date(meme.created_ms);
    main.push_str(&format!(
        "<div><dt>Template</dt><dd>{}</dd></div>\n",
        escape(template)
    ));
    main.push_str(&format!(
        "<div><dt>Posted</dt><dd><time datetime=\"{date}\">{date}</time></dd></div>\n"
    ));
    main.push_str(&format!(
        "<div><dt>Votes</dt><dd>{}</dd></div>\n</dl>\n",
        votes(meme.votes)
    ));
    // A plain form: voting works without JavaScript. The `voted` read says
    // whether this visitor (the host's session cookie) already voted; a
    // second vote would change nothing, so the page says so instead.
    if data.first("voted").and_then(|r| r.int("voted")) == Some(1) {
        main.push_str("<div class=\"vote\"><span class=\"voted\">✓ Voted</span></div>\n");
    } else {
        main.push_str(&format!(
            "<div class=\"vote\"><form method=\"post\" action=\"/memes/{id}/vote\"><button>▲ Upvote</button></form></div>\n"
        ));
    }
    if !meme.tags.is_empty() {
        main.push_str(&tag_list(&meme.tags));
        main.push('\n');
    }
    main.push_str("<p class=\"more\">");
    if let Some(other) = another(data, id) {
        main.push_str(&format!(
            "<a class=\"button button-secondary\" href=\"/memes/{other}\">Another meme →</a> "
        ));
    }
    main.push_str("<a class=\"button button-secondary\" href=\"/random\">Random meme</a></p>\n");
    main.push_str(&format!(
        "<p class=\"download\"><a href=\"/memes/{id}.svg\">Open the image (SVG)</a></p>\n"
    ));
    main.push_str("</div>\n</article>\n");
    html(200, layout::page(&meme.caption(), &req.path, &main))
}

/// A meme other than `id`, picked in SQL with the request's seed (the read
/// `another`, app.toml); `None` if there is none.
fn another(data: &Data, id: i64) -> Option<i64> {
    data.first("another")
        .and_then(|r| r.int("id"))
        .filter(|&other| other != id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{body, memes_table, request, response_header, table, TestMeme};
    use kit::{Table, Value};

    /// The `another` read, picking `id` (or nothing).
    fn another_table(id: Option<i64>) -> Table {
        let rows = id.map(|id| vec![Value::Integer(id)]).into_iter().collect();
        table("another", &["id"], rows)
    }

    fn show(id: &str, tables: Vec<Table>, seed: u64) -> Response {
        let mut req = request("GET", "/memes/:id", &format!("/memes/{id}"));
        req.params = vec![("id".into(), id.into())];
        req.seed = seed;
        page(&req, &Data::new(&tables))
    }

    #[test]
    fn shows_the_meme_with_a_vote_form() {
        let tables = vec![
            memes_table(
                "meme",
                &[TestMeme {
                    id: 5,
                    top: "<i>top</i>",
                    bottom: "bottom",
                    votes: 3,
                    tags: "phd,x",
                }],
            ),
            another_table(Some(9)),
        ];
        let resp = show("5", tables, 1);
        assert_eq!(resp.status, 200);
        assert_eq!(
            response_header(&resp, "content-type"),
            Some("text/html; charset=utf-8")
        );
        let html = body(&resp);
        assert!(html.contains("<img src=\"/memes/5.svg\" alt=\"&lt;i&gt;top&lt;/i&gt; / bottom\""));
        assert!(html.contains("<span>&lt;i&gt;top&lt;/i&gt;</span>"));
        assert!(!html.contains("<i>top"));
        assert!(html.contains(
            "<form method=\"post\" action=\"/memes/5/vote\"><button>▲ Upvote</button></form>"
        ));
        assert!(html.contains("<dd>Drake approves</dd>"));
        // 1_700_000_000_000 ms + 5 days
        assert!(html.contains("<time datetime=\"2023-11-19\">2023-11-19</time>"));
        assert!(html.contains("href=\"/memes?tag=phd\""));
        assert!(html.contains("href=\"/memes/9\">Another meme →</a>"));
        assert!(html.contains("href=\"/random\""));
    }

    #[test]
    fn a_visitor_who_voted_sees_voted_instead_of_the_button() {
        let meme = || {
            memes_table(
                "meme",
                &[TestMeme {
                    id: 5,
                    top: "t",
                    bottom: "b",
                    votes: 1,
                    tags: "",
                }],
            )
        };
        let voted = |v: i64| Table {
            name: "voted".into(),
            columns: vec!["voted".into()],
            rows: vec![vec![kit::Value::Integer(v)]],
        };
        let html = body(&show("5", vec![meme(), ids_table(&[5]), voted(1)], 0));
        assert!(
            html.contains("<span class=\"voted\">✓ Voted</span>"),
            "{html}"
        );
        assert!(!html.contains("action=\"/memes/5/vote\""));
        let html = body(&show("5", vec![meme(), ids_table(&[5]), voted(0)], 0));
        assert!(html.contains("action=\"/memes/5/vote\""));
        assert!(!html.contains("Voted"));
    }

    #[test]
    fn only_meme_has_no_other_link() {
        let tables = vec![
            memes_table(
                "meme",
                &[TestMeme {
                    id: 5,
                    top: "t",
                    bottom: "b",
                    votes: 0,
                    tags: "",
                }],
            ),
            another_table(None),
        ];
        let resp = show("5", tables, 0);
        assert!(!body(&resp).contains("Another meme"));
    }

    #[test]
    fn missing_meme_is_404_with_the_id_escaped() {
        let tables = vec![memes_table("meme", &[]), another_table(Some(1))];
        let resp = show("<x>", tables, 0);
        assert_eq!(resp.status, 404);
        assert!(body(&resp).contains("There is no meme “&lt;x&gt;”."));
    }
}
