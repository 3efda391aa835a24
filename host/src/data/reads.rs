//! Running a route's reads: one snapshot, each read within its limits.
//!
//! A read is the manifest's SQL, but how much it returns depends on the data:
//! a query that was cheap on the seed can scan a million rows a year later.
//! So each read has a cap on rows and bytes (checked while the rows are
//! copied out, so an oversized result is never held whole) and a deadline on
//! its SQL, enforced by SQLite's progress handler, which interrupts the
//! statement from inside the VM; the reader connection is then dropped, not
//! reused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::contract::{Table, Value};
use crate::manifest::Read;

/// How many SQLite VM instructions run between two looks at the clock:
/// about a tenth of a millisecond of work, and the look costs nanoseconds.
const PROGRESS_INTERVAL: i32 = 10_000;

/// Size of a number in a read's byte count.
const NUMBER_BYTES: u64 = 8;

/// One read with its parameter values for one request: (`:name`, value).
pub struct ReadPlan {
    pub read: Arc<Read>,
    pub args: Vec<(String, Option<String>)>,
}

impl ReadPlan {
    pub fn bind(
        read: &Arc<Read>,
        mut value_of: impl FnMut(&crate::manifest::Binding) -> Option<String>,
    ) -> Self {
        let args = read
            .bind
            .iter()
            .map(|(name, binding)| (format!(":{name}"), value_of(binding)))
            .collect();
        ReadPlan {
            read: read.clone(),
            args,
        }
    }
}

/// Why a route's reads produced no data. Each message names the read and,
/// for a limit, the manifest key to raise.
#[derive(Debug)]
pub enum ReadError {
    TooManyRows {
        read: String,
        max_rows: u64,
    },
    TooManyBytes {
        read: String,
        max_bytes: u64,
    },
    Timeout {
        read: String,
        timeout_ms: u64,
    },
    /// SQLite refused the query (or the connection could not be opened).
    Failed {
        read: String,
        error: String,
    },
    /// The thread running the reads panicked.
    Aborted(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooManyRows { read, max_rows } => write!(
                f,
                "read {read:?} returned more than max_rows = {max_rows} rows; raise [reads.{read}] max_rows (or [limits] read_max_rows for every read) if that many are expected, or LIMIT the query"
            ),
            ReadError::TooManyBytes { read, max_bytes } => write!(
                f,
                "read {read:?} returned more than max_bytes = {max_bytes} bytes; raise [reads.{read}] max_bytes (or [limits] read_max_bytes for every read) if that much is expected, or LIMIT the query"
            ),
            ReadError::Timeout { read, timeout_ms } => write!(
                f,
                "read {read:?} ran longer than timeout_ms = {timeout_ms} and was stopped; raise [reads.{read}] timeout_ms (or [limits] read_timeout_ms for every read), or make the query cheaper (an index, a LIMIT)"
            ),
            ReadError::Failed { read, error } => write!(f, "read {read:?} failed: {error}"),
            ReadError::Aborted(e) => write!(f, "the reads were aborted: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Runs `plans` on `conn` in one read transaction, so they see one snapshot.
/// On error the connection may be inside that transaction: drop it.
pub fn run_all(conn: &Connection, plans: &[ReadPlan]) -> Result<Vec<Table>, ReadError> {
    let failed = |read: &str| {
        let read = read.to_string();
        move |e: rusqlite::Error| ReadError::Failed {
            read,
            error: e.to_string(),
        }
    };
    let first = &plans[0].read.name;
    conn.execute_batch("BEGIN").map_err(failed(first))?;
    let mut tables = Vec::with_capacity(plans.len());
    for plan in plans {
        tables.push(run_one(conn, plan)?);
    }
    conn.execute_batch("COMMIT").map_err(failed(first))?;
    Ok(tables)
}

fn run_one(conn: &Connection, plan: &ReadPlan) -> Result<Table, ReadError> {
    let read = &plan.read;
    let limits = read.limits;
    let timed_out = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now().checked_add(Duration::from_millis(limits.timeout_ms));
    {
        let timed_out = timed_out.clone();
        conn.progress_handler(
            PROGRESS_INTERVAL,
            Some(move || {
                // `true` interrupts the statement (SQLITE_INTERRUPT).
                let late = deadline.is_some_and(|d| Instant::now() >= d);
                if late {
                    timed_out.store(true, Ordering::Relaxed);
                }
                late
            }),
        );
    }
    let result = copy_rows(conn, plan);
    conn.progress_handler(0, None::<fn() -> bool>);
    match result {
        Err(_) if timed_out.load(Ordering::Relaxed) => Err(ReadError::Timeout {
            read: read.name.clone(),
            timeout_ms: limits.timeout_ms,
        }),
        other => other,
    }
}

fn copy_rows(conn: &Connection, plan: &ReadPlan) -> Result<Table, ReadError> {
    let read = &plan.read;
    let failed = |e: rusqlite::Error| ReadError::Failed {
        read: read.name.clone(),
        error: e.to_string(),
    };
    let mut stmt = conn.prepare_cached(&read.sql).map_err(failed)?;
    for (name, value) in &plan.args {
        if let Some(idx) = stmt.parameter_index(name).map_err(failed)? {
            match value {
                Some(v) => stmt.raw_bind_parameter(idx, v.as_str()),
                None => stmt.raw_bind_parameter(idx, rusqlite::types::Null),
            }
            .map_err(failed)?;
        }
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
