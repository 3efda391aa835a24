//! The manifest's parameter syntax on PostgreSQL: `?N` and `:name` become `$N`.
//!
//! The manifest's SQL is written once for every store, with SQLite's
//! parameter markers (`?1` for a write's arguments, `:name` for a read's
//! bindings and `:session_id`). PostgreSQL numbers its parameters, so each
//! statement is rewritten once, at start: positional markers keep their
//! numbers, and each distinct name gets the next free number, in the order it
//! first appears. String literals, quoted identifiers, comments and `::`
//! casts are copied as they are.

/// A statement with PostgreSQL's markers.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub sql: String,
    /// How many positional parameters (`?N`) the statement has: `$1..=$N`.
    pub positional: usize,
    /// The named parameters, without the `:`, in the order of their numbers,
    /// which follow the positional ones.
    pub names: Vec<String>,
}

impl Translated {
    /// The PostgreSQL number (1-based) of the named parameter `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.positional + i + 1)
    }
}

/// Rewrites `sql`'s parameter markers for PostgreSQL.
pub fn translate(sql: &str) -> Translated {
    // First pass: find the markers, so that names can be numbered after the
    // highest positional parameter however they are interleaved.
    enum Piece<'a> {
        Text(&'a str),
        Positional(usize),
        Named(&'a str),
    }
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut next_bare = 0;
    let mut positional = 0;
    let skip_until = |from: usize, end: &[u8]| -> usize {
        sql[from..]
            .find(std::str::from_utf8(end).unwrap_or(""))
            .map_or(bytes.len(), |at| from + at + end.len())
    };
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => i = skip_quoted(bytes, i, b'\''),
            b'"' => i = skip_quoted(bytes, i, b'"'),
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_until(i, b"\n"),
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_until(i + 2, b"*/"),
            b':' if bytes.get(i + 1) == Some(&b':') => i += 2,
            b':' if bytes
                .get(i + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') =>
            {
                let end = ident_end(bytes, i + 1);
                pieces.push(Piece::Text(&sql[start..i]));
                pieces.push(Piece::Named(&sql[i + 1..end]));
                start = end;
                i = end;
            }
            b'?' => {
                let end = digits_end(bytes, i + 1);
                let n = if end > i + 1 {
                    sql[i + 1..end].parse().unwrap_or(0)
                } else {
                    next_bare + 1
                };
                next_bare = n;
                positional = positional.max(n);
                pieces.push(Piece::Text(&sql[start..i]));
                pieces.push(Piece::Positional(n));
                start = end;
                i = end;
            }
            _ => i += 1,
        }
    }
    pieces.push(Piece::Text(&sql[start..]));

    let mut names: Vec<String> = Vec::new();
    let mut out = String::with_capacity(sql.len() + 8);
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Positional(n) => out.push_str(&format!("${n}")),
            Piece::Named(name) => {
                let at = match names.iter().position(|n| n == name) {
                    Some(at) => at,
                    None => {
                        names.push(name.to_string());
                        names.len() - 1
                    }
                };
                out.push_str(&format!("${}", positional + at + 1));
            }
        }
    }
    Translated {
        sql: out,
        positional,
        names,
    }
}

/// Past a quoted run starting at `i` (`quote` doubled inside is itself).
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    i += 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

fn ident_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    i
}

fn digits_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_after_the_positional_parameters() {
        let t = translate("INSERT INTO v (a, b, who) VALUES (?1, ?2, :session_id)");
        assert_eq!(t.sql, "INSERT INTO v (a, b, who) VALUES ($1, $2, $3)");
        assert_eq!(t.index_of("session_id"), Some(3));

        let t = translate("SELECT :id, :tag, :id");
        assert_eq!(t.sql, "SELECT $1, $2, $1");
        assert_eq!(t.names, ["id", "tag"]);
    }

    #[test]
    fn literals_comments_and_casts_are_left_alone() {
        let t = translate(
            "SELECT ':no', \"a:b\", x::int, '?1' -- :nor ?2\n/* :nei ?3 */ FROM t WHERE y = :yes AND z = ?",
        );
        assert_eq!(
            t.sql,
            "SELECT ':no', \"a:b\", x::int, '?1' -- :nor ?2\n/* :nei ?3 */ FROM t WHERE y = $2 AND z = $1"
        );
        assert_eq!(t.positional, 1);
        assert_eq!(t.names, ["yes"]);
        assert_eq!(translate("SELECT 'it''s :x'").names, Vec::<String>::new());
    }
}
