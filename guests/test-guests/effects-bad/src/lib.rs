//! Asks for writes in ways the host must refuse, so the host's tests can
//! check that a request's effects are applied all or none:
//! - `?mode=ok`: one declared write (`note`), which must be applied;
//! - `?mode=undeclared`: a declared write, then one no manifest declares;
//! - `?mode=other-route`: a declared write, then `wipe`, which the manifest
//!   declares but not for this route;
//! - `?mode=constraint`: a declared write, then one that violates a CHECK;
//! - `?mode=many-then-constraint`: 200 good writes, then one that violates it;
//! - `?mode=too-many-args` / `?mode=too-few-args`: a good write, then one
//!   with the wrong number of arguments;
//! - `?mode=rowid-insert` / `?mode=rowid-update`: the write `note` or `touch`
//!   (an INSERT, an UPDATE) and a redirect to `/x/{{last_insert_rowid}}`;
//!   `?mode=rowid-none`: the same redirect and no write at all.

use kit::http::{effect, query, redirect, text, ResponseExt};
use kit::{Request, Response, Table, Value};

struct Component;

const NEVER: &str = "this response must never reach a client";
const ROWID_LOCATION: &str = "/x/{{last_insert_rowid}}";

impl kit::Guest for Component {
    fn handle(req: Request, _data: Vec<Table>) -> Response {
        let note = |s: &str| effect("note", vec![Value::Text(s.to_string())]);
        match query(&req, "mode").unwrap_or("undeclared") {
            "ok" => text(200, "noted").with_effect(note("fine")),
            "constraint" => text(200, NEVER)
                .with_effect(note("first"))
                .with_effect(note("")),
            "many-then-constraint" => {
                let mut r = text(200, NEVER);
                for i in 0..200 {
                    r = r.with_effect(note(&format!("note {i}")));
                }
                r.with_effect(note(""))
            }
            "rowid-insert" => redirect(303, ROWID_LOCATION).with_effect(note("inserted")),
            "rowid-none" => redirect(303, ROWID_LOCATION),
            "rowid-update" => {
                redirect(303, ROWID_LOCATION).with_effect(effect("touch", Vec::new()))
            }
            "other-route" => text(200, NEVER)
                .with_effect(note("before"))
                .with_effect(effect("wipe", Vec::new())),
            "too-many-args" => text(200, NEVER)
                .with_effect(note("before"))
                .with_effect(effect(
                    "note",
                    vec![Value::Text("a".into()), Value::Text("b".into())],
                )),
            "too-few-args" => text(200, NEVER)
                .with_effect(note("before"))
                .with_effect(effect("note", Vec::new())),
            _ => text(200, NEVER)
                .with_effect(note("before"))
                .with_effect(effect("drop_everything", Vec::new())),
        }
    }
}

kit::export!(Component with_types_in kit::bindings);
