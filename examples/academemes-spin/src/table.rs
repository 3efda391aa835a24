//! Query results from Spin's SQLite interface, read by column name the way
//! Nebula's `data` tables are (through academemes-html's `Columns`).

use academemes_html::rows::{CellReader, NamedRows};
use spin_sdk::sqlite::{self, Connection, Value};

/// One query's result.
pub type Table = NamedRows<Value>;

/// How Spin's SQLite values read as the site's INTEGER and TEXT columns.
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

pub fn new(columns: Vec<String>, rows: Vec<Vec<Value>>) -> Table {
    NamedRows::new(columns, rows, CELLS)
}

/// Runs `sql` with `params` bound by position.
pub fn query(db: &Connection, sql: &str, params: &[Value]) -> Result<Table, sqlite::Error> {
    let result = db.execute(sql, params)?;
    let rows = result.rows.into_iter().map(|row| row.values).collect();
    Ok(new(result.columns, rows))
}
