//! Spin's runtime configuration file (`--runtime-config-file`): where the
//! key-value stores and SQLite databases an app uses live. Without one, as in
//! Spin, the store and the database named `default` are SQLite files in
//! `.spin/` beside the manifest (or in `--data-dir`).
//!
//! A key-value store may also live on a Redis server (`type = "redis"`,
//! `url = "redis://…"`, as in Spin) or in a PostgreSQL database
//! (`type = "postgres"`, `url = "postgres://…"`: Nebula's own, Spin has no
//! PostgreSQL key-value store), so that several Nebula hosts serving one app
//! share it. SQLite databases stay local files.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nebula_spin_interfaces::KvBacking;
use serde::Deserialize;

#[derive(Debug, Clone, Default)]
pub struct Backing {
    pub key_value: HashMap<String, KvBacking>,
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
    url: Option<String>,
}

impl Backing {
    /// The defaults Spin uses, under `data_dir`, overridden by the runtime
    /// config file if one is given.
    pub fn new(data_dir: &Path, runtime_config: Option<&Path>) -> Result<Backing> {
        let mut b = Backing::default();
        b.key_value.insert(
            "default".into(),
            KvBacking::Sqlite(data_dir.join("sqlite_key_value.db")),
        );
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
        let at = |table: &str, label: &str| format!("{}: [{table}.{label}]", file.display());
        for (label, s) in raw.key_value_store {
            let at = at("key_value_store", &label);
            let backing = match s.kind.as_str() {
                "spin" => KvBacking::Sqlite(file_path(&at, base, s, data_dir, || {
                    format!("key_value_store_{label}.db")
                })?),
                "redis" => KvBacking::Redis {
                    url: server_url(&at, s, "redis://127.0.0.1:6379")?,
                },
                "postgres" => KvBacking::Postgres {
                    url: server_url(&at, s, "postgres://postgres@127.0.0.1/nebula")?,
                },
                other => bail!(
                    "{at} type = {other:?}: a key-value store is \"spin\" (a local SQLite file), \"redis\" (url = \"redis://…\") or \"postgres\" (url = \"postgres://…\", a Nebula extension)"
                ),
            };
            b.key_value.insert(label, backing);
        }
        for (label, s) in raw.sqlite_database {
            let at = at("sqlite_database", &label);
            if s.kind != "spin" {
                bail!(
                    "{at} type = {:?}: Nebula backs SQLite databases with local files only (type = \"spin\")",
                    s.kind
                );
            }
            let path = file_path(&at, base, s, data_dir, || {
                format!("sqlite_database_{label}.db")
            })?;
            b.sqlite.insert(label, path);
        }
        Ok(b)
    }

    /// The warning to print at start when the app's key-value stores are
    /// shared by hosts (any on Redis or PostgreSQL) while `used_databases`
    /// (the SQLite labels its components are granted) stay local files: on
    /// a cluster each node has its own copy of those.
    pub fn cluster_warning<'a>(
        &self,
        used_databases: impl IntoIterator<Item = &'a String>,
    ) -> Option<String> {
        let shared: BTreeSet<&String> = self
            .key_value
            .iter()
            .filter(|(_, b)| b.is_shared())
            .map(|(label, _)| label)
            .collect();
        let local: BTreeSet<&String> = used_databases.into_iter().collect();
        if shared.is_empty() || local.is_empty() {
            return None;
        }
        let list = |s: BTreeSet<&String>| {
            s.into_iter()
                .map(|l| format!("{l:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Some(format!(
            "the key-value store(s) {} are shared by every node serving this app, but the SQLite database(s) {} are local files: each node has its own copy, and writes on one node are not seen by the others",
            list(shared),
            list(local)
        ))
    }
}

/// A `type = "spin"` store's file: `path` relative to the runtime config's
/// folder, else `default` in the data folder.
fn file_path(
    at: &str,
    base: &Path,
    s: RawStore,
    data_dir: &Path,
    default: impl FnOnce() -> String,
) -> Result<PathBuf> {
    if s.url.is_some() {
        bail!("{at}: `url` is for type = \"redis\" or \"postgres\"; a \"spin\" store takes `path`");
    }
    Ok(match s.path {
        Some(p) => base.join(p),
        None => data_dir.join(default()),
    })
}

/// A server store's `url`, which it must have.
fn server_url(at: &str, s: RawStore, example: &str) -> Result<String> {
    if s.path.is_some() {
        bail!(
            "{at}: `path` is for type = \"spin\"; type = {:?} takes `url`",
            s.kind
        );
    }
    s.url.with_context(|| {
        format!(
            "{at} type = {:?} needs `url`, e.g. url = {example:?}",
            s.kind
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Backing> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runtime-config.toml");
        std::fs::write(&file, text).unwrap();
        Backing::new(&dir.path().join("data"), Some(&file))
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn redis_and_postgres_stores_are_read_with_their_urls() {
        let b = parse(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
             [key_value_store.pg]\ntype = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1/kv\"\n",
        )
        .unwrap();
        assert_eq!(
            b.key_value["default"],
            KvBacking::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        assert_eq!(
            b.key_value["pg"],
            KvBacking::Postgres {
                url: "postgres://postgres@127.0.0.1/kv".into()
            }
        );
        // The default database is still a local file.
        assert!(b.sqlite["default"].ends_with("sqlite_db.db"));
    }

    #[test]
    fn bad_store_types_and_missing_urls_are_refused_with_the_label() {
        let e = error("[key_value_store.cache]\ntype = \"azure_cosmos\"\n");
        assert!(
            e.contains("[key_value_store.cache]") && e.contains("\"azure_cosmos\""),
            "{e}"
        );
        assert!(e.contains("\"redis\"") && e.contains("\"postgres\""), "{e}");
        let e = error("[key_value_store.default]\ntype = \"redis\"\n");
        assert!(e.contains("needs `url`"), "{e}");
        let e = error("[key_value_store.default]\ntype = \"redis\"\npath = \"kv.db\"\n");
        assert!(e.contains("`path` is for type = \"spin\""), "{e}");
        let e = error("[key_value_store.default]\ntype = \"spin\"\nurl = \"redis://x\"\n");
        assert!(e.contains("a \"spin\" store takes `path`"), "{e}");
        let e = error("[sqlite_database.default]\ntype = \"postgres\"\nurl = \"postgres://x\"\n");
        assert!(e.contains("SQLite databases with local files only"), "{e}");
    }

    #[test]
    fn the_cluster_warning_names_shared_stores_and_local_databases() {
        let local = parse("").unwrap();
        let used = vec!["default".to_string()];
        assert_eq!(local.cluster_warning(&used), None, "nothing is shared");
        let shared = parse(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n",
        )
        .unwrap();
        assert_eq!(
            shared.cluster_warning(&Vec::new()),
            None,
            "no database is used"
        );
        let w = shared.cluster_warning(&used).unwrap();
        assert!(
            w.contains("key-value store(s) \"default\"")
                && w.contains("SQLite database(s) \"default\"")
                && w.contains("each node has its own copy"),
            "{w}"
        );
    }
}
