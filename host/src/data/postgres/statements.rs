//! Every declared read and write prepared on PostgreSQL at start, so a
//! statement outside the portable subset stops the start with its manifest
//! key, as on SQLite.

use anyhow::{bail, Result};
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::translate;
use crate::manifest::{Manifest, SESSION_PARAM};

pub(super) async fn check(client: &Client, manifest: &Manifest) -> Result<()> {
    let file = manifest.file.display();
    let session_name = &SESSION_PARAM[1..];
    for read in manifest.reads.values() {
        let key = format!("{file}: reads.{}", read.name);
        if !starts_as_query(&read.sql) {
            bail!("{key}: a read must not change the database (it runs in a read-only transaction); declare it under [writes] instead");
        }
        let t = translate(&read.sql);
        if t.positional > 0 {
            bail!("{key}: reads take named parameters (:name) bound through `bind`; found a positional parameter");
        }
        for name in &t.names {
            if !read.bind.contains_key(name) {
                bail!("{key}: SQL parameter :{name} has no binding; add `{name} = \"query.{name}\"` (or param./form./header./session.id) to its `bind`");
            }
        }
        for name in read.bind.keys() {
            if !t.names.contains(name) {
                bail!("{key}.bind.{name}: the SQL has no parameter :{name}");
            }
        }
        // A read's values are text (query strings, route parameters, form
        // fields), bound as TEXT: SQL that compares one with a number must
        // CAST it, on both stores alike.
        let types = vec![Type::TEXT; t.names.len()];
        if let Err(e) = client.prepare_typed(&t.sql, &types).await {
            bail!("{key}.sql does not prepare on PostgreSQL: {}", message(&e));
        }
    }
    for write in manifest.writes.values() {
        let key = format!("{file}: writes.{}", write.name);
        let t = translate(&write.sql);
        for name in &t.names {
            if name != session_name {
                bail!("{key}: writes take positional parameters ?1, ?2, … filled from the effect's args (and {SESSION_PARAM}, the visitor id, with [session]); found :{name}");
            }
            if manifest.session.is_none() {
                bail!("{key}: {SESSION_PARAM} is the visitor id of the host's session cookie; add a [session] table to the manifest to use it");
            }
        }
        if let Err(e) = client.prepare(&t.sql).await {
            bail!("{key}.sql does not prepare on PostgreSQL: {}", message(&e));
        }
    }
    Ok(())
}

/// The server's message (and hint), without the driver's "db error:" prefix.
pub(super) fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} (hint: {hint})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// Whether the statement is a query (SELECT, WITH, VALUES, TABLE) once
/// comments and parentheses are skipped. A data-modifying WITH is still
/// refused when it runs, by the read-only transaction.
fn starts_as_query(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix('(') {
            rest = r.trim_start();
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(word.as_str(), "SELECT" | "WITH" | "VALUES" | "TABLE")
}
