//! The PostgreSQL store: every node of a cluster shares one database.
//!
//! Nodes are stateless; everything that must survive a node lives here: the
//! app's tables, the migrations applied, the session signing key and the
//! idempotency records. The driver is tokio-postgres (async, so a request
//! waiting on the database holds no thread), pooled by deadpool-postgres;
//! a URL may list several hosts with `target_session_attrs=read-write`, so
//! after a failover new connections find the promoted standby by themselves.
//!
//! - `params.rs`: the manifest's `?N`/`:name` markers as `$N`.
//! - `values.rs`: WIT values to parameters, columns to WIT values.
//! - `init.rs`: first connection: host tables, migrations, session key.
//! - `statements.rs`: every read and write prepared at start.
//! - `reads.rs`, `writes.rs`: one snapshot per route; one serializable
//!   transaction per request's effects, retried on serialization failure.

mod footprint;
mod init;
mod listen;
mod params;
mod reads;
mod statements;
mod values;
mod writes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use super::idempotency::{Applied, Once, Recorded};
use super::versions::{Footprint, TableVersions};
use super::{DataStore, ReadError, ReadPlan, StoreFuture, WriteError};
use crate::contract::{Effect, Table};
use crate::manifest::Manifest;

pub(crate) use params::{translate, Translated};

/// Connections one node keeps to the database at most. PostgreSQL's default
/// `max_connections` is 100: three nodes at 16 leave room for the rest.
const POOL_SIZE: usize = 16;

/// How long a request waits for a connection, for a new connection to be
/// made, or for a pooled one to be checked, before it is answered 503: a
/// database that is down must cost a client a quick 503, never a hang.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

pub struct PostgresStore {
    pool: Pool,
    /// The URL without its password, for logs.
    described: String,
    /// Each declared write's SQL with PostgreSQL's markers, by manifest SQL.
    writes: Arc<HashMap<String, Translated>>,
    reads: Arc<HashMap<String, Translated>>,
    session_key: Option<[u8; 32]>,
    /// Kept in `nebula_table_versions`, so every node's agree; moved forward
    /// by this node's commits and by the others' (`listen.rs`).
    versions: Arc<TableVersions>,
    /// The listener's connection and the schema whose commits it follows.
    listen_to: (tokio_postgres::Config, String),
    /// Started by the first read or write (the store is opened before the
    /// runtime runs), aborted with the store.
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The storage ceiling (`--max-storage-mb` on the platform): what the
    /// schema's tables may take, checked in each write transaction.
    max_bytes: Option<u64>,
}

impl PostgresStore {
    /// Starts listening for other nodes' commits, once, from inside the
    /// runtime; until it has read every version back, nothing is memoised.
    fn ensure_listening(&self) {
        let mut listener = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if listener.is_none() {
            let (config, schema) = self.listen_to.clone();
            *listener = listen::spawn(config, schema, self.versions.clone());
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(l) = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            l.abort();
        }
    }
}

/// Every node's keys agree on the generation: the versions are shared.
const SHARED_GENERATION: u64 = 0;

/// What a node learns at start besides the schema's being up to date.
struct Started {
    session_key: Option<[u8; 32]>,
    footprint: Footprint,
    schema: String,
}

impl PostgresStore {
    /// Connects, applies what migrations are new, prepares every statement
    /// (a start-time error names the read or write), and makes the pool.
    /// With a storage ceiling, refused if the schema and seed already take
    /// more than `max_bytes`.
    pub fn open(url: &str, manifest: &Manifest, max_bytes: Option<u64>) -> Result<PostgresStore> {
        let config = config(url)?;
        let described = describe(&config);
        let reads: HashMap<String, Translated> = manifest
            .reads
            .values()
            .map(|r| (r.sql.clone(), translate(&r.sql)))
            .collect();
        let writes: HashMap<String, Translated> = manifest
            .writes
            .values()
            .map(|w| (w.sql.clone(), translate(&w.sql)))
            .collect();
        // The start-up work runs on a runtime of its own: `open` is called
        // from synchronous code that may itself be inside a runtime.
        let started = {
            let (config, described) = (config.clone(), described.clone());
            let manifest = manifest.clone();
            std::thread::scope(|s| {
                s.spawn(|| -> Result<Started> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async {
                        let (mut client, conn) = config
                            .connect(NoTls)
                            .await
                            .with_context(|| format!("cannot connect to {described}"))?;
                        let conn = tokio::spawn(conn);
                        init::initialise(&mut client, &manifest).await?;
                        statements::check(&client, &manifest).await?;
                        let key = if manifest.session.is_some() {
                            Some(init::session_key(&client).await?)
                        } else {
                            None
                        };
                        let footprint = footprint::footprint(&client, &manifest).await;
                        let schema: String = client
                            .query_one("SELECT current_schema()", &[])
                            .await?
                            .get(0);
                        if let Some(max) = max_bytes {
                            let used = writes::schema_bytes(&client).await?;
                            if used > max {
                                anyhow::bail!(
                                    "the schema and seed do not fit in the storage ceiling of {} MiB: they take {used} bytes in schema {schema}",
                                    max >> 20
                                );
                            }
                        }
                        drop(client);
                        let _ = conn.await;
                        Ok(Started {
                            session_key: key,
                            footprint,
                            schema,
                        })
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the database set-up thread panicked")))
            })?
        };
        let versions = Arc::new(TableVersions::new(&started.footprint, SHARED_GENERATION));
        // Untrusted until the listener has heard of every commit so far.
        versions.set_trusted(false);
        let listen_to = (config.clone(), started.schema.clone());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A closed connection (the server restarted, a failover) is
                // noticed without a round trip; one that broke silently fails
                // its query, which is answered 503 and the connection dropped.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(CONNECT_WAIT),
                create: Some(CONNECT_WAIT),
                recycle: Some(CONNECT_WAIT),
            })
            .build()
            .context("cannot make the connection pool")?;
        tracing::info!(database = %described, "PostgreSQL store ready");
        Ok(PostgresStore {
            pool,
            described,
            writes: Arc::new(writes),
            reads: Arc::new(reads),
            session_key: started.session_key,
            versions,
            listen_to,
            listener: Default::default(),
            max_bytes,
        })
    }
}

impl DataStore for PostgresStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn read(&self, plans: Vec<ReadPlan>) -> StoreFuture<'_, Result<Vec<Table>, ReadError>> {
        Box::pin(async move {
            self.ensure_listening();
            if plans.is_empty() {
                return Ok(Vec::new());
            }
            reads::run_all(&self.pool, &self.reads, &plans).await
        })
    }

    fn apply(
        &self,
        effects: Vec<Effect>,
        session: Option<String>,
        declared: Vec<(String, String)>,
        once: Option<Once>,
    ) -> StoreFuture<'_, Result<Applied, WriteError>> {
        Box::pin(async move {
            self.ensure_listening();
            let writer = writes::Writer {
                pool: &self.pool,
                translated: &self.writes,
                versions: &self.versions,
                max_bytes: self.max_bytes,
            };
            writes::apply(
                writer,
                &effects,
                session.as_deref(),
                &declared,
                once.as_ref(),
            )
            .await
        })
    }

    fn recall(
        &self,
        key: String,
    ) -> StoreFuture<'_, Result<Option<(String, Recorded)>, WriteError>> {
        Box::pin(async move { writes::recall(&self.pool, &key).await })
    }

    fn ping(&self) -> StoreFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            tokio::time::timeout(CONNECT_WAIT, client.simple_query("SELECT 1"))
                .await
                .map_err(|_| "no answer within 2 s".to_string())?
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    /// Closes idle connections (they are made again on demand).
    fn trim(&self) {
        self.pool.retain(|_, _| false);
    }

    fn close(&self) -> Result<()> {
        self.pool.close();
        Ok(())
    }

    fn host_file(&self, _name: &str) -> Option<std::path::PathBuf> {
        None
    }

    fn versions(&self) -> Option<Arc<TableVersions>> {
        Some(self.versions.clone())
    }

    fn session_key(&self) -> Result<Option<[u8; 32]>> {
        Ok(self.session_key)
    }
}

/// The URL as a connection config, with the timeouts a failover needs.
fn config(url: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.parse().with_context(|| {
        format!(
            "{}: not a PostgreSQL connection URL (postgres://USER@HOST:PORT/DATABASE)",
            redact(url)
        )
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_WAIT);
    }
    // A primary that vanished without closing its sockets (a cut cable, a
    // paused VM) is noticed within ~10 s rather than the kernel's 2 hours.
    config.keepalives_idle(Duration::from_secs(5));
    if config.get_application_name().is_none() {
        config.application_name("nebula");
    }
    Ok(config)
}

/// "postgres://user@host:port/db" without the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, p)| match h {
            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{p}"),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// A URL for an error message: the password, if any, replaced.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let colon = s + 3 + url[s + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..colon], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Whether a driver error means the database could not be reached or the
/// connection broke (503, retry), rather than that it refused the SQL.
fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match e.as_db_error() {
        Some(db) => {
            let code = db.code();
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                // A standby that is not promoted yet refuses writes.
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
                || code.code().starts_with("08")
        }
        // No answer from the server: closed, reset, refused, timed out.
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}
