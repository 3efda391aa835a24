//! The tag cloud: every tag, sized by how many memes carry it (`tags` read).
//! The markup is `kit::home::tag_cloud` (academemes-html).

use kit::data::Data;
use kit::home::TagCount;

/// The cloud as a list of links, or `None` if there are no tags yet.
/// `current` is marked as the page being shown.
pub fn tag_cloud(data: &Data, current: Option<&str>) -> Option<String> {
    kit::home::tag_cloud(&tag_counts(data), current)
}

/// The rows of the `tags` read.
pub fn tag_counts<'a>(data: &Data<'a>) -> Vec<TagCount<'a>> {
    data.rows("tags")
        .filter_map(|r| Some((r.text("tag")?, r.int("memes").unwrap_or(0))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{table, text};
    use kit::Value;

    #[test]
    fn sizes_by_count_and_escapes() {
        let tables = vec![table(
            "tags",
            &["tag", "memes"],
            vec![
                vec![text("<b>"), Value::Integer(1)],
                vec![text("phd"), Value::Integer(5)],
            ],
        )];
        let html = tag_cloud(&Data::new(&tables), Some("phd")).unwrap();
        assert!(html.contains(
            "<a href=\"/memes?tag=%3Cb%3E\" style=\"font-size:0.90rem\" title=\"1 meme\">#&lt;b&gt;</a>"
        ));
        assert!(html.contains(
            "<a href=\"/memes?tag=phd\" style=\"font-size:2.00rem\" title=\"5 memes\" aria-current=\"page\">#phd</a>"
        ));
    }

    #[test]
    fn no_tags_no_cloud() {
        let tables = vec![table("tags", &["tag", "memes"], vec![])];
        assert!(tag_cloud(&Data::new(&tables), None).is_none());
    }
}
