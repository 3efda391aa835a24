//! The three workloads, answered as the Wasm hosts answer them: the hello
//! component's body, the pure `meme-list` home page, the pure `vote`.

use academemes_html::home::{self, TagCount};
use academemes_html::layout::error_html;
use academemes_html::meme::{Columns, Meme};
use rusqlite::types::Value;

use crate::db::{Database, Table};
use crate::sql::Sql;

/// What guests/http-hello answers.
pub const HELLO: &str = "Hello, world!\n";

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// A response: status, content type (none for a redirect), location, body.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub location: Option<String>,
    pub body: String,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            content_type: Some(content_type),
            location: None,
            body,
        }
    }
}

pub struct Site {
    pub db: Database,
    pub sql: Sql,
}

impl Site {
    /// Answers one request; `accept` is its Accept header ("" if none).
    pub fn respond(&self, method: &str, path: &str, accept: &str) -> Reply {
        let get = matches!(method, "GET" | "HEAD");
        match path {
            "/hello" if get => Reply::new(200, TEXT, HELLO.to_string()),
            "/" if get => self.home().unwrap_or_else(server_error),
            _ => match path
                .strip_prefix("/memes/")
                .and_then(|p| p.strip_suffix("/vote"))
            {
                Some(id) if method == "POST" => {
                    self.vote(id, path, accept).unwrap_or_else(server_error)
                }
                Some(_) => Reply::new(405, TEXT, "method not allowed".to_string()),
                None => Reply::new(404, HTML, error_html(404, path, "There is no such page.")),
            },
        }
    }

    fn home(&self) -> anyhow::Result<Reply> {
        let [newest, top, tags] = &self.sql.home;
        let tables = self.db.read(&[
            (newest.as_str(), &[]),
            (top.as_str(), &[]),
            (tags.as_str(), &[]),
        ])?;
        let counts: Vec<TagCount> = tables[2]
            .rows()
            .filter_map(|r| Some((r.text("tag")?, r.int("memes").unwrap_or(0))))
            .collect();
        let page = home::page(&memes(&tables[0]), &memes(&tables[1]), &counts);
        Ok(Reply::new(200, HTML, page))
    }

    fn vote(&self, raw_id: &str, path: &str, accept: &str) -> anyhow::Result<Reply> {
        let tables = self
            .db
            .read(&[(self.sql.meme.as_str(), &[Value::Text(raw_id.to_string())])])?;
        let Some(id) = tables[0].rows().next().and_then(|r| r.int("id")) else {
            let message = format!("There is no meme “{raw_id}” to vote for.");
            return Ok(Reply::new(404, HTML, error_html(404, path, &message)));
        };
        // Nebula gives a client without its session cookie a new visitor id
        // (and so does every benchmark client); the native server does the
        // same work: a fresh id, bound after ?1 as app.toml's `:session_id`.
        let visitor = Value::Text(new_visitor_id());
        self.db
            .write(&self.sql.vote, &[Value::Integer(id), visitor])?;
        Ok(if accept.contains("application/json") {
            Reply::new(200, "application/json", home::vote_json(id))
        } else {
            Reply {
                status: 303,
                content_type: None,
                location: Some(format!("/memes/{id}")),
                body: String::new(),
            }
        })
    }
}

/// A visitor id no other request of this process gets: the process's start
/// time and a counter (the native server signs no cookie, so it needs no
/// secret randomness).
fn new_visitor_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static START: OnceLock<u128> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    format!("{start:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn memes(table: &Table) -> Vec<Meme<'_>> {
    table.rows().filter_map(|r| Meme::from_row(&r)).collect()
}

fn server_error(e: anyhow::Error) -> Reply {
    eprintln!("error: {e:#}");
    Reply::new(500, TEXT, format!("database error: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A database with the repository's schema and three memes.
    fn site() -> (tempfile::TempDir, Site) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&std::fs::read_to_string(repo.join("db/schema.sql")).unwrap())
            .unwrap();
        conn.execute_batch(
            "INSERT INTO templates (id, name, svg) VALUES ('drake', 'Drake', '<svg/>');
             INSERT INTO memes (id, template, top_text, bottom_text, votes, created_ms) VALUES
               (1, 'drake', 'old', 'b', 5, 1000), (2, 'drake', '<new>', '', 0, 2000),
               (3, 'drake', 'mid', 'x', 1, 1500);
             INSERT INTO meme_tags (meme_id, tag) VALUES (1, 'phd'), (2, 'phd'), (2, 'a&b');",
        )
        .unwrap();
        drop(conn);
        let site = Site {
            db: Database::open(&path).unwrap(),
            sql: Sql::from_manifest(&repo.join("app.toml")).unwrap(),
        };
        (dir, site)
    }

    fn meme<'a>(
        id: i64,
        top: &'a str,
        bottom: &'a str,
        votes: i64,
        created_ms: i64,
        tags: Vec<&'a str>,
    ) -> Meme<'a> {
        Meme {
            id,
            template: "drake",
            template_name: None,
            top_text: top,
            bottom_text: bottom,
            votes,
            created_ms,
            tags,
        }
    }

    #[test]
    fn home_is_the_shared_page_over_app_toml_reads() {
        let (_dir, site) = site();
        let reply = site.respond("GET", "/", "");
        assert_eq!((reply.status, reply.content_type), (200, Some(HTML)));
        let newest = [
            meme(2, "<new>", "", 0, 2000, vec!["a&b", "phd"]),
            meme(3, "mid", "x", 1, 1500, vec![]),
            meme(1, "old", "b", 5, 1000, vec!["phd"]),
        ];
        let top = [newest[2].clone(), newest[1].clone(), newest[0].clone()];
        assert_eq!(
            reply.body,
            home::page(&newest, &top, &[("a&b", 1), ("phd", 2)])
        );
        assert!(reply.body.contains("&lt;new&gt;"));
    }

    #[test]
    fn vote_counts_and_answers_like_the_pure_component() {
        let (_dir, site) = site();
        let json = site.respond("POST", "/memes/3/vote", "application/json");
        assert_eq!(
            json,
            Reply::new(200, "application/json", "{\"id\":3,\"voted\":true}".into())
        );
        let form = site.respond("POST", "/memes/3/vote", "text/html");
        assert_eq!(
            (form.status, form.location.as_deref()),
            (303, Some("/memes/3"))
        );
        let votes: i64 = rusqlite::Connection::open(site.db.path())
            .unwrap()
            .query_row("SELECT votes FROM memes WHERE id = 3", [], |r| r.get(0))
            .unwrap();
        assert_eq!(votes, 3);

        let missing = site.respond("POST", "/memes/99/vote", "application/json");
        assert_eq!(missing.status, 404);
        assert!(missing.body.contains("There is no meme “99” to vote for."));
        assert_eq!(site.respond("GET", "/memes/3/vote", "").status, 405);
    }

    #[test]
    fn hello_and_unknown_paths() {
        let (_dir, site) = site();
        assert_eq!(
            site.respond("GET", "/hello", ""),
            Reply::new(200, TEXT, HELLO.into())
        );
        let hello_wasm = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests/http-hello/src/lib.rs"),
        )
        .unwrap();
        assert!(
            hello_wasm.contains(&format!("b{HELLO:?}")),
            "the hello component's body changed"
        );
        assert_eq!(site.respond("GET", "/nope", "").status, 404);
    }

    #[test]
    fn a_missing_database_says_how_to_make_one() {
        let err = Database::open(Path::new("/nonexistent/a.db"))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("nebula up"), "{err:#}");
    }
}
