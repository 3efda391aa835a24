//! SQLite as Nebula's data layer uses it: WAL mode, one writer behind a
//! mutex, a pool of readers, each route's reads in one read transaction,
//! each write in an immediate transaction, statements prepared once.

use std::path::Path;
use std::sync::Mutex;

use academemes_html::rows::{CellReader, NamedRows};
use anyhow::{bail, Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub struct Database {
    path: std::path::PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

/// One query's result, read by column name.
pub type Table = NamedRows<Value>;

/// How rusqlite's values read as the site's INTEGER and TEXT columns.
const CELLS: CellReader<Value> = CellReader {
    int: |v| match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    },
    text: |v| match v {
        Value::Text(s) => Some(s),
        _ => None,
    },
};

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Nebula's data layer's settings (host/src/data/sqlite/mod.rs), so both pay the
    // same for a commit: in WAL mode NORMAL syncs at checkpoints, not commits.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Database {
    /// Opens a database that already has the Academemes schema and data (the
    /// one `nebula up` creates from app.toml's schema and seed).
    pub fn open(path: &Path) -> Result<Database> {
        if !path.is_file() {
            bail!(
                "no database at {}: start `nebula up` once (it creates data/academemes.db from app.toml's schema and seed) and pass that file with --db",
                path.display()
            );
        }
        let writer = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .context("cannot switch the database to WAL mode")?;
        Ok(Database {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `reads` (SQL and its parameters) in one read transaction.
    pub fn read(&self, reads: &[(&str, &[Value])]) -> Result<Vec<Table>> {
        let conn = match self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            Some(c) => c,
            None => connect(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        };
        let result = (|| {
            conn.execute_batch("BEGIN")?;
            let mut tables = Vec::with_capacity(reads.len());
            for (sql, params) in reads {
                tables.push(query(&conn, sql, params)?);
            }
            conn.execute_batch("COMMIT")?;
            Ok::<_, rusqlite::Error>(tables)
        })();
        // A connection left inside a failed transaction is dropped, not reused.
        let tables = result.context("a read query failed")?;
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        Ok(tables)
    }

    /// Runs one write in an immediate transaction.
    pub fn write(&self, sql: &str, params: &[Value]) -> Result<usize> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?;
        tx.commit()?;
        Ok(changed)
    }
}

fn query(conn: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Table> {
    let mut stmt = conn.prepare_cached(sql)?;
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let n = columns.len();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), |row| {
            (0..n).map(|i| row.get::<_, Value>(i)).collect()
        })?
        .collect::<rusqlite::Result<Vec<Vec<Value>>>>()?;
    Ok(NamedRows::new(columns, rows, CELLS))
}
