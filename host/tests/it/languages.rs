//! Components written in Python (componentize-py) and JavaScript (jco), built
//! by `nebula build` with the toolchains it installs, served under the closed
//! WASI: `/stats` (Python) and `/api/search`, `/search` (JavaScript) on
//! Academemes, and the same trivial function in three languages
//! (host/tests/apps/langs.toml).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use rusqlite::Connection;

use crate::support::{build_guests, nebula, nebula_build, repo, succeeded, Server};

const LANGS: &str = "host/tests/apps/langs.toml";

fn site() -> Server {
    Server::start("app.toml", &[])
}

fn db(s: &Server) -> Connection {
    Connection::open(s.dir.path().join("app.db")).unwrap()
}

/// Builds the Python and JavaScript hello components once per test run.
fn build_langs() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| nebula_build(LANGS));
}

/// The text of the first `<td class="num">` after `marker` in `html`.
fn number_after(html: &str, marker: &str) -> i64 {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not on the page"));
    let rest = &html[at..];
    let cell = rest.find("<td class=\"num\">").expect("a number cell") + 16;
    let end = rest[cell..].find("</td>").unwrap() + cell;
    rest[cell..end].replace(',', "").parse().unwrap()
}

fn total(html: &str, column: &str) -> i64 {
    let marker = format!("data-total=\"{column}\">");
    let at = html.find(&marker).expect("total") + marker.len();
    let end = html[at..].find('<').unwrap() + at;
    html[at..end].replace(',', "").parse().unwrap()
}

#[test]
fn python_stats_page_counts_what_the_database_holds() {
    let s = site();
    let r = s.get("/stats");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    assert!(html.starts_with("<!doctype html>"), "{html:.200}");
    assert!(html.contains("<title>Statistics — Academemes</title>"));
    assert!(html.contains("<link rel=\"stylesheet\" href=\"/static/style.css\">"));
    assert!(html.contains("class=\"site-header\"") && html.contains("Served by Nebula"));

    let conn = db(&s);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(total(&html, "memes"), count("SELECT count(*) FROM memes"));
    assert_eq!(total(&html, "votes"), count("SELECT sum(votes) FROM memes"));
    assert_eq!(
        total(&html, "tags"),
        count("SELECT count(DISTINCT tag) FROM meme_tags")
    );
    assert_eq!(
        total(&html, "templates"),
        count("SELECT count(*) FROM templates")
    );

    // Every tag, with its count, linking to its memes.
    let mut stmt = conn
        .prepare("SELECT tag, count(*) FROM meme_tags GROUP BY tag")
        .unwrap();
    let tags: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(tags.len() > 5, "the seed has tags");
    for (tag, n) in &tags {
        assert_eq!(
            number_after(&html, &format!("<tr data-tag=\"{tag}\">")),
            *n,
            "memes tagged {tag}"
        );
        assert!(html.contains(&format!("href=\"/memes?tag={tag}\">#{tag}</a>")));
    }
    assert_eq!(html.matches("<tr data-tag=").count(), tags.len());

    // Templates ranked by the votes of their memes.
    let (top, votes): (String, i64) = conn
        .query_row(
            "SELECT template, sum(votes) AS v FROM memes GROUP BY template ORDER BY v DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let first = html.find("<tr data-template=\"").unwrap();
    assert!(
        html[first..].starts_with(&format!("<tr data-template=\"{top}\">")),
        "{top} should rank first"
    );
    let row = &html[first..first + html[first..].find("</tr>").unwrap()];
    assert!(
        row.contains(&format!("<td class=\"num\">{}</td>", thousands(votes))),
        "{row}"
    );

    // The page follows the data: a vote shows at once.
    let before = total(&html, "votes");
    assert_eq!(s.post_form("/memes/1/vote", &[]).status, 303);
    assert_eq!(total(&s.get("/stats").text(), "votes"), before + 1);
}

fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The ids of the memes whose top or bottom text, tags or template (id or
/// name) contain `word`, ignoring case, computed here from the database.
fn expected_matches(conn: &Connection, word: &str) -> BTreeSet<i64> {
    let mut stmt = conn
        .prepare(
            "SELECT m.id, m.top_text, m.bottom_text, m.template, tp.name,
                    coalesce((SELECT group_concat(tag, ',') FROM meme_tags t WHERE t.meme_id = m.id), '')
             FROM memes m JOIN templates tp ON tp.id = m.template",
        )
        .unwrap();
    let word = word.to_lowercase();
    let found: BTreeSet<i64> = stmt
        .query_map([], |r| {
            let fields = (1..6usize)
                .map(|i| r.get::<_, String>(i))
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok((r.get::<_, i64>(0)?, fields))
        })
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, fields)| {
            fields
                .iter()
                .flat_map(|f| f.split(','))
                .any(|f| f.to_lowercase().contains(&word))
        })
        .map(|(id, _)| id)
        .collect();
    found
}

fn ids(json: &serde_json::Value) -> BTreeSet<i64> {
    json["memes"]
        .as_array()
        .expect("memes")
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn javascript_search_finds_exactly_the_memes_containing_the_word() {
    let s = site();
    let conn = db(&s);
    for word in [
        "reviewer", "deadline", "thesis", "p-value", "latex", "coffee",
    ] {
        let want = expected_matches(&conn, word);
        assert!(!want.is_empty(), "the seed has memes with {word}");
        let r = s.get(&format!("/api/search?q={word}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let json = r.json();
        assert_eq!(json["q"], word);
        assert_eq!(ids(&json), want, "memes matching {word}");
        assert_eq!(json["total"].as_u64().unwrap() as usize, want.len());
        // Case does not matter, and surrounding blanks are ignored.
        let upper = s
            .get(&format!("/api/search?q=%20{}%20", word.to_uppercase()))
            .json();
        assert_eq!(ids(&upper), want, "{word} in capitals");
    }
    // A result carries what a client needs to show it.
    let json = s.get("/api/search?q=reviewer").json();
    let m = &json["memes"][0];
    let id = m["id"].as_i64().unwrap();
    let (top, votes): (String, i64) = conn
        .query_row(
            "SELECT top_text, votes FROM memes WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(m["top_text"], top);
    assert_eq!(m["votes"], votes);
    assert_eq!(m["url"], format!("/memes/{id}"));
    assert_eq!(m["image"], format!("/memes/{id}.svg"));
    // Ordered by votes, most first.
    let v: Vec<i64> = json["memes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["votes"].as_i64().unwrap())
        .collect();
    assert!(v.windows(2).all(|w| w[0] >= w[1]), "{v:?}");

    // Nothing matches a word no meme has.
    let none = s.get("/api/search?q=zyzzyvaqx").json();
    assert_eq!(none["total"], 0);
    assert_eq!(ids(&none), BTreeSet::new());
}

#[test]
fn javascript_search_without_a_query_finds_nothing() {
    let s = site();
    for path in [
        "/api/search",
        "/api/search?q=",
        "/api/search?q=%20%20",
        "/api/search?x=1",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}");
        let json = r.json();
        assert_eq!(json["q"], "", "{path}");
        assert_eq!(json["total"], 0, "{path}");
        assert_eq!(json["memes"], serde_json::json!([]), "{path}");
    }
    // The HTML page shows the form and how many memes it would search.
    let html = s.get("/search").text();
    assert!(html.contains("<form class=\"search-form\" method=\"get\" action=\"/search\""));
    let memes: i64 = db(&s)
        .query_row("SELECT count(*) FROM memes", [], |r| r.get(0))
        .unwrap();
    assert!(html.contains(&format!("of {memes} memes")), "{html}");
}

#[test]
fn javascript_search_escapes_what_people_typed() {
    let s = site();
    let tpl: String = db(&s)
        .query_row("SELECT id FROM templates ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let top = "<script>alert(\"xss\")</script> & 'quotes'";
    let r = s.post_form(
        "/memes",
        &[
            ("template", tpl.as_str()),
            ("top_text", top),
            ("bottom_text", "Qwzxv unique bottom"),
            ("tags", "odd-tag"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let id: i64 = r
        .header("location")
        .unwrap()
        .strip_prefix("/memes/")
        .unwrap()
        .parse()
        .unwrap();

    // JSON: the text comes back exactly, and the raw body holds no markup.
    let r = s.get("/api/search?q=qwzxv");
    let raw = r.text();
    assert!(
        !raw.contains('<') && !raw.contains('>') && !raw.contains('&'),
        "{raw}"
    );
    assert!(raw.contains("\\u003cscript\\u003e"), "{raw}");
    let json = r.json();
    assert_eq!(ids(&json), BTreeSet::from([id]));
    let stored: String = db(&s)
        .query_row("SELECT top_text FROM memes WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored, top);
    assert_eq!(json["memes"][0]["top_text"], stored);
    assert_eq!(json["memes"][0]["tags"], serde_json::json!(["odd-tag"]));

    // A query full of markup is data, in JSON and in HTML.
    let q = "<img src=x onerror=alert(1)>\"'&";
    let encoded: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
    let json = s.get(&format!("/api/search?q={encoded}")).json();
    assert_eq!(json["q"], q);
    assert_eq!(json["total"], 0);
    let html = s.get(&format!("/search?q={encoded}")).text();
    assert!(!html.contains("<img src=x"), "query unescaped in the page");
    assert!(html.contains("value=\"&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;\""));

    // The HTML results escape the meme's text too.
    let html = s.get("/search?q=qwzxv").text();
    assert!(html.contains(&format!("href=\"/memes/{id}\"")));
    assert!(!html.contains("<script>alert"), "meme text unescaped");
    assert!(
        html.contains("&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;")
    );
    assert!(html.contains("1 meme for “qwzxv”"), "{html}");
}

/// The app of `manifest` (relative to the repository), loaded in-process
/// with its database in `dir` and the tests' compile cache.
fn in_process(manifest: &str, dir: &std::path::Path) -> nebula::app::App {
    let manifest = nebula::manifest::Manifest::load(&repo().join(manifest)).unwrap();
    nebula::app::App::load(
        manifest,
        nebula::app::AppOptions {
            database: Some(nebula::data::Location::Sqlite(dir.join("app.db"))),
            cache_dir: Some(repo().join("target/nebula-test-cache")),
            ..Default::default()
        },
    )
    .unwrap()
}

/// `GET uri` on `app` with the given seed and time.
fn get_with(
    app: &nebula::app::App,
    uri: &str,
    seed: u64,
    now_ms: u64,
) -> nebula::app::HttpResponse {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = http::Request::get(uri).body(bytes::Bytes::new()).unwrap();
    rt.block_on(app.handle_with(req, seed, now_ms))
}

#[test]
fn python_and_javascript_answers_are_a_function_of_request_seed_and_data() {
    build_guests();
    let dir = tempfile::tempdir().unwrap();
    let app = in_process("app.toml", dir.path());
    for uri in [
        "/stats",
        "/api/search?q=review",
        "/search?q=deadline",
        "/search",
    ] {
        let a = get_with(&app, uri, 7, 1_790_000_000_000);
        let b = get_with(&app, uri, 7, 1_790_000_000_000);
        assert_eq!(a.status(), 200, "{uri}");
        assert!(a.body().len() > 200, "{uri}: {:?}", a.body());
        assert_eq!(
            a.body(),
            b.body(),
            "{uri}: same request, seed and data, different bytes"
        );
        // Neither uses the seed or the clock: another seed and time give
        // the same page.
        let c = get_with(&app, uri, 8, 1_800_000_000_000);
        assert_eq!(a.body(), c.body(), "{uri}");
    }
}

#[test]
fn the_same_function_in_three_languages_answers_alike() {
    build_guests();
    build_langs();
    // One pool slot: a componentize-py instance (14 core instances) must fit
    // in what the pool gives one component instance.
    let s = Server::start(LANGS, &["--max-instances", "1"]);
    // A component not in the compile cache is compiled by the first request
    // that needs it; the Python one takes longer than the client's 30 s on
    // a busy 2-core machine. What is tested here is the answers, so they
    // are asked once the host has compiled both in the background.
    s.all_loaded(std::time::Duration::from_secs(300));
    let want = "hello from a pure function\nrest=x/y\na=1\nb=two words\n";
    for lang in ["py", "js"] {
        let r = s.get(&format!("/{lang}/x/y?a=1&b=two%20words"));
        assert_eq!(r.status, 200, "{lang}: {}\n{}", r.text(), s.log());
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.text(), want, "{lang}");
    }
    let rust = Server::start("host/tests/apps/probe.toml", &[]);
    assert_eq!(rust.get("/hello/x/y?a=1&b=two%20words").text(), want);
}

#[test]
fn check_lists_and_accepts_what_python_and_javascript_components_import() {
    build_langs();
    let text = succeeded(nebula().args(["check", "-f"]).arg(repo().join(LANGS)));
    assert_eq!(text.matches("ok: pure world").count(), 2, "{text}");
    let section = |name: &str| -> String {
        let start = text.find(&format!("component {name} (")).unwrap();
        let rest = &text[start + 1..];
        let end = rest.find("\ncomponent ").map_or(rest.len(), |e| e + 1);
        rest[..end].to_string()
    };
    let py = section("hello-py");
    let js = section("hello-js");
    // What each toolchain's runtime imports, each served closed.
    for (import, how) in [
        ("wasi:filesystem/preopens@", "closed: no directories"),
        ("wasi:sockets/tcp@", "closed: every address denied"),
        (
            "wasi:cli/environment@",
            "closed: no variables, no arguments",
        ),
        ("wasi:clocks/wall-clock@", "fixed at the request's now-ms"),
        ("wasi:random/random@", "drawn from the request's seed"),
        ("wasi:cli/stderr@", "captured into the host log"),
    ] {
        let line = py
            .lines()
            .find(|l| l.contains(import))
            .unwrap_or_else(|| panic!("hello-py does not list {import}:\n{py}"));
        assert!(line.ends_with(how), "{line}");
    }
    for import in [
        "wasi:filesystem/preopens@",
        "wasi:clocks/monotonic-clock@",
        "wasi:random/random@",
        "wasi:cli/stdout@",
    ] {
        assert!(
            js.contains(import),
            "hello-js does not list {import}:\n{js}"
        );
    }
    // Built without fetch: the JavaScript runtime does not import wasi:http.
    assert!(!js.contains("wasi:http"), "{js}");
    assert!(!text.contains("not allowed"), "{text}");
}

#[test]
fn a_missing_python_or_node_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("app.toml"),
        r#"
[components.py]
source = "py.wasm"
build = { command = "componentize-py -d wit -w pure componentize app -o ../py.wasm", workdir = "src" }

[components.js]
source = "js.wasm"
build = { command = "jco componentize app.js -w wit -n pure -o ../js.wasm", workdir = "src" }

[[routes]]
path = "/py"
component = "py"

[[routes]]
path = "/js"
component = "js"
"#,
    )
    .unwrap();
    // A PATH with neither python3 nor node nor npm on it.
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let build = |component: &str| {
        let out = nebula()
            .env("PATH", &empty)
            .args(["build", "-f"])
            .arg(dir.path().join("app.toml"))
            .arg(component)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{component} built without a toolchain"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = build("py");
    assert!(err.contains("component \"py\""), "{err}");
    assert!(
        err.contains("python3 is not on PATH")
            && err.contains("apt-get install python3 python3-venv"),
        "{err}"
    );
    let err = build("js");
    assert!(err.contains("component \"js\""), "{err}");
    assert!(
        err.contains("node is not on PATH") && err.contains("Node.js 18 or newer with npm"),
        "{err}"
    );
    // Without a package.json, one pinning the toolchain was written for npm.
    let pkg = std::fs::read_to_string(dir.path().join("package.json")).unwrap();
    assert!(pkg.contains("\"@bytecodealliance/jco\""), "{pkg}");
}

/// The part of a page between `open` and `close` (inclusive), with the
/// marker of the current page taken out.
fn frame_part(html: &str, open: &str, close: &str) -> String {
    let start = html
        .find(open)
        .unwrap_or_else(|| panic!("no {open}: {html}"));
    let end = html[start..]
        .find(close)
        .unwrap_or_else(|| panic!("no {close}: {html}"))
        + start
        + close.len();
    html[start..end].replace(" aria-current=\"page\"", "")
}

/// The site's header (logo, nav) and footer are written three times: in
/// Rust (guests/html), Python (stats-py/layout.py) and JavaScript
/// (search-js/layout.js). A page of each must show the same ones.
#[test]
fn the_page_frame_is_the_same_in_rust_python_and_javascript() {
    let s = site();
    let pages = [
        ("/memes", "Rust"),
        ("/stats", "Python"),
        ("/search?q=a", "JavaScript"),
    ];
    let frames: Vec<(String, String, &str)> = pages
        .iter()
        .map(|(path, lang)| {
            let r = s.get(path);
            assert_eq!(r.status, 200, "{path}");
            let html = r.text();
            (
                frame_part(&html, "<header", "</header>"),
                frame_part(&html, "<footer", "</footer>"),
                *lang,
            )
        })
        .collect();
    for (header, footer, lang) in &frames[1..] {
        assert_eq!(header, &frames[0].0, "{lang}'s header differs from Rust's");
        assert_eq!(footer, &frames[0].1, "{lang}'s footer differs from Rust's");
    }
    assert!(frames[0].0.contains("href=\"/stats\""), "{}", frames[0].0);
}

/// What a probe of host/tests/apps/lang-probes.toml could reach, as JSON.
fn probe(app: &nebula::app::App, path: &str, seed: u64, now_ms: u64) -> serde_json::Value {
    let r = get_with(app, path, seed, now_ms);
    assert_eq!(r.status(), 200, "{path}: {:?}", r.body());
    serde_json::from_slice(r.body()).unwrap()
}

const PROBES: &str = "host/tests/apps/lang-probes.toml";

fn assert_failed(v: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        let got = v[key].as_str().unwrap_or_default();
        assert!(got.starts_with("failed: "), "{key} was reachable: {v}");
    }
}

#[test]
fn python_and_javascript_reach_no_files_sockets_environment_clock_or_entropy_of_their_own() {
    nebula_build(PROBES);
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(PROBES, dir.path());
    let now_ms = 1_790_000_000_123;

    let py = probe(&app, "/py", 7, now_ms);
    assert_failed(
        &py,
        &[
            "read_etc_passwd",
            "read_relative",
            "list_root",
            "write_file",
            "connect_loopback",
            "resolve",
        ],
    );
    assert!(!std::path::Path::new("/tmp/nebula-py-probe").exists());
    assert_eq!(py["environ"], serde_json::json!([]), "environment leaked");
    assert_eq!(py["time_ms"].as_u64(), Some(now_ms));
    assert_eq!(py["monotonic_ns"].as_u64(), Some(now_ms * 1_000_000));
    assert_eq!(py["seed"], "7");

    let js = probe(&app, "/js", 7, now_ms);
    assert_eq!(js["time_ms"].as_u64(), Some(now_ms));
    assert_eq!(js["seed"], "7");

    // Randomness is the seed's: the same seed draws the same numbers, another
    // seed others.
    for (path, first, keys) in [
        ("/py", &py, ["urandom", "random_module"]),
        ("/js", &js, ["get_random_values", "math_random"]),
    ] {
        let again = probe(&app, path, 7, now_ms);
        assert_eq!(&again, first, "{path}: same seed and time, other answer");
        let other = probe(&app, path, 8, now_ms);
        for key in keys {
            assert_ne!(
                other[key], first[key],
                "{path}: {key} does not follow the seed"
            );
        }
    }
}

#[test]
fn a_javascript_component_using_node_apis_is_refused_and_its_wit_kept_as_it_was() {
    build_langs();
    let app = tempfile::tempdir().unwrap();
    let p = app.path();
    // The repository's JavaScript toolchain, not a fresh install: its
    // package files are older than the node_modules they point to.
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(repo().join(file), p.join(file)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(p.join(file))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
    }
    std::os::unix::fs::symlink(repo().join("node_modules"), p.join("node_modules")).unwrap();
    std::fs::create_dir_all(p.join("wit")).unwrap();
    let wit = std::fs::read_to_string(repo().join("wit/pure/function.wit")).unwrap();
    std::fs::write(p.join("wit/function.wit"), &wit).unwrap();
    std::fs::create_dir_all(p.join("env")).unwrap();
    let uses_process = "export function handle(req, _data) {\n  return { status: 200, headers: [], body: new TextEncoder().encode(String(process.env.HOME)), effects: [] };\n}\n";
    std::fs::write(p.join("env/app.js"), uses_process).unwrap();
    std::fs::write(
        p.join("app.toml"),
        "[app]\nname = \"node-apis\"\n\n[components.env]\nsource = \"target/env.wasm\"\nbuild = { command = \"jco componentize app.js --bundle -w ../wit -n pure -d http fetch-event -o ../target/env.wasm\", workdir = \"env\" }\n\n[[routes]]\npath = \"/env\"\ncomponent = \"env\"\n",
    )
    .unwrap();
    let build = || {
        nebula()
            .args(["build", "-f"])
            .arg(p.join("app.toml"))
            .output()
            .unwrap()
    };

    let out = build();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "jco changed the WIT it builds against (../wit): added `import jco:node/tty@0.1.0;`"
        ),
        "{err}"
    );
    assert!(err.contains("a Node.js built-in"), "{err}");
    assert_eq!(
        std::fs::read_to_string(p.join("wit/function.wit")).unwrap(),
        wit
    );
    assert!(!p.join("wit/deps").exists());

    // The WIT is as good as before: without `process` the same build works.
    std::fs::write(
        p.join("env/app.js"),
        uses_process.replace("String(process.env.HOME)", "\"no environment\""),
    )
    .unwrap();
    let out = build();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(p.join("target/env.wasm").exists());
}
