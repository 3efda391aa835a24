//! The in-process API, for tests, benchmarks and embedding: an app loaded
//! into a [`Host`] and handed whole requests, without a listener.

pub use crate::host::{Host as App, HostOptions as AppOptions};

/// A request with its body read.
pub type HttpRequest = http::Request<bytes::Bytes>;
/// A response with its body collected.
pub type HttpResponse = http::Response<bytes::Bytes>;

use std::path::Path;

use anyhow::{Context, Result};

use crate::manifest::Manifest;
use crate::spin::manifest::SpinManifest;

/// Which kind of app a manifest describes.
// One per app, moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum AnyManifest {
    Pure(Manifest),
    Spin(SpinManifest),
}

impl AnyManifest {
    /// Reads `file` as a Spin manifest if it is one, else as an `app.toml`.
    pub fn load(file: &Path) -> Result<AnyManifest> {
        let text = std::fs::read_to_string(file).with_context(|| {
            format!(
                "cannot read the manifest {}; give one with -f (app.toml or spin.toml)",
                file.display()
            )
        })?;
        if SpinManifest::is_spin_manifest(file, &text) {
            Ok(AnyManifest::Spin(SpinManifest::parse(file, &text)?))
        } else {
            Ok(AnyManifest::Pure(Manifest::parse(file, &text)?))
        }
    }

    /// The folder the manifest's relative paths start from.
    pub fn base_dir(&self) -> &Path {
        match self {
            AnyManifest::Pure(m) => &m.base_dir,
            AnyManifest::Spin(m) => &m.base_dir,
        }
    }

    /// The manifest's `[limits]`.
    pub fn limits(&self) -> &crate::manifest::limits::Limits {
        match self {
            AnyManifest::Pure(m) => &m.limits,
            AnyManifest::Spin(m) => &m.limits,
        }
    }
}
