//! Nebula: a Function-as-a-Service host for WebAssembly components.
//!
//! The request path, folder by folder:
//! - [`server`]: transport — the listener, connection limits, timeouts,
//!   HTTP/1 with hyper; hands each request to the host.
//! - [`host`]: the one host — routes, admits (gate, cross-site, rate
//!   limits), reads the route's data, calls the component, checks its
//!   response, applies its effects and responds; owns the engine, limits,
//!   metrics, request ids, swaps, idle trim and shutdown.
//! - [`executor`]: runs one component for one request, one executor per
//!   kind (pure, wasi:http), with the compile cache and deadlines.
//! - [`data`]: the data store a pure app's reads and writes run on.
//! - [`web`]: the host's answers to browser-borne attacks (cross-site
//!   requests, sessions, rate limits, headers).
//!
//! What the host serves is an [`model::AppModel`], read from `app.toml` by
//! [`manifest`] or from `spin.toml` by [`spin::manifest`]; [`spin`] also
//! holds what a Spin app gets per app (stores, variables, files, outbound
//! hosts). [`builder`] and [`check`] are `nebula build` and `nebula check`,
//! [`scaffold`] is `nebula new`, [`watch`] is `nebula up --watch`, and
//! [`metrics`] counts what everything costs. [`platform`] is `nebula
//! platform`: many tenants' apps in one process, deployed over an API;
//! [`trigger`] calls components on events other than HTTP requests (Redis);
//! [`replay`] records calls (`nebula up --record`) and runs them again
//! offline (`nebula replay`).

pub mod app;
pub mod body;
pub mod builder;
pub mod check;
pub mod contract;
pub mod data;
pub mod executor;
pub mod host;
pub mod manifest;
pub mod memo;
pub mod metrics;
pub mod model;
pub mod platform;
pub mod replay;
pub mod router;
pub mod scaffold;
pub mod server;
pub mod spin;
pub mod trigger;
pub mod watch;
pub mod web;
