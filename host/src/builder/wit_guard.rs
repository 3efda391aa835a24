//! jco rewrites the WIT it builds against when the bundled JavaScript uses a
//! Node.js built-in (`process`, `require`, a `node:` module): it adds
//! `import jco:node/…` to the world and writes a `deps/` folder beside it.
//! The build fails anyway, and the changed WIT then breaks every other
//! component built from it (componentize-py reports a missing
//! `wit_world.imports.types`), far from the cause. So what jco adds to a
//! build's WIT is undone and reported as the build's error. Only that: lines
//! importing `jco:` and files under `deps/jco-*`; any other change (someone
//! editing the WIT while `nebula up --watch` builds) is left as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use walkdir::WalkDir;

/// The files of a WIT file or folder as they were before a build.
pub struct WitGuard {
    root: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

/// What jco added to the WIT, after it was taken out again.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Undone {
    /// Files it wrote under `deps/jco-*`, relative to the WIT root.
    pub added_files: Vec<PathBuf>,
    /// `jco:` imports it added to files that were there.
    pub added_lines: Vec<String>,
}

impl Undone {
    pub fn is_empty(&self) -> bool {
        self.added_files.is_empty() && self.added_lines.is_empty()
    }
}

impl std::fmt::Display for Undone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.added_lines.is_empty() {
            parts.push(format!("added `{}`", self.added_lines.join("`, `")));
        }
        if !self.added_files.is_empty() {
            let names: Vec<String> = self
                .added_files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            parts.push(format!("wrote {}", names.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

/// The WIT path a jco command builds against: the word after `-w`/`--wit`,
/// or `--wit=PATH`.
pub fn wit_argument(command: &str) -> Option<&str> {
    let mut words = command.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-w" || w == "--wit" {
            return words.next();
        }
        if let Some(path) = w.strip_prefix("--wit=") {
            return Some(path);
        }
    }
    None
}

impl WitGuard {
    /// Remembers the WIT the command names (relative to `workdir`); `None` when
    /// it names none or it cannot be read (the build will say why).
    pub fn before(command: &str, workdir: &Path) -> Option<WitGuard> {
        let root = workdir.join(wit_argument(command)?);
        let mut files = BTreeMap::new();
        for entry in WalkDir::new(&root).sort_by_file_name() {
            let entry = entry.ok()?;
            if entry.file_type().is_file() {
                files.insert(
                    entry.path().to_path_buf(),
                    std::fs::read(entry.path()).ok()?,
                );
            }
        }
        Some(WitGuard { root, files })
    }

    /// Takes out what jco added and says what it was.
    pub fn restore(self) -> Result<Undone> {
        let mut undone = Undone::default();
        let mut added_dirs = Vec::new();
        for entry in WalkDir::new(&self.root).contents_first(true) {
            let entry = entry.with_context(|| format!("reading {}", self.root.display()))?;
            let path = entry.path();
            let rel = self.relative(path);
            if !is_jco_dependency(&rel) || self.files.contains_key(path) {
                continue;
            }
            if entry.file_type().is_dir() {
                added_dirs.push(path.to_path_buf());
            } else {
                std::fs::remove_file(path)
                    .with_context(|| format!("removing {}, which jco added", path.display()))?;
                undone.added_files.push(rel);
            }
        }
        // Deepest first (contents_first); a folder that also holds something
        // else stays.
        for dir in added_dirs {
            let _ = std::fs::remove_dir(&dir);
        }
        let deps = self.root.join("deps");
        if !self.files.keys().any(|f| f.starts_with(&deps)) {
            let _ = std::fs::remove_dir(&deps);
        }
        for (path, before) in &self.files {
            let Ok(after) = std::fs::read(path) else {
                continue;
            };
            match added_lines(before, &after) {
                Some(lines) if !lines.is_empty() && lines.iter().all(|l| l.contains("jco:")) => {
                    std::fs::write(path, before)
                        .with_context(|| format!("putting back {}", path.display()))?;
                    undone.added_lines.extend(lines);
                }
                _ => {}
            }
        }
        Ok(undone)
    }

    fn relative(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.root) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
            // The WIT is this one file.
            _ => path
                .file_name()
                .map_or_else(|| path.to_path_buf(), PathBuf::from),
        }
    }
}

/// Whether `rel` (relative to the WIT root) is in a dependency folder jco
/// writes: `deps/jco-…`.
fn is_jco_dependency(rel: &Path) -> bool {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    parts.next().as_deref() == Some("deps") && parts.next().is_some_and(|d| d.starts_with("jco-"))
}

/// The lines `after` adds to `before`, when that is all that changed (comments
/// left out); `None` otherwise.
fn added_lines(before: &[u8], after: &[u8]) -> Option<Vec<String>> {
    let before = std::str::from_utf8(before).ok()?;
    let after = std::str::from_utf8(after).ok()?;
    let mut old = before.lines().peekable();
    let mut added = Vec::new();
    for line in after.lines() {
        if old.peek() == Some(&line) {
            old.next();
        } else {
            added.push(line.trim());
        }
    }
    if old.next().is_some() {
        return None;
    }
    Some(
        added
            .into_iter()
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wit_argument_is_found_in_each_spelling() {
        for (command, want) in [
            ("jco componentize app.js -w ../wit -n pure", Some("../wit")),
            (
                "jco componentize app.js --wit ../wit/pure -n pure",
                Some("../wit/pure"),
            ),
            ("jco componentize app.js --wit=wit.wit", Some("wit.wit")),
            ("jco componentize app.js -n pure", None),
        ] {
            assert_eq!(wit_argument(command), want, "{command}");
        }
    }

    /// What jco 1.34 does to a world when the bundle uses `process`.
    fn as_jco_does(wit: &Path) {
        let file = wit.join("function.wit");
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text.replace(
            "world pure {\n",
            "world pure {\n  // Added by Jco because bundled source imports node:tty.\n  import jco:node/tty@0.1.0;\n",
        );
        std::fs::write(&file, text).unwrap();
        let deps = wit.join("deps/jco-node-0.1.0");
        std::fs::create_dir_all(&deps).unwrap();
        std::fs::write(deps.join("tty.wit"), "package jco:node@0.1.0;\n").unwrap();
    }

    #[test]
    fn what_jco_adds_is_undone_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let wit = dir.path().join("wit");
        std::fs::create_dir(&wit).unwrap();
        let original = "package nebula:function;\n\nworld pure {\n  export handle: func();\n}\n";
        std::fs::write(wit.join("function.wit"), original).unwrap();

        let guard = WitGuard::before("jco componentize app.js -w wit -n pure", dir.path()).unwrap();
        as_jco_does(&wit);
        let undone = guard.restore().unwrap();

        assert_eq!(
            std::fs::read_to_string(wit.join("function.wit")).unwrap(),
            original
        );
        assert!(!wit.join("deps").exists());
        assert_eq!(undone.added_lines, ["import jco:node/tty@0.1.0;"]);
        assert_eq!(
            undone.added_files,
            [PathBuf::from("deps/jco-node-0.1.0/tty.wit")]
        );
        assert_eq!(
            undone.to_string(),
            "added `import jco:node/tty@0.1.0;`; wrote deps/jco-node-0.1.0/tty.wit"
        );
    }

    #[test]
    fn an_untouched_wit_is_nothing_to_undo_and_other_edits_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let wit = dir.path().join("w.wit");
        std::fs::write(&wit, "world w {\n  export f: func();\n}\n").unwrap();
        let guard = WitGuard::before("jco componentize a.js --wit=w.wit", dir.path()).unwrap();
        assert!(guard.restore().unwrap().is_empty());

        // Someone edits the WIT while a build runs: not jco's doing, kept.
        let guard = WitGuard::before("jco componentize a.js --wit=w.wit", dir.path()).unwrap();
        let edited = "world w {\n  import g: func();\n  export f: func();\n}\n";
        std::fs::write(&wit, edited).unwrap();
        assert!(guard.restore().unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&wit).unwrap(), edited);
    }

    #[test]
    fn only_jco_dependencies_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let wit = dir.path().join("wit");
        std::fs::create_dir_all(wit.join("deps/cli")).unwrap();
        std::fs::write(wit.join("world.wit"), "world w {}\n").unwrap();
        let guard = WitGuard::before("jco componentize a.js -w wit", dir.path()).unwrap();
        std::fs::write(wit.join("deps/cli/new.wit"), "package a:b;\n").unwrap();
        std::fs::create_dir_all(wit.join("deps/jco-node-0.1.0")).unwrap();
        std::fs::write(
            wit.join("deps/jco-node-0.1.0/tty.wit"),
            "package jco:node;\n",
        )
        .unwrap();
        let undone = guard.restore().unwrap();
        assert_eq!(
            undone.added_files,
            [PathBuf::from("deps/jco-node-0.1.0/tty.wit")]
        );
        assert!(!wit.join("deps/jco-node-0.1.0").exists());
        assert!(wit.join("deps/cli/new.wit").exists());
    }
}
