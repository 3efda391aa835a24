//! A route's reads on PostgreSQL: one read-only REPEATABLE READ transaction,
//! so they see one snapshot, each within its rows, bytes and time.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::IsolationLevel;

use super::values::column;
use super::{is_unavailable, statements::message, translate, Translated};
use crate::contract::{Table, Value};
use crate::data::{ReadError, ReadPlan};

/// Size of a number in a read's byte count (as on SQLite).
const NUMBER_BYTES: u64 = 8;

/// Beyond a read's own `timeout_ms` (enforced by the server), how long the
/// host waits for an answer before it gives up on the connection: a server
/// that stopped answering must not hold a request.
const GRACE: Duration = Duration::from_secs(2);

pub(super) async fn run_all(
    pool: &Pool,
    translated: &HashMap<String, Translated>,
    plans: &[ReadPlan],
) -> Result<Vec<Table>, ReadError> {
    let total: u64 = plans.iter().map(|p| p.read.limits.timeout_ms).sum();
    let within = Duration::from_millis(total) + GRACE;
    match tokio::time::timeout(within, run(pool, translated, plans)).await {
        Ok(result) => result,
        Err(_) => Err(ReadError::Unavailable(format!(
            "no answer from the database within {} ms",
            within.as_millis()
        ))),
    }
}

async fn run(
    pool: &Pool,
    translated: &HashMap<String, Translated>,
    plans: &[ReadPlan],
) -> Result<Vec<Table>, ReadError> {
    let first = &plans[0].read.name;
    let mut client = pool
        .get()
        .await
        .map_err(|e| ReadError::Unavailable(format!("no connection: {e}")))?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| classify(first, 0, e))?;
    let statements: Vec<std::borrow::Cow<Translated>> = plans
        .iter()
        .map(|p| match translated.get(&p.read.sql) {
            Some(t) => std::borrow::Cow::Borrowed(t),
            None => std::borrow::Cow::Owned(translate(&p.read.sql)),
        })
        .collect();
    let one_timeout = plans
        .iter()
        .all(|p| p.read.limits.timeout_ms == plans[0].read.limits.timeout_ms);
    let tables = if one_timeout {
        // The usual case (every read has the default timeout): the timeout
        // and every read are sent at once, pipelined on the connection, so a
        // route's reads cost about three round trips (set + binds, fetches,
        // commit) after BEGIN rather than two per read. The connection
        // answers in order, so the first error in plan order is the cause.
        let ms = plans[0].read.limits.timeout_ms;
        let set = format!("SET LOCAL statement_timeout = {ms}");
        let reads = futures::future::join_all(
            plans
                .iter()
                .zip(&statements)
                .map(|(plan, t)| run_one(&tx, t, plan)),
        );
        let (set, results) = futures::future::join(tx.batch_execute(&set), reads).await;
        set.map_err(|e| classify(first, ms, e))?;
        let mut tables = Vec::with_capacity(plans.len());
        for (plan, result) in plans.iter().zip(results) {
            tables.push(result.map_err(|e| e.into_read_error(plan))?);
        }
        tables
    } else {
        let mut tables = Vec::with_capacity(plans.len());
        let mut timeout = None;
        for (plan, t) in plans.iter().zip(&statements) {
            let ms = plan.read.limits.timeout_ms;
            if timeout != Some(ms) {
                // Enforced by the server, which cancels the query itself.
                tx.batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
                    .await
                    .map_err(|e| classify(&plan.read.name, ms, e))?;
                timeout = Some(ms);
            }
            tables.push(
                run_one(&tx, t, plan)
                    .await
                    .map_err(|e| e.into_read_error(plan))?,
            );
        }
        tables
    };
    tx.commit().await.map_err(|e| classify(first, 0, e))?;
    Ok(tables)
}

enum OneError {
    Db(tokio_postgres::Error),
    Column(String),
    Rows,
    Bytes,
}

impl OneError {
    fn into_read_error(self, plan: &ReadPlan) -> ReadError {
        let read = &plan.read;
        match self {
            OneError::Db(e) => classify(&read.name, read.limits.timeout_ms, e),
            OneError::Column(error) => ReadError::Failed {
                read: read.name.clone(),
                error,
            },
            OneError::Rows => ReadError::TooManyRows {
                read: read.name.clone(),
                max_rows: read.limits.max_rows,
            },
            OneError::Bytes => ReadError::TooManyBytes {
                read: read.name.clone(),
                max_bytes: read.limits.max_bytes,
            },
        }
    }
}

async fn run_one(
    tx: &deadpool_postgres::Transaction<'_>,
    t: &Translated,
    plan: &ReadPlan,
) -> Result<Table, OneError> {
    let stmt = tx
        .prepare_typed_cached(&t.sql, &vec![Type::TEXT; t.names.len()])
        .await
        .map_err(OneError::Db)?;
    let args: Vec<Option<&str>> = t
        .names
        .iter()
        .map(|n| {
            plan.args
                .iter()
                .find(|(name, _)| name == n)
                .and_then(|(_, v)| v.as_deref())
        })
        .collect();
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
    let limits = plan.read.limits;
    // A portal fetches at most one row past the cap: an oversized result is
    // never transferred whole.
    let portal = tx.bind(&stmt, &params).await.map_err(OneError::Db)?;
    let fetch = i32::try_from(limits.max_rows.saturating_add(1)).unwrap_or(i32::MAX);
    let rows = tx
        .query_portal(&portal, fetch)
        .await
        .map_err(OneError::Db)?;
    if rows.len() as u64 > limits.max_rows {
        return Err(OneError::Rows);
    }
    let columns: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut bytes: u64 = 0;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let value = column(row, i).map_err(OneError::Column)?;
            bytes += match &value {
                Value::Null => 0,
                Value::Integer(_) | Value::Real(_) => NUMBER_BYTES,
                Value::Text(s) => s.len() as u64,
                Value::Blob(b) => b.len() as u64,
            };
            if bytes > limits.max_bytes {
                return Err(OneError::Bytes);
            }
            values.push(value);
        }
        out.push(values);
    }
    Ok(Table {
        name: plan.read.name.clone(),
        columns,
        rows: out,
    })
}

fn classify(read: &str, timeout_ms: u64, e: tokio_postgres::Error) -> ReadError {
    if e.code() == Some(&SqlState::QUERY_CANCELED) {
        return ReadError::Timeout {
            read: read.to_string(),
            timeout_ms,
        };
    }
    if is_unavailable(&e) {
        return ReadError::Unavailable(e.to_string());
    }
    ReadError::Failed {
        read: read.to_string(),
        error: message(&e),
    }
}
