//! Opening a SQLite database: the host's tables and the app's new migrations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use crate::data::migrations::{self, Dialect, Migration};
use crate::manifest::Manifest;

/// What `PRAGMA user_version` was set to by hosts from before numbered
/// migrations, once the schema and seed were in.
const LEGACY_INITIALISED: i64 = 1;

/// The host's tables, beside the app's (their names start with `nebula_`).
const HOST_TABLES: &str = "
CREATE TABLE IF NOT EXISTS nebula_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT    NOT NULL,
  checksum   TEXT    NOT NULL,
  applied_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nebula_idempotency (
  key         TEXT    PRIMARY KEY,
  fingerprint TEXT    NOT NULL,
  status      INTEGER NOT NULL,
  headers     TEXT    NOT NULL,
  body        BLOB    NOT NULL,
  created_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS nebula_idempotency_created ON nebula_idempotency (created_ms);
";

pub(super) fn initialise(conn: &mut Connection, manifest: &Manifest) -> Result<()> {
    let legacy: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let (fresh_host_tables, all_host_tables): (bool, bool) = conn.query_row(
        "SELECT total(name = 'nebula_migrations') = 0, count(*) = 3 FROM sqlite_master
         WHERE name IN ('nebula_migrations', 'nebula_idempotency', 'nebula_idempotency_created')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // Only when one is missing: even `IF NOT EXISTS` parses and plans each
    // statement, and a platform opens an app's database at every load.
    if !all_host_tables {
        conn.execute_batch(HOST_TABLES)
            .context("cannot create the host's tables (nebula_migrations, nebula_idempotency)")?;
    }
    let plan = migrations::plan(&manifest.database, Dialect::Sqlite)?;
    if fresh_host_tables && legacy >= LEGACY_INITIALISED {
        adopt_legacy(conn, &plan)?;
    }
    let applied: HashMap<i64, String> = conn
        .prepare("SELECT version, checksum FROM nebula_migrations")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let static_dir = manifest.static_files.as_ref().map(|s| s.dir.clone());
    for m in &plan {
        match applied.get(&m.version) {
            Some(sum) if *sum == m.checksum => {}
            Some(sum) => return Err(m.changed_error(sum)),
            None => apply(conn, m, static_dir.clone())?,
        }
    }
    Ok(())
}

/// A database made before numbered migrations has its schema and seed
/// (versions 1 and 2) but no record of them: record them as applied, so
/// that only later migrations run.
fn adopt_legacy(conn: &Connection, plan: &[Migration]) -> Result<()> {
    for m in plan.iter().filter(|m| m.version <= 2) {
        conn.execute(
            "INSERT INTO nebula_migrations (version, name, checksum, applied_ms) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![m.version, m.name, m.checksum, 0],
        )?;
    }
    tracing::info!("recorded the schema and seed of an existing database as migrations 1 and 2");
    Ok(())
}

/// One migration and its record, in one transaction.
fn apply(conn: &mut Connection, m: &Migration, static_dir: Option<PathBuf>) -> Result<()> {
    // Seed files may pull text from the static folder (the meme templates are
    // both served as files and stored for the components that draw them).
    register_static_file(conn, static_dir)?;
    let tx = conn.transaction()?;
    tx.execute_batch(&m.sql)
        .with_context(|| format!("{}: migration {} failed", m.file.display(), m.version))?;
    tx.execute(
        "INSERT INTO nebula_migrations (version, name, checksum, applied_ms) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![m.version, m.name, m.checksum, crate::data::now_ms()],
    )?;
    // Older hosts read this to know the database is set up.
    tx.pragma_update(None, "user_version", LEGACY_INITIALISED)?;
    tx.commit()?;
    conn.remove_function("static_file", 1)?;
    tracing::info!(version = m.version, file = %m.file.display(), "applied migration");
    Ok(())
}

fn register_static_file(conn: &Connection, static_dir: Option<PathBuf>) -> Result<()> {
    conn.create_scalar_function("static_file", 1, FunctionFlags::SQLITE_UTF8, move |ctx| {
        let rel: String = ctx.get(0)?;
        let text = read_static(static_dir.as_deref(), &rel)
            .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
        Ok(text)
    })?;
    Ok(())
}

fn read_static(dir: Option<&Path>, rel: &str) -> Result<String> {
    let Some(dir) = dir else {
        bail!("static_file({rel:?}): the manifest declares no [static] folder")
    };
    let root = dir
        .canonicalize()
        .with_context(|| format!("static folder {}", dir.display()))?;
    let path = root.join(rel).canonicalize().with_context(|| {
        format!(
            "static_file({rel:?}): no such file under {}",
            root.display()
        )
    })?;
    if !path.starts_with(&root) {
        bail!("static_file({rel:?}): the path leaves the static folder");
    }
    std::fs::read_to_string(&path).with_context(|| format!("static_file({rel:?})"))
}
