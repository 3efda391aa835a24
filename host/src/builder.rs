//! `nebula build`: runs each component's build command, and tells whether a
//! component is missing or older than its sources.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use walkdir::WalkDir;

use crate::manifest::{Component, Manifest};

const WASM_TARGET: &str = "wasm32-wasip2";

/// Whether the component's `.wasm` is missing or older than a watched file.
pub fn is_stale(c: &Component) -> bool {
    let Ok(built) = std::fs::metadata(&c.source).and_then(|m| m.modified()) else {
        return true;
    };
    let Some(build) = &c.build else { return false };
    build
        .watch
        .iter()
        .any(|w| newest_mtime(w).is_some_and(|t| t > built))
}

fn newest_mtime(path: &Path) -> Option<SystemTime> {
    WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
}

/// `nebula build` for a Spin manifest: the same, with Spin's `[component.X.build]`.
pub fn build_spin(
    m: &crate::spin::manifest::SpinManifest,
    only: &[String],
    stale_only: bool,
) -> Result<()> {
    let components = m
        .components
        .values()
        .map(|c| Component {
            name: c.id.clone(),
            source: c.source.clone(),
            build: c.build.clone(),
        })
        .collect::<Vec<_>>();
    build_components(&m.file, &components, only, stale_only)
}

/// Builds the named components (all if `only` is empty); with `stale_only`,
/// only those that are missing or out of date.
pub fn build(manifest: &Manifest, only: &[String], stale_only: bool) -> Result<()> {
    let components: Vec<Component> = manifest.components.values().cloned().collect();
    build_components(&manifest.file, &components, only, stale_only)
}

fn build_components(
    file: &Path,
    components: &[Component],
    only: &[String],
    stale_only: bool,
) -> Result<()> {
    for name in only {
        if !components.iter().any(|c| &c.name == name) {
            bail!(
                "no component named {name:?} in {}; components: {}",
                file.display(),
                components
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let mut target_checked = false;
    for c in components {
        if !only.is_empty() && !only.contains(&c.name) {
            continue;
        }
        if stale_only && !is_stale(c) {
            continue;
        }
        let Some(build) = &c.build else {
            if !c.source.exists() {
                bail!(
                    "component {:?}: {} does not exist and has no build command; add [components.{}.build] to {} or put the .wasm there",
                    c.name,
                    c.source.display(),
                    c.name,
                    file.display()
                );
            }
            continue;
        };
        if build.command.contains(WASM_TARGET) && !target_checked {
            ensure_wasm_target()?;
            target_checked = true;
        }
        eprintln!(
            "building {} ({} in {})",
            c.name,
            build.command,
            build.workdir.display()
        );
        let status = shell(&build.command)
            .current_dir(&build.workdir)
            // The build's output is progress, not the program's: keep stdout
            // for what `nebula up` prints about the app.
            .stdout(std::io::stderr())
            .status()
            .with_context(|| {
                format!(
                    "component {:?}: cannot run its build command `{}`",
                    c.name, build.command
                )
            })?;
        if !status.success() {
            bail!(
                "component {:?}: the build command `{}` (in {}) failed with {status}",
                c.name,
                build.command,
                build.workdir.display()
            );
        }
        if !c.source.exists() {
            bail!(
                "component {:?}: the build succeeded but {} was not produced; check `source` in {}",
                c.name,
                c.source.display(),
                file.display()
            );
        }
    }
    Ok(())
}

fn shell(command: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command);
    cmd
}

/// Installs the `wasm32-wasip2` Rust target through rustup if it is missing.
pub fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let out = match installed {
        Ok(o) if o.status.success() => o,
        Ok(o) => bail!(
            "`rustup target list --installed` failed: {}; install the target by hand with `rustup target add {WASM_TARGET}`",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => bail!(
            "rustup is not available ({e}); components need the Rust target {WASM_TARGET}: install rustup (https://rustup.rs) or add the target to your toolchain"
        ),
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("installing the Rust target {WASM_TARGET} (rustup target add {WASM_TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .stdout(std::io::stderr())
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("`rustup target add {WASM_TARGET}` failed ({status}); check your network or install the target by hand");
    }
    Ok(())
}
