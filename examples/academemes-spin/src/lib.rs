//! Academemes' home page (`GET /`) as a Spin component, written with the Spin
//! SDK (spin-sdk 5.2, `#[http_component]`, WASI 0.2).
//!
//! Nebula's pure `meme-list` component (guests/meme-list) gets the results of
//! the route's declared reads (`newest`, `top`, `tags` in app.toml) as its
//! `data` argument. A Spin component runs its own SQL instead: this one runs
//! the same three queries through Spin's SQLite interface (database
//! "default"), puts the rows into the same tables the pure component would
//! receive, and renders them with the same markup (src/kit_mirror.rs mirrors
//! guests/kit), so the HTML is byte for byte what Nebula's pure home page
//! serves for the same database.

mod kit_mirror;

use std::collections::HashMap;

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::sqlite::{self, Connection};

use crate::kit_mirror::Table;

/// The reads of the pure `/` route, as app.toml declares them (keep in step).
const READS: [(&str, &str); 3] = [
    (
        "newest",
        "SELECT m.id, m.template, m.top_text, m.bottom_text, m.votes, m.created_ms,
       (SELECT group_concat(tag, ',') FROM (SELECT tag FROM meme_tags t WHERE t.meme_id = m.id ORDER BY tag)) AS tags
FROM memes m ORDER BY m.created_ms DESC, m.id DESC LIMIT 6",
    ),
    (
        "top",
        "SELECT m.id, m.template, m.top_text, m.bottom_text, m.votes, m.created_ms,
       (SELECT group_concat(tag, ',') FROM (SELECT tag FROM meme_tags t WHERE t.meme_id = m.id ORDER BY tag)) AS tags
FROM memes m ORDER BY m.votes DESC, m.id DESC LIMIT 6",
    ),
    (
        "tags",
        "SELECT tag, count(*) AS memes FROM meme_tags GROUP BY tag ORDER BY tag",
    ),
];

#[http_component]
fn handle(req: Request) -> impl IntoResponse {
    // Like Nebula, GET routes answer HEAD too (Spin's HTTP trigger sends no
    // body for HEAD); anything else is refused.
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Response::builder()
            .status(405)
            .header("allow", "GET, HEAD")
            .header("content-type", "text/plain; charset=utf-8")
            .body("method not allowed")
            .build();
    }
    match read_all() {
        Ok(tables) => Response::builder()
            .status(200)
            .header("content-type", "text/html; charset=utf-8")
            .body(home::page(&tables))
            .build(),
        Err(e) => Response::builder()
            .status(500)
            .header("content-type", "text/plain; charset=utf-8")
            .body(format!("database error: {e:?}"))
            .build(),
    }
}

/// Runs the reads, each into a table named after it, as the Nebula host does.
fn read_all() -> Result<HashMap<&'static str, Table>, sqlite::Error> {
    let db = Connection::open_default()?;
    READS
        .iter()
        .map(|(name, sql)| {
            let result = db.execute(sql, &[])?;
            let rows = result.rows.into_iter().map(|row| row.values).collect();
            Ok((*name, Table { columns: result.columns, rows }))
        })
        .collect()
}

/// The home page. Mirrors guests/meme-list/src/home.rs and tag_cloud.rs
/// (the pure component's crate is a cdylib that exports Nebula's world, so it
/// cannot be a dependency); the layout, cards and escaping are in src/kit_mirror.rs.
/// Keep this in step with those files.
mod home {
    use std::collections::HashMap;

    use crate::kit_mirror::{self as kit, escape, grid, push_escaped, tag_url, Meme, Row, Table, SITE_NAME};

    type Data = HashMap<&'static str, Table>;

    fn rows<'a>(data: &'a Data, table: &str) -> impl Iterator<Item = Row<'a>> {
        data.get(table).into_iter().flat_map(|t| t.rows())
    }

    /// The whole page (the pure component answers it with status 200 and
    /// `content-type: text/html; charset=utf-8`).
    pub fn page(data: &Data) -> String {
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
        if let Some(cloud) = tag_cloud(data) {
            main.push_str("<section aria-labelledby=\"tags\">\n<div class=\"section-head\"><h2 id=\"tags\">Tags</h2></div>\n");
            main.push_str(&cloud);
            main.push_str("\n</section>\n");
        }
        kit::page(SITE_NAME, "/", &main)
    }

    fn memes<'a>(data: &'a Data, table: &str) -> Vec<Meme<'a>> {
        rows(data, table).filter_map(|r| Meme::from_row(&r)).collect()
    }

    const MIN_REM: f32 = 0.9;
    const MAX_REM: f32 = 2.0;

    /// Every tag, sized by how many memes carry it; `None` without tags.
    /// (The pure component's `current` tag is always `None` on the home page.)
    fn tag_cloud(data: &Data) -> Option<String> {
        let tags: Vec<(&str, i64)> = rows(data, "tags")
            .filter_map(|r| Some((r.text("tag")?, r.int("memes").unwrap_or(0))))
            .collect();
        if tags.is_empty() {
            return None;
        }
        let min = tags.iter().map(|t| t.1).min().unwrap_or(0);
        let max = tags.iter().map(|t| t.1).max().unwrap_or(0);
        let mut out = String::from("<ul class=\"tag-cloud\">");
        for (tag, count) in tags {
            let weight = if max > min {
                (count - min) as f32 / (max - min) as f32
            } else {
                0.5
            };
            let rem = MIN_REM + weight * (MAX_REM - MIN_REM);
            let noun = if count == 1 { "meme" } else { "memes" };
            out.push_str(&format!(
                "<li><a href=\"{}\" style=\"font-size:{rem:.2}rem\" title=\"{count} {noun}\"",
                escape(&tag_url(tag))
            ));
            out.push_str(">#");
            push_escaped(&mut out, tag);
            out.push_str("</a></li>");
        }
        out.push_str("</ul>");
        Some(out)
    }
}

/// The pure component's own home page and tag cloud, compiled here for the
/// tests only, to compare its output with this crate's byte for byte.
#[cfg(test)]
#[path = "../../../guests/meme-list/src/tag_cloud.rs"]
mod tag_cloud;

#[cfg(test)]
#[path = "../../../guests/meme-list/src/home.rs"]
mod pure_home;

#[cfg(test)]
mod tests {
    use super::*;
    use spin_sdk::sqlite::Value;

    /// One case: the three tables as both this crate and the pure component get them.
    fn both(
        tables: Vec<(&'static str, Vec<&str>, Vec<Vec<Value>>)>,
    ) -> (HashMap<&'static str, Table>, Vec<::kit::Table>) {
        let pure = tables
            .iter()
            .map(|(name, columns, rows)| ::kit::Table {
                name: name.to_string(),
                columns: columns.iter().map(|c| c.to_string()).collect(),
                rows: rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|v| match v {
                                Value::Integer(i) => ::kit::Value::Integer(*i),
                                Value::Real(f) => ::kit::Value::Real(*f),
                                Value::Text(s) => ::kit::Value::Text(s.clone()),
                                Value::Blob(b) => ::kit::Value::Blob(b.clone()),
                                Value::Null => ::kit::Value::Null,
                            })
                            .collect()
                    })
                    .collect(),
            })
            .collect();
        let ours = tables
            .into_iter()
            .map(|(name, columns, rows)| {
                let columns = columns.iter().map(|c| c.to_string()).collect();
                (name, Table { columns, rows })
            })
            .collect();
        (ours, pure)
    }

    const MEME_COLUMNS: [&str; 7] =
        ["id", "template", "top_text", "bottom_text", "votes", "created_ms", "tags"];

    fn meme(id: i64, top: &str, bottom: &str, votes: i64, tags: Option<&str>) -> Vec<Value> {
        vec![
            Value::Integer(id),
            Value::Text("reviewer-two".into()),
            Value::Text(top.into()),
            Value::Text(bottom.into()),
            Value::Integer(votes),
            Value::Integer(1_770_000_000_000 + id),
            tags.map_or(Value::Null, |t| Value::Text(t.into())),
        ]
    }

    fn tag(name: &str, count: i64) -> Vec<Value> {
        vec![Value::Text(name.into()), Value::Integer(count)]
    }

    fn assert_same(tables: Vec<(&'static str, Vec<&str>, Vec<Vec<Value>>)>) {
        let (ours, pure) = both(tables);
        let expected = pure_home::page(&::kit::data::Data::new(&pure));
        assert_eq!(expected.status, 200);
        assert_eq!(
            expected.headers,
            [("content-type".to_string(), "text/html; charset=utf-8".to_string())]
        );
        let expected = String::from_utf8(expected.body).unwrap();
        assert_eq!(home::page(&ours), expected);
    }

    #[test]
    fn same_html_as_the_pure_component() {
        let newest = vec![
            meme(3, "<script>alert('x')</script>", "b & \"c\"", 1, Some("a&b,phd,x y")),
            meme(2, "", "", 0, None),
            meme(1, "  only top ", "", 2, Some("")),
            meme(4, "", "only bottom\u{1}", 487, Some("é")),
        ];
        let top = vec![meme(4, "", "only bottom", 487, Some("é")), meme(1, "t", "b", 2, None)];
        assert_same(vec![
            ("newest", MEME_COLUMNS.to_vec(), newest),
            ("top", MEME_COLUMNS.to_vec(), top),
            ("tags", vec!["tag", "memes"], vec![tag("a&b", 1), tag("phd", 5), tag("x y", 3)]),
        ]);
    }

    #[test]
    fn same_html_with_equal_tag_counts_and_no_memes() {
        assert_same(vec![
            ("newest", MEME_COLUMNS.to_vec(), vec![]),
            ("top", MEME_COLUMNS.to_vec(), vec![]),
            ("tags", vec!["tag", "memes"], vec![tag("one", 2), tag("two", 2)]),
        ]);
        assert_same(vec![
            ("newest", MEME_COLUMNS.to_vec(), vec![]),
            ("top", MEME_COLUMNS.to_vec(), vec![]),
            ("tags", vec!["tag", "memes"], vec![]),
        ]);
    }

    #[test]
    fn reads_are_the_manifests() {
        let manifest: toml::Table =
            toml::from_str(&std::fs::read_to_string("../../app.toml").unwrap()).unwrap();
        let reads = manifest["reads"].as_table().unwrap();
        for (name, sql) in READS {
            let declared = reads[name]["sql"].as_str().unwrap();
            assert_eq!(sql.trim(), declared.trim(), "read {name}");
        }
        let home = manifest["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"].as_str() == Some("/"))
            .unwrap();
        let names: Vec<&str> = home["reads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(names, READS.map(|(name, _)| name));
    }
}
