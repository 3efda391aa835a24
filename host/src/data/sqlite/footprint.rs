//! Which tables each declared statement touches, as SQLite itself says
//! while compiling it: its authorizer is called for every table a
//! statement reads or writes, views and triggers included.

use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::Connection;

use crate::data::versions::{normalise, Footprint, Tables};
use crate::manifest::Manifest;

/// Prepares every declared read and write once more with an authorizer
/// that notes the tables; statements already passed the start-up check.
pub(super) fn footprint(conn: &Connection, manifest: &Manifest) -> Footprint {
    let seen: Arc<Mutex<Vec<(bool, String)>>> = Arc::default();
    let sink = seen.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let touched = match ctx.action {
            AuthAction::Read { table_name, .. } => Some((false, table_name)),
            AuthAction::Insert { table_name }
            | AuthAction::Delete { table_name }
            | AuthAction::Update { table_name, .. } => Some((true, table_name)),
            _ => None,
        };
        if let Some((write, table)) = touched {
            // SQLite's own catalog is read to compile any statement.
            if !table.starts_with("sqlite_") {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((write, normalise(table)));
            }
        }
        Authorization::Allow
    }));
    let tables_of = |sql: &str, writes_only: bool| {
        seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        // A fresh compile (not the statement cache), so the authorizer runs.
        if conn.prepare(sql).is_err() {
            return Tables::Unknown;
        }
        let mut names: Vec<String> = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .filter(|(write, _)| *write || !writes_only)
            .map(|(_, t)| t)
            .collect();
        names.sort();
        names.dedup();
        Tables::Known(names)
    };
    let mut footprint = Footprint::default();
    for read in manifest.reads.values() {
        let t = tables_of(&read.sql, false);
        footprint.reads.insert(read.name.clone(), t);
    }
    for write in manifest.writes.values() {
        let t = tables_of(&write.sql, true);
        footprint.writes.insert(write.name.clone(), t);
    }
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    footprint
}
