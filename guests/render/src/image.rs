//! `/memes/:id.svg`: the template's drawing with the captions (`meme_svg` read).

use kit::data::Data;
use kit::http::{response, ResponseExt, SVG};
use kit::svg::{meme_svg, not_found_svg};
use kit::Response;

pub fn image(data: &Data) -> Response {
    let Some(row) = data.first("meme_svg") else {
        return response(404, SVG, not_found_svg());
    };
    let svg = meme_svg(
        row.text_or_empty("svg"),
        row.text_or_empty("top_text"),
        row.text_or_empty("bottom_text"),
    );
    // A meme's image never changes once made; a minute of caching spares the
    // host a call per card on every list page.
    response(200, SVG, svg).with_header("cache-control", "public, max-age=60")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{body, response_header, table, text};
    use kit::Value;

    #[test]
    fn draws_the_meme() {
        let tables = vec![table(
            "meme_svg",
            &["id", "top_text", "bottom_text", "svg"],
            vec![vec![
                Value::Integer(1),
                text("<top> & co"),
                text("bottom"),
                text("<svg viewBox=\"0 0 600 600\"><rect width=\"10\" height=\"10\"/></svg>"),
            ]],
        )];
        let resp = image(&Data::new(&tables));
        assert_eq!(resp.status, 200);
        assert_eq!(
            response_header(&resp, "content-type"),
            Some("image/svg+xml; charset=utf-8")
        );
        assert_eq!(
            response_header(&resp, "cache-control"),
            Some("public, max-age=60")
        );
        let svg = body(&resp);
        assert!(svg.contains("&lt;TOP&gt; &amp; CO"));
        assert!(svg.contains("<svg viewBox=\"0 0 600 600\"><rect"));
    }

    #[test]
    fn missing_meme_is_a_404_image() {
        let tables = vec![table(
            "meme_svg",
            &["id", "top_text", "bottom_text", "svg"],
            vec![],
        )];
        let resp = image(&Data::new(&tables));
        assert_eq!(resp.status, 404);
        assert!(body(&resp).contains("<title>Meme not found</title>"));
    }
}
