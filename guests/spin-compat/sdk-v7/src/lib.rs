//! A Spin app built with spin-sdk 7 (`#[http_service]`, WASI 0.3), used to
//! prove that Nebula runs Spin applications unchanged. It mirrors `sdk-v5`
//! (spin-sdk 5.2, WASI 0.2) route for route; keep the two in step.
//!
//! | route                   | behaviour                                                   |
//! |-------------------------|-------------------------------------------------------------|
//! | `GET /hello`            | 200 text/plain, `x-hello: spin`, `hello from spin-sdk v7`   |
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
//! reached) answers 404 `no route in sdk-v7: PATH`.

mod tcp;
mod rdbms;

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{EmptyBody, IntoResponse, Method, Request, Response, StatusCode};
use spin_sdk::{http_service, key_value, sqlite, variables};

mod redis_mqtt;

const SDK: &str = "v7";

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

/// Every handler answers with a status and a text body (plus headers).
type Reply = spin_sdk::http::Response<String>;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (_, ["hello"]) => hello(),
        (_, ["status", code]) => status(code),
        (_, ["kv", "counter"]) => kv_counter().await,
        (_, ["kv", "other"]) => kv_other().await,
        (Method::POST, ["sql", "notes"]) => match req.into_body().bytes().await {
            Ok(body) => sql_insert(&body).await,
            Err(e) => text(400, &format!("error reading body: {e:?}")),
        },
        (Method::GET, ["sql", "notes"]) => {
            sql_search(&query_param(&query, "q").unwrap_or_default()).await
        }
        (_, ["sql", "notes"]) => text(405, "method not allowed"),
        (_, ["vars"]) => vars().await,
        (_, ["users", _, "posts", ..]) => spin_headers(&req),
        (_, ["outbound"]) => outbound(query_param(&query, "url")).await,
        (_, ["tcp"]) => {
            let (status, body) = tcp::echo(query_param(&query, "addr"));
            text(status, &body)
        }
        (_, ["redis" | "mqtt", ..]) => redis_mqtt::handle(req, &segments).await,
        (_, ["pg" | "mysql", _]) => rdbms::handle(req).await,
        _ => text(404, &format!("no route in sdk-{SDK}: {path}")),
    }
}

fn text(status: u16, body: &str) -> Reply {
    http_response(status, "text/plain", body.to_string())
}

fn http_response(status: u16, content_type: &str, body: String) -> Reply {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type)
        .body(body)
        .expect("a valid response")
}

fn hello() -> Reply {
    let mut resp = text(200, &format!("hello from spin-sdk {SDK}"));
    resp.headers_mut()
        .insert("x-hello", spin_sdk::http::HeaderValue::from_static("spin"));
    resp
}

fn status(code: &str) -> Reply {
    match code.parse::<u16>() {
        Ok(code @ 200..=599) => text(code, &format!("status {code}")),
        _ => text(400, &format!("bad status code: {code}")),
    }
}

async fn kv_counter() -> Reply {
    async fn run() -> Result<i64, key_value::Error> {
        let store = key_value::Store::open_default().await?;
        let current = store
            .get("counter")
            .await?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let next = current + 1;
        store.set("counter", next.to_string()).await?;
        Ok(next)
    }
    match run().await {
        Ok(n) => text(200, &n.to_string()),
        Err(e) => text(500, &format!("error: {e:?}")),
    }
}

async fn kv_other() -> Reply {
    // "other" is not in the component's key_value_stores: Spin refuses it
    // with access-denied.
    match key_value::Store::open("other").await {
        Ok(_) => text(200, "opened"),
        Err(e) => text(200, &format!("denied: {e:?}")),
    }
}

const CREATE_NOTES: &str =
    "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)";

async fn sql_insert(body: &[u8]) -> Reply {
    async fn run(body: &[u8]) -> Result<i64, sqlite::Error> {
        let db = sqlite::Connection::open_default().await?;
        db.execute(CREATE_NOTES, []).await?.result().await?;
        let note = String::from_utf8_lossy(body).into_owned();
        db.execute("INSERT INTO notes (body) VALUES (?)", [sqlite::Value::Text(note)])
            .await?
            .result()
            .await?;
        let rows = db.execute("SELECT count(*) FROM notes", []).await?.collect().await?;
        Ok(rows.first().and_then(|r| r.get::<i64>(0)).unwrap_or(0))
    }
    match run(body).await {
        Ok(n) => text(201, &n.to_string()),
        Err(e) => text(500, &format!("error: {e:?}")),
    }
}

async fn sql_search(q: &str) -> Reply {
    async fn run(q: &str) -> Result<String, sqlite::Error> {
        let db = sqlite::Connection::open_default().await?;
        db.execute(CREATE_NOTES, []).await?.result().await?;
        let result = db
            .execute(
                "SELECT id, body FROM notes WHERE body LIKE ? ORDER BY id",
                [sqlite::Value::Text(format!("%{q}%"))],
            )
            .await?;
        let columns = result.columns().to_vec();
        let id = columns.iter().position(|c| c == "id").unwrap_or(0);
        let body = columns.iter().position(|c| c == "body").unwrap_or(1);
        let notes: Vec<String> = result
            .collect()
            .await?
            .iter()
            .map(|row| {
                note_json(
                    row.get::<i64>(id).unwrap_or_default(),
                    row.get::<&str>(body).unwrap_or_default(),
                )
            })
            .collect();
        Ok(format!("[{}]", notes.join(",")))
    }
    match run(q).await {
        Ok(json) => http_response(200, "application/json", json),
        Err(e) => text(500, &format!("error: {e:?}")),
    }
}

async fn vars() -> Reply {
    async fn run() -> Result<String, variables::Error> {
        let greeting = variables::get("greeting").await?;
        let api_key = variables::get("api_key").await?;
        Ok(format!("greeting={greeting}\nsecret_len={}", api_key.len()))
    }
    match run().await {
        Ok(body) => text(200, &body),
        Err(e) => text(500, &format!("error: {e:?}")),
    }
}

fn spin_headers(req: &Request) -> Reply {
    let mut body = String::new();
    for name in SPIN_HEADERS {
        let value = req
            .headers()
            .get(*name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_else(|| "<missing>".to_string());
        body.push_str(&format!("{name}: {value}\n"));
    }
    text(200, &body)
}

async fn outbound(url: Option<String>) -> Reply {
    let Some(url) = url else {
        return text(400, "missing ?url=");
    };
    let request = match Request::get(url).body(EmptyBody::new()) {
        Ok(request) => request,
        Err(e) => return text(400, &format!("error: {e:?}")),
    };
    match spin_sdk::http::send(request).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.into_body().bytes().await {
                Ok(body) => text(200, &format!("status={status}\n{}", String::from_utf8_lossy(&body))),
                Err(e) => text(502, &format!("error: {e:?}")),
            }
        }
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
