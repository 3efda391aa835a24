//! The platform's admin API, on its own listener (`--admin ADDR`), JSON in
//! and out. Every call carries a tenant's token (`Authorization: Bearer`)
//! and reaches that tenant's apps only:
//!
//! - `POST /apps?host=NAME` with a bundle (`nebula deploy` makes one):
//!   deploys it as the app served for `Host: NAME` (201 for a new app, 200
//!   for a new version; 409 if another tenant holds NAME; 422 with
//!   `nebula check`'s report if it fails the check; 400 if it is not a
//!   bundle). Nothing changes unless it is deployed whole.
//! - `GET /apps`: the tenant's apps.
//! - `GET /apps/NAME`: one app's status and metrics.
//! - `GET /apps/NAME/metrics`: the app's metrics in the Prometheus text
//!   format, as `nebula up --admin` serves them for one app.
//! - `POST /apps/NAME/rollback`: the previous version becomes current.
//! - `DELETE /apps/NAME`: the app, its versions and its data go.
//!
//! 401 without a valid token, 403 for another tenant's app, 404 for none.
//!
//! Under `/v2/`, the same listener is an OCI registry that takes pushes
//! ([`super::oci::distribution`]): `spin registry push ADMIN/HOST:TAG`
//! deploys a Spin app as `POST /apps?host=HOST` would.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::oci::distribution::{self, Uploads};
use super::registry::{AppRecord, Refusal};
use super::slot::Slot;
use super::Platform;

/// A bundle's upload and the answer must fit in this.
const TIMEOUT: Duration = Duration::from_secs(120);

type Response = hyper::Response<Full<Bytes>>;

/// Serves the admin API until the runtime stops.
pub async fn serve(listener: TcpListener, platform: Arc<Platform>) {
    let uploads = Arc::new(Uploads::new(platform.options().bundle_limits.max_bytes));
    crate::server::admin::accept_loop(listener, TIMEOUT, move || {
        let (platform, uploads) = (platform.clone(), uploads.clone());
        service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let (platform, uploads) = (platform.clone(), uploads.clone());
            async move {
                let path = req.uri().path();
                Ok::<_, Infallible>(if path == "/v2" || path.starts_with("/v2/") {
                    distribution::respond(&platform, &uploads, req).await
                } else {
                    respond(&platform, req).await
                })
            }
        })
    })
    .await
}

fn answer(status: StatusCode, body: Value) -> Response {
    hyper::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string() + "\n")))
        .expect("a static response")
}

fn refused(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = answer(status, json!({ "error": message.into() }));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"nebula platform\""),
        );
    }
    r
}

impl From<Refusal> for Response {
    fn from(r: Refusal) -> Response {
        refused(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            r.message,
        )
    }
}

async fn respond(platform: &Arc<Platform>, req: hyper::Request<hyper::body::Incoming>) -> Response {
    // Read on every call: `nebula platform tenant add` may have added one.
    let tenants = match platform.tenants().await {
        Ok(t) => t,
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(tenant) = token
        .and_then(|t| tenants.authenticate(t))
        .map(str::to_string)
    else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "a valid tenant token is required: Authorization: Bearer TOKEN (`nebula platform tenant add` makes one)",
        );
    };
    let path: Vec<String> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::POST, ["apps"]) => deploy(platform, &tenant, req).await,
        (Method::GET, ["apps"]) => {
            let mut apps: Vec<Value> = platform
                .slots()
                .iter()
                .filter(|s| s.record.tenant == tenant)
                .map(|s| status(s))
                .collect();
            apps.sort_by(|a, b| a["host"].as_str().cmp(&b["host"].as_str()));
            answer(StatusCode::OK, json!({ "apps": apps }))
        }
        (method, ["apps", host, rest @ ..]) => {
            let slot = match own_app(platform, &tenant, host) {
                Ok(s) => s,
                Err(r) => return r.into(),
            };
            match (method, rest) {
                (Method::GET, []) => answer(StatusCode::OK, detail(&slot)),
                // Every figure `nebula up --admin` serves, for this app alone
                // (none before its first load), in the Prometheus text format.
                (Method::GET, ["metrics"]) => hyper::Response::builder()
                    .header(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
                    .body(Full::new(Bytes::from(match slot.metrics() {
                        Some(m) => crate::metrics::render(Some(&m)),
                        None => String::new(),
                    })))
                    .expect("a static response"),
                (Method::POST, ["rollback"]) => {
                    let p = platform.clone();
                    let record = slot.record.clone();
                    match blocking(move || p.registry().rollback(&record)).await {
                        Ok(record) => {
                            let slot = platform.install(record);
                            answer(StatusCode::OK, status(&slot))
                        }
                        Err(r) => r.into(),
                    }
                }
                (Method::DELETE, []) => {
                    platform.remove(host);
                    let p = platform.clone();
                    let record = slot.record.clone();
                    match blocking(move || p.registry().delete(&record)).await {
                        Ok(()) => answer(StatusCode::OK, json!({ "deleted": host })),
                        Err(r) => r.into(),
                    }
                }
                _ => refused(StatusCode::NOT_FOUND, "no such admin call; see GET /apps"),
            }
        }
        _ => refused(
            StatusCode::NOT_FOUND,
            "no such admin call: POST /apps?host=NAME, GET /apps, GET /apps/NAME, POST /apps/NAME/rollback, DELETE /apps/NAME",
        ),
    }
}

/// `host`'s slot if `tenant` owns it; 404 if no app, 403 if another's.
fn own_app(platform: &Platform, tenant: &str, host: &str) -> Result<Arc<Slot>, Refusal> {
    match platform.slot(host) {
        None => Err(Refusal {
            status: 404,
            message: format!("no app {host:?}"),
        }),
        Some(s) if s.record.tenant != tenant => Err(Refusal {
            status: 403,
            message: format!("app {host:?} belongs to another tenant"),
        }),
        Some(s) => Ok(s),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Refusal {
            status: 500,
            message: format!("the admin call failed: {e}"),
        })
    })
}

async fn deploy(
    platform: &Arc<Platform>,
    tenant: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> Response {
    let host = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "host")
            .map(|(_, v)| v.into_owned())
    });
    let Some(host) = host else {
        return refused(
            StatusCode::BAD_REQUEST,
            "say which host the app is for: POST /apps?host=NAME",
        );
    };
    let limit = platform.options().bundle_limits.max_bytes as usize;
    let bundle = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the bundle could not be read whole (at most {limit} bytes): {e}"),
            )
        }
    };
    let existed = platform.slot(&host).is_some();
    let (p, t, h) = (platform.clone(), tenant.to_string(), host.clone());
    match blocking(move || p.deploy(&t, &h, &bundle)).await {
        Ok(record) => {
            tracing::info!(app = %host, tenant, version = record.current(), "deployed");
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            answer(code, record_json(&record, false))
        }
        Err(r) => {
            tracing::info!(app = %host, tenant, status = r.status, "deploy refused");
            r.into()
        }
    }
}

fn record_json(record: &AppRecord, loaded: bool) -> Value {
    json!({
        "host": record.host,
        "tenant": record.tenant,
        "version": record.current(),
        "versions": record.versions,
        "deployed_ms": record.deployed_ms,
        "loaded": loaded,
    })
}

fn status(slot: &Slot) -> Value {
    record_json(&slot.record, slot.loaded().is_some())
}

/// Status, load history and the app's own metrics.
fn detail(slot: &Slot) -> Value {
    let mut v = status(slot);
    v["loads"] = json!(slot.loads.load(Ordering::Relaxed));
    v["unloads"] = json!(slot.unloads.load(Ordering::Relaxed));
    v["last_load_us"] = json!(slot.last_load_us.load(Ordering::Relaxed));
    v["last_cold_request_us"] = json!(slot.last_cold_request_us.load(Ordering::Relaxed));
    v["idle_ms"] = json!(slot.idle_for().as_millis() as u64);
    let routes: Vec<Value> = slot
        .metrics()
        .map(|m| {
            m.route_totals()
                .into_iter()
                .map(|t| {
                    json!({
                        "component": t.component,
                        "route": t.route,
                        "requests": t.requests,
                        "by_status": t.by_status,
                        "cpu_ns": t.cpu_ns,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    v["requests"] = json!(routes
        .iter()
        .map(|r| r["requests"].as_u64().unwrap_or(0))
        .sum::<u64>());
    v["routes"] = json!(routes);
    v
}
