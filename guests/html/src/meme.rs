//! A meme as the reads `newest`, `top`, `memes` and `meme` return it.

use crate::html::push_url_encoded;

/// A row of query results whose columns are looked up by name: Nebula's
/// `data` tables (academemes-kit), Spin's SQLite rows and rusqlite's rows
/// all read into [`Meme`] through it. Getters return `None` for a missing
/// column, SQL NULL or a value of another type.
pub trait Columns<'a> {
    /// An INTEGER column.
    fn int(&self, name: &str) -> Option<i64>;
    /// A TEXT column.
    fn text(&self, name: &str) -> Option<&'a str>;
    /// A TEXT column, with NULL (or anything else) read as "".
    fn text_or_empty(&self, name: &str) -> &'a str {
        self.text(name).unwrap_or("")
    }
}

/// One meme, borrowing its text from the data tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Meme<'a> {
    pub id: i64,
    pub template: &'a str,
    /// Only the `meme` read joins the template's name.
    pub template_name: Option<&'a str>,
    pub top_text: &'a str,
    pub bottom_text: &'a str,
    pub votes: i64,
    pub created_ms: i64,
    pub tags: Vec<&'a str>,
}

impl<'a> Meme<'a> {
    /// Reads a meme from a row; `None` if the row has no integer `id`.
    pub fn from_row<R: Columns<'a>>(row: &R) -> Option<Self> {
        Some(Meme {
            id: row.int("id")?,
            template: row.text_or_empty("template"),
            template_name: row.text("template_name"),
            top_text: row.text_or_empty("top_text"),
            bottom_text: row.text_or_empty("bottom_text"),
            votes: row.int("votes").unwrap_or(0),
            created_ms: row.int("created_ms").unwrap_or(0),
            tags: split_tags(row.text("tags")),
        })
    }

    /// The meme's page.
    pub fn url(&self) -> String {
        format!("/memes/{}", self.id)
    }

    /// The meme's rendered image.
    pub fn image_url(&self) -> String {
        format!("/memes/{}.svg", self.id)
    }

    /// The caption as one line of plain (unescaped) text: "top / bottom".
    pub fn caption(&self) -> String {
        let top = self.top_text.trim();
        let bottom = self.bottom_text.trim();
        match (top.is_empty(), bottom.is_empty()) {
            (false, false) => format!("{top} / {bottom}"),
            (false, true) => top.to_string(),
            (true, false) => bottom.to_string(),
            (true, true) => format!("Meme #{}", self.id),
        }
    }
}

/// Splits the reads' comma-joined `tags` column; NULL means no tags.
pub fn split_tags(tags: Option<&str>) -> Vec<&str> {
    tags.map(|s| s.split(',').filter(|t| !t.is_empty()).collect())
        .unwrap_or_default()
}

/// The list of memes with `tag` (URL-encoded; still needs HTML escaping
/// only if it is joined to more pairs with `&`).
pub fn tag_url(tag: &str) -> String {
    let mut out = String::with_capacity(11 + tag.len());
    push_tag_url(&mut out, tag);
    out
}

/// Appends [`tag_url`] to `out`.
pub fn push_tag_url(out: &mut String, tag: &str) {
    out.push_str("/memes?tag=");
    push_url_encoded(out, tag);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as a list of (column, value) pairs.
    struct Pairs<'a>(Vec<(&'a str, Option<i64>, Option<&'a str>)>);

    impl<'a> Columns<'a> for Pairs<'a> {
        fn int(&self, name: &str) -> Option<i64> {
            self.0.iter().find(|c| c.0 == name)?.1
        }
        fn text(&self, name: &str) -> Option<&'a str> {
            self.0.iter().find(|c| c.0 == name)?.2
        }
    }

    #[test]
    fn reads_a_meme_row() {
        let full = Pairs(vec![
            ("id", Some(4), None),
            ("template", None, Some("drake")),
            ("top_text", None, Some("Top")),
            ("bottom_text", None, Some("Bottom")),
            ("votes", Some(2), None),
            ("created_ms", Some(1_700_000_000_000), None),
            ("tags", None, Some("phd,reviewer-2")),
        ]);
        let meme = Meme::from_row(&full).unwrap();
        assert_eq!(meme.id, 4);
        assert_eq!(meme.tags, ["phd", "reviewer-2"]);
        assert_eq!(meme.caption(), "Top / Bottom");
        assert_eq!(meme.url(), "/memes/4");
        assert_eq!(meme.image_url(), "/memes/4.svg");
        assert_eq!(meme.template_name, None);

        let sparse = Pairs(vec![
            ("id", Some(5), None),
            ("top_text", None, Some("Only top")),
        ]);
        let meme = Meme::from_row(&sparse).unwrap();
        assert!(meme.tags.is_empty());
        assert_eq!(meme.caption(), "Only top");
        assert_eq!(meme.votes, 0);

        assert!(Meme::from_row(&Pairs(vec![("id", None, Some("4"))])).is_none());
    }

    #[test]
    fn empty_caption_names_the_meme() {
        let meme = Meme::from_row(&Pairs(vec![("id", Some(7), None)])).unwrap();
        assert_eq!(meme.caption(), "Meme #7");
    }

    #[test]
    fn tag_urls_are_encoded() {
        assert_eq!(tag_url("peer-review"), "/memes?tag=peer-review");
        assert_eq!(tag_url("a&b c"), "/memes?tag=a%26b%20c");
    }
}
