//! Checks the manifest's SQL against the database at start.

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

use crate::manifest::Manifest;

/// Prepares every declared read and write so that a typo in SQL, a read that
/// would write, or a parameter without a binding stops the start with a
/// message naming the manifest key.
pub fn check_statements(conn: &Connection, manifest: &Manifest) -> Result<()> {
    let file = manifest.file.display();
    for read in manifest.reads.values() {
        let key = format!("{file}: reads.{}", read.name);
        let stmt = conn
            .prepare(&read.sql)
            .with_context(|| format!("{key}.sql does not prepare against the database"))?;
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
                            "{key}: SQL parameter {name} has no binding; add `{bare} = \"query.{bare}\"` (or param./form./header.) to its `bind`"
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
        let stmt = conn
            .prepare(&write.sql)
            .with_context(|| format!("{key}.sql does not prepare against the database"))?;
        for i in 1..=stmt.parameter_count() {
            if let Some(name) = stmt.parameter_name(i) {
                if !name.starts_with('?') {
                    bail!("{key}: writes take positional parameters ?1, ?2, … filled from the effect's args; found {name}");
                }
            }
        }
    }
    Ok(())
}
