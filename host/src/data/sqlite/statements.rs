//! Checks the manifest's SQL against the SQLite database at start: SQLite
//! itself prepares each statement, so what is checked is what will run.

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

use super::footprint::TableRecorder;
use crate::data::versions::Footprint;
use crate::manifest::{Manifest, SESSION_PARAM};

/// Prepares every declared read and write so that a typo in SQL, a read that
/// would write, or a parameter without a binding stops the start with a
/// message naming the manifest key. Returns the tables each one touches,
/// noted while SQLite compiled it (one compile per statement: a start
/// spends most of its SQL time compiling).
pub(super) fn check_statements(conn: &Connection, manifest: &Manifest) -> Result<Footprint> {
    let file = manifest.file.display();
    let recorder = TableRecorder::install(conn);
    let mut footprint = Footprint::default();
    for read in manifest.reads.values() {
        let key = format!("{file}: reads.{}", read.name);
        recorder.clear();
        // A fresh compile (not the statement cache), so the authorizer runs.
        let stmt = conn
            .prepare(&read.sql)
            .with_context(|| format!("{key}.sql does not prepare against the database"))?;
        footprint
            .reads
            .insert(read.name.clone(), recorder.tables(false));
        if !stmt.readonly() {
            bail!("{key}: a read must not change the database; declare it under [writes] instead");
        }
        let mut used = Vec::new();
        for i in 1..=stmt.parameter_count() {
            match stmt.parameter_name(i) {
                Some(name) if name.starts_with(':') || name.starts_with('@') || name.starts_with('$') => {
                    let bare = &name[1..];
                    if !read.bind.contains_key(bare) {
                        bail!(
                            "{key}: SQL parameter {name} has no binding; add `{bare} = \"query.{bare}\"` (or param./form./header./session.id) to its `bind`"
                        );
                    }
                    used.push(bare.to_string());
                }
                _ => bail!(
                    "{key}: reads take named parameters (:name) bound through `bind`; found a positional parameter"
                ),
            }
        }
        for name in read.bind.keys() {
            if !used.contains(name) {
                bail!("{key}.bind.{name}: the SQL has no parameter :{name}");
            }
        }
    }
    for write in manifest.writes.values() {
        let key = format!("{file}: writes.{}", write.name);
        recorder.clear();
        let stmt = conn
            .prepare(&write.sql)
            .with_context(|| format!("{key}.sql does not prepare against the database"))?;
        footprint
            .writes
            .insert(write.name.clone(), recorder.tables(true));
        let count = stmt.parameter_count();
        for i in 1..=count {
            match stmt.parameter_name(i) {
                Some(SESSION_PARAM) if manifest.session.is_none() => bail!(
                    "{key}: {SESSION_PARAM} is the visitor id of the host's session cookie; add a [session] table to the manifest to use it"
                ),
                // The visitor id binds by name after the guest's args, so
                // it must come after them: SQLite would otherwise give it
                // the index of one of ?1, ?2, … and the two would be one.
                Some(SESSION_PARAM) if i != count => bail!(
                    "{key}: {SESSION_PARAM} must come after every positional parameter (?1, ?2, …) in the SQL; the host binds it after the component's args"
                ),
                Some(SESSION_PARAM) => {}
                Some(name) if !name.starts_with('?') => bail!(
                    "{key}: writes take positional parameters ?1, ?2, … filled from the effect's args (and {SESSION_PARAM}, the visitor id, with [session]); found {name}"
                ),
                _ => {}
            }
        }
    }
    Ok(footprint)
}
