//! Running a route's reads on SQLite: one snapshot, each read within its limits.
//!
//! A read is the manifest's SQL, but how much it returns depends on the data:
//! a query that was cheap on the seed can scan a million rows a year later.
//! So each read has a cap on rows and bytes (checked while the rows are
//! copied out, so an oversized result is never held whole) and a deadline on
//! its SQL, enforced by SQLite's progress handler, which interrupts the
//! statement from inside the VM; the reader connection is then dropped, not
//! reused.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::contract::{Table, Value};
use crate::data::{ReadError, ReadPlan};

/// How many SQLite VM instructions run between two looks at the clock:
/// about a tenth of a millisecond of work, and the look costs nanoseconds.
const PROGRESS_INTERVAL: i32 = 10_000;
/// The same on an async worker, where a read must stop soon after its
/// budget: about ten microseconds of work between looks.
const INLINE_PROGRESS_INTERVAL: i32 = 1_000;

/// Size of a number in a read's byte count.
const NUMBER_BYTES: u64 = 8;

/// Runs `plans` on `conn` in one read transaction, so they see one snapshot.
/// On error the connection may be inside that transaction: drop it.
///
/// With `stop_by` (a read on an async worker), the reads are interrupted
/// once that instant passes and `Ok(None)` says so; the transaction is then
/// rolled back and the connection may be reused.
pub(super) fn run_all(
    conn: &Connection,
    plans: &[ReadPlan],
    stop_by: Option<Instant>,
) -> Result<Option<Vec<Table>>, ReadError> {
    let failed = |read: &str| {
        let read = read.to_string();
        move |e: rusqlite::Error| ReadError::Failed {
            read,
            error: e.to_string(),
        }
    };
    let first = &plans[0].read.name;
    // From the statement cache: `execute_batch` would parse the SQL again on
    // every request.
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.raw_execute());
    run("BEGIN").map_err(failed(first))?;
    let mut tables = Vec::with_capacity(plans.len());
    for plan in plans {
        match run_one(conn, plan, stop_by)? {
            Some(table) => tables.push(table),
            None => {
                run("ROLLBACK").map_err(failed(first))?;
                return Ok(None);
            }
        }
    }
    run("COMMIT").map_err(failed(first))?;
    Ok(Some(tables))
}

/// Why the progress handler interrupted a statement.
const RUNNING: u8 = 0;
const TIMED_OUT: u8 = 1;
const OVER_BUDGET: u8 = 2;

fn run_one(
    conn: &Connection,
    plan: &ReadPlan,
    stop_by: Option<Instant>,
) -> Result<Option<Table>, ReadError> {
    let read = &plan.read;
    let limits = read.limits;
    let stopped = Arc::new(AtomicU8::new(RUNNING));
    let deadline = Instant::now().checked_add(Duration::from_millis(limits.timeout_ms));
    {
        let stopped = stopped.clone();
        let interval = match stop_by {
            Some(_) => INLINE_PROGRESS_INTERVAL,
            None => PROGRESS_INTERVAL,
        };
        conn.progress_handler(
            interval,
            Some(move || {
                // `true` interrupts the statement (SQLITE_INTERRUPT).
                let now = Instant::now();
                let why = if deadline.is_some_and(|d| now >= d) {
                    TIMED_OUT
                } else if stop_by.is_some_and(|s| now >= s) {
                    OVER_BUDGET
                } else {
                    return false;
                };
                stopped.store(why, Ordering::Relaxed);
                true
            }),
        );
    }
    let result = copy_rows(conn, plan);
    conn.progress_handler(0, None::<fn() -> bool>);
    match (result, stopped.load(Ordering::Relaxed)) {
        (Err(_), TIMED_OUT) => Err(ReadError::Timeout {
            read: read.name.clone(),
            timeout_ms: limits.timeout_ms,
        }),
        (Err(_), OVER_BUDGET) => Ok(None),
        (other, _) => other.map(Some),
    }
}

fn copy_rows(conn: &Connection, plan: &ReadPlan) -> Result<Table, ReadError> {
    let read = &plan.read;
    let failed = |e: rusqlite::Error| ReadError::Failed {
        read: read.name.clone(),
        error: e.to_string(),
    };
    let mut stmt = conn.prepare_cached(&read.sql).map_err(failed)?;
    for idx in 1..=stmt.parameter_count() {
        // SQLite names a parameter with its prefix (`:name`, and `@name` or
        // `$name`, which the start-time check accepts too); the plan by the
        // bare name its `bind` gives.
        let value = stmt
            .parameter_name(idx)
            .and_then(|n| n.get(1..))
            .and_then(|bare| plan.args.iter().find(|(name, _)| name == bare))
            .map(|(_, value)| value);
        match value {
            Some(Some(v)) => stmt.raw_bind_parameter(idx, v.as_str()),
            Some(None) => stmt.raw_bind_parameter(idx, rusqlite::types::Null),
            None => Ok(()),
        }
        .map_err(failed)?;
    }
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let ncols = columns.len();
    let (max_rows, max_bytes) = (read.limits.max_rows, read.limits.max_bytes);
    let mut rows = Vec::new();
    let mut bytes: u64 = 0;
    let mut cursor = stmt.raw_query();
    while let Some(row) = cursor.next().map_err(failed)? {
        if rows.len() as u64 >= max_rows {
            return Err(ReadError::TooManyRows {
                read: read.name.clone(),
                max_rows,
            });
        }
        let mut out = Vec::with_capacity(ncols);
        for i in 0..ncols {
            let value = row.get_ref(i).map_err(failed)?;
            bytes += match value {
                ValueRef::Null => 0,
                ValueRef::Integer(_) | ValueRef::Real(_) => NUMBER_BYTES,
                ValueRef::Text(b) | ValueRef::Blob(b) => b.len() as u64,
            };
            // Checked before the copy: an oversized value is never copied.
            if bytes > max_bytes {
                return Err(ReadError::TooManyBytes {
                    read: read.name.clone(),
                    max_bytes,
                });
            }
            out.push(match value {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        rows.push(out);
    }
    Ok(Table {
        name: read.name.clone(),
        columns,
        rows,
    })
}
