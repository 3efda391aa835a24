//! Numbered schema migrations, the same on every store.
//!
//! An app's schema is a list of numbered SQL files, applied in order, each
//! once, in its own transaction together with its row in the store's
//! `nebula_migrations` table; a later start applies only the new ones, on
//! SQLite or PostgreSQL alike. Where the two dialects differ (DDL: triggers,
//! identity columns, indexes), a file may come in one variant per store:
//!
//! ```text
//! db/migrations/0001_schema.sqlite.sql     only on SQLite
//! db/migrations/0001_schema.postgres.sql   only on PostgreSQL
//! db/migrations/0002_seed.sql              on every store
//! ```
//!
//! A version with no file for a store is skipped there. The
//! `[database] schema` and `seed` keys are versions 1 and 2 of the same
//! list (`schema.postgres.sql` beside `schema.sql` is its PostgreSQL
//! variant), so a database made from them before migrations existed
//! carries on, and later changes go in the folder from 0003 on.
//! Each applied file's SHA-256 is recorded: editing a file after it ran is
//! refused at start (add a new numbered file instead), because the other
//! databases that already ran it would silently differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::manifest::Database;

/// The SQL dialect a store speaks; names the file variants it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The file-name suffix of this store's variants (`NNNN_x.<suffix>.sql`).
    pub fn suffix(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// One migration as a store will run it.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    /// The file name without the number, dialect and `.sql`: `schema`.
    pub name: String,
    pub file: PathBuf,
    pub sql: String,
    /// Hex SHA-256 of `sql`, recorded when it is applied.
    pub checksum: String,
}

/// The migrations `db` declares for `dialect`, in version order: `schema`
/// and `seed` as versions 1 and 2, then the `migrations` folder's files
/// (numbered 3 and up when there is a schema or seed).
pub fn plan(db: &Database, dialect: Dialect) -> Result<Vec<Migration>> {
    let mut out = legacy(db, dialect)?;
    if let Some(dir) = &db.migrations {
        let more = from_folder(dir, dialect)?;
        if !out.is_empty() {
            if let Some(m) = more.iter().find(|m| m.version <= 2) {
                bail!(
                    "{}: versions 1 and 2 are [database] schema and seed; number this migration 3 or more",
                    m.file.display()
                );
            }
        }
        out.extend(more);
    }
    Ok(out)
}

/// `schema` and `seed` as versions 1 and 2; `x.postgres.sql` beside
/// `x.sql` is the PostgreSQL variant.
fn legacy(db: &Database, dialect: Dialect) -> Result<Vec<Migration>> {
    let mut out = Vec::new();
    for (version, name, path) in [(1, "schema", &db.schema), (2, "seed", &db.seed)] {
        let Some(path) = path else { continue };
        let variant = path.with_extension(format!("{}.sql", dialect.suffix()));
        let file = if variant.is_file() {
            variant
        } else {
            path.clone()
        };
        let sql = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "[database] {name} = {}: cannot read the file",
                file.display()
            )
        })?;
        out.push(Migration::new(version, name, file, sql));
    }
    Ok(out)
}

fn from_folder(dir: &Path, dialect: Dialect) -> Result<Vec<Migration>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "[database] migrations = {}: cannot read the folder",
            dir.display()
        )
    })?;
    // version → (generic file, this dialect's file), each as (name, path)
    type Named = Option<(String, PathBuf)>;
    let mut found: BTreeMap<i64, (Named, Named)> = BTreeMap::new();
    for entry in entries {
        let path = entry?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = file_name.strip_suffix(".sql") else {
            continue;
        };
        let (stem, variant) = match stem.rsplit_once('.') {
            Some((s, d)) if d == "sqlite" || d == "postgres" => (s, Some(d)),
            Some(_) => bail!(
                "{}: a migration is named NNNN_name.sql, NNNN_name.sqlite.sql or NNNN_name.postgres.sql",
                path.display()
            ),
            None => (stem, None),
        };
        let (number, name) = stem.split_once('_').unwrap_or((stem, ""));
        let version: i64 = match number.parse() {
            Ok(v) if v > 0 && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => v,
            _ => bail!(
                "{}: a migration's name starts with its version number and an underscore, e.g. 0003_add_comments.sql",
                path.display()
            ),
        };
        let slot = found.entry(version).or_default();
        let which = match variant {
            None => &mut slot.0,
            Some(d) if d == dialect.suffix() => &mut slot.1,
            Some(_) => continue,
        };
        if let Some((_, other)) = which {
            bail!(
                "{} and {}: two migrations with version {version}; give one the next number",
                other.display(),
                path.display()
            );
        }
        *which = Some((name.to_string(), path));
    }
    let mut out = Vec::new();
    for (version, (generic, own)) in found {
        // This store's variant wins over the generic file.
        let Some((name, file)) = own.or(generic) else {
            continue;
        };
        let sql = std::fs::read_to_string(&file)
            .with_context(|| format!("{}: cannot read the migration", file.display()))?;
        out.push(Migration::new(version, &name, file, sql));
    }
    Ok(out)
}

impl Migration {
    fn new(version: i64, name: &str, file: PathBuf, sql: String) -> Migration {
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        Migration {
            version,
            name: name.to_string(),
            file,
            sql,
            checksum,
        }
    }

    /// The error when the file changed after it ran on this database.
    pub fn changed_error(&self, recorded: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: migration {} changed after it was applied to this database (recorded SHA-256 {}, now {}); \
             an applied migration must not change: restore it and put the change in a new numbered migration",
            self.file.display(),
            self.version,
            &recorded[..recorded.len().min(12)],
            &self.checksum[..12]
        )
    }
}

/// The static folder's text files as (path under the folder, text), for the
/// `static_file(path)` function a seed may call on any store.
pub fn static_texts(dir: Option<&Path>) -> Vec<(String, String)> {
    let Some(dir) = dir else { return Vec::new() };
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(dir).ok()?.to_str()?.to_string();
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((rel, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(migrations: &Path) -> Database {
        Database {
            path: PathBuf::from("x.db"),
            url: None,
            schema: None,
            seed: None,
            migrations: Some(migrations.to_path_buf()),
        }
    }

    #[test]
    fn each_store_takes_its_variant_else_the_generic_file() {
        let dir = tempfile::tempdir().unwrap();
        let w = |n: &str, s: &str| std::fs::write(dir.path().join(n), s).unwrap();
        w("0001_schema.sqlite.sql", "lite");
        w("0001_schema.postgres.sql", "pg");
        w("0002_seed.sql", "seed");
        w("0003_fix.postgres.sql", "pg only");
        w("README.md", "not a migration");
        let lite = plan(&db(dir.path()), Dialect::Sqlite).unwrap();
        let pg = plan(&db(dir.path()), Dialect::Postgres).unwrap();
        let show = |m: &[Migration]| {
            m.iter()
                .map(|m| format!("{}:{}:{}", m.version, m.name, m.sql))
                .collect::<Vec<_>>()
        };
        assert_eq!(show(&lite), ["1:schema:lite", "2:seed:seed"]);
        assert_eq!(show(&pg), ["1:schema:pg", "2:seed:seed", "3:fix:pg only"]);
    }

    #[test]
    fn bad_names_and_duplicates_are_refused_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.sql"), "").unwrap();
        let e = plan(&db(dir.path()), Dialect::Sqlite)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("schema.sql") && e.contains("version number"),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0001_a.sql"), "").unwrap();
        std::fs::write(dir.path().join("01_b.sql"), "").unwrap();
        let e = plan(&db(dir.path()), Dialect::Sqlite)
            .unwrap_err()
            .to_string();
        assert!(e.contains("two migrations with version 1"), "{e}");
    }
}
