//! A meme as the reads `newest`, `top`, `memes` and `meme` return it.

use crate::data::Row;
use crate::html::url_encode;

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
    pub fn from_row(row: &Row<'a>) -> Option<Self> {
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
    format!("/memes?tag={}", url_encode(tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Data;
    use crate::testing::{table, text};
    use crate::Value;

    #[test]
    fn reads_a_meme_row() {
        let tables = vec![table(
            "newest",
            &[
                "id",
                "template",
                "top_text",
                "bottom_text",
                "votes",
                "created_ms",
                "tags",
            ],
            vec![
                vec![
                    Value::Integer(4),
                    text("drake"),
                    text("Top"),
                    text("Bottom"),
                    Value::Integer(2),
                    Value::Integer(1_700_000_000_000),
                    text("phd,reviewer-2"),
                ],
                vec![
                    Value::Integer(5),
                    text("drake"),
                    text("Only top"),
                    text(""),
                    Value::Integer(0),
                    Value::Integer(0),
                    Value::Null,
                ],
            ],
        )];
        let data = Data::new(&tables);
        let memes: Vec<Meme> = data
            .rows("newest")
            .filter_map(|r| Meme::from_row(&r))
            .collect();
        assert_eq!(memes[0].id, 4);
        assert_eq!(memes[0].tags, ["phd", "reviewer-2"]);
        assert_eq!(memes[0].caption(), "Top / Bottom");
        assert_eq!(memes[0].url(), "/memes/4");
        assert_eq!(memes[0].image_url(), "/memes/4.svg");
        assert_eq!(memes[0].template_name, None);
        assert!(memes[1].tags.is_empty());
        assert_eq!(memes[1].caption(), "Only top");
    }

    #[test]
    fn tag_urls_are_encoded() {
        assert_eq!(tag_url("peer-review"), "/memes?tag=peer-review");
        assert_eq!(tag_url("a&b c"), "/memes?tag=a%26b%20c");
    }
}
