//! Shared code for the Academemes components.
//!
//! Every component exports the `pure` world's `handle(req, data) -> response`
//! (see `wit/pure/function.wit`). The bindings are generated once, here, and
//! each component crate exports itself with
//!
//! ```ignore
//! struct Component;
//! impl kit::Guest for Component {
//!     fn handle(req: kit::Request, data: Vec<kit::Table>) -> kit::Response { kit::http::text(200, "hi") }
//! }
//! kit::export!(Component with_types_in kit::bindings);
//! ```
//!
//! The rest of the kit is plain Rust over the generated types (the markup
//! itself is `academemes-html`, re-exported here), so
//! `cargo test -p academemes-kit` runs natively.

pub mod bindings {
    wit_bindgen::generate!({
        world: "pure",
        path: "../../wit/pure",
        // PartialEq lets tests compare values and effects directly.
        additional_derives: [PartialEq],
        // Component crates invoke the macro as `kit::export!`.
        pub_export_macro: true,
        default_bindings_module: "kit::bindings",
    });
}

pub mod data;
pub mod form;
pub mod http;
pub mod layout;
pub mod meme;
pub mod testing;

// The bindings-free HTML and SVG live in academemes-html, shared with the
// Spin and native versions of the site; the components keep their paths.
pub use academemes_html::{card, date, home, html, svg};

pub use bindings::nebula::function::types::{Effect, Request, Response, Table, Value};
pub use bindings::{export, Guest};
