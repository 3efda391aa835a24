//! `nebula build`: runs each component's build command, and tells whether a
//! component is missing or older than its sources. A command that needs a
//! toolchain Nebula knows how to install (the Rust target `wasm32-wasip2`,
//! componentize-py, jco) gets it first; see [`toolchain`].

pub mod toolchain;
mod wit_guard;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use walkdir::WalkDir;

use crate::manifest::{Component, Manifest};
use toolchain::{BuildEnv, Toolchain};
use wit_guard::WitGuard;

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
            limits: Default::default(),
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
    // Toolchains prepared in this run, by kind and the folder they serve.
    let mut prepared: HashMap<(Toolchain, PathBuf), BuildEnv> = HashMap::new();
    let project = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Components with a build command first: one without may use the
    // `.wasm` another one builds (Spin apps do this for private endpoints).
    let mut ordered: Vec<&Component> = components.iter().collect();
    ordered.sort_by_key(|c| c.build.is_none());
    for c in ordered {
        if !only.is_empty() && !only.contains(&c.name) {
            continue;
        }
        // componentize-py and jco always start over (cargo does not), and
        // their output differs from build to build, which would also miss
        // the compile cache: with a `watch` list, an up-to-date one is kept.
        let from_scratch = c
            .build
            .as_ref()
            .is_some_and(|b| !b.watch.is_empty() && Toolchain::for_command(&b.command).is_some());
        if (stale_only || from_scratch) && !is_stale(c) {
            if from_scratch && !stale_only {
                eprintln!(
                    "{} is up to date ({} is newer than its watched sources)",
                    c.name,
                    c.source.display()
                );
            }
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
        let env = match Toolchain::for_command(&build.command) {
            None => BuildEnv::default(),
            Some(kind) => {
                let key = (kind, build.workdir.clone());
                match prepared.get(&key) {
                    Some(env) => env.clone(),
                    None => {
                        let env = toolchain::prepare(kind, &project, &build.workdir)
                            .with_context(|| format!("component {:?}", c.name))?;
                        prepared.insert(key, env.clone());
                        env
                    }
                }
            }
        };
        eprintln!(
            "building {} ({} in {})",
            c.name,
            build.command,
            build.workdir.display()
        );
        // Not every tool makes the folder it writes to (jco does not).
        if let Some(dir) = c.source.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "component {:?}: cannot create {} for its .wasm",
                    c.name,
                    dir.display()
                )
            })?;
        }
        let guard = (Toolchain::for_command(&build.command) == Some(Toolchain::JavaScript))
            .then(|| WitGuard::before(&build.command, &build.workdir))
            .flatten();
        let mut cmd = shell(&build.command);
        env.apply(&mut cmd)?;
        let status = cmd
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
        if let Some(guard) = guard {
            let undone = guard
                .restore()
                .with_context(|| format!("component {:?}: putting its WIT back", c.name))?;
            if !undone.is_empty() {
                bail!(
                    "component {:?}: jco changed the WIT it builds against ({}): {undone}. It does that when the bundled JavaScript uses a Node.js built-in (`process`, `require`, a `node:` module), which a pure component cannot import; Nebula put the WIT back as it was. Remove the Node.js API from the component's sources (in {})",
                    c.name,
                    wit_guard::wit_argument(&build.command).unwrap_or_default(),
                    build.workdir.display()
                );
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Build;

    #[test]
    fn a_component_without_build_may_use_what_another_builds() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("shared.wasm");
        let shared = |name: &str, build: Option<Build>| Component {
            name: name.into(),
            source: wasm.clone(),
            build,
            limits: Default::default(),
        };
        // Sorted by name the one without a build command comes first.
        let components = vec![
            shared("a-private", None),
            shared(
                "b-public",
                Some(Build {
                    command: "touch shared.wasm".into(),
                    workdir: dir.path().to_path_buf(),
                    watch: vec![],
                }),
            ),
        ];
        build_components(Path::new("spin.toml"), &components, &[], false).unwrap();
        assert!(wasm.exists());
    }

    #[test]
    fn a_failed_build_names_the_component_and_command() {
        let dir = tempfile::tempdir().unwrap();
        let c = Component {
            name: "broken".into(),
            source: dir.path().join("x.wasm"),
            build: Some(Build {
                command: "exit 3".into(),
                workdir: dir.path().to_path_buf(),
                watch: vec![],
            }),
            limits: Default::default(),
        };
        let e = build_components(Path::new("app.toml"), &[c], &[], false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("component \"broken\": the build command `exit 3`"),
            "{e}"
        );
    }
}
