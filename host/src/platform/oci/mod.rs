//! Spin apps pushed as OCI artifacts: `spin registry push ADMIN/HOST:TAG`
//! to a platform's admin listener deploys the app for `Host: HOST`.
//! [`distribution`] takes the push (the OCI distribution API's upload and
//! manifest calls); [`locked_app`] turns the artifact into the bundle every
//! deploy takes.

pub mod distribution;
pub mod locked_app;
