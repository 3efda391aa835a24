//! Triggers other than HTTP: what calls an app's components when no request
//! arrives on the listener. Each hands its events to the loaded [`crate::host::Host`].

pub mod redis;
