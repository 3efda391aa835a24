//! Academemes' HTML and SVG, with no host bindings.
//!
//! Everything here is plain Rust over plain values, so one crate renders the
//! same bytes for every host the site runs on: the pure components (through
//! `academemes-kit`, which re-exports these modules next to its bindings for
//! Nebula's pure world), the Spin SDK version in `examples/academemes-spin`,
//! and the native server the benchmarks compare against (`benches/native`).
//! It has no wit-bindgen, so depending on it adds no import to a component.

pub mod card;
pub mod date;
pub mod home;
pub mod html;
pub mod layout;
pub mod meme;
pub mod rows;
pub mod svg;
