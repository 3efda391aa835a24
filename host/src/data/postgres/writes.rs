//! A request's effects on PostgreSQL: one transaction, with the request's
//! idempotency record in it, serialized against every other write to the
//! database, as SQLite's single writer serializes them.
//!
//! Each write transaction first takes a transaction-scoped advisory lock
//! (released by COMMIT, ROLLBACK or a broken connection, so a request that
//! is abandoned half-way cannot leave it held) and runs at READ COMMITTED:
//! every statement after the lock sees every write committed before it.
//! So concurrent requests on many nodes run one after another: the votes a
//! trigger counts, a `SELECT max(id)` inside a write, an idempotency key
//! looked up before it is recorded all come out as on SQLite.
//!
//! Measured first was the optimistic way, SERIALIZABLE with retries: with
//! 16–25 clients voting on the same rows every transaction kept aborting
//! the others (most votes needed several attempts, some failed after 20);
//! and a lock taken per connection after a failure could be left held by a
//! request dropped mid-way. A serialization failure or deadlock is still
//! retried (none is expected under the lock).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::IsolationLevel;

use super::values::{column, PgArg};
use super::{is_unavailable, statements::message, translate, Translated};
use crate::contract::{Effect, Value};
use crate::data::idempotency::{Applied, Once, Recorded, KEEP_MS};
use crate::data::versions::TableVersions;
use crate::data::WriteError;
use crate::manifest::SESSION_PARAM;

/// Attempts of one transaction that keeps meeting serialization failures
/// (contention on the same rows): then the request gets an error, no write.
const MAX_ATTEMPTS: u32 = 20;

/// The advisory lock id every write transaction takes ("nebula-w").
const WRITERS_LOCK: i64 = 0x6e65_6275_6c61_2d77;

/// How long the host waits for the database's answer to a transaction
/// before it gives up and answers 503.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// One in this many recorded keys also deletes the records past [`KEEP_MS`].
const SWEEP_EVERY: u64 = 256;

static RECORDED: AtomicU64 = AtomicU64::new(0);

enum Failed {
    /// Serialization failure or deadlock: the whole transaction may be retried.
    Retry(tokio_postgres::Error),
    Final(WriteError),
}

impl From<tokio_postgres::Error> for Failed {
    fn from(e: tokio_postgres::Error) -> Failed {
        let code = e.code();
        if code == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            || code == Some(&SqlState::T_R_DEADLOCK_DETECTED)
        {
            Failed::Retry(e)
        } else if is_unavailable(&e) {
            Failed::Final(WriteError::Unavailable(e.to_string()))
        } else {
            Failed::Final(WriteError::Failed(message(&e)))
        }
    }
}

/// What every write of one store shares.
pub(super) struct Writer<'a> {
    pub pool: &'a Pool,
    /// Each declared write's SQL with PostgreSQL's markers.
    pub translated: &'a HashMap<String, Translated>,
    pub versions: &'a TableVersions,
    /// The storage ceiling, if the platform set one.
    pub max_bytes: Option<u64>,
}

pub(super) async fn apply(
    w: Writer<'_>,
    effects: &[Effect],
    session: Option<&str>,
    declared: &[(String, String)],
    once: Option<&Once>,
) -> Result<Applied, WriteError> {
    let Writer {
        pool,
        translated,
        versions,
        max_bytes,
    } = w;
    if effects.is_empty() && once.is_none() {
        return Ok(Applied::Committed {
            last_insert_rowid: 0,
        });
    }
    // Everything the component asked for is checked before the database is.
    let mut statements = Vec::with_capacity(effects.len());
    for e in effects {
        let sql = declared
            .iter()
            .find(|(name, _)| *name == e.write)
            .map(|(_, sql)| sql)
            .ok_or_else(|| WriteError::Undeclared(e.write.clone()))?;
        statements.push(
            translated
                .get(sql)
                .cloned()
                .unwrap_or_else(|| translate(sql)),
        );
    }
    // The tables whose versions the transaction bumps; a write whose
    // tables nobody could name bumps them all.
    let bump: Vec<String> = if effects.is_empty() {
        Vec::new()
    } else {
        versions
            .tables_written(effects.iter().map(|e| e.write.as_str()))
            .unwrap_or_else(|| versions.all_names())
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let work = async {
        let mut client = pool
            .get()
            .await
            .map_err(|e| WriteError::Unavailable(format!("no connection: {e}")))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = attempt_once(
                &mut client,
                effects,
                &statements,
                session,
                once,
                &bump,
                max_bytes,
            )
            .await;
            match result {
                Ok((applied, bumped)) => {
                    for (name, version) in bumped {
                        versions.observe(&name, version.max(0) as u64);
                    }
                    return Ok(applied);
                }
                Err(Failed::Retry(e)) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, "transaction retried: {e}");
                    // Jittered, growing: the transactions that collided
                    // should not collide again.
                    let ms = rand::random::<u64>() % (1u64 << attempt.min(5)) + 1;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(Failed::Retry(e)) => {
                    return Err(WriteError::Failed(format!(
                    "still conflicting with concurrent requests after {MAX_ATTEMPTS} attempts: {}",
                    message(&e)
                )))
                }
                Err(Failed::Final(e)) => return Err(e),
            }
        }
    };
    let applied = tokio::time::timeout(ANSWER_WITHIN, work)
        .await
        .unwrap_or_else(|_| {
            Err(WriteError::Unavailable(format!(
                "no answer from the database within {} s",
                ANSWER_WITHIN.as_secs()
            )))
        })?;
    if once.is_some()
        && RECORDED
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
    {
        sweep(pool).await;
    }
    Ok(applied)
}

async fn attempt_once(
    client: &mut Object,
    effects: &[Effect],
    statements: &[Translated],
    session: Option<&str>,
    once: Option<&Once>,
    bump: &[String],
    max_bytes: Option<u64>,
) -> Result<(Applied, Vec<(String, i64)>), Failed> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    // Behind every other write transaction; statements from here on see
    // what those committed.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITERS_LOCK])
        .await?;
    if let Some(once) = once {
        if let Some(found) = recorded(&tx, &once.key).await? {
            return Ok((duplicate(found), Vec::new()));
        }
    }
    let mut last_insert_rowid = 0;
    for (effect, t) in effects.iter().zip(statements) {
        let stmt = tx.prepare_cached(&t.sql).await?;
        let session_at = t.index_of(&SESSION_PARAM[1..]);
        let expected = stmt.params().len() - usize::from(session_at.is_some());
        if expected != effect.args.len() {
            return Err(Failed::Final(WriteError::Arity {
                write: effect.write.clone(),
                expected,
                found: effect.args.len(),
            }));
        }
        let args: Vec<PgArg> = effect.args.iter().map(PgArg).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(stmt.params().len());
        for i in 1..=stmt.params().len() {
            if Some(i) == session_at {
                params.push(&session);
            } else {
                params.push(&args[i - 1]);
            }
        }
        if stmt.columns().is_empty() {
            tx.execute(&stmt, &params).await?;
        } else {
            // `INSERT … RETURNING id`: the id is `{{last_insert_rowid}}`.
            let rows = tx.query(&stmt, &params).await?;
            if let Some(Ok(Value::Integer(id))) = rows.first().map(|r| column(r, 0)) {
                last_insert_rowid = id;
            }
        }
    }
    if let Some(once) = once {
        let response = (once.response)(last_insert_rowid);
        let now = crate::data::now_ms();
        let status = i32::from(response.status);
        let inserted = tx
            .execute(
                "INSERT INTO nebula_idempotency (key, fingerprint, status, headers, body, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO NOTHING",
                &[
                    &once.key,
                    &once.fingerprint,
                    &status,
                    &response.headers_json(),
                    &response.body,
                    &now,
                ],
            )
            .await?;
        if inserted == 0 {
            // A twin committed between our look and our insert.
            if let Some(found) = recorded(&tx, &once.key).await? {
                return Ok((duplicate(found), Vec::new()));
            }
        }
    }
    let bumped = bump_versions(&tx, bump).await?;
    // The tables' files grow as rows are written, before the commit: past
    // the ceiling, the transaction rolls back (dropped) and nothing stays.
    if let Some(max) = max_bytes {
        let used = schema_bytes(&*tx).await?;
        if used > max {
            return Err(Failed::Final(WriteError::StorageFull(format!(
                "the app's data would take {used} bytes, past its storage ceiling of {} MiB (the platform's --max-storage-mb)",
                max >> 20
            ))));
        }
    }
    tx.commit().await?;
    Ok((Applied::Committed { last_insert_rowid }, bumped))
}

/// What the tables of the connection's schema (the app's) take on disk,
/// with their indexes and TOAST, in bytes.
pub(super) async fn schema_bytes(
    client: &impl tokio_postgres::GenericClient,
) -> Result<u64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
             FROM pg_class c
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'm')",
            &[],
        )
        .await?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// In the writing transaction: the written tables' versions, one up, and a
/// notification (sent at commit) that tells the other nodes the new ones.
async fn bump_versions(
    tx: &tokio_postgres::Transaction<'_>,
    tables: &[String],
) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            "INSERT INTO nebula_table_versions (name, version) SELECT unnest($1::text[]), 1
             ON CONFLICT (name) DO UPDATE SET version = nebula_table_versions.version + 1
             RETURNING name, version",
            &[&tables],
        )
        .await?;
    let bumped: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let changes: Vec<String> = bumped.iter().map(|(n, v)| format!("{n}={v}")).collect();
    tx.execute(
        "SELECT pg_notify($1, current_schema() || ' ' || $2)",
        &[&super::listen::CHANNEL, &changes.join(",")],
    )
    .await?;
    Ok(bumped)
}

type Found = (String, Recorded);

async fn recorded(
    tx: &tokio_postgres::Transaction<'_>,
    key: &str,
) -> Result<Option<Found>, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            "SELECT fingerprint, status, headers, body FROM nebula_idempotency WHERE key = $1",
            &[&key],
        )
        .await?;
    Ok(row.map(|r| {
        let status: i32 = r.get(1);
        let headers: String = r.get(2);
        (
            r.get(0),
            Recorded::from_parts(status.into(), &headers, r.get(3)),
        )
    }))
}

fn duplicate((fingerprint, recorded): Found) -> Applied {
    Applied::Duplicate {
        fingerprint,
        recorded,
    }
}

/// The recorded response for `key`, outside any write.
pub(super) async fn recall(pool: &Pool, key: &str) -> Result<Option<Found>, WriteError> {
    let work = async {
        let mut client = pool
            .get()
            .await
            .map_err(|e| WriteError::Unavailable(format!("no connection: {e}")))?;
        let tx = client.transaction().await.map_err(final_error)?;
        let found = recorded(&tx, key).await.map_err(final_error)?;
        tx.commit().await.map_err(final_error)?;
        Ok(found)
    };
    tokio::time::timeout(ANSWER_WITHIN, work)
        .await
        .unwrap_or_else(|_| {
            Err(WriteError::Unavailable(
                "no answer from the database".into(),
            ))
        })
}

fn final_error(e: tokio_postgres::Error) -> WriteError {
    match Failed::from(e) {
        Failed::Final(e) => e,
        Failed::Retry(e) => WriteError::Failed(message(&e)),
    }
}

/// Deletes the records older than a day; best effort.
async fn sweep(pool: &Pool) {
    let Ok(client) = pool.get().await else { return };
    let before = crate::data::now_ms() - KEEP_MS;
    if let Err(e) = client
        .execute(
            "DELETE FROM nebula_idempotency WHERE created_ms < $1",
            &[&before],
        )
        .await
    {
        tracing::warn!("could not delete old idempotency records: {e}");
    }
}
