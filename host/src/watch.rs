//! `nebula up --watch`: rebuilds a component when one of its watched sources
//! or one of its Spin dependencies' files changes and swaps it into the
//! running app ([`Host::swap_component`]), so requests in flight finish on
//! the old version and new ones get the new one, without restarting the
//! process. A failed build, or a build whose output
//! does not load, leaves the old version serving.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use notify::{Event, EventHandler, RecommendedWatcher, RecursiveMode, Watcher, WatcherKind};
use notify_debouncer_mini::{new_debouncer_opt, Config, DebounceEventResult, Debouncer};

use crate::host::Host;
use crate::model::Front;

/// Editors write a file in several steps (truncate, write, rename): changes
/// closer together than this are one change.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Folders a build or a toolchain writes into: a change there is never a
/// source change (and rebuilding on it could loop).
const IGNORED_DIRS: &[&str] = &["target", "node_modules", ".nebula", "__pycache__", ".git"];

/// Watches while it lives; dropping it stops watching.
pub struct Watching {
    _debouncer: Debouncer<ChangesOnly>,
}

/// The platform's watcher without access events: inotify reports every open
/// and read, and a build reads the sources it watches (the WIT above all), so
/// counting reads as changes would rebuild forever.
pub struct ChangesOnly(RecommendedWatcher);

impl Watcher for ChangesOnly {
    fn new<F: EventHandler>(mut handler: F, config: notify::Config) -> notify::Result<Self> {
        let inner = RecommendedWatcher::new(
            move |event: notify::Result<Event>| {
                if !is_read(&event) {
                    handler.handle_event(event);
                }
            },
            config,
        )?;
        Ok(ChangesOnly(inner))
    }
    fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, mode)
    }
    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }
    fn kind() -> WatcherKind {
        RecommendedWatcher::kind()
    }
}

/// An open, a read or a close after reading; closing a file written to is
/// kept as a change.
fn is_read(event: &notify::Result<Event>) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    matches!(event, Ok(e) if matches!(e.kind, EventKind::Access(k) if k != AccessKind::Close(AccessMode::Write)))
}

/// One component's watched paths, canonical so that event paths compare.
struct Watched {
    component: String,
    roots: Vec<PathBuf>,
    source: PathBuf,
}

impl Watched {
    fn is_changed_by(&self, path: &Path) -> bool {
        if path == self.source {
            return false;
        }
        self.roots.iter().any(|root| {
            path.strip_prefix(root).is_ok_and(|rest| {
                !rest
                    .components()
                    .any(|c| IGNORED_DIRS.contains(&c.as_os_str().to_string_lossy().as_ref()))
            })
        })
    }
}

/// Starts watching every component that has `build.watch` paths; changes
/// are rebuilt one component at a time on a thread of their own.
pub fn start(app: Arc<Host>) -> Result<Watching> {
    let mut watched = Vec::new();
    for c in app.model.components.values() {
        let Some(build) = &c.build else {
            tracing::warn!(component = %c.name, "not watched: it has no build command");
            continue;
        };
        let mut roots = Vec::new();
        for w in &build.watch {
            match w.canonicalize() {
                Ok(p) => roots.push(p),
                Err(e) => tracing::warn!(
                    component = %c.name,
                    "not watching {}: {e}; fix [components.{}.build] watch in {}",
                    w.display(),
                    c.name,
                    app.model.file.display()
                ),
            }
        }
        // A dependency's file changing changes the composed component:
        // watched like a source (if this build also writes it, one extra
        // round finds nothing to build and swaps in the same code).
        for d in &c.dependencies {
            match d.path.canonicalize() {
                Ok(p) => roots.push(p),
                Err(e) => tracing::warn!(
                    component = %c.name,
                    "not watching dependency {}: {e}",
                    d.path.display()
                ),
            }
        }
        if roots.is_empty() {
            tracing::warn!(component = %c.name, "not watched: [components.{}.build] has no existing watch paths", c.name);
            continue;
        }
        let source = c
            .source
            .parent()
            .and_then(|d| d.canonicalize().ok())
            .and_then(|d| Some(d.join(c.source.file_name()?)))
            .unwrap_or_else(|| c.source.clone());
        watched.push(Watched {
            component: c.name.clone(),
            roots,
            source,
        });
    }

    let (tx, rx) = channel();
    let mut debouncer =
        new_debouncer_opt::<_, ChangesOnly>(Config::default().with_timeout(DEBOUNCE), tx)
            .context("cannot start watching files")?;
    // Folders are watched recursively; a single file through its folder, as
    // editors that save by renaming a new file over it end a watch on the file.
    let mut recursive = BTreeSet::new();
    let mut flat = BTreeSet::new();
    for root in watched.iter().flat_map(|w| &w.roots) {
        if root.is_dir() {
            recursive.insert(root.clone());
        } else if let Some(dir) = root.parent() {
            flat.insert(dir.to_path_buf());
        }
    }
    flat.retain(|d| !recursive.contains(d));
    let modes = recursive
        .iter()
        .map(|p| (p, RecursiveMode::Recursive))
        .chain(flat.iter().map(|p| (p, RecursiveMode::NonRecursive)));
    for (path, mode) in modes {
        debouncer
            .watcher()
            .watch(path, mode)
            .with_context(|| format!("cannot watch {}", path.display()))?;
    }
    let names: Vec<&str> = watched.iter().map(|w| w.component.as_str()).collect();
    tracing::info!("watching the sources of: {}", names.join(", "));

    std::thread::Builder::new()
        .name("nebula-watch".into())
        .spawn(move || rebuild_loop(&app, &watched, rx))
        .context("cannot start the watch thread")?;
    Ok(Watching {
        _debouncer: debouncer,
    })
}

fn rebuild_loop(app: &Host, watched: &[Watched], rx: Receiver<DebounceEventResult>) {
    while let Ok(first) = rx.recv() {
        // Everything that changed while the previous build ran is one round,
        // and so is whatever follows within the debounce window: one save
        // (truncate, then write) can reach us as two batches a debouncer
        // tick apart, and building between them would build twice.
        let mut batches = vec![first];
        while let Ok(more) = rx.recv_timeout(DEBOUNCE) {
            batches.push(more);
        }
        let mut changed = BTreeSet::new();
        for batch in batches {
            match batch {
                Ok(events) => {
                    for e in events {
                        for w in watched.iter().filter(|w| w.is_changed_by(&e.path)) {
                            changed.insert(w.component.as_str());
                        }
                    }
                }
                Err(e) => tracing::warn!("file watching: {e}"),
            }
        }
        for name in changed {
            rebuild_and_swap(app, name);
        }
    }
}

fn rebuild_and_swap(app: &Host, name: &str) {
    tracing::info!(component = name, "sources changed: rebuilding");
    let started = Instant::now();
    let only = [name.to_string()];
    let built = match &app.model.front {
        Front::Pure(m) => crate::builder::build(m, &only, false),
        Front::Spin(m) => crate::builder::build_spin(m, &only, false),
    };
    if let Err(e) = built {
        tracing::error!(
            component = name,
            "rebuild failed, still serving the previous version (the build's output is above): {e:#}"
        );
        return;
    }
    match app.swap_component(name) {
        Ok(_) => tracing::info!(
            component = name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "rebuilt; new requests get the new version"
        ),
        Err(e) => tracing::error!(
            component = name,
            "rebuilt but cannot be loaded, still serving the previous version: {e:#}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_and_tool_folders_are_not_source_changes() {
        let w = Watched {
            component: "hello".into(),
            roots: vec![PathBuf::from("/app/hello/src"), PathBuf::from("/app/hello")],
            source: PathBuf::from("/app/hello/hello.wasm"),
        };
        assert!(w.is_changed_by(Path::new("/app/hello/src/lib.rs")));
        assert!(w.is_changed_by(Path::new("/app/hello/Cargo.toml")));
        assert!(!w.is_changed_by(Path::new("/app/hello/hello.wasm")));
        assert!(!w.is_changed_by(Path::new("/app/hello/target/release/deps/x.rlib")));
        assert!(!w.is_changed_by(Path::new("/app/hello/node_modules/a/b.js")));
        assert!(!w.is_changed_by(Path::new("/app/other/src/lib.rs")));
    }

    /// A dependency's file is a root of its own: a change to it counts even
    /// in a build's output folder, where it is usually written.
    #[test]
    fn a_dependency_file_in_a_target_folder_is_watched() {
        let w = Watched {
            component: "app".into(),
            roots: vec![
                PathBuf::from("/app/src"),
                PathBuf::from("/app/target/wasm32-wasip2/release/dep.wasm"),
            ],
            source: PathBuf::from("/app/target/wasm32-wasip2/release/app.wasm"),
        };
        assert!(w.is_changed_by(Path::new("/app/target/wasm32-wasip2/release/dep.wasm")));
        assert!(!w.is_changed_by(Path::new("/app/target/wasm32-wasip2/release/app.wasm")));
        assert!(!w.is_changed_by(Path::new("/app/target/wasm32-wasip2/release/other.wasm")));
    }

    #[test]
    fn reading_a_source_is_not_a_change() {
        use notify::event::{AccessKind, AccessMode, DataChange, EventKind, ModifyKind};
        let read = Event::new(EventKind::Access(AccessKind::Open(AccessMode::Read)));
        let closed = Event::new(EventKind::Access(AccessKind::Close(AccessMode::Read)));
        let written = Event::new(EventKind::Modify(ModifyKind::Data(DataChange::Content)));
        assert!(is_read(&Ok(read)));
        assert!(is_read(&Ok(closed)));
        assert!(!is_read(&Ok(written)));
        let closed_after_writing =
            Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)));
        assert!(!is_read(&Ok(closed_after_writing)));
    }

    #[test]
    fn a_project_inside_a_folder_named_target_is_still_watched() {
        let w = Watched {
            component: "hello".into(),
            roots: vec![PathBuf::from("/target/app/hello")],
            source: PathBuf::from("/target/app/hello.wasm"),
        };
        assert!(w.is_changed_by(Path::new("/target/app/hello/lib.rs")));
    }
}
