//! The tag cloud: every tag, sized by how many memes carry it (`tags` read).

use kit::data::Data;
use kit::html::{escape, push_escaped};
use kit::meme::tag_url;

const MIN_REM: f32 = 0.9;
const MAX_REM: f32 = 2.0;

/// The cloud as a list of links, or `None` if there are no tags yet.
/// `current` is marked as the page being shown.
pub fn tag_cloud(data: &Data, current: Option<&str>) -> Option<String> {
    let tags: Vec<(&str, i64)> = data
        .rows("tags")
        .filter_map(|r| Some((r.text("tag")?, r.int("memes").unwrap_or(0))))
        .collect();
    if tags.is_empty() {
        return None;
    }
    let min = tags.iter().map(|t| t.1).min().unwrap_or(0);
    let max = tags.iter().map(|t| t.1).max().unwrap_or(0);
    let mut out = String::from("<ul class=\"tag-cloud\">");
    for (tag, count) in tags {
        let weight = if max > min {
            (count - min) as f32 / (max - min) as f32
        } else {
            0.5
        };
        let rem = MIN_REM + weight * (MAX_REM - MIN_REM);
        let noun = if count == 1 { "meme" } else { "memes" };
        out.push_str(&format!(
            "<li><a href=\"{}\" style=\"font-size:{rem:.2}rem\" title=\"{count} {noun}\"",
            escape(&tag_url(tag))
        ));
        if current == Some(tag) {
            out.push_str(" aria-current=\"page\"");
        }
        out.push_str(">#");
        push_escaped(&mut out, tag);
        out.push_str("</a></li>");
    }
    out.push_str("</ul>");
    Some(out)
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
