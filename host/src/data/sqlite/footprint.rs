//! Which tables each declared statement touches, as SQLite itself says
//! while compiling it: its authorizer is called for every table a
//! statement reads or writes, views and triggers included.

use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::Connection;

use crate::data::versions::{normalise, Tables};

/// Notes the tables of every statement the connection compiles while it
/// lives: SQLite calls the authorizer it installs for each one. The
/// start-up check ([`super::statements`]) compiles each declared statement
/// once anyway, and asks after each which tables it touched.
pub(super) struct TableRecorder<'c> {
    conn: &'c Connection,
    seen: Arc<Mutex<Vec<(bool, String)>>>,
}

impl<'c> TableRecorder<'c> {
    pub fn install(conn: &'c Connection) -> TableRecorder<'c> {
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
        TableRecorder { conn, seen }
    }

    /// Forgets what was noted so far: call before compiling a statement.
    pub fn clear(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The tables the statement compiled since [`clear`](Self::clear)
    /// touched (only those it writes, with `writes_only`).
    pub fn tables(&self, writes_only: bool) -> Tables {
        let mut names: Vec<String> = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .filter(|(write, _)| *write || !writes_only)
            .map(|(_, t)| t)
            .collect();
        names.sort();
        names.dedup();
        Tables::Known(names)
    }
}

impl Drop for TableRecorder<'_> {
    fn drop(&mut self) {
        self.conn
            .authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    }
}
