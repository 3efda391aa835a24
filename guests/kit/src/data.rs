//! Typed access to the `data` tables a component receives.
//!
//! The host runs a route's declared reads and passes one table per read,
//! named after it, with the SQL's column names. Components look columns up by
//! name so that reordering a SELECT in the manifest does not break them.

use crate::{Table, Value};

/// All the tables of one call.
#[derive(Clone, Copy)]
pub struct Data<'a> {
    tables: &'a [Table],
}

impl<'a> Data<'a> {
    pub fn new(tables: &'a [Table]) -> Self {
        Data { tables }
    }

    /// The table named `name`, if the route declared that read.
    pub fn table(&self, name: &str) -> Option<TableView<'a>> {
        self.tables
            .iter()
            .find(|t| t.name == name)
            .map(|table| TableView { table })
    }

    /// The rows of table `name`; none if there is no such table, which for
    /// a component is the same as a query that found nothing.
    pub fn rows(&self, name: &str) -> impl Iterator<Item = Row<'a>> + 'a {
        self.table(name).into_iter().flat_map(|t| t.rows())
    }

    /// The first row of table `name`, for single-row reads.
    pub fn first(&self, name: &str) -> Option<Row<'a>> {
        self.rows(name).next()
    }
}

/// One table, with column lookup by name.
#[derive(Clone, Copy)]
pub struct TableView<'a> {
    table: &'a Table,
}

impl<'a> TableView<'a> {
    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.table.columns.iter().position(|c| c == name)
    }

    pub fn len(&self) -> usize {
        self.table.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.rows.is_empty()
    }

    pub fn rows(&self) -> impl Iterator<Item = Row<'a>> + 'a {
        let columns = &self.table.columns[..];
        self.table
            .rows
            .iter()
            .map(move |values| Row { columns, values })
    }
}

/// One row; getters take the column name and return `None` for a missing
/// column, SQL NULL, or a value of another type.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The raw value of column `name`.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        let index = self.columns.iter().position(|c| c == name)?;
        self.values.get(index)
    }

    /// An INTEGER column.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// A TEXT column.
    pub fn text(&self, name: &str) -> Option<&'a str> {
        match self.value(name)? {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A TEXT column, with NULL (or anything else) read as "".
    pub fn text_or_empty(&self, name: &str) -> &'a str {
        self.text(name).unwrap_or("")
    }
}

impl<'a> academemes_html::meme::Columns<'a> for Row<'a> {
    fn int(&self, name: &str) -> Option<i64> {
        Row::int(self, name)
    }

    fn text(&self, name: &str) -> Option<&'a str> {
        Row::text(self, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{table, text};

    fn sample() -> Vec<Table> {
        vec![
            table(
                "meme_ids",
                &["id"],
                vec![vec![Value::Integer(3)], vec![Value::Integer(7)]],
            ),
            table(
                "meme",
                &["id", "top_text", "tags", "votes"],
                vec![vec![
                    Value::Integer(7),
                    text("hi"),
                    Value::Null,
                    Value::Real(1.5),
                ]],
            ),
        ]
    }

    #[test]
    fn finds_tables_by_name() {
        let tables = sample();
        let data = Data::new(&tables);
        assert_eq!(data.table("meme_ids").map(|t| t.len()), Some(2));
        assert!(data.table("nope").is_none());
        assert_eq!(data.rows("nope").count(), 0);
        let ids: Vec<i64> = data.rows("meme_ids").filter_map(|r| r.int("id")).collect();
        assert_eq!(ids, [3, 7]);
    }

    #[test]
    fn finds_columns_by_name() {
        let tables = sample();
        let data = Data::new(&tables);
        let meme = data.table("meme").unwrap();
        assert_eq!(meme.column("top_text"), Some(1));
        assert_eq!(meme.column("missing"), None);
    }

    #[test]
    fn typed_getters_distinguish_null_and_types() {
        let tables = sample();
        let row = Data::new(&tables).first("meme").unwrap();
        assert_eq!(row.int("id"), Some(7));
        assert_eq!(row.text("top_text"), Some("hi"));
        assert_eq!(row.text("tags"), None);
        assert_eq!(row.text_or_empty("tags"), "");
        assert_eq!(row.int("top_text"), None, "text is not an integer");
        assert_eq!(row.int("votes"), None, "real is not an integer");
        assert_eq!(row.int("missing"), None);
        assert_eq!(row.value("tags"), Some(&Value::Null));
    }

    #[test]
    fn short_rows_read_as_missing() {
        let tables = vec![table("t", &["a", "b"], vec![vec![Value::Integer(1)]])];
        let row = Data::new(&tables).first("t").unwrap();
        assert_eq!(row.int("a"), Some(1));
        assert_eq!(row.value("b"), None);
    }

    #[test]
    fn empty_table_has_no_first_row() {
        let tables = vec![table("meme", &["id"], vec![])];
        let data = Data::new(&tables);
        assert!(data.table("meme").unwrap().is_empty());
        assert!(data.first("meme").is_none());
    }
}
