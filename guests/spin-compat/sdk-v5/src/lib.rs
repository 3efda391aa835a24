//! A Spin app built with spin-sdk 5.2 (`#[http_component]`, WASI 0.2), used to
//! prove that Nebula runs Spin applications unchanged. `sdk-v7` is the same app
//! written against spin-sdk 7 (WASI 0.3); keep the two in step.
//!
//! One component serves every route of `spin.toml` (each declared as its own
//! trigger), so it dispatches on the request path. The manifest is the router;
//! the path is matched here only to pick the handler:
//!
//! | route                   | behaviour                                                   |
//! |-------------------------|-------------------------------------------------------------|
//! | `GET /hello`            | 200 text/plain, `x-hello: spin`, `hello from spin-sdk v5`   |
//! | `GET /status/:code`     | that status, body `status CODE`                             |
//! | `GET /kv/counter`       | store "default": counter += 1, body is the new value        |
//! | `GET /kv/other`         | opens undeclared store "other": `denied: ERR` or `opened`   |
//! | `POST /sql/notes`       | inserts the body as a note, 201 with the row count          |
//! | `GET /sql/notes?q=TEXT` | JSON `[{"id":1,"body":"..."}]` of notes LIKE `%TEXT%`        |
//! | `GET /vars`             | `greeting=<value>\nsecret_len=<len of api_key>`             |
//! | `GET /users/:id/posts/...` | the `spin-*` request headers, one `name: value` a line   |
//! | `GET /outbound?url=URL` | GET URL: 200 `status=N\n<body>` or 502 `error: ERR`         |
//! | `GET /tcp?addr=IP:PORT` | TCP (wasi:sockets): 200 `echo: <reply to ping>` or 502      |
//! | `/pg/*`, `/mysql/*`     | outbound PostgreSQL and MySQL: see `rdbms.rs`               |
//!
//! Anything else (e.g. the private `internal` component, if it were ever
//! reached) answers 404 `no route in sdk-v5: PATH`.

mod tcp;
mod rdbms;

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::{http_component, key_value, sqlite, variables};

mod redis_mqtt;

const SDK: &str = "v5";

/// The request headers Spin adds to every request it routes to a component.
const SPIN_HEADERS: &[&str] = &[
    "spin-full-url",
    "spin-path-info",
    "spin-matched-route",
    "spin-component-route",
    "spin-raw-component-route",
    "spin-base-path",
    "spin-client-addr",
    "spin-path-match-id",
];

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resp = match (req.method(), segments.as_slice()) {
        (_, ["hello"]) => hello(),
        (_, ["status", code]) => status(code),
        (_, ["kv", "counter"]) => kv_counter(),
        (_, ["kv", "other"]) => kv_other(),
        (Method::Post, ["sql", "notes"]) => sql_insert(req.body()),
        (Method::Get, ["sql", "notes"]) => sql_search(&query_param(req.query(), "q").unwrap_or_default()),
        (_, ["sql", "notes"]) => text(405, "method not allowed"),
        (_, ["vars"]) => vars(),
        (_, ["users", _, "posts", ..]) => spin_headers(&req),
        (_, ["outbound"]) => outbound(query_param(req.query(), "url")).await,
        (_, ["tcp"]) => {
            let (status, body) = tcp::echo(query_param(req.query(), "addr"));
            text(status, &body)
        }
        (_, ["redis" | "mqtt", ..]) => redis_mqtt::handle(&req, &segments),
        (method, ["pg" | "mysql", _]) => rdbms::handle(method, &segments, req.query(), req.body()),
        _ => text(404, &format!("no route in sdk-{SDK}: {path}")),
    };
    Ok(resp)
}

fn text(status: u16, body: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .build()
}

fn hello() -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .header("x-hello", "spin")
        .body(format!("hello from spin-sdk {SDK}"))
        .build()
}

fn status(code: &str) -> Response {
    match code.parse::<u16>() {
        Ok(code @ 200..=599) => text(code, &format!("status {code}")),
        _ => text(400, &format!("bad status code: {code}")),
    }
}

fn kv_counter() -> Response {
    let run = || -> Result<i64, key_value::Error> {
        let store = key_value::Store::open_default()?;
        let current = store
            .get("counter")?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let next = current + 1;
        store.set("counter", next.to_string().as_bytes())?;
        Ok(next)
    };
    match run() {
        Ok(n) => text(200, &n.to_string()),
        Err(e) => text(500, &format!("error: {e:?}")),
    }
}

fn kv_other() -> Response {
    // "other" is not in the component's key_value_stores: Spin refuses it
    // with access-denied.
    match key_value::Store::open("other") {
        Ok(_) => text(200, "opened"),
        Err(e) => text(200, &format!("denied: {e:?}")),
    }
}

const CREATE_NOTES: &str = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)";

fn sql_insert(body: &[u8]) -> Response {
    let run = || -> Result<i64, sqlite::Error> {
        let db = sqlite::Connection::open_default()?;
        db.execute(CREATE_NOTES, &[])?;
        let note = String::from_utf8_lossy(body).into_owned();
        db.execute("INSERT INTO notes (body) VALUES (?)", &[sqlite::Value::Text(note)])?;
        let count = db.execute("SELECT count(*) FROM notes", &[])?;
        Ok(count.rows.first().and_then(|r| r.get::<i64>(0)).unwrap_or(0))
    };
    match run() {
        Ok(n) => text(201, &n.to_string()),
        Err(e) => text(500, &format!("error: {e:?}")),
    }
}

fn sql_search(q: &str) -> Response {
    let run = || -> Result<String, sqlite::Error> {
        let db = sqlite::Connection::open_default()?;
        db.execute(CREATE_NOTES, &[])?;
        let result = db.execute(
            "SELECT id, body FROM notes WHERE body LIKE ? ORDER BY id",
            &[sqlite::Value::Text(format!("%{q}%"))],
        )?;
        let notes: Vec<String> = result
            .rows()
            .map(|row| {
                note_json(
                    row.get::<i64>("id").unwrap_or_default(),
                    row.get::<&str>("body").unwrap_or_default(),
                )
            })
            .collect();
        Ok(format!("[{}]", notes.join(",")))
    };
    match run() {
        Ok(json) => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(json)
            .build(),
        Err(e) => text(500, &format!("error: {e:?}")),
    }
}

fn vars() -> Response {
    let run = || -> Result<String, variables::Error> {
        let greeting = variables::get("greeting")?;
        let api_key = variables::get("api_key")?;
        Ok(format!("greeting={greeting}\nsecret_len={}", api_key.len()))
    };
    match run() {
        Ok(body) => text(200, &body),
        Err(e) => text(500, &format!("error: {e:?}")),
    }
}

fn spin_headers(req: &Request) -> Response {
    let mut body = String::new();
    for name in SPIN_HEADERS {
        let value = req
            .header(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_else(|| "<missing>".to_string());
        body.push_str(&format!("{name}: {value}\n"));
    }
    text(200, &body)
}

async fn outbound(url: Option<String>) -> Response {
    let Some(url) = url else {
        return text(400, "missing ?url=");
    };
    let request = Request::get(url).build();
    match spin_sdk::http::send::<_, Response>(request).await {
        Ok(resp) => text(
            200,
            &format!("status={}\n{}", resp.status(), String::from_utf8_lossy(resp.body())),
        ),
        Err(e) => text(502, &format!("error: {e:?}")),
    }
}

/// `{"id":ID,"body":"BODY"}`, keys in that order (serde_json escapes the text).
fn note_json(id: i64, body: &str) -> String {
    let body = serde_json::to_string(body).unwrap_or_else(|_| "\"\"".to_string());
    format!("{{\"id\":{id},\"body\":{body}}}")
}

/// The first value of `name` in a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
