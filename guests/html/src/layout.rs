//! The page around every HTML response, and error pages.

use crate::html::escape;

pub const SITE_NAME: &str = "Academemes";

// The same list is in guests/stats-py/layout.py and guests/search-js/layout.js;
// host/tests/it/languages.rs (the_page_frame_is_the_same_…) compares the pages.
const NAV: [(&str, &str); 6] = [
    ("/", "Home"),
    ("/memes", "All memes"),
    ("/random", "Random"),
    ("/search", "Search"),
    ("/stats", "Stats"),
    ("/new", "Submit"),
];

/// A mortarboard, inline so the header needs no extra request.
const LOGO: &str = r##"<svg class="logo" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true" focusable="false"><path d="M16 5 1 12l15 7 15-7z" fill="currentColor"/><path d="M7 15.5v6c0 2.5 4 4.5 9 4.5s9-2 9-4.5v-6l-9 4.2z" fill="currentColor" opacity=".75"/><path d="M28 13.5v8" stroke="currentColor" stroke-width="1.6"/><circle cx="28" cy="22.5" r="1.6" fill="currentColor"/></svg>"##;

/// A whole HTML document: `title` (plain text, escaped here) and `main`
/// (HTML the caller has escaped). `current` is the request path, used to mark
/// the current navigation link.
pub fn page(title: &str, current: &str, main: &str) -> String {
    let mut out = String::with_capacity(main.len() + 2048);
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>");
    if title != SITE_NAME {
        out.push_str(&escape(title));
        out.push_str(" — ");
    }
    out.push_str(SITE_NAME);
    out.push_str("</title>\n");
    out.push_str("<link rel=\"stylesheet\" href=\"/static/style.css\">\n");
    out.push_str("<link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">\n");
    out.push_str("</head>\n<body>\n");
    out.push_str("<a class=\"skip-link\" href=\"#main\">Skip to content</a>\n");
    out.push_str("<header class=\"site-header\">\n<div class=\"wrap\">\n");
    out.push_str("<a class=\"brand\" href=\"/\">");
    out.push_str(LOGO);
    out.push_str("<span>Academemes</span></a>\n");
    out.push_str("<nav aria-label=\"Main\"><ul>");
    for (href, label) in NAV {
        out.push_str("<li><a href=\"");
        out.push_str(href);
        out.push('"');
        if href == current {
            out.push_str(" aria-current=\"page\"");
        }
        out.push('>');
        out.push_str(label);
        out.push_str("</a></li>");
    }
    out.push_str("</ul></nav>\n</div>\n</header>\n");
    out.push_str("<main id=\"main\" class=\"wrap\">\n");
    out.push_str(main);
    out.push_str("\n</main>\n");
    out.push_str("<footer class=\"site-footer\">\n<div class=\"wrap\">");
    out.push_str("<p>Served by Nebula — pure functions</p>");
    out.push_str("</div>\n</footer>\n</body>\n</html>\n");
    out
}

/// The heading an error page shows for `status`.
pub fn error_heading(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        404 => "Not found",
        405 => "Method not allowed",
        _ => "Something went wrong",
    }
}

/// A whole HTML error page for `status` with a readable `message` (plain
/// text, escaped here); the caller sends it with that status.
pub fn error_html(status: u16, current: &str, message: &str) -> String {
    let heading = error_heading(status);
    let main = format!(
        "<section class=\"error-page\">\n<p class=\"error-code\">{status}</p>\n<h1>{heading}</h1>\n<p>{}</p>\n<p><a class=\"button\" href=\"/\">Back to the front page</a></p>\n</section>",
        escape(message)
    );
    page(heading, current, &main)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let body = error_html(404, "/x", "No meme <b>#x</b>.");
        assert!(body.contains("No meme &lt;b&gt;#x&lt;/b&gt;."));
        assert!(body.contains("<h1>Not found</h1>"));
        assert!(body.contains("<title>Not found — Academemes</title>"));
        assert!(error_html(500, "/", "x").contains("<h1>Something went wrong</h1>"));
    }
}
