//! Escaping for HTML and XML text and attribute values, and URL encoding.

/// Escapes `s` for use in HTML or XML text and in quoted attribute values.
///
/// Besides the five special characters it drops the control characters that
/// XML 1.0 forbids (all of C0 except tab, newline and carriage return, and
/// U+FFFE/U+FFFF): our SVG output must stay well-formed whatever a caption
/// contains, and nobody means to show those characters in HTML either.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    push_escaped(&mut out, s);
    out
}

/// Appends `s` to `out`, escaped as [`escape`] does.
pub fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if is_xml_forbidden(c) => {}
            c => out.push(c),
        }
    }
}

fn is_xml_forbidden(c: char) -> bool {
    (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// Percent-encodes `s` for a query-string value or a path segment.
///
/// Everything but RFC 3986's unreserved characters is encoded, spaces as
/// `%20` rather than `+`, so the result means the same to any decoder.
/// The result still needs [`escape`] inside HTML only for the `&` that joins
/// query pairs, which callers write as `&amp;` themselves.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_specials() {
        assert_eq!(
            escape(r#"<a href="x">Tom & Jerry's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
    }

    #[test]
    fn leaves_plain_and_non_ascii_text_alone() {
        assert_eq!(escape("p < 0.05 ✓ 🎓 café"), "p &lt; 0.05 ✓ 🎓 café");
        assert_eq!(escape("plain text"), "plain text");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn drops_characters_xml_forbids() {
        assert_eq!(escape("a\u{0}b\u{8}c\u{1b}d\u{FFFF}e"), "abcde");
        assert_eq!(escape("tab\tnl\ncr\r"), "tab\tnl\ncr\r");
    }

    #[test]
    fn does_not_double_escape_on_its_own() {
        // Escaping is the caller's last step; an entity typed by a user stays text.
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn url_encodes_everything_but_unreserved() {
        assert_eq!(url_encode("peer-review_2.0~"), "peer-review_2.0~");
        assert_eq!(url_encode("a b&c=d/e?f#g"), "a%20b%26c%3Dd%2Fe%3Ff%23g");
        assert_eq!(url_encode("\"><script>"), "%22%3E%3Cscript%3E");
        assert_eq!(url_encode("é"), "%C3%A9");
    }
}
