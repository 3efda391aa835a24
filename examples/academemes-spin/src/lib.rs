//! Academemes' home page (`GET /`) and vote (`POST /memes/:id/vote`) as a
//! Spin component, written with the Spin SDK (spin-sdk 5.2,
//! `#[http_component]`, WASI 0.2).
//!
//! Nebula's pure components (guests/meme-list, guests/vote) get the results
//! of their route's declared reads as their `data` argument and return writes
//! as effects. A Spin component runs its own SQL instead: this one runs the
//! same queries and the same write as app.toml declares, through Spin's SQLite
//! interface (database "default"), and renders with the same crate as the pure
//! components (`academemes-html`), so the HTML is byte for byte what Nebula's
//! pure site serves for the same database.

mod table;

use std::collections::HashMap;

use academemes_html::home::{self, TagCount};
use academemes_html::layout::error_html;
use academemes_html::meme::{Columns, Meme};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::sqlite::{self, Connection, Value};

use crate::table::Table;

/// The reads of the pure `/` route, as app.toml declares them (keep in step).
const READS: [(&str, &str); 3] = [
    (
        "newest",
        "SELECT m.id, m.template, m.top_text, m.bottom_text, m.votes, m.created_ms,
       (SELECT string_agg(t.tag, ',' ORDER BY t.tag) FROM meme_tags t WHERE t.meme_id = m.id) AS tags
FROM memes m ORDER BY m.created_ms DESC, m.id DESC LIMIT 6",
    ),
    (
        "top",
        "SELECT m.id, m.template, m.top_text, m.bottom_text, m.votes, m.created_ms,
       (SELECT string_agg(t.tag, ',' ORDER BY t.tag) FROM meme_tags t WHERE t.meme_id = m.id) AS tags
FROM memes m ORDER BY m.votes DESC, m.id DESC LIMIT 6",
    ),
    (
        "tags",
        "SELECT tag, memes FROM (SELECT tag, memes FROM tag_counts ORDER BY memes DESC, tag LIMIT 40) AS cloud
ORDER BY tag",
    ),
];

/// app.toml's read `meme`, which the vote route declares (`:id` is its only
/// parameter, bound by position).
const MEME_READ: &str = "SELECT m.id, m.template, tp.name AS template_name, m.top_text, m.bottom_text, m.votes, m.created_ms,
       (SELECT string_agg(t.tag, ',' ORDER BY t.tag) FROM meme_tags t WHERE t.meme_id = m.id) AS tags
FROM memes m JOIN templates tp ON tp.id = m.template
-- Only the canonical spelling of an id names a meme: \"7\", not \"7.5\", \"1e9\" or
-- \"07\". Only digits are cast (a bad cast is an error on PostgreSQL).
WHERE m.id = CASE WHEN length(:id) BETWEEN 1 AND 18 AND trim(:id, '0123456789') = ''
                  THEN CAST(:id AS BIGINT) END
  AND CAST(m.id AS TEXT) = :id";

/// app.toml's write `vote`: one row per (meme, visitor); `:session_id`
/// binds after `?1`, as the second parameter.
const VOTE_WRITE: &str = "INSERT INTO votes (meme_id, visitor) VALUES (?1, :session_id) ON CONFLICT DO NOTHING";

const HTML: &str = "text/html; charset=utf-8";

#[http_component]
fn handle(req: Request) -> impl IntoResponse {
    let path = req.path().to_string();
    match vote_id(&path) {
        None => home_route(&req),
        Some(id) => vote_route(&req, &path, id),
    }
}

/// The `:id` of `/memes/:id/vote`, or `None` for any other path.
fn vote_id(path: &str) -> Option<&str> {
    path.strip_prefix("/memes/")?.strip_suffix("/vote")
}

fn home_route(req: &Request) -> Response {
    // Like Nebula, GET routes answer HEAD too (Spin's HTTP trigger sends no
    // body for HEAD); anything else is refused.
    if !matches!(req.method(), Method::Get | Method::Head) {
        return method_not_allowed("GET, HEAD");
    }
    match read_home() {
        Ok(tables) => html(200, home_page(&tables)),
        Err(e) => database_error(e),
    }
}

fn vote_route(req: &Request, path: &str, id: &str) -> Response {
    if !matches!(req.method(), Method::Post) {
        return method_not_allowed("POST");
    }
    let accept = req.header("accept").and_then(|v| v.as_str()).unwrap_or("");
    match vote(id) {
        Ok(voted) => vote_response(voted, id, path, accept),
        Err(e) => database_error(e),
    }
}

/// Runs the home page's reads, each into a table named after it, as the
/// Nebula host does.
fn read_home() -> Result<HashMap<&'static str, Table>, sqlite::Error> {
    let db = Connection::open_default()?;
    READS
        .iter()
        .map(|(name, sql)| Ok((*name, table::query(&db, sql, &[])?)))
        .collect()
}

/// Looks the meme up as the vote route's read does and, if it exists, adds
/// the vote; the id of the meme voted for, `None` if there is none.
fn vote(id: &str) -> Result<Option<i64>, sqlite::Error> {
    let db = Connection::open_default()?;
    let meme = table::query(&db, MEME_READ, &[Value::Text(id.to_string())])?;
    let Some(id) = meme.rows().next().and_then(|r| r.int("id")) else {
        return Ok(None);
    };
    // Spin has no host session: every vote is a new visitor's, as for a
    // client of the pure app that sends no session cookie.
    db.execute(
        VOTE_WRITE,
        &[Value::Integer(id), Value::Text(new_visitor_id())],
    )?;
    Ok(Some(id))
}

/// A visitor id nobody else gets: 64 bits from the host's randomness
/// (std's hash keys come from `wasi:random`).
fn new_visitor_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    format!("spin-{:016x}", h.finish())
}

/// What the pure vote component answers: JSON for a client that accepts it,
/// a 303 back to the meme otherwise, 404 when there is no such meme.
fn vote_response(voted: Option<i64>, raw_id: &str, path: &str, accept: &str) -> Response {
    match voted {
        None => html(
            404,
            error_html(
                404,
                path,
                &format!("There is no meme “{raw_id}” to vote for."),
            ),
        ),
        Some(id) if accept.contains("application/json") => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(home::vote_json(id))
            .build(),
        Some(id) => Response::builder()
            .status(303)
            .header("location", format!("/memes/{id}"))
            .build(),
    }
}

/// The home page from the three tables.
fn home_page(tables: &HashMap<&'static str, Table>) -> String {
    let memes = |name: &str| -> Vec<Meme> {
        tables
            .get(name)
            .into_iter()
            .flat_map(|t| t.rows())
            .filter_map(|r| Meme::from_row(&r))
            .collect()
    };
    let tags: Vec<TagCount> = tables
        .get("tags")
        .into_iter()
        .flat_map(|t| t.rows())
        .filter_map(|r| Some((r.text("tag")?, r.int("memes").unwrap_or(0))))
        .collect();
    home::page(&memes("newest"), &memes("top"), &tags)
}

fn html(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", HTML)
        .body(body)
        .build()
}

fn method_not_allowed(allow: &str) -> Response {
    Response::builder()
        .status(405)
        .header("allow", allow)
        .header("content-type", "text/plain; charset=utf-8")
        .body("method not allowed")
        .build()
}

fn database_error(e: sqlite::Error) -> Response {
    Response::builder()
        .status(500)
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("database error: {e:?}"))
        .build()
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

    /// Named tables as test cases write them: name, columns, rows.
    type Cases<'a> = Vec<(&'static str, Vec<&'a str>, Vec<Vec<Value>>)>;

    /// One case: the three tables as both this crate and the pure component get them.
    fn both(tables: Cases) -> (HashMap<&'static str, Table>, Vec<::kit::Table>) {
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
                (name, table::new(columns, rows))
            })
            .collect();
        (ours, pure)
    }

    const MEME_COLUMNS: [&str; 7] = [
        "id",
        "template",
        "top_text",
        "bottom_text",
        "votes",
        "created_ms",
        "tags",
    ];

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

    fn assert_same(tables: Cases) {
        let (ours, pure) = both(tables);
        let expected = pure_home::page(&::kit::data::Data::new(&pure));
        assert_eq!(expected.status, 200);
        assert_eq!(
            expected.headers,
            [(
                "content-type".to_string(),
                "text/html; charset=utf-8".to_string()
            )]
        );
        let expected = String::from_utf8(expected.body).unwrap();
        assert_eq!(home_page(&ours), expected);
    }

    #[test]
    fn same_html_as_the_pure_component() {
        let newest = vec![
            meme(
                3,
                "<script>alert('x')</script>",
                "b & \"c\"",
                1,
                Some("a&b,phd,x y"),
            ),
            meme(2, "", "", 0, None),
            meme(1, "  only top ", "", 2, Some("")),
            meme(4, "", "only bottom\u{1}", 487, Some("é")),
        ];
        let top = vec![
            meme(4, "", "only bottom", 487, Some("é")),
            meme(1, "t", "b", 2, None),
        ];
        assert_same(vec![
            ("newest", MEME_COLUMNS.to_vec(), newest),
            ("top", MEME_COLUMNS.to_vec(), top),
            (
                "tags",
                vec!["tag", "memes"],
                vec![tag("a&b", 1), tag("phd", 5), tag("x y", 3)],
            ),
        ]);
    }

    #[test]
    fn same_html_with_equal_tag_counts_and_no_memes() {
        assert_same(vec![
            ("newest", MEME_COLUMNS.to_vec(), vec![]),
            ("top", MEME_COLUMNS.to_vec(), vec![]),
            (
                "tags",
                vec!["tag", "memes"],
                vec![tag("one", 2), tag("two", 2)],
            ),
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
        assert_eq!(
            MEME_READ.trim(),
            reads["meme"]["sql"].as_str().unwrap().trim()
        );
        let writes = manifest["writes"].as_table().unwrap();
        assert_eq!(VOTE_WRITE, writes["vote"]["sql"].as_str().unwrap().trim());
    }

    #[test]
    fn vote_answers_as_the_pure_component() {
        let path = "/memes/7/vote";
        let json = vote_response(Some(7), "7", path, "application/json");
        assert_eq!(json.status(), &200);
        assert_eq!(
            json.header("content-type").and_then(|v| v.as_str()),
            Some("application/json")
        );
        assert_eq!(json.body(), b"{\"id\":7,\"voted\":true}");

        let form = vote_response(Some(7), "07", path, "text/html");
        assert_eq!(form.status(), &303);
        assert_eq!(
            form.header("location").and_then(|v| v.as_str()),
            Some("/memes/7")
        );
        assert!(form.body().is_empty());

        let missing = vote_response(None, "<x>", "/memes/%3Cx%3E/vote", "application/json");
        assert_eq!(missing.status(), &404);
        let body = String::from_utf8(missing.body().to_vec()).unwrap();
        assert!(
            body.contains("There is no meme “&lt;x&gt;” to vote for."),
            "{body}"
        );
        assert!(body.contains("<h1>Not found</h1>"));
    }

    #[test]
    fn only_vote_paths_are_votes() {
        assert_eq!(vote_id("/memes/12/vote"), Some("12"));
        assert_eq!(vote_id("/memes/abc/vote"), Some("abc"));
        assert_eq!(vote_id("/"), None);
        assert_eq!(vote_id("/memes/12"), None);
    }
}
