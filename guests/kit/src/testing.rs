//! Helpers for unit tests here and in the component crates: requests,
//! tables and responses built and read by hand. Unused code is dropped from
//! the components at link time.

use crate::{Request, Response, Table, Value};

/// A request with the given method, route and path and nothing else.
pub fn request(method: &str, route: &str, path: &str) -> Request {
    Request {
        id: "test".to_string(),
        method: method.to_string(),
        path: path.to_string(),
        route: route.to_string(),
        query: Vec::new(),
        headers: Vec::new(),
        params: Vec::new(),
        body: Vec::new(),
        seed: 0,
        now_ms: 0,
    }
}

/// A data table.
pub fn table(name: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> Table {
    Table {
        name: name.to_string(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
    }
}

/// A TEXT value.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// A meme as the tests need it; the rest of its columns are filled in.
pub struct TestMeme<'a> {
    pub id: i64,
    pub top: &'a str,
    pub bottom: &'a str,
    pub votes: i64,
    /// Comma-joined, as the reads give them; "" for NULL.
    pub tags: &'a str,
}

/// A table shaped like the `newest`, `top`, `memes` and `meme` reads
/// (the latter's `template_name` included).
pub fn memes_table(name: &str, memes: &[TestMeme]) -> Table {
    let columns = [
        "id",
        "template",
        "template_name",
        "top_text",
        "bottom_text",
        "votes",
        "created_ms",
        "tags",
    ];
    let rows = memes
        .iter()
        .map(|m| {
            vec![
                Value::Integer(m.id),
                text("drake"),
                text("Drake approves"),
                text(m.top),
                text(m.bottom),
                Value::Integer(m.votes),
                Value::Integer(1_700_000_000_000 + m.id * 86_400_000),
                if m.tags.is_empty() {
                    Value::Null
                } else {
                    text(m.tags)
                },
            ]
        })
        .collect();
    table(name, &columns, rows)
}

/// The `meme_ids` read.
pub fn ids_table(ids: &[i64]) -> Table {
    table(
        "meme_ids",
        &["id"],
        ids.iter().map(|&id| vec![Value::Integer(id)]).collect(),
    )
}

/// The first response header named `name`.
pub fn response_header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The response body as text.
pub fn body(resp: &Response) -> &str {
    std::str::from_utf8(&resp.body).expect("UTF-8 body")
}
