//! Academemes' cost does not grow with its data (issue 12, item 7).
//!
//! Not timed: the work a page's reads do is counted in SQLite's own unit,
//! the virtual-machine steps of each statement (`SQLITE_STMTSTATUS_VM_STEP`),
//! which is exact and the same on every machine. A read that touches every
//! meme or every tag row takes steps in proportion to them; one that uses an
//! index and a LIMIT does not. Each page's reads (as app.toml declares them
//! for its route, bound as a request would bind them) are run on the seed
//! grown to 2,000 memes and to 8,000, and must take about the same steps.
//! benches/big_data.py measures the same pages on 200,000 memes.

use std::collections::BTreeMap;
use std::path::Path;

use nebula::manifest::{Binding, Manifest};
use rusqlite::{Connection, StatementStatus};

use crate::support::{repo, Server};

/// Tags the grown memes carry, besides none of the seed's: a fixed pool, so
/// the number of distinct tags is the same at every size.
const TOPICS: u32 = 200;

/// A database made by the host from app.toml's schema and seed, grown to
/// `memes` memes with five tags each. The grown memes share no word with
/// the seed's, so a search for a seed word finds the same memes at any size.
fn grown_database(dir: &Path, memes: u32) -> std::path::PathBuf {
    let manifest = Manifest::load(&repo().join("app.toml")).unwrap();
    let path = dir.join(format!("grown-{memes}.db"));
    nebula::data::open(
        &manifest,
        Some(&nebula::data::Location::Sqlite(path.clone())),
    )
    .unwrap()
    .close()
    .unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         INSERT INTO memes (template, top_text, bottom_text, votes, created_ms)
           WITH RECURSIVE n(i) AS (SELECT (SELECT count(*) FROM memes) + 1
                                   UNION ALL SELECT i + 1 FROM n WHERE i < {memes})
           SELECT tp.id, 'filler ' || n.i, 'more filler ' || n.i, n.i % 300,
                  1600000000000 + n.i * 1000
           FROM n JOIN (SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM templates) tp
             ON tp.k = n.i % (SELECT count(*) FROM templates);
         INSERT OR IGNORE INTO meme_tags (meme_id, tag)
           WITH RECURSIVE j(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM j WHERE j < 5)
           SELECT m.id, 'topic-' || ((m.id * 7 + j.j * 31) % {TOPICS})
           FROM memes m, j WHERE m.id > 63;
         COMMIT;"
    ))
    .unwrap();
    path
}

/// The GET pages of Academemes and the values a request binds: the query
/// string, and the route parameter `id`.
/// (route pattern, request path, the values its reads bind).
type Page = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const PAGES: &[Page] = &[
    ("/", "/", &[]),
    ("/memes", "/memes", &[]),
    ("/memes", "/memes?page=3", &[("page", "3")]),
    (
        "/memes",
        "/memes?tag=peer-review",
        &[("tag", "peer-review")],
    ),
    ("/api/memes", "/api/memes?page=2", &[("page", "2")]),
    ("/random", "/random", &[]),
    ("/memes/:id", "/memes/5", &[]),
    ("/memes/:id.svg", "/memes/5.svg", &[]),
    ("/search", "/search", &[]),
    // A search's work follows its matches: these words are in the texts of
    // seed memes only (not in a template, which grown memes share).
    ("/search", "/search?q=farming", &[("q", "farming")]),
    ("/api/search", "/api/search?q=scooped", &[("q", "scooped")]),
    ("/new", "/new", &[]),
];

/// The VM steps and rows of each read of `route`, run as a request for it
/// with `query` (and `id` = 5, seed 12345) would run them.
fn page_cost(
    conn: &Connection,
    manifest: &Manifest,
    route: &str,
    query: &[(&str, &str)],
) -> BTreeMap<String, (i32, usize)> {
    let route = manifest
        .routes
        .iter()
        .find(|r| r.pattern.source() == route && r.methods.iter().any(|m| m == "GET"))
        .unwrap_or_else(|| panic!("app.toml has no GET {route}"));
    let query: BTreeMap<&str, &str> = query.iter().copied().collect();
    let mut out = BTreeMap::new();
    for name in &route.reads {
        let read = &manifest.reads[name];
        let mut stmt = conn.prepare(&read.sql).unwrap();
        for (param, binding) in &read.bind {
            let value: Option<String> = match binding {
                Binding::Param(p) if p == "id" => Some("5".into()),
                Binding::Query(q) => query.get(q.as_str()).map(|v| v.to_string()),
                Binding::Seed => Some("12345".into()),
                _ => None,
            };
            let idx = stmt.parameter_index(&format!(":{param}")).unwrap().unwrap();
            stmt.raw_bind_parameter(idx, value).unwrap();
        }
        let mut rows = 0;
        {
            let mut cursor = stmt.raw_query();
            while cursor.next().unwrap().is_some() {
                rows += 1;
            }
        }
        out.insert(
            name.clone(),
            (stmt.get_status(StatementStatus::VmStep), rows),
        );
    }
    out
}

#[test]
fn every_pages_reads_take_the_same_work_on_a_database_four_times_larger() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = Manifest::load(&repo().join("app.toml")).unwrap();
    let small = Connection::open(grown_database(dir.path(), 2_000)).unwrap();
    let large = Connection::open(grown_database(dir.path(), 8_000)).unwrap();
    let mut grew = Vec::new();
    for (route, page, query) in PAGES {
        let a = page_cost(&small, &manifest, route, query);
        let b = page_cost(&large, &manifest, route, query);
        for (read, (steps_small, rows_small)) in &a {
            let (steps_large, rows_large) = b[read];
            eprintln!(
                "{page:32} {read:16} {steps_small:>8} steps, {rows_small:>4} rows | 4x: {steps_large:>8} steps, {rows_large:>4} rows"
            );
            // Room for a B-tree one level deeper and for page numbers that
            // change with the data; a scan would take 4x.
            if steps_large > steps_small + steps_small / 4 + 200 {
                grew.push(format!(
                    "{page}: read {read} took {steps_small} steps on 2,000 memes, {steps_large} on 8,000"
                ));
            }
        }
    }
    assert!(
        grew.is_empty(),
        "reads whose work grows with the data:\n{}",
        grew.join("\n")
    );
}

#[test]
fn on_a_large_database_pages_show_a_bounded_tag_cloud_and_paged_search_results() {
    crate::support::build_guests();
    let dir = tempfile::tempdir().unwrap();
    let db = grown_database(dir.path(), 5_000);
    let log = dir.path().join("nebula.log");
    let s = Server::start_with("app.toml", &db, dir, log, &[]);
    let conn = Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(DISTINCT tag) FROM meme_tags"), 14 + 200);

    // The tag cloud: the 40 tags on the most memes, not all 214.
    let home = s.get("/").text();
    let cloud = &home[home.find("<ul class=\"tag-cloud\">").expect("a tag cloud")..];
    let cloud = &cloud[..cloud.find("</ul>").unwrap()];
    assert_eq!(cloud.matches("<li>").count(), 40, "{cloud}");
    let most: String = conn
        .query_row(
            "SELECT tag FROM meme_tags GROUP BY tag ORDER BY count(*) DESC, tag LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(cloud.contains(&format!("#{most}</a>")), "{most} in {cloud}");

    // Search: one page of 12 at a time, the exact total, most votes first,
    // pages that do not overlap and together are every match.
    let want: Vec<i64> = {
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT m.id FROM memes m JOIN meme_tags t ON t.meme_id = m.id
                 WHERE instr(t.tag, 'topic-177') > 0 ORDER BY m.votes DESC, m.id DESC",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(want.len() > 100, "{}", want.len());
    assert!(
        want.len() < 200,
        "pages enough to test paging, few enough to fetch: {}",
        want.len()
    );
    let mut got = Vec::new();
    for page in 1..=want.len().div_ceil(12) {
        let json = s
            .get(&format!("/api/search?q=topic-177&page={page}"))
            .json();
        assert_eq!(json["total"].as_u64().unwrap() as usize, want.len());
        assert_eq!(json["page"].as_u64().unwrap() as usize, page);
        let memes = json["memes"].as_array().unwrap();
        assert!(memes.len() <= 12, "page {page}: {} memes", memes.len());
        got.extend(memes.iter().map(|m| m["id"].as_i64().unwrap()));
    }
    assert_eq!(got, want, "every match once, most votes first");
    let html = s.get("/search?q=topic-177&page=2").text();
    assert!(
        html.contains(&format!("{} memes for “topic-177”", want.len())),
        "{html}"
    );
    assert!(html.contains("href=\"/search?q=topic-177&amp;page=3\" rel=\"next\""));
    assert!(html.contains("href=\"/search?q=topic-177\" rel=\"prev\""));

    // /random and the meme page's other meme land on memes that exist.
    let r = s.get("/random");
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(s.get(&loc).status, 200, "{loc}");
    let page = s.get("/memes/4000").text();
    let at = page.find("\">Another meme →").expect("another meme link");
    let href = &page[page[..at].rfind("href=\"").unwrap() + 6..at];
    assert_ne!(href, "/memes/4000");
    assert_eq!(s.get(href).status, 200, "{href}");
}
