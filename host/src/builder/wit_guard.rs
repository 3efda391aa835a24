//! jco rewrites the WIT it builds against when the bundled JavaScript uses a
//! Node.js built-in (`process`, `require`, a `node:` module): it adds
//! `import jco:node/…` to the world and writes a `deps/` folder beside it.
//! The build fails anyway, and the changed WIT then breaks every other
//! component built from it (componentize-py reports a missing
//! `wit_world.imports.types`), far from the cause. So a jco build's WIT is
//! kept as it was found: any change is undone and reported as the build's
//! error, naming what jco added.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use walkdir::WalkDir;

/// The files of a WIT file or folder as they were before a build.
pub struct WitGuard {
    root: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

/// What a build changed in its WIT, after it was put back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Undone {
    /// Files it wrote that were not there, relative to the WIT root.
    pub added_files: Vec<PathBuf>,
    /// Lines it added to files that were there.
    pub added_lines: Vec<String>,
    /// Files it changed or removed in other ways.
    pub changed_files: Vec<PathBuf>,
}

impl Undone {
    pub fn is_empty(&self) -> bool {
        self.added_files.is_empty() && self.added_lines.is_empty() && self.changed_files.is_empty()
    }
}

impl std::fmt::Display for Undone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.added_lines.is_empty() {
            parts.push(format!("added `{}`", self.added_lines.join("`, `")));
        }
        for (verb, files) in [
            ("wrote", &self.added_files),
            ("changed", &self.changed_files),
        ] {
            if !files.is_empty() {
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                parts.push(format!("{verb} {}", names.join(", ")));
            }
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

    /// Puts the WIT back as it was and says what had changed.
    pub fn restore(self) -> Result<Undone> {
        let mut undone = Undone::default();
        let mut now = Vec::new();
        let mut new_dirs = Vec::new();
        for entry in WalkDir::new(&self.root).contents_first(true) {
            let entry = entry.with_context(|| format!("reading {}", self.root.display()))?;
            let path = entry.path().to_path_buf();
            if entry.file_type().is_dir() {
                if path != self.root && !self.files.keys().any(|f| f.starts_with(&path)) {
                    new_dirs.push(path);
                }
            } else {
                now.push(path);
            }
        }
        for path in now {
            if self.files.contains_key(&path) {
                continue;
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("removing {}, which the build added", path.display()))?;
            undone.added_files.push(self.relative(&path));
        }
        // Deepest first (contents_first), so a folder is empty when removed.
        for dir in new_dirs {
            std::fs::remove_dir(&dir)
                .with_context(|| format!("removing {}, which the build added", dir.display()))?;
        }
        for (path, before) in &self.files {
            let after = std::fs::read(path).ok();
            if after.as_deref() == Some(before.as_slice()) {
                continue;
            }
            std::fs::write(path, before)
                .with_context(|| format!("putting back {}", path.display()))?;
            match after.as_deref().and_then(|a| added_lines(before, a)) {
                Some(lines) => undone.added_lines.extend(lines),
                None => undone.changed_files.push(self.relative(path)),
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
        assert!(undone.changed_files.is_empty());
        assert_eq!(
            undone.to_string(),
            "added `import jco:node/tty@0.1.0;`; wrote deps/jco-node-0.1.0/tty.wit"
        );
    }

    #[test]
    fn an_untouched_wit_is_nothing_to_undo_and_other_changes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let wit = dir.path().join("w.wit");
        std::fs::write(&wit, "world w {\n  export f: func();\n}\n").unwrap();
        let guard = WitGuard::before("jco componentize a.js --wit=w.wit", dir.path()).unwrap();
        assert!(guard.restore().unwrap().is_empty());

        let guard = WitGuard::before("jco componentize a.js --wit=w.wit", dir.path()).unwrap();
        std::fs::write(&wit, "world w {}\n").unwrap();
        let undone = guard.restore().unwrap();
        assert_eq!(undone.changed_files, [PathBuf::from("w.wit")]);
        assert_eq!(
            std::fs::read_to_string(&wit).unwrap(),
            "world w {\n  export f: func();\n}\n"
        );
    }
}
