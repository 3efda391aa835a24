//! Spin's runtime configuration file (`--runtime-config-file`): where the
//! key-value stores and SQLite databases an app uses live. Without one, as in
//! Spin, the store and the database named `default` are SQLite files in
//! `.spin/` beside the manifest (or in `--data-dir`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Default)]
pub struct Backing {
    pub key_value: HashMap<String, PathBuf>,
    pub sqlite: HashMap<String, PathBuf>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    key_value_store: HashMap<String, RawStore>,
    #[serde(default)]
    sqlite_database: HashMap<String, RawStore>,
}

#[derive(Deserialize)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
}

impl Backing {
    /// The defaults Spin uses, under `data_dir`, overridden by the runtime
    /// config file if one is given.
    pub fn new(data_dir: &Path, runtime_config: Option<&Path>) -> Result<Backing> {
        let mut b = Backing::default();
        b.key_value
            .insert("default".into(), data_dir.join("sqlite_key_value.db"));
        b.sqlite
            .insert("default".into(), data_dir.join("sqlite_db.db"));
        let Some(file) = runtime_config else {
            return Ok(b);
        };
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the runtime config {}", file.display()))?;
        let raw: RawConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message().trim()))?;
        let base = file.parent().unwrap_or(Path::new("."));
        for (label, s) in raw.key_value_store {
            b.key_value.insert(
                label.clone(),
                store_path(file, base, "key_value_store", &label, s, data_dir)?,
            );
        }
        for (label, s) in raw.sqlite_database {
            b.sqlite.insert(
                label.clone(),
                store_path(file, base, "sqlite_database", &label, s, data_dir)?,
            );
        }
        Ok(b)
    }
}

fn store_path(
    file: &Path,
    base: &Path,
    table: &str,
    label: &str,
    s: RawStore,
    data_dir: &Path,
) -> Result<PathBuf> {
    if s.kind != "spin" {
        bail!(
            "{}: [{table}.{label}] type = {:?}: Nebula backs stores with local SQLite files only (type = \"spin\")",
            file.display(),
            s.kind
        );
    }
    Ok(match s.path {
        Some(p) => base.join(p),
        None => data_dir.join(format!("{table}_{label}.db")),
    })
}
