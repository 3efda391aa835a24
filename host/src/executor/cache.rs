//! The on-disk compile cache. A component is compiled once; later starts map
//! the precompiled file instead of compiling. Entries are keyed by the
//! component's SHA-256, the engine's compatibility hash (settings, target)
//! and wasmtime's version, and carry a checksum of their own bytes: a stale
//! or corrupt entry is detected, deleted and rebuilt, never trusted.
//!
//! Hashing is what a start from the cache would spend its time on (an 18 MB
//! Python component compiles to 35 MB), so both hashes are remembered with
//! the file's size, modification time and inode: a file that still has them
//! is not read again. Any write to a file changes its modification time,
//! and then it is hashed in full.

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
        let read = || {
            std::fs::read(wasm_path)
                .with_context(|| format!("cannot read component {}", wasm_path.display()))
        };
        let Some(dir) = &self.dir else {
            let bytes = read()?;
            super::wasm_kind::expect_component(&bytes, wasm_path)?;
            return Ok((compile(engine, &bytes, wasm_path)?, Origin::Compiled));
        };
        super::wasm_kind::expect_component(&head(wasm_path)?, wasm_path)?;
        let mut bytes = None;
        let digest = match Stamp::of(wasm_path).and_then(|s| remembered_digest(dir, wasm_path, &s))
        {
            Some(d) => d,
            None => {
                let b = read()?;
                let d = hex(&Sha256::digest(&b));
                remember_digest(dir, wasm_path, &d);
                bytes = Some(b);
                d
            }
        };
        let entry = dir.join(format!("{}.cwasm", key(engine, &digest)));
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
        let bytes = match bytes {
            Some(b) => b,
            None => read()?,
        };
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

/// `digest`: the component's SHA-256 in hex.
fn key(engine: &Engine, digest: &str) -> String {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!(
        "{}-wasmtime{}-{:016x}",
        &digest[..32],
        wasmtime_version(),
        h.finish()
    )
}

/// The first bytes of a file: enough to tell a component from anything else.
fn head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(8);
    std::fs::File::open(path)
        .and_then(|f| f.take(8).read_to_end(&mut buf))
        .with_context(|| format!("cannot read component {}", path.display()))?;
    Ok(buf)
}

/// What identifies one version of a file without reading it.
#[derive(Debug, PartialEq, Eq)]
struct Stamp(String);

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp(format!(
            "{} {} {}.{:09} {}",
            m.dev(),
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.len()
        )))
    }
}

/// Where the digest of the source at `path` is remembered.
fn digest_file(dir: &Path, path: &Path) -> PathBuf {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let id = Sha256::digest(path.as_os_str().as_encoded_bytes());
    dir.join("sources").join(hex(&id[..16]))
}

/// The source's digest, if it was hashed before and has not changed since.
fn remembered_digest(dir: &Path, path: &Path, stamp: &Stamp) -> Option<String> {
    let text = std::fs::read_to_string(digest_file(dir, path)).ok()?;
    let (digest, seen) = text.trim_end().split_once('\n')?;
    (seen == stamp.0 && digest.len() == 64).then(|| digest.to_string())
}

fn remember_digest(dir: &Path, path: &Path, digest: &str) {
    let Some(stamp) = Stamp::of(path) else { return };
    let file = digest_file(dir, path);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(file.parent().expect("a file in sources/"))?;
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, format!("{digest}\n{}\n", stamp.0))?;
        std::fs::rename(&tmp, &file)
    };
    if let Err(e) = write() {
        tracing::debug!(file = %file.display(), "cannot remember a component's digest: {e}");
    }
}

fn wasmtime_version() -> &'static str {
    // The crate version is part of the key so an upgrade never maps old code.
    env!("NEBULA_WASMTIME_VERSION")
}

/// Whether `entry` has the checksum written with it. The sum file's second
/// line is the entry's stamp when it was last checked: if the entry still
/// has it, it has not been written since and is not hashed again.
fn verified(entry: &Path, sum: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(sum)?;
    let mut lines = text.lines();
    let expected = lines.next().unwrap_or_default().trim();
    let stamp = Stamp::of(entry);
    if stamp
        .as_ref()
        .is_some_and(|s| lines.next() == Some(s.0.as_str()))
    {
        return Ok(true);
    }
    let actual = hex(&Sha256::digest(std::fs::read(entry)?));
    if expected != actual {
        return Ok(false);
    }
    if let Some(s) = stamp {
        // Best effort: without it the next start hashes the entry again.
        let _ = std::fs::write(sum, format!("{actual}\n{}\n", s.0));
    }
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn remembered_hashes_never_serve_a_changed_file() {
        let engine = Engine::default();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let cache = CompileCache::new(Some(dir.clone()));
        let src = tmp.path().join("c.wasm");
        std::fs::write(&src, wat::parse_str("(component)").unwrap()).unwrap();
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Compiled);
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Cache);
        // The entry was checked in full once, and its stamp kept with the sum.
        let entry = entries(&dir).pop().unwrap();
        let sum = std::fs::read_to_string(entry.with_extension("cwasm.sha256")).unwrap();
        assert_eq!(sum.lines().count(), 2, "{sum}");
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Cache);

        // Another component written to the same path: a new key, compiled.
        std::fs::write(
            &src,
            wat::parse_str("(component (core module (func (export \"f\"))))").unwrap(),
        )
        .unwrap();
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Compiled);
        assert_eq!(entries(&dir).len(), 2);
        // …and the first one again: its entry is still there.
        std::fs::write(&src, wat::parse_str("(component)").unwrap()).unwrap();
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Cache);

        // An entry written to after its stamp was kept is hashed again, and
        // caught.
        let mut bytes = std::fs::read(&entry).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Recompiled);
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Cache);
    }

    #[test]
    fn a_file_that_is_not_a_component_is_refused_before_any_hashing() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(Some(tmp.path().join("cache")));
        let src = tmp.path().join("m.wasm");
        std::fs::write(&src, wat::parse_str("(module)").unwrap()).unwrap();
        let e = cache
            .load(&Engine::default(), &src)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("core WebAssembly module, not a component"),
            "{e}"
        );
        assert!(!tmp.path().join("cache").exists(), "nothing was cached");
    }
}
