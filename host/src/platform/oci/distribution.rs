//! The push half of the OCI distribution API, under `/v2/` on the admin
//! listener, so that `spin registry push ADMIN/HOST:TAG` (or any OCI client)
//! deploys a Spin app for `Host: HOST`. The repository name is the host.
//!
//! Blobs are uploaded in one request (`POST` … `PUT ?digest=`) or in chunks
//! (`PATCH`), kept in memory per tenant up to the platform's bundle ceiling,
//! and checked against their digest. The manifest's `PUT` turns the
//! artifact into a bundle ([`super::locked_app`]) and deploys it as
//! `POST /apps` would: the same check, the same refusals, the same atomic
//! switch. Blobs a deploy used are dropped; others are dropped after
//! [`KEEP_UNUSED`] (at the next upload: no timer wakes an idle platform).
//!
//! Credentials: the tenant's token, as a Bearer token or as the password of
//! Basic authentication (`spin registry login -u ANY -p TOKEN`); the answer
//! without one challenges for Basic, which OCI clients then send.
//!
//! With several nodes, one push must go to one node: uploads are held by
//! the node that takes them until the manifest arrives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::json;

use super::locked_app;
use crate::platform::Platform;

type Response = hyper::Response<Full<Bytes>>;

/// The locked app's media type (a layer since Spin 2.x, the config before).
pub const SPIN_APPLICATION: &str = "application/vnd.fermyon.spin.application.v1+config";
/// A tar.gz of a component's files, pushed instead of one layer per file.
pub const ARCHIVE_LAYER: &str = "application/vnd.wasm.content.bundle.v1.tar+gzip";
/// How long an upload or blob no manifest has used yet is kept.
pub const KEEP_UNUSED: Duration = Duration::from_secs(30 * 60);
/// A manifest is small; this is generous.
const MAX_MANIFEST: usize = 4 << 20;

/// Uploads under way and blobs not yet used by a manifest, per tenant.
pub struct Uploads {
    state: Mutex<State>,
    /// What one tenant may have uploaded at once.
    max_bytes: u64,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    blobs: HashMap<(String, String), Stored>,
}

struct Session {
    tenant: String,
    name: String,
    data: Vec<u8>,
    touched: Instant,
}

struct Stored {
    bytes: Bytes,
    touched: Instant,
}

impl State {
    fn held_by(&self, tenant: &str) -> u64 {
        let sessions: usize = self
            .sessions
            .values()
            .filter(|s| s.tenant == tenant)
            .map(|s| s.data.len())
            .sum();
        let blobs: usize = self
            .blobs
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, b)| b.bytes.len())
            .sum();
        (sessions + blobs) as u64
    }

    fn forget_stale(&mut self, now: Instant) {
        self.sessions
            .retain(|_, s| now.duration_since(s.touched) < KEEP_UNUSED);
        self.blobs
            .retain(|_, b| now.duration_since(b.touched) < KEEP_UNUSED);
    }
}

impl Uploads {
    pub fn new(max_bytes: u64) -> Uploads {
        Uploads {
            state: Mutex::new(State::default()),
            max_bytes,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn reply(status: StatusCode) -> http::response::Builder {
    hyper::Response::builder()
        .status(status)
        .header("Docker-Distribution-API-Version", "registry/2.0")
}

/// An error as the distribution spec has them: `{"errors": [{code, message}]}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "errors": [{ "code": code, "message": message.into() }] });
    let mut b = reply(status).header(http::header::CONTENT_TYPE, "application/json");
    if status == StatusCode::UNAUTHORIZED {
        b = b.header(
            http::header::WWW_AUTHENTICATE,
            "Basic realm=\"nebula platform\"",
        );
    }
    b.body(Full::new(Bytes::from(body.to_string() + "\n")))
        .expect("a static response")
}

fn empty(status: StatusCode) -> http::response::Builder {
    reply(status).header(http::header::CONTENT_LENGTH, "0")
}

/// The tenant's token from `Authorization: Bearer T` or `Basic base64(user:T)`.
fn token(req: &hyper::Request<hyper::body::Incoming>) -> Option<String> {
    let value = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    if let Some(t) = value.strip_prefix("Bearer ") {
        return Some(t.trim().to_string());
    }
    let raw = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split_once(':')?.1.to_string())
}

/// What a `/v2/NAME/…` path asks for.
enum Target<'a> {
    Uploads { name: &'a str, id: &'a str },
    Blob { name: &'a str, digest: &'a str },
    Manifest { name: &'a str, reference: &'a str },
}

fn target(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2/")?;
    if let Some(i) = rest.rfind("/blobs/uploads") {
        let id = rest[i + "/blobs/uploads".len()..].trim_matches('/');
        return Some(Target::Uploads {
            name: &rest[..i],
            id,
        });
    }
    if let Some(i) = rest.rfind("/blobs/") {
        return Some(Target::Blob {
            name: &rest[..i],
            digest: &rest[i + "/blobs/".len()..],
        });
    }
    let i = rest.rfind("/manifests/")?;
    Some(Target::Manifest {
        name: &rest[..i],
        reference: &rest[i + "/manifests/".len()..],
    })
}

/// Answers a request under `/v2`.
pub async fn respond(
    platform: &Arc<Platform>,
    uploads: &Arc<Uploads>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Response {
    let tenants = match platform.tenants().await {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                format!("{e:#}"),
            )
        }
    };
    let Some(tenant) = token(&req).and_then(|t| tenants.authenticate(&t).map(str::to_string))
    else {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a valid tenant token is required, as the password of Basic authentication or as a Bearer token (`nebula platform tenant add` makes one)",
        );
    };
    let path = req.uri().path().to_string();
    if path == "/v2" || path == "/v2/" {
        return reply(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(b"{}\n")))
            .expect("a static response");
    }
    let Some(target) = target(&path) else {
        return error(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "no such registry call; this registry takes pushes: /v2/HOST/blobs/uploads/ and /v2/HOST/manifests/TAG",
        );
    };
    let name = match &target {
        Target::Uploads { name, .. }
        | Target::Blob { name, .. }
        | Target::Manifest { name, .. } => name.to_string(),
    };
    if let Err(r) = may_deploy(platform, &tenant, &name) {
        return r;
    }
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    let digest_param = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "digest")
        .map(|(_, v)| v.into_owned());
    match (method, target) {
        (Method::POST, Target::Uploads { id: "", .. }) => {
            let id = format!("{:032x}", rand::random::<u128>());
            {
                let mut st = uploads.state();
                st.forget_stale(Instant::now());
                st.sessions.insert(
                    id.clone(),
                    Session {
                        tenant: tenant.clone(),
                        name: name.clone(),
                        data: Vec::new(),
                        touched: Instant::now(),
                    },
                );
            }
            match digest_param {
                // A monolithic upload in the POST itself.
                Some(digest) => finish(uploads, &tenant, &name, &id, &digest, req).await,
                None => empty(StatusCode::ACCEPTED)
                    .header(http::header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
                    .header(http::header::RANGE, "0-0")
                    .header("Docker-Upload-UUID", id)
                    .body(Full::default())
                    .expect("a static response"),
            }
        }
        (Method::PATCH, Target::Uploads { id, .. }) => {
            let id = id.to_string();
            let start = req
                .headers()
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split('-').next())
                .and_then(|s| s.trim().parse::<usize>().ok());
            match append(uploads, &tenant, &id, start, req).await {
                Ok(len) => empty(StatusCode::ACCEPTED)
                    .header(http::header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
                    .header(http::header::RANGE, format!("0-{}", len.saturating_sub(1)))
                    .header("Docker-Upload-UUID", id)
                    .body(Full::default())
                    .expect("a static response"),
                Err(r) => r,
            }
        }
        (Method::PUT, Target::Uploads { id, .. }) => {
            let Some(digest) = digest_param else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    "the upload's PUT must say the blob's digest: ?digest=sha256:HEX",
                );
            };
            let id = id.to_string();
            finish(uploads, &tenant, &name, &id, &digest, req).await
        }
        (Method::GET, Target::Uploads { id, .. }) => {
            let st = uploads.state();
            match st.sessions.get(id).filter(|s| s.tenant == tenant) {
                Some(s) => empty(StatusCode::NO_CONTENT)
                    .header(http::header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
                    .header(http::header::RANGE, format!("0-{}", s.data.len().saturating_sub(1)))
                    .body(Full::default())
                    .expect("a static response"),
                None => unknown_upload(id),
            }
        }
        (Method::DELETE, Target::Uploads { id, .. }) => {
            let mut st = uploads.state();
            match st.sessions.get(id) {
                Some(s) if s.tenant == tenant => {
                    st.sessions.remove(id);
                    empty(StatusCode::NO_CONTENT)
                        .body(Full::default())
                        .expect("a static response")
                }
                _ => unknown_upload(id),
            }
        }
        (m @ (Method::HEAD | Method::GET), Target::Blob { digest, .. }) => {
            let st = uploads.state();
            match st.blobs.get(&(tenant.clone(), digest.to_string())) {
                Some(b) => reply(StatusCode::OK)
                    .header(http::header::CONTENT_LENGTH, b.bytes.len())
                    .header(http::header::CONTENT_TYPE, "application/octet-stream")
                    .header("Docker-Content-Digest", digest)
                    .body(if m == Method::GET {
                        Full::new(b.bytes.clone())
                    } else {
                        Full::default()
                    })
                    .expect("a static response"),
                None => error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UNKNOWN",
                    format!("no blob {digest} uploaded here"),
                ),
            }
        }
        (Method::PUT, Target::Manifest { reference, .. }) => {
            let reference = reference.to_string();
            put_manifest(platform, uploads, &tenant, &name, &reference, req).await
        }
        (Method::GET | Method::HEAD, Target::Manifest { .. }) => error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("this registry takes pushes only; the app is served for Host: {name} and its versions are at GET /apps/{name}"),
        ),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "not a registry call this platform takes",
        ),
    }
}

fn unknown_upload(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
        format!(
            "no upload {id} under way (uploads are kept {} minutes)",
            KEEP_UNUSED.as_secs() / 60
        ),
    )
}

/// Refuses a repository name that is not a host name, or a host another
/// tenant holds, before anything is uploaded for it.
#[allow(clippy::result_large_err)]
fn may_deploy(platform: &Platform, tenant: &str, name: &str) -> Result<(), Response> {
    if let Err(m) = crate::platform::registry::valid_host(name) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("the repository name is the host the app is served for (`spin registry push ADMIN/HOST:TAG`): {m}"),
        ));
    }
    match platform.slot(name) {
        Some(s) if s.record.tenant != tenant => Err(error(
            StatusCode::CONFLICT,
            "DENIED",
            format!("host {name:?} is another tenant's app; choose another host name"),
        )),
        _ => Ok(()),
    }
}

/// Reads a request's body, at most what the tenant may still upload.
async fn body_within(
    uploads: &Uploads,
    tenant: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Bytes, Response> {
    let room = uploads
        .max_bytes
        .saturating_sub(uploads.state().held_by(tenant));
    match Limited::new(req.into_body(), room as usize).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!(
                "the upload does not fit: a tenant may hold {} bytes of uploads at once, the platform's bundle ceiling ({e})",
                uploads.max_bytes
            ),
        )),
    }
}

/// Appends a chunk to upload `id`; gives the upload's length.
async fn append(
    uploads: &Uploads,
    tenant: &str,
    id: &str,
    start: Option<usize>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<usize, Response> {
    let chunk = body_within(uploads, tenant, req).await?;
    let mut st = uploads.state();
    let Some(s) = st.sessions.get_mut(id).filter(|s| s.tenant == tenant) else {
        return Err(unknown_upload(id));
    };
    if let Some(start) = start {
        if start != s.data.len() {
            return Err(error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!(
                    "the chunk starts at {start}, but the upload holds {} bytes",
                    s.data.len()
                ),
            ));
        }
    }
    s.data.extend_from_slice(&chunk);
    s.touched = Instant::now();
    Ok(s.data.len())
}

/// Ends upload `id` with the request's body as its last chunk and keeps
/// the blob if it hashes to `digest`.
async fn finish(
    uploads: &Uploads,
    tenant: &str,
    name: &str,
    id: &str,
    digest: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> Response {
    let last = match body_within(uploads, tenant, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = uploads.state();
    if st.sessions.get(id).is_none_or(|s| s.tenant != tenant) {
        return unknown_upload(id);
    }
    let mut s = st.sessions.remove(id).expect("just seen");
    if s.name != name {
        return error(
            StatusCode::BAD_REQUEST,
            "BLOB_UPLOAD_INVALID",
            format!("upload {id} was started for {:?}, not {name:?}", s.name),
        );
    }
    s.data.extend_from_slice(&last);
    if let Err(e) = locked_app::check_digest(digest, &s.data) {
        return error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!("the uploaded blob: {e:#}"),
        );
    }
    st.blobs.insert(
        (tenant.to_string(), digest.to_string()),
        Stored {
            bytes: Bytes::from(s.data),
            touched: Instant::now(),
        },
    );
    empty(StatusCode::CREATED)
        .header(http::header::LOCATION, format!("/v2/{name}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest)
        .body(Full::default())
        .expect("a static response")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
}

async fn put_manifest(
    platform: &Arc<Platform>,
    uploads: &Arc<Uploads>,
    tenant: &str,
    name: &str,
    reference: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> Response {
    let body = match Limited::new(req.into_body(), MAX_MANIFEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "MANIFEST_INVALID",
                format!("the manifest could not be read whole (at most {MAX_MANIFEST} bytes): {e}"),
            )
        }
    };
    let manifest: Manifest = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                format!("not an OCI image manifest: {e}"),
            )
        }
    };
    // Every blob the manifest names, with the files of archive layers.
    let mut blobs: HashMap<String, Bytes> = HashMap::new();
    let mut locked = None;
    {
        let st = uploads.state();
        for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let Some(b) = st.blobs.get(&(tenant.to_string(), d.digest.clone())) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!(
                        "the manifest names blob {} ({}), which was not uploaded; push again",
                        d.digest, d.media_type
                    ),
                );
            };
            if d.media_type == SPIN_APPLICATION {
                locked = Some(b.bytes.clone());
            }
            blobs.insert(d.digest.clone(), b.bytes.clone());
        }
    }
    let Some(locked) = locked else {
        return error(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            format!("the artifact holds no Spin app: no layer is a {SPIN_APPLICATION} (push it with `spin registry push`)"),
        );
    };
    let max = uploads.max_bytes;
    for d in manifest
        .layers
        .iter()
        .filter(|d| d.media_type == ARCHIVE_LAYER)
    {
        match locked_app::archive_files(&blobs[&d.digest], max) {
            Ok(files) => blobs.extend(files),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_INVALID",
                    format!("layer {}: {e:#}", d.digest),
                )
            }
        }
    }
    let bundle = match locked_app::to_bundle(&locked, &blobs) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                format!("the artifact's Spin app: {e:#}"),
            )
        }
    };
    let (p, t, h) = (platform.clone(), tenant.to_string(), name.to_string());
    let deployed = tokio::task::spawn_blocking(move || p.deploy(&t, &h, &bundle)).await;
    match deployed {
        Ok(Ok(record)) => {
            tracing::info!(app = %name, tenant, tag = reference, version = record.current(), "deployed from an OCI push");
            let mut st = uploads.state();
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                st.blobs.remove(&(tenant.to_string(), d.digest.clone()));
            }
            let digest = locked_app::sha256_digest(&body);
            empty(StatusCode::CREATED)
                .header(
                    http::header::LOCATION,
                    format!("/v2/{name}/manifests/{digest}"),
                )
                .header("Docker-Content-Digest", digest)
                .header("Nebula-App-Version", record.current().to_string())
                .body(Full::default())
                .expect("a static response")
        }
        Ok(Err(r)) => {
            tracing::info!(app = %name, tenant, status = r.status, "OCI push refused");
            let status =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code = match r.status {
                401 | 403 | 409 => "DENIED",
                413 | 507 => "SIZE_INVALID",
                _ => "MANIFEST_INVALID",
            };
            let message = if r.status == 422 {
                format!("the artifact's app, as the spin.toml made from its locked app, fails the check: {}", r.message)
            } else {
                r.message
            };
            error(status, code, message)
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            format!("the deploy failed: {e}"),
        ),
    }
}
