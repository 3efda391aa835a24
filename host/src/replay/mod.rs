//! Record and replay: a pure component's answer is a function of what it
//! is given (the request, its seed and time, the rows its route read), so
//! a call written down is a call that can be run again, offline, as often
//! as needed — against the component that failed, or against a fix.
//!
//! - [`recording`]: the file, one per request (`ID.json`), and how it is
//!   written (atomically) and read (with errors that say what is wrong).
//! - [`recorder`]: what the request path hands each call to when its route
//!   records (`nebula up --record DIR`, a route's `record = "errors"` or
//!   `"all"`); the host holds one [`Recorder`] and pays nothing without.
//! - [`run`]: `nebula replay FILE [--component PATH.wasm]`.
//!
//! Only pure components (app.toml) are recorded: a wasi:http component
//! does its own I/O, which no file could give it again.

pub mod recorder;
pub mod recording;
pub mod run;

pub use recorder::Recorder;
pub use recording::Recording;
pub use run::{replay, ReplayOptions, Replayed};
