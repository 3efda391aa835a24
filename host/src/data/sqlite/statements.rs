//! Checks the manifest's SQL against the SQLite database at start: SQLite
//! itself prepares each statement, so what is checked is what will run.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::footprint::TableRecorder;
use crate::data::versions::Footprint;
use crate::manifest::{Manifest, SESSION_PARAM};

/// [`check_statements`], its answer remembered in `memo` (a file beside
/// the database). The check is a function of the declared statements and
/// the schema, so while neither has changed (`PRAGMA schema_version`
/// counts every change to the schema) the answer is read back instead of
/// preparing every statement again: that was most of loading a data app
/// on a platform (21 statements, ~0.8 ms; benches/RESULTS.md, issue 16).
/// Only answers that passed are remembered.
pub(super) fn checked_statements(
    conn: &Connection,
    manifest: &Manifest,
    memo: &Path,
) -> Result<Footprint> {
    let key = statements_key(conn, manifest)?;
    if let Some(footprint) = read_memo(memo, &key) {
        return Ok(footprint);
    }
    let footprint = check_statements(conn, manifest)?;
    if let Err(e) = write_memo(memo, &key, &footprint) {
        // Only the next load's time depends on it.
        tracing::debug!(file = %memo.display(), "cannot remember the statements' check: {e:#}");
    }
    Ok(footprint)
}

/// What the check's answer depends on: SQLite's version, the schema's,
/// and every declared statement with what it binds.
fn statements_key(conn: &Connection, manifest: &Manifest) -> Result<String> {
    let schema: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(rusqlite::version().as_bytes());
    part(&schema.to_le_bytes());
    part(&[u8::from(manifest.session.is_some())]);
    for read in manifest.reads.values() {
        part(b"read");
        part(read.name.as_bytes());
        part(read.sql.as_bytes());
        for bound in read.bind.keys() {
            part(bound.as_bytes());
        }
    }
    for write in manifest.writes.values() {
        part(b"write");
        part(write.name.as_bytes());
        part(write.sql.as_bytes());
    }
    Ok(format!("{:x}", h.finalize()))
}

/// The file holds `[key, footprint]`.
fn read_memo(file: &Path, key: &str) -> Option<Footprint> {
    let (kept, footprint): (String, Footprint) =
        serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    (kept == key).then_some(footprint)
}

/// A new file renamed over the old, so a reader never sees half of one.
fn write_memo(file: &Path, key: &str, footprint: &Footprint) -> Result<()> {
    let mut tmp = file.as_os_str().to_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, serde_json::to_vec(&(key, footprint))?)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

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
