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
///
/// Works on bytes and copies the runs between special characters whole:
/// every character it changes or drops is ASCII or U+FFFE/U+FFFF (lead byte
/// 0xEF), so a run always starts and ends on a character boundary. Pushing
/// character by character cost a UTF-8 encode and a capacity check for each
/// one, which in a guest was ~6% of rendering the home page.
pub fn push_escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (replacement, len) = match bytes[i] {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'"' => ("&quot;", 1),
            b'\'' => ("&#39;", 1),
            b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            0..=0x1f => ("", 1),
            0xEF if bytes[i + 1..].starts_with(&[0xBF, 0xBE])
                || bytes[i + 1..].starts_with(&[0xBF, 0xBF]) =>
            {
                ("", 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[run..i]);
        out.push_str(replacement);
        i += len;
        run = i;
    }
    out.push_str(&s[run..]);
}

/// Percent-encodes `s` for a query-string value or a path segment.
///
/// Everything but RFC 3986's unreserved characters is encoded, spaces as
/// `%20` rather than `+`, so the result means the same to any decoder.
/// The result still needs [`escape`] inside HTML only for the `&` that joins
/// query pairs, which callers write as `&amp;` themselves.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_url_encoded(&mut out, s);
    out
}

/// Appends [`url_encode`]'s result to `out`.
pub fn push_url_encoded(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
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

    fn is_xml_forbidden(c: char) -> bool {
        (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}'
    }

    /// The character-by-character definition the byte-wise loop must match.
    fn escape_by_chars(s: &str) -> String {
        let mut out = String::new();
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
        out
    }

    #[test]
    fn matches_the_character_by_character_definition() {
        // U+FFFD (EF BF BD) shares its first two bytes with the dropped
        // U+FFFE/U+FFFF (EF BF BE/BF); U+FEFF and U+EFFF share the lead byte.
        let pieces = [
            "",
            "a",
            "&",
            "<>",
            "\"'",
            "\u{0}",
            "\u{1f}",
            "\t\n\r",
            "\u{7f}",
            "é",
            "✓",
            "🎓",
            "\u{FFFD}",
            "\u{FFFE}",
            "\u{FFFF}",
            "\u{FEFF}",
            "\u{EFFF}",
            "\u{F000}",
            "\u{10FFFF}",
            "plain words",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let s = format!("{a}{b}{c}");
                    assert_eq!(escape(&s), escape_by_chars(&s), "for {s:?}");
                }
            }
        }
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
