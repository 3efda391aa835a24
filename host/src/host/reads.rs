//! The read stage's inputs: each of a route's reads bound to this request's
//! values (route parameters, query, headers, form fields, the visitor's
//! session id, the seed). Values are only ever bound as SQL parameters.

use std::cell::OnceCell;

use crate::data::ReadPlan;
use crate::executor::Payload;
use crate::manifest::Binding;
use crate::model::RouteModel;
use crate::web::session::Visitor;

/// The plans of `route`'s reads for this request.
pub fn plans(
    route: &RouteModel,
    req: &http::Request<Payload>,
    params: &[(String, String)],
    visitor: Option<&Visitor>,
    seed: u64,
) -> Vec<ReadPlan> {
    let values = RequestValues {
        req,
        query: OnceCell::new(),
        form: OnceCell::new(),
    };
    route
        .reads
        .iter()
        .map(|read| {
            ReadPlan::bind(read, |b| match b {
                Binding::Param(n) => first(params, n),
                Binding::Query(n) => first(values.query(), n),
                Binding::Header(n) => values.header(n),
                Binding::Form(n) => first(values.form(), n),
                Binding::Session => visitor.map(|v| v.id.clone()),
                Binding::Seed => Some((seed & i64::MAX as u64).to_string()),
            })
        })
        .collect()
}

/// Whether one of `route`'s reads binds the request's seed.
pub fn binds_seed(route: &RouteModel) -> bool {
    route
        .reads
        .iter()
        .any(|r| r.bind.values().any(|b| *b == Binding::Seed))
}

/// The first value named `name` among the pairs.
fn first(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// A request's values, each parsed only if a read binds one; decoded as the
/// pure component sees them (`executor::pure::convert::to_wit_request`).
struct RequestValues<'a> {
    req: &'a http::Request<Payload>,
    query: OnceCell<Vec<(String, String)>>,
    form: OnceCell<Vec<(String, String)>>,
}

impl RequestValues<'_> {
    fn query(&self) -> &[(String, String)] {
        self.query.get_or_init(|| {
            self.req
                .uri()
                .query()
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default()
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        self.req
            .headers()
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Fields of a urlencoded body.
    fn form(&self) -> &[(String, String)] {
        self.form.get_or_init(|| {
            let is_form = self
                .req
                .headers()
                .get_all(http::header::CONTENT_TYPE)
                .iter()
                .any(|v| {
                    v.as_bytes()
                        .starts_with(b"application/x-www-form-urlencoded")
                });
            match (is_form, self.req.body()) {
                (true, Payload::Whole(body)) => form_urlencoded::parse(body).into_owned().collect(),
                _ => Vec::new(),
            }
        })
    }
}
