//! The page around every HTML response, and error pages. The markup is in
//! `academemes-html` (shared with the Spin and native versions of the site).

use crate::http::html;
use crate::Response;

pub use academemes_html::layout::{error_heading, error_html, page, SITE_NAME};

/// An HTML error page: `status` with a readable `message` (plain text).
pub fn error_page(status: u16, current: &str, message: &str) -> Response {
    html(status, error_html(status, current, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::response_header;

    #[test]
    fn page_has_the_frame_and_escapes_the_title() {
        let html = page("<Reviewer 2>", "/memes", "<p>body</p>");
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<meta name=\"viewport\""));
        assert!(html.contains("<link rel=\"stylesheet\" href=\"/static/style.css\">"));
        assert!(html.contains("href=\"/static/favicon.svg\" type=\"image/svg+xml\""));
        assert!(html.contains("<title>&lt;Reviewer 2&gt; — Academemes</title>"));
        assert!(html.contains("<a href=\"/memes\" aria-current=\"page\">All memes</a>"));
        assert!(html.contains("<a href=\"/new\">Submit</a>"));
        assert!(html.contains("<p>body</p>"));
        assert!(html.contains("Served by Nebula — pure functions"));
    }

    #[test]
    fn error_pages_escape_the_message() {
        let resp = error_page(404, "/x", "No meme <b>#x</b>.");
        assert_eq!(resp.status, 404);
        assert_eq!(
            response_header(&resp, "content-type"),
            Some("text/html; charset=utf-8")
        );
        let body = String::from_utf8(resp.body).unwrap();
        assert!(body.contains("No meme &lt;b&gt;#x&lt;/b&gt;."));
        assert!(body.contains("<h1>Not found</h1>"));
    }
}
