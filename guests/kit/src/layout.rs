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
