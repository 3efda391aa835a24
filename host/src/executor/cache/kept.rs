//! Components kept mapped after the app that used them unloads. Mapping a
//! compile-cache entry (finding its digest, checking its seal, wasmtime's
//! deserialising and registering the code) was the largest part of a
//! platform app's first request after an unload: 0.2-0.3 ms of 0.5-0.9
//! (benches/RESULTS.md, issue 16, session 17). A platform keeps the most
//! recently used ones, a bounded number, and lets them all go once nothing
//! has been loaded for a while, so an idle node still gives its memory back.
//!
//! A kept component is found by its source's path and stamp (inode, size,
//! modification and change times): a source that changed is mapped afresh,
//! as the compile cache itself would. Paths are per app version, so one
//! tenant's request never reaches another tenant's code through here.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmtime::component::Component;
use wasmtime::Engine;

pub struct KeptComponents {
    kept: Mutex<lru::LruCache<(PathBuf, String), Kept>>,
}

impl std::fmt::Debug for KeptComponents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeptComponents({})", self.len())
    }
}

struct Kept {
    engine: Engine,
    component: Component,
    digest: String,
}

impl KeptComponents {
    /// At most `capacity` components kept; `None` when it is 0 (keep none).
    pub fn new(capacity: usize) -> Option<KeptComponents> {
        Some(KeptComponents {
            kept: Mutex::new(lru::LruCache::new(NonZeroUsize::new(capacity)?)),
        })
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, lru::LruCache<(PathBuf, String), Kept>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The component mapped from `path` when it had `stamp`, for `engine`,
    /// with its source's digest.
    pub(super) fn get(
        &self,
        engine: &Engine,
        path: &Path,
        stamp: &str,
    ) -> Option<(Component, String)> {
        let mut kept = self.kept();
        let k = kept.get(&(path.to_path_buf(), stamp.to_string()))?;
        Engine::same(&k.engine, engine).then(|| (k.component.clone(), k.digest.clone()))
    }

    pub(super) fn put(
        &self,
        engine: &Engine,
        path: &Path,
        stamp: &str,
        component: &Component,
        digest: &str,
    ) {
        let mut kept = self.kept();
        // An older stamp of the same file is never asked for again.
        pop_where(&mut kept, |p, s| p == path && s != stamp);
        kept.put(
            (path.to_path_buf(), stamp.to_string()),
            Kept {
                engine: engine.clone(),
                component: component.clone(),
                digest: digest.to_string(),
            },
        );
    }

    /// Lets go of every component whose source is under `dir` (an app
    /// version deleted or replaced: nothing will ask for them again).
    pub fn forget_under(&self, dir: &Path) {
        pop_where(&mut self.kept(), |p, _| p.starts_with(dir));
    }

    /// Lets go of all of them; says how many there were.
    pub fn clear(&self) -> usize {
        let mut kept = self.kept();
        let n = kept.len();
        kept.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.kept().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lets go of every component whose (source path, stamp) matches.
fn pop_where(kept: &mut lru::LruCache<(PathBuf, String), Kept>, f: impl Fn(&Path, &str) -> bool) {
    let gone: Vec<_> = kept
        .iter()
        .filter(|((p, s), _)| f(p, s))
        .map(|(key, _)| key.clone())
        .collect();
    for key in gone {
        kept.pop(&key);
    }
}
