//! The platform's state in PostgreSQL, for several nodes behind one
//! balancer (`nebula platform --store postgres://…`): tenants, app records
//! and every kept version's bundle live in the database, so any node can
//! serve any app, and each change is announced with `NOTIFY nebula_platform,
//! 'HOST'` in the transaction that makes it. Each node keeps an unpacked copy
//! of what it serves in its own `--dir` (fetched from here when it lacks
//! one) and compiles into its own cache.

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::registry::{AppRecord, Refusal};
use super::tenants::{Tenant, Tenants};

/// The channel every change is announced on; the payload is the app's host.
pub const CHANNEL: &str = "nebula_platform";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nebula_platform_tenants (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS nebula_platform_apps (
    host TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    versions INTEGER[] NOT NULL,
    deployed_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS nebula_platform_bundles (
    host TEXT NOT NULL,
    version INTEGER NOT NULL,
    bundle BYTEA NOT NULL,
    PRIMARY KEY (host, version)
);
";

#[derive(Clone)]
pub struct SharedStore {
    url: String,
    config: tokio_postgres::Config,
}

impl SharedStore {
    pub fn new(url: &str) -> Result<SharedStore> {
        let config: tokio_postgres::Config = url
            .parse()
            .context("--store: not a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE)")?;
        Ok(SharedStore {
            url: url.to_string(),
            config,
        })
    }

    /// The URL an app's own data uses: this database, with `schema` first
    /// on the search path, so each app's tables stay in its own schema.
    pub fn app_url(&self, schema: &str) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{schema}", self.url)
    }

    /// A connection of its own; the caller drives (or spawns) it.
    async fn connect(
        &self,
    ) -> Result<(
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    )> {
        self.config
            .connect(NoTls)
            .await
            .context("cannot connect to the platform's PostgreSQL store")
    }

    async fn client(&self) -> Result<Client> {
        let (client, conn) = self.connect().await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Creates the platform's tables if they are missing.
    pub async fn init(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .batch_execute(SCHEMA)
            .await
            .context("cannot create the platform's tables")?;
        Ok(())
    }

    pub async fn add_tenant(&self, tenant: &Tenant) -> Result<()> {
        let client = self.client().await?;
        let added = client
            .execute(
                "INSERT INTO nebula_platform_tenants (name, token_sha256) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&tenant.name, &tenant.token_sha256],
            )
            .await?;
        anyhow::ensure!(added == 1, "tenant {:?} exists already", tenant.name);
        Ok(())
    }

    pub async fn tenants(&self) -> Result<Tenants> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, token_sha256 FROM nebula_platform_tenants",
                &[],
            )
            .await?;
        Ok(Tenants::from_list(
            rows.iter()
                .map(|r| Tenant {
                    name: r.get(0),
                    token_sha256: r.get(1),
                })
                .collect(),
        ))
    }

    pub async fn records(&self) -> Result<Vec<AppRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT host, tenant, versions, deployed_ms FROM nebula_platform_apps",
                &[],
            )
            .await?;
        Ok(rows.iter().map(record_of).collect())
    }

    pub async fn record(&self, host: &str) -> Result<Option<AppRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT host, tenant, versions, deployed_ms FROM nebula_platform_apps WHERE host = $1",
                &[&host],
            )
            .await?;
        Ok(row.as_ref().map(record_of))
    }

    pub async fn bundle(&self, host: &str, version: u32) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT bundle FROM nebula_platform_bundles WHERE host = $1 AND version = $2",
                &[&host, &(version as i32)],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Stores a checked bundle as `host`'s next version, in one transaction
    /// with the app's row locked: refused if another tenant holds `host`.
    pub async fn deploy(
        &self,
        tenant: &str,
        host: &str,
        bundle: &[u8],
        keep: usize,
        deployed_ms: u64,
    ) -> Result<AppRecord, Refusal> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(anyhow::Error::from)?;
        let old = tx
            .query_opt(
                "SELECT host, tenant, versions, deployed_ms FROM nebula_platform_apps WHERE host = $1 FOR UPDATE",
                &[&host],
            )
            .await
            .map_err(anyhow::Error::from)?
            .as_ref()
            .map(record_of);
        if let Some(old) = &old {
            if old.tenant != tenant {
                return Err(Refusal {
                    status: 409,
                    message: format!(
                        "host {host:?} is another tenant's app; choose another host name"
                    ),
                });
            }
        }
        let mut versions = old.map(|o| o.versions).unwrap_or_default();
        let number = versions.iter().max().copied().unwrap_or(0) + 1;
        versions.push(number);
        if versions.len() > keep {
            versions.drain(..versions.len() - keep);
        }
        let record = AppRecord {
            host: host.to_string(),
            tenant: tenant.to_string(),
            versions,
            deployed_ms,
        };
        tx.execute(
            "INSERT INTO nebula_platform_bundles (host, version, bundle) VALUES ($1, $2, $3)",
            &[&host, &(number as i32), &bundle],
        )
        .await
        .map_err(anyhow::Error::from)?;
        write_record(&tx, &record).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(record)
    }

    /// Makes `record` (with fewer versions) the app's record.
    pub async fn set(&self, record: &AppRecord) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        write_record(&tx, record).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete(&self, host: &str, data_schema: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM nebula_platform_apps WHERE host = $1", &[&host])
            .await?;
        tx.execute(
            "DELETE FROM nebula_platform_bundles WHERE host = $1",
            &[&host],
        )
        .await?;
        tx.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{data_schema}\" CASCADE"))
            .await?;
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &host])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates an app's data schema if it is missing.
    pub async fn create_schema(&self, schema: &str) -> Result<()> {
        self.batch(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
    }

    /// Drops an app's data schema and everything in it.
    pub async fn drop_schema(&self, schema: &str) -> Result<()> {
        self.batch(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
    }

    async fn batch(&self, sql: &str) -> Result<()> {
        self.client().await?.batch_execute(sql).await?;
        Ok(())
    }

    /// Listens for changes: each message is a host whose app changed; the
    /// channel closes when the connection does (then resync everything).
    pub async fn listen(&self) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<String>)> {
        let (client, mut conn) = self.connect().await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("platform store: the LISTEN connection failed: {e}");
                        return;
                    }
                }
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        Ok((client, rx))
    }
}

async fn write_record(tx: &tokio_postgres::Transaction<'_>, record: &AppRecord) -> Result<()> {
    let versions: Vec<i32> = record.versions.iter().map(|v| *v as i32).collect();
    tx.execute(
        "INSERT INTO nebula_platform_apps (host, tenant, versions, deployed_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (host) DO UPDATE SET versions = EXCLUDED.versions, deployed_ms = EXCLUDED.deployed_ms",
        &[&record.host, &record.tenant, &versions, &(record.deployed_ms as i64)],
    )
    .await?;
    tx.execute(
        "DELETE FROM nebula_platform_bundles WHERE host = $1 AND NOT (version = ANY($2))",
        &[&record.host, &versions],
    )
    .await?;
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &record.host])
        .await?;
    Ok(())
}

fn record_of(row: &tokio_postgres::Row) -> AppRecord {
    let versions: Vec<i32> = row.get(2);
    let deployed_ms: i64 = row.get(3);
    AppRecord {
        host: row.get(0),
        tenant: row.get(1),
        versions: versions.into_iter().map(|v| v as u32).collect(),
        deployed_ms: deployed_ms as u64,
    }
}

/// The PostgreSQL schema an app's data lives in: readable, and unique per
/// host (`a-b.test` and `a.b-test` differ by the hash).
/// A PostgreSQL advisory lock held for as long as `client` lives: while it
/// is held, this node is the one that does the job the lock names.
pub struct Lease {
    pub client: Client,
    /// Resolves when the lock's session ends (the database restarted or the
    /// connection broke): the lock is then someone else's.
    pub lost: tokio::sync::oneshot::Receiver<()>,
}

impl SharedStore {
    /// Waits until this node holds the advisory lock named `job` (the wait
    /// is inside PostgreSQL: no polling), then holds it on a connection of
    /// its own until the [`Lease`] is dropped or the connection ends.
    pub async fn lead(&self, job: &str) -> Result<Lease> {
        let (client, conn) = self.connect().await?;
        let (gone, lost) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = conn.await;
            let _ = gone.send(());
        });
        // Two-key form, the first key Nebula's own, so that the lock cannot
        // collide with an app's advisory locks in the same database.
        client
            .execute("SELECT pg_advisory_lock(1313163842, hashtext($1))", &[&job])
            .await
            .with_context(|| format!("cannot take the PostgreSQL lock for {job:?}"))?;
        Ok(Lease { client, lost })
    }
}

pub fn data_schema(host: &str) -> String {
    use sha2::Digest;
    let readable: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    let digest = sha2::Sha256::digest(host.as_bytes());
    let hash = hex::encode(&digest[..4]);
    format!("app_{readable}_{hash}")
}
