//! The on-disk compile cache. A component is compiled once; later starts map
//! the precompiled file instead of compiling. Entries are keyed by the
//! component's SHA-256, the engine's compatibility hash (settings, target)
//! and wasmtime's version, and carry a checksum of their own bytes: a stale
//! or corrupt entry is detected, deleted and rebuilt, never trusted.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where a loaded component came from; logged so a cache hit is observable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Cache,
    Compiled,
    /// Compiled because the cached entry failed its checks.
    Recompiled,
}

#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    pub fn disabled() -> Self {
        CompileCache { dir: None }
    }

    pub fn load(&self, engine: &Engine, wasm_path: &Path) -> Result<(Component, Origin)> {
        let bytes = std::fs::read(wasm_path)
            .with_context(|| format!("cannot read component {}", wasm_path.display()))?;
        super::wasm_kind::expect_component(&bytes, wasm_path)?;
        let Some(dir) = &self.dir else {
            return Ok((compile(engine, &bytes, wasm_path)?, Origin::Compiled));
        };
        let entry = dir.join(format!("{}.cwasm", key(engine, &bytes)));
        let sum = entry.with_extension("cwasm.sha256");
        let mut origin = Origin::Compiled;
        if entry.exists() {
            match verified(&entry, &sum) {
                // SAFETY: the file was written by `precompile_component` of an
                // engine with the same compatibility hash, and its checksum
                // matches what was written with it.
                Ok(true) => match unsafe { Component::deserialize_file(engine, &entry) } {
                    Ok(c) => return Ok((c, Origin::Cache)),
                    Err(e) => {
                        tracing::warn!(entry = %entry.display(), "cached component rejected ({e:#}); recompiling")
                    }
                },
                Ok(false) => {
                    tracing::warn!(entry = %entry.display(), "cached component is corrupt; recompiling")
                }
                Err(e) => {
                    tracing::warn!(entry = %entry.display(), "cannot check cached component ({e:#}); recompiling")
                }
            }
            let _ = std::fs::remove_file(&entry);
            let _ = std::fs::remove_file(&sum);
            origin = Origin::Recompiled;
        }
        let compiled = engine
            .precompile_component(&bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "{} is not a valid WebAssembly component",
                    wasm_path.display()
                )
            })?;
        if let Err(e) = store(dir, &entry, &sum, &compiled) {
            tracing::warn!(dir = %dir.display(), "cannot write the compile cache: {e:#}");
        }
        // SAFETY: `compiled` was produced by this engine just above.
        let component = unsafe { Component::deserialize(engine, &compiled) }?;
        Ok((component, origin))
    }
}

fn compile(engine: &Engine, bytes: &[u8], path: &Path) -> Result<Component> {
    Component::from_binary(engine, bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a valid WebAssembly component", path.display()))
}

fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let digest = Sha256::digest(wasm);
    format!(
        "{}-wasmtime{}-{:016x}",
        hex(&digest[..16]),
        wasmtime_version(),
        h.finish()
    )
}

fn wasmtime_version() -> &'static str {
    // The crate version is part of the key so an upgrade never maps old code.
    env!("NEBULA_WASMTIME_VERSION")
}

fn verified(entry: &Path, sum: &Path) -> Result<bool> {
    let expected = std::fs::read_to_string(sum)?;
    let actual = hex(&Sha256::digest(std::fs::read(entry)?));
    Ok(expected.trim() == actual)
}

fn store(dir: &Path, entry: &Path, sum: &Path, compiled: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    // Write to a temporary name and rename, so a crash mid-write never
    // leaves a truncated entry under the real name.
    let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, compiled)?;
    std::fs::write(sum, hex(&Sha256::digest(compiled)))?;
    std::fs::rename(&tmp, entry)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
