//! A meme as the reads `newest`, `top`, `memes` and `meme` return it.
//!
//! The type and its helpers live in `academemes-html` (no bindings), so the
//! Spin and native versions of the site share them; a [`Row`](crate::data::Row) of the `data`
//! tables reads into a [`Meme`] through [`Columns`].

pub use academemes_html::meme::{split_tags, tag_url, Columns, Meme};

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
