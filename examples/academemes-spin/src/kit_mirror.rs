//! The HTML helpers the home page needs. This mirrors guests/kit (html.rs,
//! meme.rs, card.rs, layout.rs, data.rs) — same markup, same escaping — over
//! Spin's SQLite values instead of Nebula's `data` tables. The kit itself
//! cannot be a dependency: its bindings for Nebula's pure world would add an
//! import (`nebula:function/types`) that Spin does not provide. Keep this file
//! in step with the kit; the host's tests compare the two pages byte for byte.

use spin_sdk::sqlite::Value;

// ------------------------------------------------------------ data (kit/data.rs)

/// One table of query results, with column lookup by name.
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }
}

/// One row; getters return `None` for a missing column, NULL or another type.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        let index = self.columns.iter().position(|c| c == name)?;
        self.values.get(index)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn text(&self, name: &str) -> Option<&'a str> {
        match self.value(name)? {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn text_or_empty(&self, name: &str) -> &'a str {
        self.text(name).unwrap_or("")
    }
}

// ------------------------------------------------------------ html (kit/html.rs)

/// Escapes `s` for HTML text and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    push_escaped(&mut out, s);
    out
}

/// Appends `s` to `out`, escaped; drops the control characters XML forbids.
pub fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn url_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    out
}

// ------------------------------------------------------------ meme (kit/meme.rs)

pub struct Meme<'a> {
    pub id: i64,
    pub top_text: &'a str,
    pub bottom_text: &'a str,
    pub votes: i64,
    pub tags: Vec<&'a str>,
}

impl<'a> Meme<'a> {
    /// `None` if the row has no integer `id`.
    pub fn from_row(row: &Row<'a>) -> Option<Self> {
        Some(Meme {
            id: row.int("id")?,
            top_text: row.text_or_empty("top_text"),
            bottom_text: row.text_or_empty("bottom_text"),
            votes: row.int("votes").unwrap_or(0),
            tags: row
                .text("tags")
                .map(|s| s.split(',').filter(|t| !t.is_empty()).collect())
                .unwrap_or_default(),
        })
    }

    pub fn url(&self) -> String {
        format!("/memes/{}", self.id)
    }

    pub fn image_url(&self) -> String {
        format!("/memes/{}.svg", self.id)
    }

    /// "top / bottom", unescaped.
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

pub fn tag_url(tag: &str) -> String {
    format!("/memes?tag={}", url_encode(tag))
}

// ------------------------------------------------------------ cards (kit/card.rs)

pub fn card(meme: &Meme) -> String {
    let caption = escape(&meme.caption());
    let url = meme.url();
    let mut out = String::with_capacity(512);
    out.push_str("<article class=\"card\">\n");
    out.push_str(&format!(
        "<a class=\"card-image\" href=\"{url}\"><img src=\"{}\" alt=\"{caption}\" width=\"600\" height=\"600\" loading=\"lazy\"></a>\n",
        meme.image_url()
    ));
    out.push_str("<div class=\"card-body\">\n");
    out.push_str(&format!("<a class=\"card-title\" href=\"{url}\">{caption}</a>\n"));
    out.push_str("<div class=\"card-meta\">");
    out.push_str(&votes(meme.votes));
    out.push_str(&tag_list(&meme.tags));
    out.push_str("</div>\n</div>\n</article>\n");
    out
}

pub fn grid(memes: &[Meme]) -> String {
    let mut out = String::from("<div class=\"grid\">\n");
    for meme in memes {
        out.push_str(&card(meme));
    }
    out.push_str("</div>\n");
    out
}

pub fn votes(votes: i64) -> String {
    let noun = if votes == 1 { "vote" } else { "votes" };
    format!("<span class=\"votes\" title=\"{votes} {noun}\"><span aria-hidden=\"true\">▲</span> {votes}<span class=\"visually-hidden\"> {noun}</span></span>")
}

pub fn tag_list(tags: &[&str]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ul class=\"tags\">");
    for tag in tags {
        out.push_str("<li><a class=\"tag\" href=\"");
        push_escaped(&mut out, &tag_url(tag));
        out.push_str("\">#");
        push_escaped(&mut out, tag);
        out.push_str("</a></li>");
    }
    out.push_str("</ul>");
    out
}

// ------------------------------------------------------------ layout (kit/layout.rs)

pub const SITE_NAME: &str = "Academemes";

const NAV: [(&str, &str); 4] = [
    ("/", "Home"),
    ("/memes", "All memes"),
    ("/random", "Random"),
    ("/new", "Submit"),
];

const LOGO: &str = r##"<svg class="logo" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true" focusable="false"><path d="M16 5 1 12l15 7 15-7z" fill="currentColor"/><path d="M7 15.5v6c0 2.5 4 4.5 9 4.5s9-2 9-4.5v-6l-9 4.2z" fill="currentColor" opacity=".75"/><path d="M28 13.5v8" stroke="currentColor" stroke-width="1.6"/><circle cx="28" cy="22.5" r="1.6" fill="currentColor"/></svg>"##;

/// A whole HTML document around `main` (already escaped).
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
