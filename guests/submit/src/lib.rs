//! Making a meme: the form (`GET /new`) and its submission (`POST /memes`).
//!
//! A valid submission becomes two kinds of effects, `insert_meme` and one
//! `tag_new_meme` per tag, which the host applies in one transaction; the
//! redirect's `{{last_insert_rowid}}` is replaced by the host with the new
//! meme's id. An invalid one gets the form back with the messages and what
//! the user typed.

mod form;
mod validate;

use kit::data::Data;
use kit::form::Form;
use kit::http::{effect, html, redirect, ResponseExt};
use kit::layout::error_page;
use kit::{Request, Response, Table, Value};

use crate::form::{form_page, Input};
use crate::validate::validate;

/// Where a new meme's page will be; the host fills in the id.
const NEW_MEME_LOCATION: &str = "/memes/{{last_insert_rowid}}";

struct Component;

impl kit::Guest for Component {
    fn handle(req: Request, data: Vec<Table>) -> Response {
        let data = Data::new(&data);
        match (req.route.as_str(), req.method.as_str()) {
            ("/new", _) => html(200, form_page(&templates(&data), &Input::default(), &[])),
            ("/memes", "POST") => submit(&req, &data),
            _ => error_page(404, &req.path, "There is no such page."),
        }
    }
}

kit::export!(Component with_types_in kit::bindings);

/// The templates to choose from, as (id, name).
fn templates<'a>(data: &Data<'a>) -> Vec<(&'a str, &'a str)> {
    data.rows("templates")
        .filter_map(|r| {
            let id = r.text("id")?;
            Some((id, r.text("name").unwrap_or(id)))
        })
        .collect()
}

fn submit(req: &Request, data: &Data) -> Response {
    let form = Form::parse(&req.body);
    let input = Input {
        template: form.get_or_empty("template"),
        top_text: form.get_or_empty("top_text"),
        bottom_text: form.get_or_empty("bottom_text"),
        tags: form.get_or_empty("tags"),
    };
    let templates = templates(data);
    let ids: Vec<&str> = templates.iter().map(|(id, _)| *id).collect();
    match validate(&input, &ids) {
        Ok(meme) => {
            // Stored as typed (trimmed): escaping happens when it is shown.
            let mut response = redirect(303, NEW_MEME_LOCATION).with_effect(effect(
                "insert_meme",
                vec![
                    Value::Text(meme.template),
                    Value::Text(meme.top_text),
                    Value::Text(meme.bottom_text),
                    Value::Integer(req.now_ms.min(i64::MAX as u64) as i64),
                ],
            ));
            for tag in meme.tags {
                response = response.with_effect(effect("tag_new_meme", vec![Value::Text(tag)]));
            }
            response
        }
        Err(errors) => html(400, form_page(&templates, &input, &errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::testing::{body, request, response_header, table, text};
    use kit::Guest;

    fn templates_table() -> Table {
        table(
            "templates",
            &["id", "name"],
            vec![
                vec![text("drake"), text("Drake approves")],
                vec![text("galaxy-brain"), text("Galaxy brain")],
            ],
        )
    }

    fn post(body: &str) -> Response {
        let mut req = request("POST", "/memes", "/memes");
        req.body = body.as_bytes().to_vec();
        req.now_ms = 1_700_000_000_123;
        Component::handle(req, vec![templates_table()])
    }

    #[test]
    fn get_shows_the_form() {
        let resp = Component::handle(request("GET", "/new", "/new"), vec![templates_table()]);
        assert_eq!(resp.status, 200);
        assert_eq!(
            response_header(&resp, "content-type"),
            Some("text/html; charset=utf-8")
        );
        let html = body(&resp);
        assert!(html.contains("<form class=\"submit-form\" method=\"post\" action=\"/memes\">"));
        assert!(html.contains("value=\"galaxy-brain\""));
        assert!(html.contains("src=\"/static/templates/drake.svg\""));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn valid_post_inserts_and_tags() {
        let resp = post("template=drake&top_text=+Top+%3Cb%3E+&bottom_text=Bottom&tags=PhD%2C+peer-review%2Cphd");
        assert_eq!(resp.status, 303);
        assert_eq!(
            response_header(&resp, "location"),
            Some("/memes/{{last_insert_rowid}}")
        );
        assert_eq!(
            resp.effects,
            [
                effect(
                    "insert_meme",
                    vec![
                        text("drake"),
                        text("Top <b>"),
                        text("Bottom"),
                        Value::Integer(1_700_000_000_123),
                    ]
                ),
                effect("tag_new_meme", vec![text("phd")]),
                effect("tag_new_meme", vec![text("peer-review")]),
            ]
        );
    }

    #[test]
    fn invalid_post_shows_the_form_again_escaped() {
        let resp = post("template=%3Cnope%3E&top_text=%22%3E%3Cscript%3Ex%3C%2Fscript%3E&bottom_text=+&tags=ok%2C%3Cbad%3E");
        assert_eq!(resp.status, 400);
        assert!(resp.effects.is_empty());
        let html = body(&resp);
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<nope>"));
        assert!(html.contains("Unknown template &#39;&lt;nope&gt;&#39;."));
        assert!(html.contains("Bottom text is required."));
        assert!(html.contains("Tag &#39;&lt;bad&gt;&#39; may only contain"));
        assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(html.contains("value=\"ok,&lt;bad&gt;\""));
    }
}
