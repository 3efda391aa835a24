//! `application/x-www-form-urlencoded` request bodies.

/// The fields of a submitted form, in order.
#[derive(Debug, Default)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Parses a urlencoded body. Invalid UTF-8 is replaced rather than
    /// refused: validation then reports what the user sees.
    pub fn parse(body: &[u8]) -> Self {
        let fields = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Form { fields }
    }

    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of field `name`, or "" if it was not sent.
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        let form = Form::parse(b"top_text=Reviewer+2+says%3A+%3Cno%3E&tags=a%2Cb&x=");
        assert_eq!(form.get("top_text"), Some("Reviewer 2 says: <no>"));
        assert_eq!(form.get("tags"), Some("a,b"));
        assert_eq!(form.get("x"), Some(""));
        assert_eq!(form.get("missing"), None);
        assert_eq!(form.get_or_empty("missing"), "");
    }

    #[test]
    fn first_value_wins_and_bad_utf8_is_replaced() {
        let form = Form::parse(b"a=1&a=2&b=%FF");
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.get("b"), Some("\u{FFFD}"));
    }
}
