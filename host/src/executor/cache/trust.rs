//! What the compile cache may trust on disk. Cache entries are native code
//! that is mapped and run without being compiled again, so a file another
//! user could have written must never be loaded: the folder is private to
//! this user (0700), every file read from it must be a regular file owned by
//! this user that nobody else may write, and files are written through
//! exclusively created temporary names that never follow a link.
//!
//! With the folder private to this user, nobody else can replace a file
//! between the check and the load, so checking the path and then mapping it
//! by path is safe from other users (this user can do anything anyway).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The effective user, whose files the cache may trust.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates the cache folder (and missing parents) as 0700, or checks an
/// existing one: it must be a real folder (not a link) owned by this user;
/// if group or others may use it, that is taken away.
pub fn private_dir(dir: &Path) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the compile cache folder {}", dir.display()))?;
    }
    let m = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot read the compile cache folder {}", dir.display()))?;
    if !m.is_dir() {
        bail!(
            "the compile cache {} is not a folder (a link or a file); remove it or pass --cache-dir",
            dir.display()
        );
    }
    if m.uid() != current_uid() {
        bail!(
            "the compile cache {} belongs to uid {}, not to this user (uid {}); it cannot be trusted: remove it or pass --cache-dir",
            dir.display(),
            m.uid(),
            current_uid()
        );
    }
    if m.mode() & 0o077 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{:o}", m.mode() & 0o777),
            "the compile cache was open to other users; made it 0700"
        );
        std::fs::set_permissions(dir, Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (chmod 700)", dir.display()))?;
    }
    Ok(())
}

/// Why a file in the cache must not be used, if it must not.
pub fn untrusted(path: &Path) -> Option<String> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot read it: {e}")),
    };
    if !m.file_type().is_file() {
        return Some("it is not a regular file (a link?)".into());
    }
    if m.uid() != current_uid() {
        return Some(format!(
            "it belongs to uid {}, not to this user (uid {})",
            m.uid(),
            current_uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Some(format!("others may write it (mode {:o})", m.mode() & 0o777));
    }
    None
}

/// Reads a small file of the cache, if it is one the cache may trust.
pub fn read_trusted(path: &Path) -> Option<Vec<u8>> {
    if untrusted(path).is_some() {
        return None;
    }
    std::fs::read(path).ok()
}

/// Writes `bytes` to `dest` through a temporary file created exclusively
/// (never an existing file, never through a link) with mode 0600, then
/// renamed over `dest`: a crash leaves the old file or the new one, never a
/// torn one, and a link planted at either name is replaced, not followed.
pub fn write_private(dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_name(dest);
    let mut f = create_exclusive(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.flush());
    drop(f);
    if let Err(e) = written.map_err(anyhow::Error::from).and_then(|()| {
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("cannot rename into {}", dest.display()))
    }) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// A new file, 0600, that did not exist (O_EXCL) and is not reached through
/// a link (O_NOFOLLOW).
pub fn create_exclusive(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// A name beside `dest` nobody can guess in advance.
fn temp_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    dest.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_cache_folder_is_private_and_an_open_one_is_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/cache");
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");

        std::fs::set_permissions(&dir, Permissions::from_mode(0o777)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_link_in_place_of_the_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("cache");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("not a folder"), "{e}");
    }

    #[test]
    fn files_others_may_write_or_links_are_untrusted() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("entry");
        write_private(&f, b"x").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(untrusted(&f), None);

        std::fs::set_permissions(&f, Permissions::from_mode(0o666)).unwrap();
        assert!(untrusted(&f).unwrap().contains("others may write"));
        assert_eq!(read_trusted(&f), None);

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(untrusted(&link).unwrap().contains("not a regular file"));
    }

    #[test]
    fn a_file_of_another_user_is_untrusted() {
        if current_uid() != 0 {
            // Only root can give a file away; CI runs as root.
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("entry");
        write_private(&f, b"x").unwrap();
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        assert!(untrusted(&f).unwrap().contains("uid 65534"));
    }

    #[test]
    fn writing_replaces_a_planted_link_instead_of_following_it() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let dest = tmp.path().join("entry");
        std::os::unix::fs::symlink(&victim, &dest).unwrap();
        write_private(&dest, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert!(!std::fs::symlink_metadata(&dest)
            .unwrap()
            .file_type()
            .is_symlink());
        // An existing name is never opened for writing.
        assert!(create_exclusive(&victim).is_err());
    }
}
