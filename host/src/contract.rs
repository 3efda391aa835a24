//! The pure world's types, generated from `wit/pure`. These are the contract
//! between the layers too: the data layer produces [`Table`]s, the server
//! produces [`Request`]s, the executor returns [`Response`]s.

wasmtime::component::bindgen!({
    world: "pure",
    path: "../wit/pure",
    exports: { default: async },
});

pub use self::nebula::function::types::{Effect, Value};
