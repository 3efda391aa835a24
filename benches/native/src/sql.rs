//! The SQL the native server runs: app.toml's own reads and write, read from
//! the manifest at start so it can never drift from what Nebula runs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;

/// The statements of the three workloads, by app.toml's names.
#[derive(Debug, Clone)]
pub struct Sql {
    /// The home page's reads `newest`, `top` and `tags` (route `/`).
    pub home: [String; 3],
    /// The read `meme` (route `/memes/:id/vote`), with `:id` its one parameter.
    pub meme: String,
    /// The write `vote`: `?1` is the meme's id, `:session_id` the visitor.
    pub vote: String,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    reads: BTreeMap<String, Statement>,
    #[serde(default)]
    writes: BTreeMap<String, Statement>,
}

#[derive(Deserialize)]
struct Statement {
    sql: String,
}

impl Sql {
    pub fn from_manifest(path: &Path) -> Result<Sql> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the manifest {}", path.display()))?;
        Sql::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(manifest: &str) -> Result<Sql> {
        let m: Manifest = toml::from_str(manifest).context("not a valid app.toml")?;
        let read = |name: &str| {
            m.reads.get(name).map(|s| s.sql.clone()).ok_or_else(|| {
                anyhow!("no [reads.{name}]: the native server runs app.toml's `{name}` read")
            })
        };
        let write = |name: &str| {
            m.writes.get(name).map(|s| s.sql.clone()).ok_or_else(|| {
                anyhow!("no [writes.{name}]: the native server runs app.toml's `{name}` write")
            })
        };
        Ok(Sql {
            home: [read("newest")?, read("top")?, read("tags")?],
            meme: read("meme")?,
            vote: write("vote")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repositorys_app_toml() {
        let sql = Sql::from_manifest(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../app.toml"))
            .unwrap();
        assert!(sql.home[0].contains("ORDER BY m.created_ms DESC"));
        assert!(sql.home[1].contains("ORDER BY m.votes DESC"));
        assert!(sql.home[2].contains("FROM tag_counts"));
        assert!(sql.meme.contains("CAST(:id AS BIGINT)"));
        assert_eq!(
            sql.vote.trim(),
            "INSERT INTO votes (meme_id, visitor) VALUES (?1, :session_id) ON CONFLICT DO NOTHING"
        );
    }

    #[test]
    fn a_missing_statement_is_named() {
        let err = Sql::parse("[reads.newest]\nsql = \"SELECT 1\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("no [reads.top]"), "{err:#}");
    }
}
