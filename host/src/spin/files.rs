//! Spin's `files` and `exclude_files`: what a component may read.
//!
//! Spin copies the files a component's `files` name into a folder of their
//! own and mounts that folder at `/`, so a guest sees exactly what the
//! patterns matched and nothing else of the app's folder. Nebula does the
//! same: at load it builds, per component, a private read-only tree holding
//! exactly the matched files (hard links where the file system allows, copies
//! otherwise) and preopens that tree, never the app's folder itself.
//!
//! - `"pattern"`: a path or a glob relative to the manifest's folder; each
//!   file it names or matches appears at the same relative path under `/`
//!   (a folder brings everything under it);
//! - `{ source, destination }`: a file at `destination`, or a folder's files
//!   under `destination`;
//! - `exclude_files`: globs relative to the manifest's folder; a matched file
//!   they match is left out (an exact file path is never excluded, as in Spin).
//!
//! Patterns follow the `glob` crate, as Spin's do. The host's own state
//! (the key-value and SQLite files, the compile cache, these trees) is never
//! mounted, whatever a pattern matches: it belongs to the host, and the
//! stores are granted through `key_value_stores` / `sqlite_databases` only.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::manifest::{FileMount, SpinComponent};
use super::runtime_config::Backing;

/// The trees' folder: `.nebula-files-PID-RANDOM` in the data folder.
const TREE_PREFIX: &str = ".nebula-files-";

/// Removes the trees a process that no longer runs left behind (killed
/// before it could remove its own).
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TREE_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The private trees of an app's components; removed when dropped.
pub struct MountedFiles {
    root: Option<tempfile::TempDir>,
    trees: BTreeMap<String, PathBuf>,
}

impl MountedFiles {
    /// Builds one tree per component that has `files`, in a fresh folder
    /// under `parent`. Files under any of `hidden` are never mounted.
    pub fn build<'a>(
        manifest_file: &Path,
        base_dir: &Path,
        components: impl IntoIterator<Item = &'a SpinComponent>,
        parent: &Path,
        hidden: &[PathBuf],
    ) -> Result<MountedFiles> {
        let mut out = MountedFiles {
            root: None,
            trees: BTreeMap::new(),
        };
        let hidden: Vec<PathBuf> = hidden.iter().map(|p| resolved(p)).collect();
        // Absolute, so that what a glob gives back always has it as prefix.
        let base_dir = &std::path::absolute(base_dir)
            .with_context(|| format!("cannot resolve {}", base_dir.display()))?;
        for c in components {
            if c.files.is_empty() {
                continue;
            }
            if out.root.is_none() {
                sweep_stale(parent);
                out.root = Some(
                    tempfile::Builder::new()
                        .prefix(&format!("{TREE_PREFIX}{}-", std::process::id()))
                        .tempdir_in(parent)
                        .with_context(|| {
                            format!("cannot create a folder for `files` in {}", parent.display())
                        })?,
                );
            }
            let root = out.root.as_ref().map(|r| r.path()).unwrap_or(parent);
            let tree = root.join(&c.id);
            std::fs::create_dir(&tree)
                .with_context(|| format!("cannot create {}", tree.display()))?;
            let placed = matched_files(base_dir, c).with_context(|| {
                format!("{}: component.{}.files", manifest_file.display(), c.id)
            })?;
            let mut skipped = 0;
            for (src, dest) in placed {
                if hidden.iter().any(|h| resolved(&src).starts_with(h)) {
                    skipped += 1;
                    continue;
                }
                place(&src, &tree.join(&dest)).with_context(|| {
                    format!(
                        "component.{}.files: cannot mount {} at /{}",
                        c.id,
                        src.display(),
                        dest.display()
                    )
                })?;
            }
            if skipped > 0 {
                tracing::warn!(
                    component = %c.id,
                    "{skipped} file(s) matched by `files` are the host's own (key-value or SQLite stores, compile cache) and are not mounted"
                );
            }
            out.trees.insert(c.id.clone(), tree);
        }
        Ok(out)
    }

    /// The folder to preopen at `/` for component `id`, if it has `files`.
    pub fn tree(&self, id: &str) -> Option<&Path> {
        self.trees.get(id).map(PathBuf::as_path)
    }
}

impl std::fmt::Debug for MountedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.trees.iter()).finish()
    }
}

/// What belongs to the host and never to a guest's `files`: the data
/// folder, the compile cache and every store file with its SQLite
/// companions (journal, WAL, shared memory).
pub fn host_state(backing: &Backing, data_dir: &Path, cache_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut out = vec![data_dir.to_path_buf()];
    out.extend(cache_dir.map(Path::to_path_buf));
    let kv_files = backing.key_value.values().filter_map(|b| match b {
        nebula_spin_interfaces::KvBacking::Sqlite(path) => Some(path),
        _ => None,
    });
    for db in kv_files.chain(backing.sqlite.values()) {
        out.push(db.clone());
        for suffix in ["-journal", "-wal", "-shm"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            out.push(name.into());
        }
    }
    out
}

/// Checks a `files` pattern, `source` or `exclude_files` entry: relative to
/// the manifest's folder and never leaving it.
pub fn check_relative(what: &str, path: &str) -> Result<()> {
    let p = Path::new(path);
    if p.is_absolute() {
        bail!("{what} {path:?} must be relative to the manifest's folder");
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        bail!("{what} {path:?} must stay inside the manifest's folder ('..' is not allowed)");
    }
    Ok(())
}

/// Checks a `destination`: an absolute guest path that `..` cannot leave.
pub fn check_destination(path: &str) -> Result<()> {
    if !path.starts_with('/') {
        bail!("destination {path:?} must be an absolute guest path such as \"/assets\"");
    }
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        bail!("destination {path:?} must not contain '..'");
    }
    Ok(())
}

/// Checks an `exclude_files` glob.
pub fn check_exclude(pattern: &str) -> Result<()> {
    check_relative("exclude_files entry", pattern)?;
    glob::Pattern::new(pattern).with_context(|| format!("{pattern:?} is not a valid glob"))?;
    Ok(())
}

/// Every file `c` mounts: (its path on the host, its path under the tree).
fn matched_files(base: &Path, c: &SpinComponent) -> Result<Vec<(PathBuf, PathBuf)>> {
    let excludes = c
        .exclude_files
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("exclude_files: {p:?}")))
        .collect::<Result<Vec<_>>>()?;
    let excluded =
        |rel: &Path| -> bool { excludes.iter().any(|pattern| pattern.matches_path(rel)) };
    let mut out = Vec::new();
    for mount in &c.files {
        match mount {
            FileMount::Pattern(pattern) => {
                let path = base.join(pattern);
                if path.is_file() {
                    out.push((path, PathBuf::from(pattern)));
                } else if path.is_dir() {
                    for rel in files_under(base, &path)? {
                        if !excluded(&rel) {
                            out.push((base.join(&rel), rel));
                        }
                    }
                } else if glob::Pattern::escape(pattern) != *pattern {
                    for rel in glob_files(base, pattern)? {
                        if !excluded(&rel) {
                            out.push((base.join(&rel), rel));
                        }
                    }
                } else {
                    bail!("{pattern:?} does not exist and is not a glob pattern");
                }
            }
            FileMount::Placement {
                source,
                destination,
            } => {
                let path = base.join(source);
                let dest = PathBuf::from(destination.trim_start_matches('/'));
                if path.is_file() {
                    if dest.as_os_str().is_empty() {
                        bail!("destination {destination:?} names a folder; a file's destination must name the file");
                    }
                    out.push((path, dest));
                } else if path.is_dir() {
                    for rel in files_under(base, &path)? {
                        if excluded(&rel) {
                            continue;
                        }
                        let prefix: PathBuf = Path::new(source)
                            .components()
                            .filter(|c| !matches!(c, Component::CurDir))
                            .collect();
                        let inside = rel.strip_prefix(&prefix).unwrap_or(&rel).to_path_buf();
                        out.push((base.join(&rel), dest.join(inside)));
                    }
                } else {
                    bail!("source {source:?} does not exist in {}", base.display());
                }
            }
        }
    }
    Ok(out)
}

/// The files under `dir` (following links, as Spin's copy does), relative
/// to `base`.
fn files_under(base: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_type().is_file() {
            out.push(relative(base, entry.path())?);
        }
    }
    Ok(out)
}

/// The files a glob relative to `base` matches, relative to `base`.
fn glob_files(base: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let base_text = base
        .to_str()
        .with_context(|| format!("{} is not UTF-8", base.display()))?;
    let full = format!("{}/{pattern}", glob::Pattern::escape(base_text));
    let mut out = Vec::new();
    for path in glob::glob(&full).with_context(|| format!("{pattern:?} is not a valid glob"))? {
        let path = path.with_context(|| format!("cannot read what {pattern:?} matches"))?;
        if path.is_file() {
            out.push(relative(base, &path)?);
        }
    }
    Ok(out)
}

fn relative(base: &Path, path: &Path) -> Result<PathBuf> {
    Ok(path
        .strip_prefix(base)
        .with_context(|| {
            format!(
                "{} is outside the application folder {}",
                path.display(),
                base.display()
            )
        })?
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect())
}

/// Where a path really is (links followed), or the path made absolute if it
/// does not exist yet.
fn resolved(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// Puts `src`'s content at `dest`: a hard link to the file itself (links
/// resolved first, so the tree never holds a symlink), else a copy. A later
/// mount of the same destination replaces an earlier one, as in Spin.
fn place(src: &Path, dest: &Path) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if dest.symlink_metadata().is_ok() {
        std::fs::remove_file(dest)?;
    }
    let real = src.canonicalize()?;
    if std::fs::hard_link(&real, dest).is_err() {
        std::fs::copy(&real, dest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(files: Vec<FileMount>, exclude: &[&str]) -> SpinComponent {
        SpinComponent {
            id: "c".into(),
            source: "c.wasm".into(),
            files,
            exclude_files: exclude.iter().map(|s| s.to_string()).collect(),
            environment: Default::default(),
            variables: Default::default(),
            key_value_stores: vec![],
            sqlite_databases: vec![],
            allowed_outbound_hosts: vec![],
            build: None,
            limits: Default::default(),
            cross_site: Default::default(),
            dependencies: vec![],
        }
    }

    fn app() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "spin.toml",
            "index.html",
            "about.html",
            "notes.txt",
            "docs/guide.html",
            "docs/drafts/secret.html",
            ".spin/sqlite_key_value.db",
        ] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        d
    }

    fn tree_of(app: &Path, c: &SpinComponent) -> Vec<String> {
        let parent = tempfile::tempdir().unwrap();
        let m = MountedFiles::build(
            &app.join("spin.toml"),
            app,
            [c],
            parent.path(),
            &[app.join(".spin")],
        )
        .unwrap();
        let tree = m.tree("c").unwrap();
        let mut out: Vec<String> = walkdir::WalkDir::new(tree)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| format!("/{}", e.path().strip_prefix(tree).unwrap().display()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_glob_mounts_exactly_what_it_matches() {
        let a = app();
        let c = component(vec![FileMount::Pattern("*.html".into())], &[]);
        assert_eq!(tree_of(a.path(), &c), ["/about.html", "/index.html"]);
        let c = component(vec![FileMount::Pattern("**/*.html".into())], &[]);
        assert_eq!(
            tree_of(a.path(), &c),
            [
                "/about.html",
                "/docs/drafts/secret.html",
                "/docs/guide.html",
                "/index.html"
            ]
        );
    }

    #[test]
    fn an_exact_path_mounts_that_file_or_folder_only() {
        let a = app();
        let c = component(vec![FileMount::Pattern("notes.txt".into())], &[]);
        assert_eq!(tree_of(a.path(), &c), ["/notes.txt"]);
        let c = component(vec![FileMount::Pattern("docs".into())], &["docs/drafts/*"]);
        assert_eq!(tree_of(a.path(), &c), ["/docs/guide.html"]);
    }

    #[test]
    fn a_placement_mounts_its_source_at_its_destination() {
        let a = app();
        let c = component(
            vec![FileMount::Placement {
                source: "docs".into(),
                destination: "/manual".into(),
            }],
            &[],
        );
        assert_eq!(
            tree_of(a.path(), &c),
            ["/manual/drafts/secret.html", "/manual/guide.html"]
        );
        let c = component(
            vec![FileMount::Placement {
                source: "notes.txt".into(),
                destination: "/etc/notes".into(),
            }],
            &[],
        );
        assert_eq!(tree_of(a.path(), &c), ["/etc/notes"]);
        // The content is the file's.
        let parent = tempfile::tempdir().unwrap();
        let m = MountedFiles::build(Path::new("spin.toml"), a.path(), [&c], parent.path(), &[])
            .unwrap();
        let got = std::fs::read_to_string(m.tree("c").unwrap().join("etc/notes")).unwrap();
        assert_eq!(got, "notes.txt");
    }

    #[test]
    fn exclude_files_and_the_hosts_own_state_are_left_out() {
        let a = app();
        let c = component(
            vec![FileMount::Pattern("**/*".into())],
            &["docs/drafts/*", "*.txt"],
        );
        assert_eq!(
            tree_of(a.path(), &c),
            [
                "/about.html",
                "/docs/guide.html",
                "/index.html",
                "/spin.toml"
            ],
            ".spin/ is the host's and never mounted"
        );
    }

    #[test]
    fn paths_that_leave_the_app_folder_are_refused() {
        assert!(check_relative("files entry", "../etc/*").is_err());
        assert!(check_relative("files entry", "/etc/passwd").is_err());
        assert!(check_destination("assets").is_err());
        assert!(check_destination("/a/../../b").is_err());
        assert!(check_exclude("[").is_err());
        assert!(check_relative("files entry", "static/**/*.css").is_ok());
        assert!(check_destination("/").is_ok());
    }
}
