//! Spin applications: `spin.toml` ([`manifest`]), Spin's route syntax and
//! request headers ([`routes`]), and what a Spin app gets per app — its
//! stores, variables and files ([`app`], [`runtime_config`], [`files`]) —
//! and per component: outbound HTTP to its allowed hosts ([`outbound`],
//! [`outbound_connect`]). Spin's key-value, SQLite and variables
//! interfaces are the `nebula-spin-interfaces` crate. The components
//! themselves run on the wasi:http executor ([`crate::executor::wasi_http`]).

pub mod app;
pub mod check;
pub mod files;
pub mod manifest;
pub mod outbound;
pub mod outbound_connect;
pub mod routes;
pub mod runtime_config;
