//! The submit form, empty or filled in again with what the user typed.

use kit::html::{escape, url_encode};
use kit::layout;

use crate::validate::{MAX_TAGS, MAX_TAG_CHARS, MAX_TEXT_CHARS};

/// The fields as the user typed them.
#[derive(Debug, Default)]
pub struct Input<'a> {
    pub template: &'a str,
    pub top_text: &'a str,
    pub bottom_text: &'a str,
    pub tags: &'a str,
}

/// Room for five tags of 24 characters and their separators.
const TAGS_MAXLENGTH: usize = MAX_TAGS * (MAX_TAG_CHARS + 2);

/// The whole page: `templates` as (id, name), the values to fill in, and the
/// problems with them (plain text).
pub fn form_page(templates: &[(&str, &str)], input: &Input, errors: &[String]) -> String {
    let mut main = String::with_capacity(4096);
    main.push_str("<div class=\"page-head\">\n<h1>Make a meme</h1>\n<p class=\"lede\">Pick a template, write the two lines, tag it, publish.</p>\n</div>\n");
    if !errors.is_empty() {
        main.push_str("<div class=\"errors\" role=\"alert\">\n<h2>Please fix this and try again:</h2>\n<ul>\n");
        for error in errors {
            main.push_str(&format!("<li>{}</li>\n", escape(error)));
        }
        main.push_str("</ul>\n</div>\n");
    }
    if templates.is_empty() {
        main.push_str(
            "<div class=\"empty\"><p>There are no templates to choose from yet.</p></div>\n",
        );
        return layout::page("Make a meme", "/new", &main);
    }
    main.push_str("<form class=\"submit-form\" method=\"post\" action=\"/memes\">\n");
    main.push_str(&template_choice(templates, input.template));
    main.push_str(&text_field(
        "top_text",
        "Top text",
        input.top_text,
        MAX_TEXT_CHARS,
        true,
        "e.g. Me, starting a PhD",
    ));
    main.push_str(&text_field(
        "bottom_text",
        "Bottom text",
        input.bottom_text,
        MAX_TEXT_CHARS,
        true,
        "e.g. Me, five years later",
    ));
    main.push_str(&text_field(
        "tags",
        "Tags",
        input.tags,
        TAGS_MAXLENGTH,
        false,
        "e.g. phd, peer-review",
    ));
    main.push_str(&format!(
        "<p class=\"hint\" id=\"tags-hint\">Comma separated, at most {MAX_TAGS}; each a-z, 0-9 and '-', up to {MAX_TAG_CHARS} characters.</p>\n"
    ));
    main.push_str(
        "<p class=\"actions\"><button class=\"button\" type=\"submit\">Publish meme</button></p>\n",
    );
    main.push_str("</form>\n");
    layout::page("Make a meme", "/new", &main)
}

/// The templates as radio cards with thumbnails; works without JavaScript.
/// The one the user chose stays chosen, else the first.
fn template_choice(templates: &[(&str, &str)], chosen: &str) -> String {
    let chosen = chosen.trim();
    let chosen = if templates.iter().any(|(id, _)| *id == chosen) {
        chosen
    } else {
        templates[0].0
    };
    let mut out = String::from(
        "<fieldset class=\"templates\">\n<legend>Template</legend>\n<div class=\"template-grid\">\n",
    );
    for (id, name) in templates {
        let checked = if *id == chosen { " checked" } else { "" };
        out.push_str(&format!(
            "<label class=\"template-option\"><input type=\"radio\" name=\"template\" value=\"{}\" required{checked}><img src=\"/static/templates/{}.svg\" alt=\"\" width=\"160\" height=\"160\" loading=\"lazy\"><span>{}</span></label>\n",
            escape(id),
            escape(&url_encode(id)),
            escape(name)
        ));
    }
    out.push_str("</div>\n</fieldset>\n");
    out
}

fn text_field(
    name: &str,
    label: &str,
    value: &str,
    maxlength: usize,
    required: bool,
    placeholder: &str,
) -> String {
    let required = if required { " required" } else { "" };
    let describedby = if name == "tags" {
        " aria-describedby=\"tags-hint\""
    } else {
        ""
    };
    format!(
        "<div class=\"field\"><label for=\"{name}\">{label}</label><input type=\"text\" id=\"{name}\" name=\"{name}\" maxlength=\"{maxlength}\" value=\"{}\" placeholder=\"{placeholder}\" autocomplete=\"off\"{required}{describedby}></div>\n",
        escape(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATES: &[(&str, &str)] = &[("drake", "Drake"), ("x", "<X>")];

    #[test]
    fn empty_form_checks_the_first_template() {
        let html = form_page(TEMPLATES, &Input::default(), &[]);
        assert!(html.contains("value=\"drake\" required checked>"));
        assert!(html.contains("<span>&lt;X&gt;</span>"));
        assert!(html.contains("name=\"top_text\" maxlength=\"80\" value=\"\""));
        assert!(!html.contains("class=\"errors\""));
    }

    #[test]
    fn refilled_form_keeps_choice_and_values() {
        let input = Input {
            template: "x",
            top_text: "a \"b\"",
            bottom_text: "<c>",
            tags: "d&e",
        };
        let html = form_page(TEMPLATES, &input, &["Bad <thing>.".to_string()]);
        assert!(html.contains("value=\"x\" required checked>"));
        assert!(html.contains("value=\"a &quot;b&quot;\""));
        assert!(html.contains("value=\"&lt;c&gt;\""));
        assert!(html.contains("value=\"d&amp;e\""));
        assert!(html.contains("<li>Bad &lt;thing&gt;.</li>"));
    }
}
