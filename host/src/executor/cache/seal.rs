//! Authenticates what the compile cache wrote. A checksum only catches
//! accidents: whoever can write an entry can write its checksum too. Every
//! entry (and every remembered source digest) is therefore sealed with an
//! HMAC-SHA256 under a key that lives outside the cache folder, readable by
//! this user only; an entry that does not carry a valid seal was not
//! compiled by this host and is never mapped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::trust;

type HmacSha256 = Hmac<Sha256>;

/// The cache's secret key.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// Where the key of the cache in `dir` is kept: beside the folder, not in
/// it, so that copying or sharing the folder never carries the key along.
pub fn key_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".key");
    dir.with_file_name(name)
}

impl SealKey {
    /// The key of the cache in `dir`, made (0600, 32 random bytes) on first
    /// use. A key others may read or write cannot keep anything secret.
    pub fn for_cache(dir: &Path) -> Result<SealKey> {
        let path = key_path(dir);
        if std::fs::symlink_metadata(&path).is_err() {
            let key: [u8; 32] = rand::random();
            match trust::create_exclusive(&path) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(hex::encode(key).as_bytes())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    return Ok(SealKey(key));
                }
                // Another process made it first: read theirs.
                Err(_) if path.exists() => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(why) = trust::untrusted(&path) {
            bail!(
                "the compile cache key {} cannot be trusted: {why}; remove it (the cache is then rebuilt) or pass --cache-dir",
                path.display()
            );
        }
        let mode = std::fs::metadata(&path)?.mode();
        if mode & 0o077 != 0 {
            bail!(
                "the compile cache key {} may be read by other users (mode {:o}); run `chmod 600 {}` or remove it",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        match hex::decode(text.trim()).ok() {
            Some(bytes) if bytes.len() == 32 => {
                let mut key = [0; 32];
                key.copy_from_slice(&bytes);
                Ok(SealKey(key))
            }
            _ => bail!(
                "the compile cache key {} is not 64 hex digits; remove it (the cache is then rebuilt)",
                path.display()
            ),
        }
    }

    #[cfg(test)]
    pub fn fixed(byte: u8) -> SealKey {
        SealKey([byte; 32])
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            // Length-prefixed, so that no two different lists of parts
            // produce the same input.
            m.update(&(p.len() as u64).to_le_bytes());
            m.update(p);
        }
        m
    }

    /// The seal of `parts`, in hex.
    pub fn seal(&self, parts: &[&[u8]]) -> String {
        hex::encode(self.mac(parts).finalize().into_bytes())
    }

    /// Whether `seal` (hex) is the seal of `parts`; compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], seal: &str) -> bool {
        match hex::decode(seal).ok() {
            Some(tag) => self.mac(parts).verify_slice(&tag).is_ok(),
            None => false,
        }
    }

    /// The seal of a whole file, read in pieces (entries are tens of MB).
    pub fn seal_file(&self, path: &Path) -> Result<String> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"entry");
        m.update(&len.to_le_bytes());
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            m.update(&buf[..n]);
        }
        Ok(hex::encode(m.finalize().into_bytes()))
    }

    /// The seal of bytes about to be written as an entry: the same as
    /// [`seal_file`](Self::seal_file) gives once they are on disk.
    pub fn seal_bytes(&self, bytes: &[u8]) -> String {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"entry");
        m.update(&(bytes.len() as u64).to_le_bytes());
        m.update(bytes);
        hex::encode(m.finalize().into_bytes())
    }
}

/// Whether two seals are equal, in time that does not depend on where
/// they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_private_beside_the_folder_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let k1 = SealKey::for_cache(&dir).unwrap();
        let path = tmp.path().join("cache.key");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let k2 = SealKey::for_cache(&dir).unwrap();
        assert_eq!(k1.0, k2.0);
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        SealKey::for_cache(&dir).unwrap();
        let path = key_path(&dir);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SealKey::for_cache(&dir).unwrap_err().to_string();
        assert!(e.contains("may be read by other users"), "{e}");
    }

    #[test]
    fn seals_depend_on_the_key_and_on_every_part() {
        let (a, b) = (SealKey::fixed(1), SealKey::fixed(2));
        let s = a.seal(&[b"x", b"y"]);
        assert!(a.verify(&[b"x", b"y"], &s));
        assert!(!b.verify(&[b"x", b"y"], &s));
        assert!(!a.verify(&[b"xy"], &s));
        assert!(!a.verify(&[b"x", b"z"], &s));
        assert!(!a.verify(&[b"x", b"y"], "00"));
        assert_eq!(a.seal_bytes(b"code"), {
            let tmp = tempfile::tempdir().unwrap();
            let f = tmp.path().join("e");
            std::fs::write(&f, b"code").unwrap();
            a.seal_file(&f).unwrap()
        });
    }
}
