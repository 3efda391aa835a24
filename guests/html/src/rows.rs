//! Query results read by column name over any SQL driver's value type, for
//! the hosts that run the site's SQL themselves (the Spin SDK example with
//! Spin's SQLite, the native server with rusqlite): each says only how one
//! of its values reads as INTEGER or TEXT.

use crate::meme::Columns;

/// How a driver's value reads as INTEGER or TEXT (`None` for NULL or a
/// value of another type).
pub struct CellReader<V> {
    pub int: fn(&V) -> Option<i64>,
    pub text: fn(&V) -> Option<&str>,
}

impl<V> Clone for CellReader<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for CellReader<V> {}

/// One query's result.
pub struct NamedRows<V> {
    columns: Vec<String>,
    rows: Vec<Vec<V>>,
    read: CellReader<V>,
}

impl<V> NamedRows<V> {
    pub fn new(columns: Vec<String>, rows: Vec<Vec<V>>, read: CellReader<V>) -> Self {
        NamedRows {
            columns,
            rows,
            read,
        }
    }

    pub fn rows(&self) -> impl Iterator<Item = NamedRow<'_, V>> {
        self.rows.iter().map(|values| NamedRow {
            columns: &self.columns,
            values,
            read: self.read,
        })
    }
}

/// One row.
pub struct NamedRow<'a, V> {
    columns: &'a [String],
    values: &'a [V],
    read: CellReader<V>,
}

impl<V> Clone for NamedRow<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for NamedRow<'_, V> {}

impl<'a, V> NamedRow<'a, V> {
    fn value(&self, name: &str) -> Option<&'a V> {
        let index = self.columns.iter().position(|c| c == name)?;
        self.values.get(index)
    }
}

impl<'a, V> Columns<'a> for NamedRow<'a, V> {
    fn int(&self, name: &str) -> Option<i64> {
        self.value(name).and_then(self.read.int)
    }

    fn text(&self, name: &str) -> Option<&'a str> {
        self.value(name).and_then(self.read.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum V {
        I(i64),
        T(String),
        Null,
    }

    const READ: CellReader<V> = CellReader {
        int: |v| match v {
            V::I(i) => Some(*i),
            _ => None,
        },
        text: |v| match v {
            V::T(s) => Some(s),
            _ => None,
        },
    };

    #[test]
    fn reads_columns_by_name_and_none_for_null_missing_or_other_types() {
        let t = NamedRows::new(
            vec!["id".into(), "top_text".into(), "tags".into()],
            vec![vec![V::I(7), V::T("hi".into()), V::Null]],
            READ,
        );
        let row = t.rows().next().unwrap();
        assert_eq!(row.int("id"), Some(7));
        assert_eq!(row.text("top_text"), Some("hi"));
        assert_eq!(row.text("tags"), None);
        assert_eq!(row.text_or_empty("tags"), "");
        assert_eq!(row.int("top_text"), None);
        assert_eq!(row.int("votes"), None);
    }
}
