//! The on-disk compile cache. A component is compiled once; later starts map
//! the precompiled file instead of compiling. Entries are keyed by the
//! component's SHA-256, the engine's compatibility hash (settings, target)
//! and wasmtime's version.
//!
//! An entry is native code that runs without being compiled again, so the
//! cache trusts nothing it did not write itself: the folder is private to
//! this user ([`trust`]), and every entry carries a seal, an HMAC under a key
//! kept outside the folder ([`seal`]). An entry whose seal does not verify —
//! corrupt, stale, or written by someone else — is deleted and rebuilt,
//! never mapped.
//!
//! Hashing is what a start from the cache would spend its time on (an 18 MB
//! Python component compiles to 35 MB), so a verified file's stamp (inode,
//! size, modification and change times) is kept under the seal too: a file
//! that still has it is not read again. Restoring a file's modification time
//! after writing it does not restore its change time (only the kernel sets
//! that), so an edited entry is always read and checked in full.

mod kept;
mod seal;
mod trust;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use super::wasm_kind::WasmKind;
pub use kept::KeptComponents;
use seal::SealKey;

/// Where a loaded component came from; logged so a cache hit is observable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Cache,
    Compiled,
    /// Compiled because the cached entry failed its checks.
    Recompiled,
    /// Still mapped from an earlier load of the same file ([`KeptComponents`]).
    Kept,
}

#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    /// The digest of each file this cache loaded, with the file's stamp
    /// then: [`CompileCache::identity`] answers from here instead of
    /// opening the key and reading the remembered digest again.
    loaded: Arc<Mutex<HashMap<PathBuf, (String, String)>>>,
    /// A platform's components kept mapped across its apps' loads.
    kept: Option<Arc<KeptComponents>>,
}

/// A cache folder that passed its checks, with its key.
struct Opened<'a> {
    dir: &'a Path,
    key: SealKey,
}

impl CompileCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache {
            dir,
            loaded: Default::default(),
            kept: None,
        }
    }

    /// Looks in `kept` first, and keeps what it maps there.
    pub fn keeping(mut self, kept: Option<Arc<KeptComponents>>) -> Self {
        self.kept = kept;
        self
    }

    pub fn disabled() -> Self {
        CompileCache::new(None)
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (String, String)>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The folder, made private, and its key; `None` (and a warning) when
    /// it cannot be trusted, in which case components are compiled in memory.
    fn open(&self) -> Option<Opened<'_>> {
        match self.try_open()? {
            Ok(opened) => Some(opened),
            Err(e) => {
                tracing::warn!("not using the compile cache: {e:#}");
                None
            }
        }
    }

    fn try_open(&self) -> Option<Result<Opened<'_>>> {
        let dir = self.dir.as_deref()?;
        let opened = trust::private_dir(dir).and_then(|()| SealKey::for_cache(dir));
        Some(opened.map(|key| Opened { dir, key }))
    }

    /// The component at `wasm_path` if this cache holds it already, mapped
    /// as [`CompileCache::load`] maps it; `None` for anything else (not
    /// cached, changed since, refused, unreadable, a platform's kept
    /// components), which `load` then deals with and reports. A start uses
    /// it to map what it can while another thread links, never compiling
    /// on that path.
    pub fn load_if_cached(&self, engine: &Engine, wasm_path: &Path) -> Option<Component> {
        if self.kept.is_some() {
            return None;
        }
        let stamp = Stamp::of(wasm_path)?;
        let cache = self.try_open()?.ok()?;
        let digest = cache.remembered_digest(wasm_path, &stamp)?;
        let component = cache.mapped(engine, &digest)?;
        self.loaded()
            .insert(wasm_path.to_path_buf(), (stamp.0, digest));
        Some(component)
    }

    /// Loads the component at `wasm_path`; a core module is made into a
    /// component first (`super::componentize`), and the result cached as if
    /// the file had been that component.
    pub fn load(&self, engine: &Engine, wasm_path: &Path) -> Result<(Component, Origin)> {
        // Taken before the file is read: if it changes in between, the
        // stamp kept below no longer matches and `identity` asks again.
        let stamp = Stamp::of(wasm_path);
        if let (Some(kept), Some(stamp)) = (&self.kept, &stamp) {
            if let Some((component, digest)) = kept.get(engine, wasm_path, &stamp.0) {
                self.loaded()
                    .insert(wasm_path.to_path_buf(), (stamp.0.clone(), digest));
                return Ok((component, Origin::Kept));
            }
        }
        // Before the folder is made: a mistake costs nothing on disk.
        let kind = super::wasm_kind::kind(&head(wasm_path)?, wasm_path)?;
        let read = || {
            let bytes = std::fs::read(wasm_path)
                .with_context(|| format!("cannot read component {}", wasm_path.display()))?;
            match kind {
                WasmKind::Component => Ok(bytes),
                WasmKind::CoreModule => super::componentize::componentize(&bytes, wasm_path),
            }
        };
        let Some(cache) = self.open() else {
            let bytes = read()?;
            return Ok((compile(engine, &bytes, wasm_path)?, Origin::Compiled));
        };
        let mut bytes = None;
        let digest = match stamp
            .as_ref()
            .and_then(|s| cache.remembered_digest(wasm_path, s))
        {
            Some(d) => d,
            None => {
                let b = read()?;
                let d = hex::encode(Sha256::digest(&b));
                cache.remember_digest(wasm_path, &d);
                bytes = Some(b);
                d
            }
        };
        let loaded = cache.load_entry(engine, &digest, bytes, read, wasm_path)?;
        if let (Some(kept), Some(stamp)) = (&self.kept, &stamp) {
            kept.put(engine, wasm_path, &stamp.0, &loaded.0, &digest);
        }
        if let Some(stamp) = stamp {
            self.loaded()
                .insert(wasm_path.to_path_buf(), (stamp.0, digest));
        }
        Ok(loaded)
    }

    /// What identifies the code at `wasm_path` now: its SHA-256 if the
    /// cache has it (the same on every node that serves the same file),
    /// else a hash of its path and file stamp (size, times, inode), which
    /// changes whenever the file does. The response cache keys by it.
    pub fn identity(&self, wasm_path: &Path) -> Vec<u8> {
        let stamp = Stamp::of(wasm_path);
        if let Some(stamp) = &stamp {
            if let Some((seen, digest)) = self.loaded().get(wasm_path) {
                if *seen == stamp.0 {
                    return digest.clone().into_bytes();
                }
            }
        }
        if let (Some(dir), Some(stamp)) = (self.dir.as_deref(), &stamp) {
            if let Ok(key) = SealKey::for_cache(dir) {
                let opened = Opened { dir, key };
                if let Some(d) = opened.remembered_digest(wasm_path, stamp) {
                    return d.into_bytes();
                }
            }
        }
        let mut h = Sha256::new();
        h.update(wasm_path.as_os_str().as_encoded_bytes());
        h.update(stamp.map(|s| s.0).unwrap_or_default());
        h.finalize().to_vec()
    }

    /// Loads a component made in memory (one composed with its
    /// dependencies, `super::compose`), cached under the digest of `bytes`
    /// like a file's; `label` names it in errors and logs.
    pub fn load_bytes(
        &self,
        engine: &Engine,
        bytes: Vec<u8>,
        label: &Path,
    ) -> Result<(Component, Origin)> {
        let Some(cache) = self.open() else {
            return Ok((compile(engine, &bytes, label)?, Origin::Compiled));
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        cache.load_entry(
            engine,
            &digest,
            Some(bytes),
            || unreachable!("bytes given"),
            label,
        )
    }
}

impl Opened<'_> {
    /// The entry file for `digest` under `engine`, and its seal's file.
    fn entry_files(&self, engine: &Engine, digest: &str) -> (PathBuf, PathBuf) {
        let entry = self.dir.join(format!("{}.cwasm", key(engine, digest)));
        let seal_file = entry.with_extension("cwasm.seal");
        (entry, seal_file)
    }

    /// The entry for `digest`, mapped, if it is there and its seal verifies.
    fn mapped(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let (entry, seal_file) = self.entry_files(engine, digest);
        self.verified(&entry, &seal_file).ok()?;
        // SAFETY: as in `load_entry`: the seal verified is one only this host
        // can make, for an engine with the same compatibility hash.
        unsafe { Component::deserialize_file(engine, &entry) }.ok()
    }

    /// The entry for `digest`: mapped if its seal verifies, else compiled
    /// from `bytes` (or what `read` gives) and stored.
    fn load_entry(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: Option<Vec<u8>>,
        read: impl FnOnce() -> Result<Vec<u8>>,
        wasm_path: &Path,
    ) -> Result<(Component, Origin)> {
        let cache = self;
        let (entry, seal_file) = cache.entry_files(engine, digest);
        let mut origin = Origin::Compiled;
        if std::fs::symlink_metadata(&entry).is_ok() {
            // An entry the system would not let us read just now (out of
            // descriptors or memory) is kept, and the load fails for now:
            // the caller tries again later. Deleting it would throw away a
            // good entry and make the next load pay a compile.
            let kept = |e: anyhow::Error| {
                e.context(format!(
                    "cannot read the compile cache entry {} just now (it is kept; try again)",
                    entry.display()
                ))
            };
            match cache.verified(&entry, &seal_file) {
                // SAFETY: the entry carries a seal only this host can make,
                // made when `precompile_component` of an engine with the same
                // compatibility hash wrote it, and nobody else can replace it
                // in the private folder before it is mapped.
                Ok(()) => match unsafe { Component::deserialize_file(engine, &entry) } {
                    Ok(c) => return Ok((c, Origin::Cache)),
                    Err(e) => {
                        let e = anyhow::Error::from(e);
                        if super::transient(&e) {
                            return Err(kept(e));
                        }
                        tracing::warn!(entry = %entry.display(), "cached component rejected ({e:#}); recompiling")
                    }
                },
                Err(NotUsed::Unreadable(e)) => return Err(kept(e.into())),
                Err(NotUsed::Refused(why)) => {
                    tracing::warn!(entry = %entry.display(), "cached component refused: {why}; recompiling")
                }
            }
            let _ = std::fs::remove_file(&entry);
            let _ = std::fs::remove_file(&seal_file);
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
        if let Err(e) = cache.store(&entry, &seal_file, &compiled) {
            tracing::warn!(dir = %cache.dir.display(), "cannot write the compile cache: {e:#}");
        }
        // SAFETY: `compiled` was produced by this engine just above.
        let component = unsafe { Component::deserialize(engine, &compiled) }?;
        Ok((component, origin))
    }
}

/// Why a cache entry is not mapped.
enum NotUsed {
    /// Not one this host made, or not intact: it is deleted and recompiled.
    Refused(String),
    /// The system would not let it be read just now.
    Unreadable(std::io::Error),
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

/// What identifies one version of a file without reading it. The change
/// time is in it because nobody but the kernel can set it back.
#[derive(Debug, PartialEq, Eq)]
struct Stamp(String);

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp(format!(
            "{} {} {}.{:09} {}.{:09} {}",
            m.dev(),
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.len()
        )))
    }
}

impl Opened<'_> {
    /// Where the digest of the source at `path` is remembered.
    fn digest_file(&self, path: &Path) -> (PathBuf, String) {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let id = hex::encode(&Sha256::digest(path.as_os_str().as_encoded_bytes())[..16]);
        (self.dir.join("sources").join(&id), id)
    }

    /// The source's digest, if it was hashed before and has not changed
    /// since, and the record of it is sealed.
    fn remembered_digest(&self, path: &Path, stamp: &Stamp) -> Option<String> {
        let (file, id) = self.digest_file(path);
        let text = String::from_utf8(trust::read_trusted(&file)?).ok()?;
        let mut lines = text.lines();
        let (digest, seen, seal) = (lines.next()?, lines.next()?, lines.next()?);
        let sealed = self.key.verify(
            &[b"source", id.as_bytes(), digest.as_bytes(), seen.as_bytes()],
            seal,
        );
        (sealed && seen == stamp.0 && digest.len() == 64).then(|| digest.to_string())
    }

    /// Records `digest` for the source at `path`, for the next process that
    /// loads it. On a runtime the record is written on its blocking pool,
    /// after the load has returned: making, writing and renaming a file took
    /// ~150 µs of the first request to a freshly deployed copy of an app on
    /// a platform, for a record only a later load needs (a load that finds
    /// none simply hashes the file again).
    fn remember_digest(&self, path: &Path, digest: &str) {
        let (dir, key) = (self.dir.to_path_buf(), self.key.clone());
        let (path, digest) = (path.to_path_buf(), digest.to_string());
        let write = move || Opened { dir: &dir, key }.write_digest(&path, &digest);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(write)),
            Err(_) => write(),
        }
    }

    fn write_digest(&self, path: &Path, digest: &str) {
        let Some(stamp) = Stamp::of(path) else { return };
        let (file, id) = self.digest_file(path);
        let seal = self.key.seal(&[
            b"source",
            id.as_bytes(),
            digest.as_bytes(),
            stamp.0.as_bytes(),
        ]);
        let write = || -> Result<()> {
            let parent = file.parent().expect("a file in sources/");
            trust::private_dir(parent)?;
            trust::write_private(&file, format!("{digest}\n{}\n{seal}\n", stamp.0).as_bytes())
        };
        if let Err(e) = write() {
            tracing::debug!(file = %file.display(), "cannot remember a component's digest: {e:#}");
        }
    }

    /// Whether `entry` may be mapped: a file of this user's that nobody else
    /// may write, whose seal verifies. The seal file's second line is the
    /// entry's stamp when it was last checked in full, sealed on the third:
    /// if the entry still has it, it is not read again.
    fn verified(&self, entry: &Path, seal_file: &Path) -> Result<(), NotUsed> {
        if let Some(why) = trust::untrusted(entry) {
            return Err(NotUsed::Refused(why));
        }
        let no_seal = || NotUsed::Refused("it has no seal this host can read".into());
        if trust::untrusted(seal_file).is_some() {
            return Err(no_seal());
        }
        let text = match std::fs::read(seal_file) {
            Err(e) if super::transient_io(&e) => return Err(NotUsed::Unreadable(e)),
            Err(_) => return Err(no_seal()),
            Ok(b) => String::from_utf8(b).map_err(|_| no_seal())?,
        };
        let mut lines = text.lines();
        let entry_seal = lines.next().unwrap_or_default();
        let name = entry.file_name().unwrap_or_default().as_encoded_bytes();
        if let (Some(seen), Some(stamp_seal), Some(now)) =
            (lines.next(), lines.next(), Stamp::of(entry))
        {
            let parts: [&[u8]; 4] = [b"checked", name, entry_seal.as_bytes(), seen.as_bytes()];
            if seen == now.0 && self.key.verify(&parts, stamp_seal) {
                return Ok(());
            }
        }
        let actual =
            self.key
                .seal_file(entry)
                .map_err(|e| match e.downcast::<std::io::Error>() {
                    Ok(io) if super::transient_io(&io) => NotUsed::Unreadable(io),
                    Ok(io) => NotUsed::Refused(format!("cannot read it: {io}")),
                    Err(e) => NotUsed::Refused(format!("cannot read it: {e}")),
                })?;
        if !seal::same(&actual, entry_seal) {
            return Err(NotUsed::Refused(
                "its seal does not match (corrupt, or not written by this host)".into(),
            ));
        }
        // Best effort: without it the next start reads the entry again.
        let _ = self.write_seal(entry, seal_file, &actual);
        Ok(())
    }

    fn write_seal(&self, entry: &Path, seal_file: &Path, entry_seal: &str) -> Result<()> {
        let stamp = Stamp::of(entry).map(|s| s.0).unwrap_or_default();
        let name = entry.file_name().unwrap_or_default().as_encoded_bytes();
        let stamp_seal =
            self.key
                .seal(&[b"checked", name, entry_seal.as_bytes(), stamp.as_bytes()]);
        trust::write_private(
            seal_file,
            format!("{entry_seal}\n{stamp}\n{stamp_seal}\n").as_bytes(),
        )
    }

    fn store(&self, entry: &Path, seal_file: &Path, compiled: &[u8]) -> Result<()> {
        trust::write_private(entry, compiled)?;
        self.write_seal(entry, seal_file, &self.key.seal_bytes(compiled))
    }
}

fn wasmtime_version() -> &'static str {
    // The crate version is part of the key so an upgrade never maps old code.
    env!("NEBULA_WASMTIME_VERSION")
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
        // The entry was checked in full once, and its stamp kept, sealed.
        let entry = entries(&dir).pop().unwrap();
        let seal = std::fs::read_to_string(entry.with_extension("cwasm.seal")).unwrap();
        assert_eq!(seal.lines().count(), 3, "{seal}");
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

    /// What a start maps beside the linker: only what a load would take
    /// from the cache as it is, never a compile, never a changed file's
    /// old code, never an entry whose seal fails.
    #[test]
    fn load_if_cached_takes_only_a_verified_entry_of_the_file_as_it_is() {
        let (engine, tmp, cache, src) = with_cache();
        let dir = tmp.path().join("cache");
        let (empty, exports_f) = two_components();
        std::fs::write(&src, &exports_f).unwrap();
        assert!(
            cache.load_if_cached(&engine, &src).is_none(),
            "not compiled yet"
        );
        assert!(entries(&dir).is_empty(), "load_if_cached compiled");

        cache.load(&engine, &src).unwrap();
        let next = CompileCache::new(Some(dir.clone()));
        let c = next.load_if_cached(&engine, &src).expect("a cache hit");
        assert!(c.get_export_index(None, "f").is_some());
        // Its identity is the digest, as after a load.
        let digest = hex::encode(Sha256::digest(&exports_f));
        assert_eq!(next.identity(&src), digest.as_bytes());

        // The file changed: its old code is not taken.
        std::fs::write(&src, &empty).unwrap();
        assert!(next.load_if_cached(&engine, &src).is_none());
        // Back as it was, but the entry was tampered with: refused, and
        // left for `load` to replace.
        std::fs::write(&src, &exports_f).unwrap();
        cache.load(&engine, &src).unwrap();
        let entry = entries(&dir).pop().unwrap();
        let mut bytes = std::fs::read(&entry).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        assert!(CompileCache::new(Some(dir.clone()))
            .load_if_cached(&engine, &src)
            .is_none());
        assert_eq!(next.load(&engine, &src).unwrap().1, Origin::Recompiled);
    }

    /// On a runtime the digest's record is written after the load, on the
    /// blocking pool; the next process still finds it (and only it: the
    /// record names this file's stamp).
    #[test]
    fn a_digest_learnt_on_a_runtime_is_remembered_for_the_next_process() {
        let engine = Engine::default();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let src = tmp.path().join("c.wasm");
        let bytes = wat::parse_str("(component)").unwrap();
        std::fs::write(&src, &bytes).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let cache = CompileCache::new(Some(dir.clone()));
        let origin = rt.block_on(async { cache.load(&engine, &src).unwrap().1 });
        assert_eq!(origin, Origin::Compiled);
        // Dropping the runtime waits for its blocking pool.
        drop(rt);

        let next = CompileCache::new(Some(dir.clone()));
        let opened = next.open().unwrap();
        let stamp = Stamp::of(&src).unwrap();
        assert_eq!(
            opened.remembered_digest(&src, &stamp),
            Some(hex::encode(Sha256::digest(&bytes))),
            "no record of the digest in {}",
            dir.join("sources").display()
        );
        assert_eq!(next.load(&engine, &src).unwrap().1, Origin::Cache);
    }

    /// A component that exports nothing, and one that exports `f`: the
    /// exports tell which code was really loaded.
    fn two_components() -> (Vec<u8>, Vec<u8>) {
        (
            wat::parse_str("(component)").unwrap(),
            wat::parse_str(
                "(component (core module $m (func (export \"f\"))) (core instance $i (instantiate $m)) (func (export \"f\") (canon lift (core func $i \"f\"))))",
            )
            .unwrap(),
        )
    }

    /// An engine, a cache folder in a temporary one, and a component
    /// source there holding the first of [`two_components`].
    #[test]
    fn identity_is_the_digest_the_load_learnt_without_reading_the_cache_again() {
        let (engine, tmp, cache, src) = with_cache();
        cache.load(&engine, &src).unwrap();
        let digest = hex::encode(Sha256::digest(std::fs::read(&src).unwrap()));
        // Whatever is on disk now, the load's answer stands…
        std::fs::remove_dir_all(tmp.path().join("cache")).unwrap();
        assert_eq!(cache.identity(&src), digest.as_bytes());
        // …for the file as it was loaded, not for a changed one.
        std::fs::write(&src, wat::parse_str("(component)").unwrap()).unwrap();
        assert_ne!(cache.identity(&src), digest.as_bytes());
    }

    /// Under EMFILE the entry's seal cannot be opened: the load fails for
    /// now and the entry stays, good for the next load. (It was deleted
    /// and recompiled, and the new entry could not be written either.) Run
    /// in a child process of this test binary, since it uses up the
    /// process's descriptors.
    #[test]
    fn an_entry_that_cannot_be_read_for_want_of_descriptors_is_kept() {
        const CHILD: &str = "NEBULA_TEST_EMFILE_CHILD";
        if std::env::var_os(CHILD).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "executor::cache::tests::an_entry_that_cannot_be_read_for_want_of_descriptors_is_kept",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        let (engine, tmp, cache, src) = with_cache();
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Compiled);
        let entry = entries(&tmp.path().join("cache")).pop().unwrap();
        let bytes = std::fs::read(&src).unwrap();
        let digest = hex::encode(Sha256::digest(&bytes));
        let opened = cache.open().unwrap();
        // SAFETY: plain libc calls on a local struct.
        unsafe {
            let mut lim: libc::rlimit = std::mem::zeroed();
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            lim.rlim_cur = lim.rlim_cur.min(512);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        let mut held = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => held.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                    break;
                }
            }
        }
        let r = opened.load_entry(
            &engine,
            &digest,
            Some(bytes.clone()),
            || unreachable!(),
            &src,
        );
        drop(held);
        let err = match r {
            Ok((_, origin)) => panic!("loaded ({origin:?}) without reading its entry"),
            Err(e) => e,
        };
        // Worth trying again, as `nebula up`'s loader and a request's load do.
        assert!(crate::executor::transient(&err), "{err:#}");
        assert!(
            format!("{err:#}").contains("it is kept; try again"),
            "{err:#}"
        );
        assert!(entry.is_file(), "the good entry was deleted");
        assert!(entry.with_extension("cwasm.seal").is_file());
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Cache);
    }

    fn with_cache() -> (Engine, tempfile::TempDir, CompileCache, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(Some(tmp.path().join("cache")));
        let src = tmp.path().join("c.wasm");
        std::fs::write(&src, two_components().0).unwrap();
        (Engine::default(), tmp, cache, src)
    }

    fn exports(engine: &Engine, c: &Component) -> usize {
        c.component_type().exports(engine).count()
    }

    #[test]
    fn a_byte_changed_in_an_entry_with_its_mtime_restored_is_recompiled() {
        use std::io::{Seek, SeekFrom, Write};
        let (engine, tmp, cache, src) = with_cache();
        let dir = tmp.path().join("cache");
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Compiled);
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Cache);

        // Same inode, same size, same modification time: only a byte and
        // the change time differ. The byte is one that wasmtime itself
        // does not check (the changed entry still deserializes), so only
        // the cache's own check stands between it and running.
        let entry = entries(&dir).pop().unwrap();
        let mtime = std::fs::metadata(&entry).unwrap().modified().unwrap();
        let original = std::fs::read(&entry).unwrap();
        let flip = |at: usize| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&entry)
                .unwrap();
            f.seek(SeekFrom::Start(at as u64)).unwrap();
            f.write_all(&[original[at] ^ 0x5a]).unwrap();
            f.set_modified(mtime).unwrap();
        };
        let unflip = |at: usize| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&entry)
                .unwrap();
            f.seek(SeekFrom::Start(at as u64)).unwrap();
            f.write_all(&original[at..at + 1]).unwrap();
        };
        let still_loads = (original.len() / 2..original.len()).step_by(7).find(|&at| {
            flip(at);
            // SAFETY: a test engine; the point is that this succeeds.
            let ok = unsafe { Component::deserialize_file(&engine, &entry) }.is_ok();
            if !ok {
                unflip(at);
            }
            ok
        });
        assert!(
            still_loads.is_some(),
            "no byte found that wasmtime does not check"
        );
        std::fs::File::open(&entry)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(
            std::fs::metadata(&entry).unwrap().modified().unwrap(),
            mtime
        );
        assert_eq!(
            std::fs::metadata(&entry).unwrap().len(),
            original.len() as u64
        );

        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Recompiled);
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Cache);
    }

    #[test]
    fn code_planted_with_a_matching_checksum_is_never_loaded() {
        let engine = Engine::default();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let cache = CompileCache::new(Some(dir.clone()));
        let (ours, theirs) = two_components();
        let src = tmp.path().join("c.wasm");
        std::fs::write(&src, &ours).unwrap();
        let (c, _) = cache.load(&engine, &src).unwrap();
        assert_eq!(exports(&engine, &c), 0);

        // Someone who can write the folder puts other compiled code under
        // the entry's name, with every checksum a checksum could have.
        let entry = entries(&dir).pop().unwrap();
        let planted = engine.precompile_component(&theirs).unwrap();
        std::fs::remove_file(&entry).unwrap();
        std::fs::write(&entry, &planted).unwrap();
        let sum = hex::encode(Sha256::digest(&planted));
        std::fs::write(entry.with_extension("cwasm.sha256"), &sum).unwrap();
        let stamp = Stamp::of(&entry).unwrap().0;
        std::fs::write(
            entry.with_extension("cwasm.seal"),
            format!("{sum}\n{stamp}\n{sum}\n"),
        )
        .unwrap();

        let (c, origin) = cache.load(&engine, &src).unwrap();
        assert_eq!(origin, Origin::Recompiled);
        assert_eq!(exports(&engine, &c), 0, "the planted code was loaded");
    }

    #[test]
    fn an_entry_others_may_write_is_refused_and_the_folder_and_key_are_private() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (engine, tmp, cache, src) = with_cache();
        let dir = tmp.path().join("cache");
        cache.load(&engine, &src).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let key = seal::key_path(&dir);
        assert!(
            !key.starts_with(&dir),
            "the key is outside the cache folder"
        );
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);

        let entry = entries(&dir).pop().unwrap();
        assert_eq!(std::fs::metadata(&entry).unwrap().mode() & 0o777, 0o600);
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Recompiled);
        assert_eq!(std::fs::metadata(&entry).unwrap().mode() & 0o777, 0o600);
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Cache);

        // A cache folder of another user is not used at all.
        if trust::current_uid() == 0 {
            std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
            assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Compiled);
        }
    }

    #[test]
    fn a_file_that_is_not_wasm_is_refused_before_any_hashing() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(Some(tmp.path().join("cache")));
        let src = tmp.path().join("m.wasm");
        std::fs::write(&src, b"#!/bin/sh\necho not wasm\n").unwrap();
        let e = cache
            .load(&Engine::default(), &src)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is not WebAssembly"), "{e}");
        assert!(!tmp.path().join("cache").exists(), "nothing was cached");
    }

    /// A core module without wit-bindgen's component type cannot be made
    /// into a component: the error says why and what to do.
    #[test]
    fn a_core_module_without_a_component_type_is_refused_with_the_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(Some(tmp.path().join("cache")));
        let src = tmp.path().join("m.wasm");
        std::fs::write(&src, wat::parse_str("(module)").unwrap()).unwrap();
        let e = format!("{:#}", cache.load(&Engine::default(), &src).err().unwrap());
        assert!(e.contains("without the `component-type` section"), "{e}");
    }

    /// A core module with the component type wit-bindgen embeds (made here
    /// with wit-component's dummy module for a world, as a guest built for
    /// wasm32-unknown-unknown carries it) loads as that component, from the
    /// cache on the second start.
    #[test]
    fn a_core_module_with_a_component_type_loads_as_a_component_and_is_cached() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(Some(tmp.path().join("cache")));
        let mut resolve = wit_parser::Resolve::default();
        let pkg = resolve
            .push_str(
                "w.wit",
                "package t:t; world w { import f: func(x: u32) -> u32; export g: func() -> string; }",
            )
            .unwrap();
        let world = resolve.select_world(&[pkg], Some("w")).unwrap();
        let mut module = wit_component::dummy_module(
            &resolve,
            world,
            wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
        );
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
        )
        .unwrap();
        let src = tmp.path().join("m.wasm");
        std::fs::write(&src, &module).unwrap();
        let engine = Engine::default();
        let (c, origin) = cache.load(&engine, &src).unwrap();
        assert_eq!(origin, Origin::Compiled);
        let names: Vec<String> = c
            .component_type()
            .exports(&engine)
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, ["g"]);
        assert_eq!(cache.load(&engine, &src).unwrap().1, Origin::Cache);
    }

    #[test]
    fn a_kept_component_is_reused_until_its_file_changes_or_it_is_let_go() {
        let (engine, tmp, _, src) = with_cache();
        let kept = Arc::new(KeptComponents::new(2).unwrap());
        // Each load of an app makes its own cache handle; the kept set is
        // the platform's.
        let cache =
            || CompileCache::new(Some(tmp.path().join("cache"))).keeping(Some(kept.clone()));
        assert_eq!(cache().load(&engine, &src).unwrap().1, Origin::Compiled);
        let again = cache();
        let (c, origin) = again.load(&engine, &src).unwrap();
        assert_eq!(origin, Origin::Kept);
        assert_eq!(exports(&engine, &c), 0);
        // The digest is known without reading the cache: what the response
        // cache keys by is the same as after a mapping.
        let digest = hex::encode(Sha256::digest(std::fs::read(&src).unwrap()));
        std::fs::remove_dir_all(tmp.path().join("cache")).unwrap();
        assert_eq!(again.identity(&src), digest.as_bytes());

        // Another engine never gets this engine's code.
        assert_eq!(
            cache().load(&Engine::default(), &src).unwrap().1,
            Origin::Compiled
        );

        // A changed file is mapped afresh, and its old code let go.
        std::fs::write(&src, two_components().1).unwrap();
        let (c, origin) = cache().load(&engine, &src).unwrap();
        assert_eq!((origin, exports(&engine, &c)), (Origin::Compiled, 1));
        assert_eq!(kept.len(), 1);
        assert_eq!(cache().load(&engine, &src).unwrap().1, Origin::Kept);

        // Bounded: a third file pushes out the least recently used.
        let (other, third) = (tmp.path().join("d.wasm"), tmp.path().join("e.wasm"));
        std::fs::write(
            &other,
            wat::parse_str("(component (import \"x\" (func)))").unwrap(),
        )
        .unwrap();
        std::fs::write(
            &third,
            wat::parse_str("(component (import \"y\" (func)))").unwrap(),
        )
        .unwrap();
        cache().load(&engine, &other).unwrap();
        cache().load(&engine, &third).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(cache().load(&engine, &src).unwrap().1, Origin::Cache);

        // An app version gone: what was under its folder goes with it.
        kept.forget_under(tmp.path());
        assert!(kept.is_empty());
        cache().load(&engine, &src).unwrap();
        assert_eq!(kept.clear(), 1);
        assert_eq!(cache().load(&engine, &src).unwrap().1, Origin::Cache);
    }
}
