//! The pure world's types, generated from `wit/pure`. These are the contract
//! between the layers too: the data layer produces [`Table`]s, the server
//! produces [`Request`]s, the executor returns [`Response`]s.

wasmtime::component::bindgen!({
    world: "pure",
    path: "../wit/pure",
    exports: { default: async },
});

pub use self::nebula::function::types::{Effect, Value};

/// The token a component may put in a response header; replaced by the id
/// of the last row its effects inserted (e.g. `location: /memes/{{last_insert_rowid}}`),
/// or 0 if they inserted none.
pub const LAST_INSERT_ROWID: &str = "{{last_insert_rowid}}";
