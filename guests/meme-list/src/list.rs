//! `/memes`: one page of memes, newest first, optionally of one tag.

use kit::card::grid;
use kit::data::Data;
use kit::html::escape;
use kit::http::html;
use kit::layout;
use kit::meme::Meme;
use kit::{Request, Response};

use crate::paging::Paging;
use crate::tag_cloud::tag_cloud;

pub fn page(req: &Request, data: &Data) -> Response {
    let paging = Paging::read(req, data);
    let memes: Vec<Meme> = data
        .rows("memes")
        .filter_map(|r| Meme::from_row(&r))
        .collect();
    let (title, heading) = match paging.tag {
        Some(tag) => (
            format!("Memes tagged #{tag}"),
            format!("Memes tagged <span class=\"tag\">#{}</span>", escape(tag)),
        ),
        None => ("All memes".to_string(), "All memes".to_string()),
    };
    let title = if paging.page > 1 {
        format!("{title}, page {}", paging.page)
    } else {
        title
    };

    let mut main = format!("<div class=\"page-head\">\n<h1>{heading}</h1>\n");
    let noun = if paging.total == 1 { "meme" } else { "memes" };
    main.push_str(&format!("<p class=\"count\">{} {noun}", paging.total));
    if paging.tag.is_some() {
        main.push_str(" · <a href=\"/memes\">show all memes</a>");
    }
    main.push_str("</p>\n</div>\n");

    if memes.is_empty() {
        main.push_str(&empty_state(&paging));
    } else {
        main.push_str(&grid(&memes));
        main.push_str(&pagination(&paging));
    }

    if let Some(cloud) = tag_cloud(data, paging.tag) {
        main.push_str("<section aria-labelledby=\"tags\">\n<div class=\"section-head\"><h2 id=\"tags\">Browse by tag</h2></div>\n");
        main.push_str(&cloud);
        main.push_str("\n</section>\n");
    }
    html(200, layout::page(&title, "/memes", &main))
}

/// What to say when the page has no memes.
fn empty_state(paging: &Paging) -> String {
    let last = paging.last_page();
    let message = if paging.total > 0 && paging.page > last {
        format!(
            "There is no page {} here; the last page is {last}. <a href=\"{}\">Go to the first page</a>.",
            paging.page,
            escape(&paging.url(1))
        )
    } else if let Some(tag) = paging.tag {
        format!(
            "No memes are tagged <span class=\"tag\">#{}</span> yet. <a href=\"/memes\">Browse all memes</a> or <a href=\"/new\">make one</a>.",
            escape(tag)
        )
    } else {
        "No memes yet. <a href=\"/new\">Make the first one</a>.".to_string()
    };
    format!("<div class=\"empty\">\n<p>{message}</p>\n</div>\n")
}

/// "← Newer", "Page X of Y", "Older →".
fn pagination(paging: &Paging) -> String {
    let last = paging.last_page();
    if last == 1 && paging.page == 1 {
        return String::new();
    }
    let mut out = String::from("<nav class=\"pagination\" aria-label=\"Pages\">\n");
    if paging.page > 1 {
        let newer = (paging.page - 1).min(last);
        out.push_str(&format!(
            "<a class=\"button button-secondary\" href=\"{}\" rel=\"prev\">← Newer</a>\n",
            escape(&paging.url(newer))
        ));
    } else {
        out.push_str(
            "<span class=\"button button-secondary\" aria-disabled=\"true\">← Newer</span>\n",
        );
    }
    out.push_str(&format!(
        "<span class=\"page-of\">Page {} of {last}</span>\n",
        paging.page
    ));
    if paging.page < last {
        out.push_str(&format!(
            "<a class=\"button button-secondary\" href=\"{}\" rel=\"next\">Older →</a>\n",
            escape(&paging.url(paging.page + 1))
        ));
    } else {
        out.push_str(
            "<span class=\"button button-secondary\" aria-disabled=\"true\">Older →</span>\n",
        );
    }
    out.push_str("</nav>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{body, memes_table, request, table, text, TestMeme};
    use kit::{Table, Value};

    fn paging_table(page: i64, tag: Option<&str>) -> Table {
        table(
            "paging",
            &["page", "per_page", "tag"],
            vec![vec![
                Value::Integer(page),
                Value::Integer(12),
                tag.map(text).unwrap_or(Value::Null),
            ]],
        )
    }

    fn total_table(total: i64) -> Table {
        table("total", &["total"], vec![vec![Value::Integer(total)]])
    }

    fn render(tables: Vec<Table>) -> String {
        let req = request("GET", "/memes", "/memes");
        body(&page(&req, &Data::new(&tables))).to_string()
    }

    fn some_memes(n: i64) -> Table {
        let memes: Vec<TestMeme> = (1..=n)
            .map(|id| TestMeme {
                id,
                top: "top",
                bottom: "bottom",
                votes: 0,
                tags: "phd",
            })
            .collect();
        memes_table("memes", &memes)
    }

    #[test]
    fn middle_page_links_both_ways_keeping_the_tag() {
        let html = render(vec![
            paging_table(2, Some("a&b")),
            some_memes(12),
            total_table(40),
        ]);
        assert!(html.contains("Memes tagged <span class=\"tag\">#a&amp;b</span>"));
        assert!(html.contains("<title>Memes tagged #a&amp;b, page 2 — Academemes</title>"));
        assert!(html.contains("href=\"/memes?tag=a%26b\" rel=\"prev\">← Newer</a>"));
        assert!(html.contains("href=\"/memes?page=3&amp;tag=a%26b\" rel=\"next\">Older →</a>"));
        assert!(html.contains("Page 2 of 4"));
        assert!(html.contains("40 memes"));
    }

    #[test]
    fn single_page_has_no_pagination() {
        let html = render(vec![paging_table(1, None), some_memes(3), total_table(3)]);
        assert!(html.contains("<h1>All memes</h1>"));
        assert!(!html.contains("class=\"pagination\""));
    }

    #[test]
    fn past_the_end_says_so() {
        let html = render(vec![paging_table(9, None), some_memes(0), total_table(13)]);
        assert!(html.contains("There is no page 9 here; the last page is 2."));
    }

    #[test]
    fn unknown_tag_is_escaped_in_the_empty_state() {
        let html = render(vec![
            paging_table(1, Some("<script>")),
            some_memes(0),
            total_table(0),
        ]);
        assert!(
            html.contains("No memes are tagged <span class=\"tag\">#&lt;script&gt;</span> yet.")
        );
        assert!(!html.contains("<script>"));
    }
}
