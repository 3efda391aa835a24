//! Stores in a PostgreSQL database: a Nebula extension (`type = "postgres"`; Spin has no
//! PostgreSQL key-value store), so several hosts share them.
//!
//! The layout follows Spin's SQLite one: table `spin_key_value (store, key, value)` keyed by
//! label and key, so labels given one database stay separate stores. Both tables are created
//! at the first call if missing. A pool of connections per URL serves the calls; each call
//! waits at most the component's deadline.
//!
//! The byte quota (`max_kv_store_bytes`) holds as on the SQLite files, across hosts: each
//! store's total lives in `spin_key_value_usage`, summed once from `spin_key_value` and then
//! kept by `set` and `delete` in the same transaction as the write, under the usage row's
//! lock, so two hosts writing one store at once never both pass the quota.

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use super::backend::{
    keys_fit, other, store_full, too_large, within, Call, KvBackend, KvError, KvResult,
};

const NAME: &str = "PostgreSQL";

/// Connections one host keeps to one database for its key-value stores.
const POOL_SIZE: usize = 16;

/// Taken while creating the tables, so that two hosts starting at once do not race on
/// `CREATE TABLE IF NOT EXISTS` (which can fail with a duplicate type when they do).
const SCHEMA_LOCK: i64 = 0x5350_494e_4b56; // "SPINKV"

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (store, key)
);
CREATE TABLE IF NOT EXISTS spin_key_value_usage (
    store TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL
);";

/// One PostgreSQL database (one URL); shared by the labels that name it.
pub(crate) struct PostgresBackend {
    pool: Pool,
    /// The tables exist: checked once, at the first call.
    schema: OnceCell<()>,
    /// Bytes each store may hold.
    quota: u64,
}

impl PostgresBackend {
    /// Checks the URL; connects at the first call.
    pub(crate) fn new(url: &str, quota: u64) -> anyhow::Result<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| anyhow::anyhow!("not a PostgreSQL connection string ({err})"))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager).max_size(POOL_SIZE).build()?;
        Ok(Self {
            pool,
            schema: OnceCell::new(),
            quota,
        })
    }

    /// A pooled connection, once the tables exist.
    async fn client(&self) -> Result<deadpool_postgres::Client, KvError> {
        let mut client = self.pool.get().await.map_err(other(NAME))?;
        self.schema
            .get_or_try_init(|| async {
                let tx = client.transaction().await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                    .await?;
                tx.batch_execute(SCHEMA).await?;
                tx.commit().await
            })
            .await
            .map_err(other(NAME))?;
        Ok(client)
    }
}

/// The store's byte total, its row locked until the transaction ends; summed from the
/// table the first time a store is written.
async fn locked_usage(
    tx: &deadpool_postgres::Transaction<'_>,
    store: &str,
) -> Result<u64, KvError> {
    const LOCK: &str = "SELECT bytes FROM spin_key_value_usage WHERE store = $1 FOR UPDATE";
    if let Some(row) = tx.query_opt(LOCK, &[&store]).await.map_err(other(NAME))? {
        return Ok(row.get::<_, i64>(0) as u64);
    }
    // Two hosts may both get here: the second's insert waits for the first's and does
    // nothing, and its lock then reads the first's total.
    tx.execute(
        "INSERT INTO spin_key_value_usage (store, bytes)
         SELECT $1, coalesce(sum(octet_length(key) + octet_length(value)), 0)::BIGINT
         FROM spin_key_value WHERE store = $1
         ON CONFLICT (store) DO NOTHING",
        &[&store],
    )
    .await
    .map_err(other(NAME))?;
    let row = tx.query_one(LOCK, &[&store]).await.map_err(other(NAME))?;
    Ok(row.get::<_, i64>(0) as u64)
}

async fn save_usage(
    tx: &deadpool_postgres::Transaction<'_>,
    store: &str,
    bytes: u64,
) -> Result<(), KvError> {
    tx.execute(
        "UPDATE spin_key_value_usage SET bytes = $2 WHERE store = $1",
        &[&store, &(bytes as i64)],
    )
    .await
    .map_err(other(NAME))?;
    Ok(())
}

#[async_trait]
impl KvBackend for PostgresBackend {
    /// The length is read first, in the same statement, so that a value over the cap is
    /// never sent.
    async fn get(&self, call: &Call, store: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
        let cap = call.max_result_bytes;
        within(call, NAME, async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT octet_length(value)::BIGINT,
                            CASE WHEN octet_length(value)::BIGINT <= $3 THEN value END
                     FROM spin_key_value WHERE store = $1 AND key = $2",
                    &[&store, &key, &(cap as i64)],
                )
                .await
                .map_err(other(NAME))?;
            match row {
                None => Ok(None),
                Some(row) if row.get::<_, i64>(0) as u64 > cap as u64 => Err(too_large(cap)),
                Some(row) => Ok(Some(row.get::<_, Vec<u8>>(1))),
            }
        })
        .await
    }

    /// As on the SQLite files: refused, writing nothing, if the store would then hold more
    /// than its quota; a write that does not grow the store always succeeds.
    async fn set(&self, call: &Call, store: &str, key: &str, value: Vec<u8>) -> KvResult<()> {
        within(call, NAME, async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(other(NAME))?;
            let used = locked_usage(&tx, store).await?;
            let old: Option<i64> = tx
                .query_opt(
                    "SELECT (octet_length(key) + octet_length(value))::BIGINT
                     FROM spin_key_value WHERE store = $1 AND key = $2",
                    &[&store, &key],
                )
                .await
                .map_err(other(NAME))?
                .map(|row| row.get(0));
            let new = (key.len() + value.len()) as u64;
            let after = used
                .saturating_sub(old.unwrap_or(0) as u64)
                .saturating_add(new);
            if after > self.quota && after > used {
                return Err(store_full(store, after, self.quota));
            }
            tx.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                &[&store, &key, &value],
            )
            .await
            .map_err(other(NAME))?;
            save_usage(&tx, store, after).await?;
            tx.commit().await.map_err(other(NAME))
        })
        .await
    }

    async fn delete(&self, call: &Call, store: &str, key: &str) -> KvResult<()> {
        within(call, NAME, async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(other(NAME))?;
            let used = locked_usage(&tx, store).await?;
            let freed = tx
                .query_opt(
                    "DELETE FROM spin_key_value WHERE store = $1 AND key = $2
                     RETURNING (octet_length(key) + octet_length(value))::BIGINT",
                    &[&store, &key],
                )
                .await
                .map_err(other(NAME))?;
            if let Some(row) = freed {
                let n = row.get::<_, i64>(0) as u64;
                save_usage(&tx, store, used.saturating_sub(n)).await?;
            }
            tx.commit().await.map_err(other(NAME))
        })
        .await
    }

    async fn exists(&self, call: &Call, store: &str, key: &str) -> KvResult<bool> {
        within(call, NAME, async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT 1 FROM spin_key_value WHERE store = $1 AND key = $2",
                    &[&store, &key],
                )
                .await
                .map_err(other(NAME))?;
            Ok(row.is_some())
        })
        .await
    }

    async fn keys(&self, call: &Call, store: &str) -> KvResult<Vec<String>> {
        let cap = call.max_result_bytes;
        within(call, NAME, async {
            let client = self.client().await?;
            let keys: Vec<String> = client
                .query("SELECT key FROM spin_key_value WHERE store = $1", &[&store])
                .await
                .map_err(other(NAME))?
                .iter()
                .map(|row| row.get(0))
                .collect();
            if !keys_fit(&keys, cap) {
                return Err(too_large(cap));
            }
            Ok(keys)
        })
        .await
    }
}
