//! A node's first connection: the host's own tables, the app's new
//! migrations, and the session key every node shares.

use std::collections::HashMap;

use anyhow::{Context, Result};
use tokio_postgres::Client;

use crate::data::migrations::{self, Dialect, Migration};
use crate::manifest::Manifest;

/// The advisory lock nodes take while migrating, so that three nodes started
/// at once apply each migration once: the others wait, then find it done.
const MIGRATION_LOCK: i64 = 0x6e65_6275_6c61; // "nebula"

/// The host's tables, beside the app's (their names start with `nebula_`).
const HOST_TABLES: &str = "
CREATE TABLE IF NOT EXISTS nebula_migrations (
  version    BIGINT PRIMARY KEY,
  name       TEXT   NOT NULL,
  checksum   TEXT   NOT NULL,
  applied_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS nebula_secrets (
  name  TEXT  PRIMARY KEY,
  value BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS nebula_idempotency (
  key         TEXT    PRIMARY KEY,
  fingerprint TEXT    NOT NULL,
  status      INTEGER NOT NULL,
  headers     TEXT    NOT NULL,
  body        BYTEA   NOT NULL,
  created_ms  BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS nebula_idempotency_created ON nebula_idempotency (created_ms);
CREATE TABLE IF NOT EXISTS nebula_table_versions (
  name    TEXT   PRIMARY KEY,
  version BIGINT NOT NULL
);
";

pub(super) async fn initialise(client: &mut Client, manifest: &Manifest) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("cannot take the migration lock")?;
    let result = migrate(client, manifest).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn migrate(client: &mut Client, manifest: &Manifest) -> Result<()> {
    client.batch_execute(HOST_TABLES).await.context(
        "cannot create the host's tables (nebula_migrations, nebula_secrets, nebula_idempotency, nebula_table_versions)",
    )?;
    let applied: HashMap<i64, String> = client
        .query("SELECT version, checksum FROM nebula_migrations", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let static_dir = manifest.static_files.as_ref().map(|s| s.dir.as_path());
    for m in migrations::plan(&manifest.database, Dialect::Postgres)? {
        match applied.get(&m.version) {
            Some(sum) if *sum == m.checksum => continue,
            Some(sum) => return Err(m.changed_error(sum)),
            None => apply(client, &m, static_dir).await?,
        }
    }
    Ok(())
}

/// One migration and its record, in one transaction.
async fn apply(
    client: &mut Client,
    m: &Migration,
    static_dir: Option<&std::path::Path>,
) -> Result<()> {
    let tx = client.transaction().await?;
    let seeds_files = m.sql.contains("static_file(");
    if seeds_files {
        provide_static_file(&tx, static_dir).await?;
    }
    tx.batch_execute(&m.sql).await.map_err(|e| {
        let detail = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string());
        anyhow::anyhow!(
            "{}: migration {} failed: {detail}",
            m.file.display(),
            m.version
        )
    })?;
    if seeds_files {
        tx.batch_execute("DROP FUNCTION static_file(text)").await?;
    }
    let now = crate::data::now_ms();
    tx.execute(
        "INSERT INTO nebula_migrations (version, name, checksum, applied_ms) VALUES ($1, $2, $3, $4)",
        &[&m.version, &m.name, &m.checksum, &now],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(version = m.version, file = %m.file.display(), "applied migration");
    Ok(())
}

/// `static_file(path)` for a seed, as on SQLite: the text of a file under
/// the app's static folder. PostgreSQL cannot read the host's files, so they
/// are copied into a table that lives as long as the transaction.
async fn provide_static_file(
    tx: &tokio_postgres::Transaction<'_>,
    static_dir: Option<&std::path::Path>,
) -> Result<()> {
    tx.batch_execute(
        "CREATE TEMP TABLE nebula_static (path TEXT PRIMARY KEY, body TEXT NOT NULL) ON COMMIT DROP;
         CREATE FUNCTION static_file(p TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
         DECLARE b TEXT;
         BEGIN
           SELECT body INTO b FROM nebula_static WHERE path = p;
           IF b IS NULL THEN
             RAISE EXCEPTION 'static_file(%): no such text file under the [static] folder', p;
           END IF;
           RETURN b;
         END $$;",
    )
    .await?;
    let insert = tx
        .prepare("INSERT INTO nebula_static (path, body) VALUES ($1, $2)")
        .await?;
    for (path, text) in migrations::static_texts(static_dir) {
        tx.execute(&insert, &[&path, &text]).await?;
    }
    Ok(())
}

/// The key that signs visitor cookies: made by the first node to start,
/// read by every other, so a cookie set by one node is valid on all.
pub(super) async fn session_key(client: &Client) -> Result<[u8; 32]> {
    let fresh: [u8; 32] = rand::random();
    client
        .execute(
            "INSERT INTO nebula_secrets (name, value) VALUES ('session-key', $1) ON CONFLICT (name) DO NOTHING",
            &[&fresh.as_slice()],
        )
        .await?;
    let row = client
        .query_one(
            "SELECT value FROM nebula_secrets WHERE name = 'session-key'",
            &[],
        )
        .await?;
    let value: Vec<u8> = row.get(0);
    value.try_into().map_err(|_| {
        anyhow::anyhow!(
            "nebula_secrets.session-key is not 32 bytes; delete the row to make a new key"
        )
    })
}
