//! What the request path calls to record: [`Recorder::begin`] copies what
//! a call is given (only for a route that records, so the request path of
//! the others pays nothing), and [`Pending::end`] writes the recording if
//! the call's answer is one to keep — a 5xx (a trap, a timeout, a bad
//! response or a 5xx status), or any with `record = "all"`.
//!
//! Files are written on the request's own task: a recording is a few
//! kilobytes, written once to a temporary file and renamed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::recording::{
    AppRef, Blob, ComponentRef, HostFailure, Outcome, RecordedEffect, RecordedLimits,
    RecordedRequest, RecordedTable, Recording, FORMAT, REDACTED_HEADERS, SESSION_PLACEHOLDER,
};
use crate::contract::Table;
use crate::executor::{Call, Payload};
use crate::manifest::Record;
use crate::model::{AppModel, RouteModel};

/// Where recordings go when a route's `record` asks and `--record` does not
/// say: this folder beside the manifest.
pub const DEFAULT_DIR: &str = ".nebula/recordings";

/// An app's recorder: where its recordings go and what every route records.
pub struct Recorder {
    dir: PathBuf,
    /// `--record` (or `--record-all`): what every route records at least.
    everywhere: Option<Record>,
    app: AppRef,
    /// Component name → its `.wasm`.
    sources: BTreeMap<String, PathBuf>,
    /// Each `.wasm`'s SHA-256, while its size and mtime stay the same.
    digests: Mutex<HashMap<PathBuf, Hashed>>,
}

/// A `.wasm`'s size and mtime when it was hashed, and its SHA-256.
struct Hashed {
    len: u64,
    mtime: Option<SystemTime>,
    sha256: String,
}

impl Recorder {
    /// The recorder of `model` with `--record dir` (`all`: every call), or
    /// `None` when no route records. A Spin app cannot be recorded: its
    /// components do their own I/O, which a replay could not give them again.
    pub fn new(model: &AppModel, dir: Option<&Path>, all: bool) -> Result<Option<Recorder>> {
        if model.is_spin() {
            if let Some(dir) = dir {
                bail!(
                    "--record {}: {} is a Spin app; only pure components' calls (app.toml) can be recorded and replayed, since a wasi:http component does its own I/O",
                    dir.display(),
                    model.file.display()
                );
            }
            return Ok(None);
        }
        let everywhere = dir.map(|_| if all { Record::All } else { Record::Errors });
        if everywhere.is_none() && model.routes.iter().all(|r| r.record.is_none()) {
            return Ok(None);
        }
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => model.base_dir.join(DEFAULT_DIR),
        };
        let recorder = Recorder {
            dir,
            everywhere,
            app: AppRef {
                name: model.name.clone(),
                manifest: absolute(&model.file),
            },
            sources: model
                .components
                .values()
                .map(|c| (c.name.clone(), c.source.clone()))
                .collect(),
            digests: Mutex::new(HashMap::new()),
        };
        tracing::info!(dir = %recorder.dir.display(), "recording calls for `nebula replay`");
        Ok(Some(recorder))
    }

    /// Where recordings go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `route` records: its own `record`, or more with `--record`.
    pub fn mode(&self, route: &RouteModel) -> Option<Record> {
        route.record.max(self.everywhere)
    }

    /// A copy of what `call` is given, if its route records; `session` is
    /// the visitor's id, which the recording must not hold.
    pub fn begin(
        &self,
        route: &RouteModel,
        call: &Call,
        session: Option<&str>,
    ) -> Option<Pending<'_>> {
        let mode = self.mode(route)?;
        let req = &call.request;
        let mut headers = Vec::new();
        let mut redacted: Vec<String> = Vec::new();
        // Kept in memory only, to scrub the data of them.
        let mut secrets: Vec<(String, String)> = session
            .map(|id| (id.to_string(), SESSION_PLACEHOLDER.to_string()))
            .into_iter()
            .collect();
        for (name, value) in req.headers() {
            if REDACTED_HEADERS.contains(&name.as_str()) {
                if !redacted.iter().any(|r| r == name.as_str()) {
                    redacted.push(name.as_str().to_string());
                }
                // A short value would scrub innocent data, and hides nothing.
                if value.len() >= 8 {
                    secrets.push((
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        format!("[{name} header]"),
                    ));
                }
                continue;
            }
            headers.push((
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
        let body = match req.body() {
            Payload::Whole(b) => b.clone(),
            // Only pure components are recorded, and they get whole bodies.
            Payload::Stream(_) => return None,
        };
        Some(Pending {
            recorder: self,
            mode,
            id: call.id.to_string(),
            component: route.component.clone(),
            route: call.route.to_string(),
            method: req.method().to_string(),
            uri: req.uri().to_string(),
            headers,
            redacted,
            params: call.params.clone(),
            body,
            seed: call.seed,
            now_ms: call.now_ms,
            limits: RecordedLimits {
                timeout_ms: call.limits.timeout.as_millis() as u64,
                max_memory_bytes: call.limits.max_memory_bytes as u64,
            },
            data: call.data.clone(),
            secrets,
        })
    }

    /// The SHA-256 of the `.wasm` at `path`, hashed again only when its
    /// size or mtime changed (`--watch` swaps it).
    fn digest(&self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let (len, mtime) = (meta.len(), meta.modified().ok());
        let mut known = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = known.get(path).filter(|h| (h.len, h.mtime) == (len, mtime)) {
            return Some(h.sha256.clone());
        }
        let sha256 = sha256_file(path)?;
        known.insert(
            path.to_path_buf(),
            Hashed {
                len,
                mtime,
                sha256: sha256.clone(),
            },
        );
        Some(sha256)
    }
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(hex::encode(Sha256::digest(&bytes)))
}

fn absolute(p: &Path) -> PathBuf {
    p.canonicalize()
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// How a call ended, as the request path saw it.
pub enum Ended<'a> {
    /// The component answered: its status, headers, body and effects.
    Answered {
        response: &'a http::Response<Payload>,
        effects: Option<&'a [crate::contract::Effect]>,
    },
    Trapped(&'a str),
    Timeout(Duration),
    BadResponse(&'a str),
}

/// A call being recorded: the copy of what it was given.
pub struct Pending<'a> {
    recorder: &'a Recorder,
    mode: Record,
    id: String,
    component: String,
    route: String,
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    redacted: Vec<String>,
    params: Vec<(String, String)>,
    body: Bytes,
    seed: u64,
    now_ms: u64,
    limits: RecordedLimits,
    data: Vec<Table>,
    /// (value, placeholder) of what the data must not hold.
    secrets: Vec<(String, String)>,
}

impl Pending<'_> {
    /// Writes the recording if the call's answer is one to keep; a failure
    /// to write is logged, never the request's.
    pub fn end(self, ended: Ended<'_>) {
        if let Some(outcome) = Self::outcome(ended) {
            self.write(outcome, None);
        }
    }

    /// What a call's end becomes in a recording (`None`: a streamed body,
    /// which pure components never give).
    pub fn outcome(ended: Ended<'_>) -> Option<Outcome> {
        Some(match ended {
            Ended::Answered { response, effects } => Outcome::Response {
                status: response.status().as_u16(),
                headers: super::recording::header_pairs(response.headers()),
                body: Blob(match response.body() {
                    Payload::Whole(b) => b.to_vec(),
                    Payload::Stream(_) => return None,
                }),
                effects: effects
                    .unwrap_or_default()
                    .iter()
                    .map(RecordedEffect::of)
                    .collect(),
            },
            Ended::Trapped(m) => Outcome::Trap {
                message: m.to_string(),
            },
            Ended::Timeout(t) => Outcome::Timeout {
                timeout_ms: t.as_millis() as u64,
            },
            Ended::BadResponse(m) => Outcome::BadResponse {
                message: m.to_string(),
            },
        })
    }

    /// Writes the recording of a call that ended with `outcome` if it is one
    /// to keep: every call with `record = "all"`, else those the host
    /// answered 5xx, whether the component's answer was one or the host
    /// failed after it (`host_failure`).
    pub fn write(self, outcome: Outcome, host_failure: Option<HostFailure>) {
        let status = host_failure.as_ref().map_or(outcome.status(), |f| f.status);
        if self.mode == Record::Errors && status < 500 {
            return;
        }
        let recorder = self.recorder;
        let path = recorder.sources.get(&self.component).map(|p| absolute(p));
        let sha256 = path.as_deref().and_then(|p| recorder.digest(p));
        let recording = Recording {
            nebula_recording: FORMAT,
            id: self.id,
            app: recorder.app.clone(),
            component: ComponentRef {
                name: self.component,
                path: path.unwrap_or_default(),
                sha256,
            },
            route: self.route,
            request: RecordedRequest {
                method: self.method,
                uri: self.uri,
                headers: self.headers,
                redacted_headers: self.redacted,
                params: self.params,
                body: Blob(self.body.to_vec()),
            },
            seed: self.seed,
            now_ms: self.now_ms,
            limits: self.limits,
            data: self
                .data
                .iter()
                .map(|t| RecordedTable::of(t, &self.secrets))
                .collect(),
            outcome,
            host_failure,
        };
        match recording.write_into(&recorder.dir) {
            Ok(file) => tracing::info!(
                request = %recording.id,
                status = recording.outcome.status(),
                "recorded to {} (`nebula replay` runs it again)",
                file.display()
            ),
            Err(e) => tracing::warn!(request = %recording.id, "not recorded: {e:#}"),
        }
    }
}
