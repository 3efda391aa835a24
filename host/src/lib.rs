//! Nebula: a Function-as-a-Service host for pure WebAssembly components.
//!
//! The request path, module by module: [`manifest`] says what the app is;
//! [`router`] picks a route; [`data`] runs the route's reads and applies its
//! writes; [`executor`] runs the component; [`server`] speaks HTTP and serves
//! static files. [`app`] ties them together; [`builder`] and [`check`] are the
//! `nebula build` and `nebula check` commands, [`scaffold`] is `nebula new`
//! and [`watch`] is `nebula up --watch`. [`web`] holds the host's answers to
//! browser-borne attacks: cross-site requests, sessions, rate limits, headers.

pub mod app;
pub mod builder;
pub mod check;
pub mod contract;
pub mod convert;
pub mod data;
pub mod executor;
pub mod manifest;
pub mod metrics;
pub mod router;
pub mod scaffold;
pub mod server;
pub mod spin;
pub mod watch;
pub mod web;
