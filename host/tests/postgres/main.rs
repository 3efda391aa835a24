//! The site's integration tests again, with its data in PostgreSQL: each
//! test's `nebula up` gets `--db postgres://…` and a fresh database of its
//! own on the local server (dropped after). The same test files as `it`;
//! only what `app.toml` serves moves (other test apps stay on SQLite).

// Not every helper of the shared support is used by these tests.
#[allow(dead_code)]
#[path = "../it/support.rs"]
mod support;

pub const STORE: support::Store = support::Store::Postgres;

#[path = "../it/site.rs"]
mod site;
#[path = "../it/submit.rs"]
mod submit;
#[path = "../it/votes.rs"]
mod votes;

mod store;
