//! Integration tests: each starts `nebula up` as a separate process on an
//! ephemeral loopback port and checks what it serves.

mod cluster_support;
mod support;

/// Every test here runs on SQLite; `tests/postgres` runs the site's again on PostgreSQL.
pub const STORE: support::Store = support::Store::Sqlite;

mod admin;
mod backpressure;
mod bad_input;
mod cluster;
mod crash;
mod data_growth;
mod deadlines;
mod deploy;
mod errors;
mod health;
mod hooks;
mod isolation;
mod languages;
mod layers;
mod limits;
mod memo;
mod metrics;
mod new_component;
mod platform;
mod platform_oci;
mod platform_redis;
mod purity;
mod reads;
mod replay;
mod scale;
mod shutdown;
mod site;
mod slow_clients;
mod spin;
mod spin_chain_tcp;
mod spin_deps;
mod spin_host;
mod spin_js_py;
mod spin_limits;
mod spin_rdbms;
mod spin_redis_mqtt;
mod spin_redis_trigger;
mod spin_sandbox;
mod spin_shared_kv;
mod submit;
mod swap;
mod votes;
mod watch;
mod web;
