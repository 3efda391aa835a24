//! Spin applications: `spin.toml` ([`manifest`]), Spin's route syntax and
//! request headers ([`routes`]), and what a Spin app gets per app — its
//! stores, variables and files ([`app`], [`runtime_config`], [`files`]) —
//! and per component: its grants (stores, databases, variables, outbound
//! hosts). Spin's key-value, SQLite and variables interfaces are the
//! `nebula-spin-interfaces` crate's units; the components themselves run
//! on the wasi:http executor ([`crate::executor::wasi_http`]), whose
//! outbound HTTP unit checks the allowed hosts.

pub mod app;
pub mod check;
pub mod files;
pub mod manifest;
pub mod routes;
pub mod runtime_config;
