//! Query results from Spin's SQLite interface, read by column name the way
//! Nebula's `data` tables are (through academemes-html's `Columns`).

use academemes_html::meme::Columns;
use spin_sdk::sqlite::{self, Connection, Value};

/// One query's result.
pub struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(columns: Vec<String>, rows: Vec<Vec<Value>>) -> Self {
        Table { columns, rows }
    }

    /// Runs `sql` with `params` bound by position.
    pub fn query(db: &Connection, sql: &str, params: &[Value]) -> Result<Self, sqlite::Error> {
        let result = db.execute(sql, params)?;
        let rows = result.rows.into_iter().map(|row| row.values).collect();
        Ok(Table::new(result.columns, rows))
    }

    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }
}

/// One row.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    fn value(&self, name: &str) -> Option<&'a Value> {
        let index = self.columns.iter().position(|c| c == name)?;
        self.values.get(index)
    }
}

impl<'a> Columns<'a> for Row<'a> {
    fn int(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    fn text(&self, name: &str) -> Option<&'a str> {
        match self.value(name)? {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}
