//! The apps a platform serves, on disk: `DIR/apps/HOST/app.json` says whose
//! app it is and which of its versions (`DIR/apps/HOST/vN/`, each an
//! unpacked bundle) is current. Each change writes a new `app.json` and
//! renames it over the old one, so a crash leaves either version whole.
//! An app's data (`DIR/data/HOST/`) outlives its versions; its compiled
//! components live in its tenant's compile cache (`DIR/cache/TENANT/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::bundle::{self, UnpackLimits};
use super::shared_store::{data_schema, SharedStore};

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
    /// One change at a time on this node; reads take a copy of the record.
    changes: Mutex<()>,
    /// With several nodes: where records and bundles really live (this
    /// node's folder is then a copy of what it serves).
    store: Option<Arc<SharedStore>>,
    /// Each app's data at most this many bytes (checked at deploy too).
    max_storage_bytes: Option<u64>,
    /// The Redis servers apps' triggers may subscribe to.
    redis_allowed: Vec<String>,
}

/// The paths of one version of an app.
pub struct Version {
    pub manifest: PathBuf,
    pub number: u32,
}

impl Registry {
    pub fn open(dir: &Path, store: Option<SharedStore>) -> Result<Registry> {
        let store = store.map(Arc::new);
        std::fs::create_dir_all(dir.join("apps"))
            .with_context(|| format!("cannot create {}", dir.join("apps").display()))?;
        Ok(Registry {
            dir: dir.to_path_buf(),
            changes: Mutex::new(()),
            store,
            max_storage_bytes: None,
            redis_allowed: Vec::new(),
        })
    }

    /// Holds every app's data to `max_bytes` from its deploy on.
    pub fn with_storage_ceiling(mut self, max_bytes: Option<u64>) -> Registry {
        self.max_storage_bytes = max_bytes;
        self
    }

    /// Accepts Redis triggers on these addresses only.
    pub fn with_redis_allowed(mut self, addresses: Vec<String>) -> Registry {
        self.redis_allowed = addresses;
        self
    }

    pub fn store(&self) -> Option<&Arc<SharedStore>> {
        self.store.as_ref()
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
        let old = match &self.store {
            Some(store) => block_on(store.record(host))?,
            None => self.get(host)?,
        };
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
        let cleanup = || {
            let _ = std::fs::remove_dir_all(&staging);
            if old.is_none() {
                let _ = std::fs::remove_dir(&app_dir);
            }
        };
        if let Err(e) = self.stage(tenant, host, bundle, &staging, limits, old.is_none()) {
            cleanup();
            return Err(e);
        }
        let record = match &self.store {
            // The database numbers versions for every node.
            Some(store) => {
                match block_on(store.deploy(tenant, host, bundle, KEPT_VERSIONS, now_ms())) {
                    Ok(r) => r,
                    Err(e) => {
                        cleanup();
                        return Err(e);
                    }
                }
            }
            None => {
                let mut versions = old.map(|o| o.versions).unwrap_or_default();
                versions.push(versions.iter().max().copied().unwrap_or(0) + 1);
                if versions.len() > KEPT_VERSIONS {
                    versions.drain(..versions.len() - KEPT_VERSIONS);
                }
                AppRecord {
                    host: host.to_string(),
                    tenant: tenant.to_string(),
                    versions,
                    deployed_ms: now_ms(),
                }
            }
        };
        let target = app_dir.join(format!("v{}", record.current()));
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&staging, &target).context("cannot move the new version in place")?;
        self.write(&record)?;
        self.prune(&record);
        Ok(record)
    }

    /// Removes the local versions `record` no longer keeps.
    fn prune(&self, record: &AppRecord) {
        let Ok(entries) = std::fs::read_dir(self.app_dir(&record.host)) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let kept = name
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .is_none_or(|n| record.versions.contains(&n));
            if !kept {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// With a shared store: brings this node's copy of `host` up to the
    /// database's record (fetching the current version's bundle if it lacks
    /// it) and returns the record; `None` if the app is gone (its copy is
    /// removed).
    pub fn sync(&self, host: &str, limits: UnpackLimits) -> Result<Option<AppRecord>> {
        let Some(store) = &self.store else {
            return self.get(host);
        };
        valid_host(host).map_err(anyhow::Error::msg)?;
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(record) = block_on(store.record(host))? else {
            let _ = std::fs::remove_dir_all(self.app_dir(host));
            return Ok(None);
        };
        let version = self.app_dir(host).join(format!("v{}", record.current()));
        if !version.is_dir() {
            let bundle = block_on(store.bundle(host, record.current()))?.with_context(|| {
                format!(
                    "the store has no bundle for {host} version {}",
                    record.current()
                )
            })?;
            let staging = self
                .app_dir(host)
                .join(format!(".fetch-{:016x}", rand::random::<u64>()));
            if let Err(e) = bundle::unpack(&bundle, &staging, limits) {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
            std::fs::rename(&staging, &version)?;
        }
        if self.get(host)?.as_ref() != Some(&record) {
            self.write(&record)?;
        }
        self.prune(&record);
        Ok(Some(record))
    }

    /// Every app the platform serves: the database's, with a store.
    pub fn hosts(&self) -> Result<Vec<String>> {
        match &self.store {
            Some(store) => Ok(block_on(store.records())?
                .into_iter()
                .map(|r| r.host)
                .collect()),
            None => Ok(self.all()?.into_keys().collect()),
        }
    }

    fn stage(
        &self,
        tenant: &str,
        host: &str,
        bundle: &[u8],
        staging: &Path,
        limits: UnpackLimits,
        new_app: bool,
    ) -> Result<(), Refusal> {
        let manifest = bundle::unpack(bundle, staging, limits)
            .map_err(|e| Refusal::new(400, format!("{e:#}")))?;
        // Paths in messages as the bundle names them, not where it was unpacked.
        let inside = format!("{}/", staging.display());
        let refuse = |text: String| Refusal::new(422, text.replace(&inside, ""));
        let parsed =
            crate::app::AnyManifest::load(&manifest).map_err(|e| refuse(format!("{e:#}")))?;
        if let crate::app::AnyManifest::Spin(m) = &parsed {
            super::redis_triggers::check_addresses(&m.redis_triggers, &self.redis_allowed)
                .map_err(|e| refuse(format!("{}: {e}", m.file.display())))?;
        }
        let report = crate::check::check_any(parsed, &self.cache_dir(tenant))
            .map_err(|e| refuse(format!("{e:#}")))?;
        if !report.ok {
            return Err(refuse(report.text));
        }
        // The app's database made (or migrated) now, not on its first
        // request: creating a SQLite file and its schema is most of a first
        // load's time (benches/RESULTS.md, "A platform").
        if let crate::app::AnyManifest::Pure(m) =
            crate::app::AnyManifest::load(&manifest).map_err(|e| refuse(format!("{e:#}")))?
        {
            let location = match &self.store {
                Some(store) => {
                    let schema = data_schema(host);
                    block_on(store.create_schema(&schema))?;
                    crate::data::Location::Postgres(store.app_url(&schema))
                }
                None => {
                    std::fs::create_dir_all(self.data_dir(host))
                        .context("cannot create the app's data folder")?;
                    crate::data::Location::Sqlite(self.data_dir(host).join("app.db"))
                }
            };
            let db = match crate::data::open_limited(&m, Some(&location), self.max_storage_bytes) {
                Ok(db) => db,
                Err(e) => {
                    // A refused new app leaves nothing behind: not the
                    // schema its seed may already have filled.
                    if let (Some(store), true) = (&self.store, new_app) {
                        let _ = block_on(store.drop_schema(&data_schema(host)));
                    }
                    return Err(refuse(format!("database: {e:#}")));
                }
            };
            let _ = db.close();
        }
        Ok(())
    }

    /// Makes the version before the current one current again; the one
    /// rolled back from is removed.
    pub fn rollback(&self, record: &AppRecord) -> Result<AppRecord, Refusal> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match &self.store {
            Some(store) => block_on(store.record(&record.host))?,
            None => self.get(&record.host)?,
        };
        let Some(fresh) = fresh else {
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
        next.versions.pop();
        next.deployed_ms = now_ms();
        if let Some(store) = &self.store {
            block_on(store.set(&next))?;
        }
        self.write(&next)?;
        self.prune(&next);
        Ok(next)
    }

    /// Removes the app, every version of it and its data.
    pub fn delete(&self, record: &AppRecord) -> Result<(), Refusal> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = &self.store {
            block_on(store.delete(&record.host, &data_schema(&record.host)))?;
        }
        let dir = self.app_dir(&record.host);
        // The record goes first: a crash halfway leaves files, not an app.
        let _ = std::fs::remove_file(dir.join("app.json"));
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

/// Runs a store call from a blocking thread (deploys and syncs run on
/// `spawn_blocking`, where the runtime may be entered but not awaited).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
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
