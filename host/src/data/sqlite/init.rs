//! First start: create the schema and load the seed data.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use crate::manifest::Manifest;

/// `user_version` once schema and seed are in; 0 means a new database.
const INITIALISED: i64 = 1;

pub(super) fn initialise(conn: &mut Connection, manifest: &Manifest) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= INITIALISED {
        return Ok(());
    }
    let schema = read_sql(manifest.database.schema.as_deref(), "database.schema")?;
    let seed = read_sql(manifest.database.seed.as_deref(), "database.seed")?;

    // Seed files may pull text from the static folder (the meme templates are
    // both served as files and stored for the components that draw them).
    let static_dir = manifest.static_files.as_ref().map(|s| s.dir.clone());
    register_static_file(conn, static_dir)?;

    let tx = conn.transaction()?;
    if let Some((path, sql)) = &schema {
        tx.execute_batch(sql)
            .with_context(|| format!("{}: the schema failed", path.display()))?;
    }
    if let Some((path, sql)) = &seed {
        tx.execute_batch(sql)
            .with_context(|| format!("{}: the seed data failed", path.display()))?;
    }
    tx.pragma_update(None, "user_version", INITIALISED)?;
    tx.commit()?;
    conn.remove_function("static_file", 1)?;
    if schema.is_some() || seed.is_some() {
        tracing::info!("created the database from its schema and seed data");
    }
    Ok(())
}

fn read_sql(path: Option<&Path>, key: &str) -> Result<Option<(PathBuf, String)>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{key} = {}: cannot read the file", path.display()))?;
    Ok(Some((path.to_path_buf(), text)))
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
