//! The rules for a new meme.

use crate::form::Input;

pub const MAX_TEXT_CHARS: usize = 80;
pub const MAX_TAGS: usize = 5;
pub const MAX_TAG_CHARS: usize = 24;

/// A submission that passed the rules: texts trimmed, tags normalised.
#[derive(Debug, PartialEq)]
pub struct NewMeme {
    pub template: String,
    pub top_text: String,
    pub bottom_text: String,
    pub tags: Vec<String>,
}

/// Checks `input` against the rules; all the problems at once if it fails,
/// so the user can fix them in one go.
pub fn validate(input: &Input, templates: &[&str]) -> Result<NewMeme, Vec<String>> {
    let mut errors = Vec::new();
    let template = input.template.trim();
    if template.is_empty() {
        errors.push("Choose a template.".to_string());
    } else if !templates.contains(&template) {
        errors.push(format!("Unknown template '{template}'."));
    }
    let top_text = check_text("Top text", input.top_text, &mut errors);
    let bottom_text = check_text("Bottom text", input.bottom_text, &mut errors);
    let tags = check_tags(input.tags, &mut errors);
    if errors.is_empty() {
        Ok(NewMeme {
            template: template.to_string(),
            top_text,
            bottom_text,
            tags,
        })
    } else {
        Err(errors)
    }
}

/// A caption line: required, at most 80 characters (not bytes) once trimmed.
fn check_text(label: &str, text: &str, errors: &mut Vec<String>) -> String {
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 {
        errors.push(format!("{label} is required."));
    } else if chars > MAX_TEXT_CHARS {
        errors.push(format!(
            "{label} is too long ({chars} characters, at most {MAX_TEXT_CHARS})."
        ));
    }
    text.to_string()
}

/// Comma-separated tags: trimmed, lower-cased, empty ones skipped,
/// duplicates dropped; each `[a-z0-9-]{1,24}`, at most five.
fn check_tags(tags: &str, errors: &mut Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in tags.split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let tag = raw.to_lowercase();
        if !is_valid_tag(&tag) {
            errors.push(format!(
                "Tag '{raw}' may only contain a-z, 0-9 and '-' (at most {MAX_TAG_CHARS} characters)."
            ));
        } else if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        errors.push(format!(
            "At most {MAX_TAGS} tags, please ({} given).",
            out.len()
        ));
    }
    out
}

fn is_valid_tag(tag: &str) -> bool {
    (1..=MAX_TAG_CHARS).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATES: &[&str] = &["drake", "galaxy-brain"];

    fn input<'a>(template: &'a str, top: &'a str, bottom: &'a str, tags: &'a str) -> Input<'a> {
        Input {
            template,
            top_text: top,
            bottom_text: bottom,
            tags,
        }
    }

    #[test]
    fn accepts_and_normalises() {
        let meme = validate(
            &input(" drake ", "  Top  ", "Bottom", " PhD, ,peer-review,phd,"),
            TEMPLATES,
        )
        .unwrap();
        assert_eq!(
            meme,
            NewMeme {
                template: "drake".into(),
                top_text: "Top".into(),
                bottom_text: "Bottom".into(),
                tags: vec!["phd".into(), "peer-review".into()],
            }
        );
        assert!(validate(&input("drake", "t", "b", ""), TEMPLATES)
            .unwrap()
            .tags
            .is_empty());
    }

    #[test]
    fn reports_every_problem() {
        let errors = validate(&input("nope", " ", "", "a b"), TEMPLATES).unwrap_err();
        assert_eq!(
            errors,
            [
                "Unknown template 'nope'.",
                "Top text is required.",
                "Bottom text is required.",
                "Tag 'a b' may only contain a-z, 0-9 and '-' (at most 24 characters).",
            ]
        );
        assert_eq!(
            validate(&input("", "t", "b", ""), TEMPLATES).unwrap_err(),
            ["Choose a template."]
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        let eighty = "é".repeat(80);
        assert!(validate(&input("drake", &eighty, "b", ""), TEMPLATES).is_ok());
        let long = "🎓".repeat(81);
        assert_eq!(
            validate(&input("drake", "t", &long, ""), TEMPLATES).unwrap_err(),
            ["Bottom text is too long (81 characters, at most 80)."]
        );
    }

    #[test]
    fn tag_rules() {
        let ok = "a".repeat(24);
        assert!(validate(&input("drake", "t", "b", &ok), TEMPLATES).is_ok());
        let long = "a".repeat(25);
        assert_eq!(
            validate(&input("drake", "t", "b", &long), TEMPLATES)
                .unwrap_err()
                .len(),
            1
        );
        // Lower-casing a non-ASCII letter does not make it valid.
        assert!(validate(&input("drake", "t", "b", "café"), TEMPLATES).is_err());
        assert_eq!(
            validate(&input("drake", "t", "b", "a,b,c,d,e,f"), TEMPLATES).unwrap_err(),
            ["At most 5 tags, please (6 given)."]
        );
        // Duplicates count once.
        assert!(validate(&input("drake", "t", "b", "a,b,c,d,e,A,e"), TEMPLATES).is_ok());
    }
}
