//! The apps a platform serves, on disk: `DIR/apps/HOST/app.json` says whose
//! app it is and which of its versions (`DIR/apps/HOST/vN/`, each an
//! unpacked bundle) is current. Each change writes a new `app.json` and
//! renames it over the old one, so a crash leaves either version whole.
//! An app's data (`DIR/data/HOST/`) outlives its versions; its compiled
//! components live in its tenant's compile cache (`DIR/cache/TENANT/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::bundle::{self, UnpackLimits};

/// How many versions of an app are kept to roll back to.
const KEPT_VERSIONS: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppRecord {
    pub host: String,
    pub tenant: String,
    /// Versions on disk, oldest first; the last is current.
    pub versions: Vec<u32>,
    /// When the current version was deployed (ms since the Unix epoch).
    pub deployed_ms: u64,
}

impl AppRecord {
    pub fn current(&self) -> u32 {
        *self.versions.last().expect("an app has a version")
    }
}

/// Why a change was refused: an HTTP status and what to tell the client.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for Refusal {
    fn from(e: anyhow::Error) -> Refusal {
        Refusal::new(500, format!("{e:#}"))
    }
}

pub struct Registry {
    dir: PathBuf,
    /// One change at a time; reads take a copy of the record.
    changes: Mutex<()>,
}

/// The paths of one version of an app.
pub struct Version {
    pub manifest: PathBuf,
    pub number: u32,
}

impl Registry {
    pub fn open(dir: &Path) -> Result<Registry> {
        std::fs::create_dir_all(dir.join("apps"))
            .with_context(|| format!("cannot create {}", dir.join("apps").display()))?;
        Ok(Registry {
            dir: dir.to_path_buf(),
            changes: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn app_dir(&self, host: &str) -> PathBuf {
        self.dir.join("apps").join(host)
    }

    pub fn data_dir(&self, host: &str) -> PathBuf {
        self.dir.join("data").join(host)
    }

    pub fn cache_dir(&self, tenant: &str) -> PathBuf {
        self.dir.join("cache").join(tenant)
    }

    /// Every app on disk.
    pub fn all(&self) -> Result<BTreeMap<String, AppRecord>> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(self.dir.join("apps"))? {
            let entry = entry?;
            let file = entry.path().join("app.json");
            if !file.is_file() {
                continue;
            }
            let record: AppRecord = serde_json::from_slice(&std::fs::read(&file)?)
                .with_context(|| format!("{}: not an app record", file.display()))?;
            out.insert(record.host.clone(), record);
        }
        Ok(out)
    }

    pub fn get(&self, host: &str) -> Result<Option<AppRecord>> {
        let file = self.app_dir(host).join("app.json");
        match std::fs::read(&file) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("{}: not an app record", file.display())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
        }
    }

    /// The manifest of the current version of `record`'s app.
    pub fn version(&self, record: &AppRecord) -> Version {
        let number = record.current();
        let dir = self.app_dir(&record.host).join(format!("v{number}"));
        let manifest = bundle::MANIFEST_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .unwrap_or_else(|| dir.join(bundle::MANIFEST_NAMES[0]));
        Version { manifest, number }
    }

    /// Unpacks `bundle`, checks it as `nebula check` would, and makes it the
    /// current version of `host` for `tenant`. Nothing changes unless every
    /// step succeeds.
    pub fn deploy(
        &self,
        tenant: &str,
        host: &str,
        bundle: &[u8],
        limits: UnpackLimits,
    ) -> Result<AppRecord, Refusal> {
        valid_host(host).map_err(|m| Refusal::new(400, m))?;
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.get(host)?;
        if let Some(old) = &old {
            if old.tenant != tenant {
                return Err(Refusal::new(
                    409,
                    format!("host {host:?} is another tenant's app; choose another host name"),
                ));
            }
        }
        let app_dir = self.app_dir(host);
        let staging = app_dir.join(format!(".staging-{:016x}", rand::random::<u64>()));
        let result = self.stage(tenant, bundle, &staging, limits);
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            if old.is_none() {
                let _ = std::fs::remove_dir(&app_dir);
            }
            return Err(e);
        }
        let number = old
            .as_ref()
            .and_then(|o| o.versions.iter().max().copied())
            .unwrap_or(0)
            + 1;
        std::fs::rename(&staging, app_dir.join(format!("v{number}")))
            .context("cannot move the new version in place")?;
        let mut versions = old.map(|o| o.versions).unwrap_or_default();
        versions.push(number);
        let dropped: Vec<u32> = if versions.len() > KEPT_VERSIONS {
            versions.drain(..versions.len() - KEPT_VERSIONS).collect()
        } else {
            Vec::new()
        };
        let record = AppRecord {
            host: host.to_string(),
            tenant: tenant.to_string(),
            versions,
            deployed_ms: now_ms(),
        };
        self.write(&record)?;
        for v in dropped {
            let _ = std::fs::remove_dir_all(app_dir.join(format!("v{v}")));
        }
        Ok(record)
    }

    fn stage(
        &self,
        tenant: &str,
        bundle: &[u8],
        staging: &Path,
        limits: UnpackLimits,
    ) -> Result<(), Refusal> {
        let manifest = bundle::unpack(bundle, staging, limits)
            .map_err(|e| Refusal::new(400, format!("{e:#}")))?;
        // Paths in messages as the bundle names them, not where it was unpacked.
        let inside = format!("{}/", staging.display());
        let refuse = |text: String| Refusal::new(422, text.replace(&inside, ""));
        let parsed =
            crate::app::AnyManifest::load(&manifest).map_err(|e| refuse(format!("{e:#}")))?;
        if let crate::app::AnyManifest::Spin(m) = &parsed {
            if !m.redis_triggers.is_empty() {
                return Err(Refusal::new(
                    422,
                    "[[trigger.redis]]: the platform serves HTTP triggers only; serve an app with Redis triggers with `nebula up`",
                ));
            }
        }
        let report = crate::check::check_any(parsed, &self.cache_dir(tenant))
            .map_err(|e| refuse(format!("{e:#}")))?;
        if !report.ok {
            return Err(refuse(report.text));
        }
        Ok(())
    }

    /// Makes the version before the current one current again; the one
    /// rolled back from is removed.
    pub fn rollback(&self, record: &AppRecord) -> Result<AppRecord, Refusal> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(fresh) = self.get(&record.host)? else {
            return Err(Refusal::new(404, format!("no app {:?}", record.host)));
        };
        if fresh.versions.len() < 2 {
            return Err(Refusal::new(
                409,
                format!(
                    "app {:?} has no previous version to roll back to",
                    record.host
                ),
            ));
        }
        let mut next = fresh.clone();
        let gone = next.versions.pop().expect("two versions");
        next.deployed_ms = now_ms();
        self.write(&next)?;
        let _ = std::fs::remove_dir_all(self.app_dir(&record.host).join(format!("v{gone}")));
        Ok(next)
    }

    /// Removes the app, every version of it and its data.
    pub fn delete(&self, record: &AppRecord) -> Result<(), Refusal> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.app_dir(&record.host);
        // The record goes first: a crash halfway leaves files, not an app.
        std::fs::remove_file(dir.join("app.json")).context("cannot remove the app record")?;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(self.data_dir(&record.host));
        Ok(())
    }

    fn write(&self, record: &AppRecord) -> Result<()> {
        write_atomically(
            &self.app_dir(&record.host).join("app.json"),
            &serde_json::to_vec_pretty(record)?,
        )
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it
/// over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().context("a file has a folder")?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{:016x}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        rand::random::<u64>()
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// A host name an app may be served for: what a `Host` header carries,
/// and a safe folder name.
pub fn valid_host(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host {host:?} is not a host name: use lowercase labels of letters, digits and '-', separated by dots (e.g. memes.example.org)"
        ))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_dns_labels() {
        for good in ["a", "memes.example.org", "x-1.y"] {
            assert!(valid_host(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            "../x",
            "A.org",
            "a..b",
            "-a",
            "a/b",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(valid_host(bad).is_err(), "{bad}");
        }
    }
}
