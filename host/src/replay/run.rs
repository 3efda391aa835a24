//! `nebula replay FILE`: runs a recorded call again, offline, the way the
//! host ran it — an engine made as the host makes one, the component
//! pre-linked against the closed WASI alone, a fresh instance given the
//! recorded request, seed, time and data under the recorded deadline and
//! memory cap — and says what it answered, what it printed and whether
//! that is what was recorded. Nothing is written: effects are shown, not
//! applied.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;

use super::recorder::sha256_file;
use super::recording::{Blob, Outcome, RecordedEffect, Recording};
use crate::executor::pure::convert;
use crate::executor::{
    self, CompileCache, ComponentKind, Deadlines, EngineOptions, PureCallError, PureComponent,
    PureLinker,
};

/// What to run the recording against.
#[derive(Debug, Default, Clone)]
pub struct ReplayOptions {
    /// This `.wasm` instead of the recorded one (a fix, say).
    pub component: Option<PathBuf>,
    /// Take the recorded component's `.wasm` from this app manifest.
    pub manifest: Option<PathBuf>,
    /// The compile cache (default: `.nebula/cache` beside the manifest,
    /// where `nebula up` keeps it).
    pub cache_dir: Option<PathBuf>,
}

/// A replayed call.
#[derive(Debug)]
pub struct Replayed {
    pub file: PathBuf,
    pub recording: Recording,
    /// The `.wasm` that ran, and its SHA-256.
    pub component: PathBuf,
    pub sha256: Option<String>,
    /// What it answered this time.
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Replayed {
    /// Whether the replay answered as the recorded call did.
    pub fn same(&self) -> bool {
        self.outcome.same_as(&self.recording.outcome)
    }

    /// Whether the component that ran is the one recorded (same bytes).
    pub fn same_component(&self) -> Option<bool> {
        Some(self.sha256.as_ref()? == self.recording.component.sha256.as_ref()?)
    }

    /// The report `nebula replay` prints.
    pub fn report(&self) -> String {
        use std::fmt::Write as _;
        let r = &self.recording;
        let mut out = String::new();
        let _ = writeln!(out, "recording  {} (request {})", self.file.display(), r.id);
        let which = match self.same_component() {
            Some(true) => "the component recorded".to_string(),
            Some(false) => format!(
                "NOT the component recorded, sha256 {}",
                short(r.component.sha256.as_deref().unwrap_or("?"))
            ),
            None => "not known whether it is the component recorded".to_string(),
        };
        let _ = writeln!(
            out,
            "component  {} = {} (sha256 {}; {which})",
            r.component.name,
            self.component.display(),
            short(self.sha256.as_deref().unwrap_or("?")),
        );
        let _ = writeln!(
            out,
            "request    {} {} → route {} (seed {}, now_ms {})",
            r.request.method, r.request.uri, r.route, r.seed, r.now_ms
        );
        if !r.request.redacted_headers.is_empty() {
            let _ = writeln!(
                out,
                "           not recorded, so not given again: {}",
                r.request.redacted_headers.join(", ")
            );
        }
        if r.data.is_empty() {
            let _ = writeln!(out, "data       (none)");
        }
        for (i, t) in r.data.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}{}: {} rows of {}",
                if i == 0 { "data       " } else { "           " },
                t.name,
                t.rows.len(),
                t.columns.join(", ")
            );
        }
        out.push('\n');
        write_outcome(&mut out, "answer", &self.outcome, true);
        for (name, bytes) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if bytes.is_empty() {
                let _ = writeln!(out, "{name:<10} (empty)");
            } else {
                let _ = writeln!(out, "{name}:");
                for line in String::from_utf8_lossy(bytes).lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
        out.push('\n');
        write_outcome(&mut out, "recorded", &r.outcome, false);
        if let Some(f) = &r.host_failure {
            let _ = writeln!(
                out,
                "host       answered {} after the call: {}",
                f.status, f.error
            );
        }
        let _ = writeln!(
            out,
            "{}",
            if self.same() {
                "result     the same answer as recorded"
            } else {
                "result     a DIFFERENT answer from the one recorded"
            }
        );
        out
    }

    /// The replay as JSON, for scripts and tests.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file,
            "id": self.recording.id,
            "component": {
                "name": self.recording.component.name,
                "path": self.component,
                "sha256": self.sha256,
                "recorded": self.same_component(),
            },
            "same": self.same(),
            "outcome": self.outcome,
            "recorded": self.recording.outcome,
            "stdout": Blob(self.stdout.clone()),
            "stderr": Blob(self.stderr.clone()),
        })
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// An outcome's lines; with `full`, its headers, effects and body, or
/// its trap's message, too.
fn write_outcome(out: &mut String, label: &str, o: &Outcome, full: bool) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "{label:<10} {}", o.summary());
    match o {
        Outcome::Response {
            headers,
            body,
            effects,
            ..
        } => {
            if !full {
                return;
            }
            for (k, v) in headers {
                let _ = writeln!(out, "           {k}: {v}");
            }
            let _ = writeln!(out, "effects    {}", effects_text(effects));
            match std::str::from_utf8(&body.0) {
                Ok(text) => {
                    let _ = writeln!(out, "body       {} bytes:", body.0.len());
                    out.push_str(text);
                    if !text.is_empty() && !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
                Err(_) => {
                    let _ = writeln!(
                        out,
                        "body       {} bytes, not UTF-8 (`--json` gives them in base64)",
                        body.0.len()
                    );
                }
            }
        }
        Outcome::Trap { message } | Outcome::BadResponse { message } if full => {
            for line in message.lines() {
                let _ = writeln!(out, "           {line}");
            }
        }
        Outcome::Trap { .. } | Outcome::BadResponse { .. } | Outcome::Timeout { .. } => {}
    }
}

fn effects_text(effects: &[RecordedEffect]) -> String {
    if effects.is_empty() {
        return "none (nothing is ever written by a replay)".into();
    }
    let list: Vec<String> = effects
        .iter()
        .map(|e| {
            let args: Vec<String> = e.args.iter().map(|a| a.to_string()).collect();
            format!("{}({})", e.write, args.join(", "))
        })
        .collect();
    format!("{} (not applied)", list.join(", "))
}

/// Replays the recording in `file`; every error names it.
pub fn replay(file: &Path, opts: &ReplayOptions) -> Result<Replayed> {
    let recording = Recording::read(file)?;
    run(file, recording, opts).with_context(|| format!("replaying {}", file.display()))
}

fn run(file: &Path, recording: Recording, opts: &ReplayOptions) -> Result<Replayed> {
    let component = component_path(file, &recording, opts)?;
    let request = http_request(&recording).context("the recorded request")?;
    let sha256 = sha256_file(&component);

    let limits = recording.limits;
    let timeout = Duration::from_millis(limits.timeout_ms.max(1));
    let max_memory = usize::try_from(limits.max_memory_bytes)
        .unwrap_or(usize::MAX)
        .max(1 << 20);
    // As the host makes the engine of a pure app: no async ABI, a pool
    // whose memories hold the component's cap.
    let engine = executor::new_engine(&EngineOptions {
        max_instances: 1,
        max_memory_bytes: max_memory,
        concurrency: false,
        ..EngineOptions::default()
    })?;
    let cache = CompileCache::new(cache_dir(&recording, opts));
    let (compiled, _) = executor::load(&engine, &cache, &component)
        .with_context(|| format!("cannot load the component {}", component.display()))?;
    let kind = executor::kind_of(&engine, &compiled);
    if kind != ComponentKind::Pure {
        bail!(
            "{} is a {} component; only pure components' calls are recorded and replayed",
            component.display(),
            kind.label()
        );
    }
    let linker = PureLinker::new(&engine)?;
    let pure = PureComponent::new(&recording.component.name, &compiled, &linker)?;
    let wit_request = convert::to_wit_request(
        &recording.id,
        &request,
        &recording.route,
        recording.request.params.clone(),
        recording.seed,
        recording.now_ms,
    );
    let data = recording.data.iter().map(|t| t.to_table()).collect();

    let deadlines = Deadlines::start(&engine);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("cannot start the tokio runtime")?;
    let result = rt.block_on(pure.call(&deadlines, timeout, max_memory, wit_request, data));
    deadlines.stop();

    let (outcome, stdout, stderr) = match result {
        Ok(out) => {
            let mut response = out.response;
            let effects: Vec<RecordedEffect> = std::mem::take(&mut response.effects)
                .iter()
                .map(RecordedEffect::of)
                .collect();
            // As the pure executor does: the same headers dropped, the same
            // default content type.
            let outcome = match convert::to_http_response(response, None) {
                Ok(resp) => Outcome::Response {
                    status: resp.status().as_u16(),
                    headers: super::recording::header_pairs(resp.headers()),
                    body: Blob(resp.into_body().to_vec()),
                    effects,
                },
                Err(message) => Outcome::BadResponse { message },
            };
            (outcome, out.stdout, out.stderr)
        }
        Err(PureCallError::Timeout { stderr }) => (
            Outcome::Timeout {
                timeout_ms: limits.timeout_ms,
            },
            Vec::new(),
            stderr,
        ),
        Err(PureCallError::Trap { message, stderr }) => {
            (Outcome::Trap { message }, Vec::new(), stderr)
        }
    };
    Ok(Replayed {
        file: file.to_path_buf(),
        recording,
        component,
        sha256,
        outcome,
        stdout,
        stderr,
    })
}

/// The `.wasm` to run: `--component`, else the recorded component's source
/// in `-f`'s manifest, else the recorded path.
fn component_path(file: &Path, r: &Recording, opts: &ReplayOptions) -> Result<PathBuf> {
    let path = if let Some(c) = &opts.component {
        c.clone()
    } else if let Some(m) = &opts.manifest {
        let manifest = crate::manifest::Manifest::load(m)?;
        let Some(c) = manifest.components.get(&r.component.name) else {
            bail!(
                "{} has no component {:?} (the one {} recorded); name its .wasm with --component",
                m.display(),
                r.component.name,
                file.display()
            );
        };
        c.source.clone()
    } else {
        r.component.path.clone()
    };
    if !path.is_file() {
        let whence = if opts.component.is_some() {
            "--component"
        } else if opts.manifest.is_some() {
            "the manifest's"
        } else {
            "the recorded"
        };
        bail!(
            "{whence} component {} is not there; give the component with --component PATH.wasm, or its app with -f app.toml",
            path.display()
        );
    }
    Ok(path)
}

/// The compile cache: `--cache-dir`, else `nebula up`'s beside the
/// manifest (`-f`, else the recorded one) if it is there; else none.
fn cache_dir(r: &Recording, opts: &ReplayOptions) -> Option<PathBuf> {
    if let Some(d) = &opts.cache_dir {
        return Some(d.clone());
    }
    let manifest = opts.manifest.as_deref().unwrap_or(&r.app.manifest);
    let dir = manifest.parent()?.join(".nebula").join("cache");
    dir.is_dir().then_some(dir)
}

/// The request as the host had it, from the recording.
fn http_request(r: &Recording) -> Result<http::Request<Bytes>> {
    let q = &r.request;
    let method = http::Method::from_bytes(q.method.as_bytes())
        .with_context(|| format!("request.method {:?} is not an HTTP method", q.method))?;
    let uri: http::Uri = q
        .uri
        .parse()
        .with_context(|| format!("request.uri {:?} is not a URI", q.uri))?;
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in &q.headers {
        let name = http::header::HeaderName::from_bytes(k.as_bytes())
            .with_context(|| format!("request.headers: {k:?} is not a header name"))?;
        let value = http::header::HeaderValue::from_str(v).with_context(|| {
            format!("request.headers: the value of {k:?} is not a header value")
        })?;
        b = b.header(name, value);
    }
    Ok(b.body(Bytes::from(q.body.0.clone()))?)
}
