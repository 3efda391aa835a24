//! Submitting a meme through the HTML form: validation and escaping.

use crate::support::Server;

fn meme_count(s: &Server) -> i64 {
    s.sql_i64("SELECT count(*) FROM memes")
}

fn template(s: &Server) -> String {
    s.sql("SELECT id FROM templates ORDER BY id LIMIT 1")[0][0].clone()
}

#[test]
fn the_form_page_lists_templates() {
    let s = Server::start("app.toml", &[]);
    let r = s.get("/new");
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(
        html.contains("action=\"/memes\"") && html.contains("method=\"post\""),
        "form"
    );
    assert!(html.contains(&template(&s)));
}

#[test]
fn a_valid_submission_is_stored_and_shown_escaped() {
    let s = Server::start("app.toml", &[]);
    let before = meme_count(&s);
    let tpl = template(&s);
    let r = s.post_form(
        "/memes",
        &[
            ("template", tpl.as_str()),
            ("top_text", "  <script>alert('x')</script> & co  "),
            ("bottom_text", "'; DROP TABLE memes; --"),
            ("tags", "Security, testing,testing"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let loc = r.header("location").unwrap().to_string();
    let id: i64 = loc.strip_prefix("/memes/").unwrap().parse().unwrap();
    assert_eq!(meme_count(&s), before + 1);

    let row = &s.sql(&format!(
        "SELECT top_text, bottom_text FROM memes WHERE id = {id}"
    ))[0];
    let (top, bottom) = (row[0].clone(), row[1].clone());
    assert_eq!(
        top, "<script>alert('x')</script> & co",
        "stored verbatim, trimmed"
    );
    assert_eq!(bottom, "'; DROP TABLE memes; --");
    let tags: Vec<String> = s
        .sql(&format!(
            "SELECT tag FROM meme_tags WHERE meme_id = {id} ORDER BY tag"
        ))
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(tags, ["security", "testing"]);

    let page = s.get(&loc);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        !html.contains("<script>alert"),
        "unescaped script on the meme page"
    );
    assert!(html.contains("&lt;script&gt;"), "escaped caption missing");
    let svg = s.get(&format!("{loc}.svg")).text();
    assert!(!svg.contains("<script"), "unescaped script in the SVG");
    roxmltree::Document::parse(&svg).expect("SVG with hostile caption still parses");
    // It shows up first in the newest list.
    assert_eq!(s.get("/api/memes").json()["memes"][0]["id"], id);
}

#[test]
fn invalid_submissions_get_400_with_a_readable_message_and_store_nothing() {
    let s = Server::start("app.toml", &[]);
    let before = meme_count(&s);
    let tpl = template(&s);
    let long = "x".repeat(81);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("template", &tpl),
                ("top_text", "   "),
                ("bottom_text", "b"),
            ],
            "Top text is required",
        ),
        (
            vec![("template", &tpl), ("top_text", "a"), ("bottom_text", "")],
            "Bottom text is required",
        ),
        (
            vec![
                ("template", &tpl),
                ("top_text", &long),
                ("bottom_text", "b"),
            ],
            "Top text is too long",
        ),
        (
            vec![
                ("template", "no-such<b>"),
                ("top_text", "a"),
                ("bottom_text", "b"),
            ],
            "Unknown template",
        ),
        (vec![("top_text", "a"), ("bottom_text", "b")], "template"),
        (
            vec![
                ("template", &tpl),
                ("top_text", "a"),
                ("bottom_text", "b"),
                ("tags", "ok, <bad tag>"),
            ],
            "may only contain",
        ),
    ];
    for (fields, message) in cases {
        let r = s.post_form("/memes", &fields);
        assert_eq!(r.status, 400, "{fields:?}");
        let html = r.text();
        assert!(
            html.contains(message),
            "{fields:?}: expected {message:?} in the page"
        );
        assert!(
            !html.contains("<b>") && !html.contains("<bad tag>"),
            "user text echoed unescaped"
        );
    }
    assert_eq!(meme_count(&s), before);
}
