//! `nebula platform`: many tenants' apps in one process. Requests are routed
//! to an app by their `Host` header (or, for local use, by a first path
//! segment naming an app: `/memes.example/…`); an app is loaded on its first
//! request and unloaded after an idle time, so an idle app holds no memory
//! for components, no database handle and no thread. Apps are deployed,
//! listed, rolled back and deleted over the admin API ([`admin_api`]), by
//! tenants holding a token ([`tenants`]); each deployed version is an
//! unpacked bundle on disk ([`bundle`], [`registry`]).
//!
//! All apps share two engines (one instance pool, one epoch ticker); each
//! app keeps its own gate (instances and queue), rate bucket, data folder
//! and compile cache, within the operator's ceilings.

pub mod admin_api;
pub mod bundle;
pub mod cli;
pub mod oci;
pub mod redis_triggers;
pub mod registry;
pub mod shared_store;
pub mod slot;
pub mod tenants;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use tracing::Instrument;

use self::bundle::UnpackLimits;
use self::redis_triggers::RedisTriggers;
use self::registry::{AppRecord, Refusal, Registry};
use self::shared_store::SharedStore;
use self::slot::{Ceilings, Slot};
use self::tenants::Tenants;
use crate::host::SharedEngines;
use crate::server::{full_body, pages, Body, Service};
use crate::web::rate_limit::{retry_after_secs, Limiter, RateLimit};
use crate::web::security_headers::SecurityHeaders;

/// What the operator sets for the whole platform.
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    pub dir: PathBuf,
    /// An app idle this long is unloaded.
    pub unload_after: Duration,
    pub ceilings: Ceilings,
    /// Instance slots of the shared pool, for all apps together.
    pub pool_instances: u32,
    /// Requests one app may get, from everyone together.
    pub max_rate_per_app: Option<RateLimit>,
    pub bundle_limits: UnpackLimits,
    /// With several nodes: the PostgreSQL database that holds tenants, app
    /// records, bundles and the apps' data (each in its own schema).
    pub store: Option<String>,
    /// The Redis servers apps' `[[trigger.redis]]` may subscribe to.
    pub redis_allowed: Vec<String>,
    /// Components kept mapped after their apps unload, at most (0: none).
    pub keep_mapped: usize,
}

pub struct Platform {
    registry: Registry,
    apps: RwLock<HashMap<String, Arc<Slot>>>,
    engines: SharedEngines,
    opts: PlatformOptions,
    rate: Limiter,
    next_id: AtomicUsize,
    /// Wakes the unloader when an app is loaded; it sleeps otherwise.
    loaded_one: tokio::sync::Notify,
    epoch: Instant,
    headers: SecurityHeaders,
    redis: RedisTriggers,
    /// Each app's Redis messages in flight (none kept for apps with none).
    messages: crate::server::per_key::PerKey<usize>,
    /// Redis messages dropped, all apps together.
    messages_refused: AtomicU64,
}

impl Platform {
    /// Opens the platform's folder and every app in it (none is loaded);
    /// with a shared store, first brings the folder up to the database.
    /// Blocking: call it from a blocking thread of a runtime.
    pub fn open(opts: PlatformOptions) -> Result<Arc<Platform>> {
        let store = opts.store.as_deref().map(SharedStore::new).transpose()?;
        if let Some(store) = &store {
            tokio::runtime::Handle::current().block_on(store.init())?;
        }
        let registry = Registry::open(&opts.dir, store)?
            .with_storage_ceiling(opts.ceilings.max_storage_bytes)
            .with_redis_allowed(opts.redis_allowed.clone());
        let mut engines = SharedEngines::new(&crate::executor::EngineOptions {
            max_instances: opts.pool_instances,
            max_memory_bytes: opts.ceilings.max_memory_bytes,
            ..Default::default()
        })?;
        engines.kept = crate::executor::KeptComponents::new(opts.keep_mapped).map(Arc::new);
        let platform = Arc::new_cyclic(|me: &std::sync::Weak<Platform>| Platform {
            redis: RedisTriggers::new(
                opts.redis_allowed.clone(),
                registry.store().cloned(),
                me.clone(),
            ),
            registry,
            apps: RwLock::new(HashMap::new()),
            engines,
            opts,
            rate: Limiter::new(),
            next_id: AtomicUsize::new(0),
            loaded_one: tokio::sync::Notify::new(),
            epoch: Instant::now(),
            headers: SecurityHeaders::default(),
            messages: Default::default(),
            messages_refused: AtomicU64::new(0),
        });
        platform.sync_all()?;
        // Reading every app's record leaves freed pages with the allocator;
        // an idle platform should hold only what it keeps per app.
        crate::host::release_free_heap(false);
        Ok(platform)
    }

    /// Serves exactly the apps the registry has (blocking).
    fn sync_all(&self) -> Result<()> {
        let hosts = self.registry.hosts()?;
        for host in &hosts {
            if let Err(e) = self.sync(host) {
                tracing::error!(app = %host, "cannot bring the app up to date: {e:#}");
            }
        }
        let gone: Vec<String> = self
            .slots()
            .into_iter()
            .map(|s| s.record.host.clone())
            .filter(|h| !hosts.contains(h))
            .collect();
        for host in gone {
            self.remove(&host);
        }
        Ok(())
    }

    /// Serves `host` as the registry has it now (blocking).
    fn sync(&self, host: &str) -> Result<()> {
        match self.registry.sync(host, self.opts.bundle_limits)? {
            Some(record) => {
                let current = self.slot(host).map(|s| s.record.clone());
                if current.as_ref() != Some(&record) {
                    tracing::info!(app = %host, version = record.current(), "serving");
                    self.install(record);
                }
            }
            None => self.remove(host),
        }
        Ok(())
    }

    /// With a shared store: follows the other nodes' changes. Every
    /// (re)connection resyncs everything first, so a change announced while
    /// this node was not listening is not missed.
    pub async fn follow_store(self: Arc<Self>) {
        let Some(store) = self.registry.store().cloned() else {
            return;
        };
        let mut wait = Duration::from_millis(100);
        loop {
            match store.listen().await {
                Ok((_client, mut changes)) => {
                    wait = Duration::from_millis(100);
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.sync_all()).await;
                    while let Some(host) = changes.recv().await {
                        let me = self.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            if let Err(e) = me.sync(&host) {
                                tracing::error!(app = %host, "cannot follow a change: {e:#}");
                            }
                        })
                        .await;
                    }
                    tracing::warn!("platform store: lost the change feed; reconnecting");
                }
                Err(e) => tracing::warn!("platform store: {e:#}; retrying in {wait:?}"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    /// The tenants and their token hashes, read afresh (a tenant may have
    /// been added since).
    pub async fn tenants(&self) -> Result<Tenants> {
        match self.registry.store() {
            Some(store) => store.tenants().await,
            None => Tenants::load(self.registry.dir()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn options(&self) -> &PlatformOptions {
        &self.opts
    }

    /// Serves `record`'s current version from now on; requests in flight
    /// finish on the version they started on.
    pub fn install(&self, record: AppRecord) -> Arc<Slot> {
        let version = self.registry.version(&record);
        let triggers = redis_triggers_of(&version.manifest);
        let mut apps = self.apps.write().unwrap_or_else(|p| p.into_inner());
        let id = apps
            .get(&record.host)
            .map(|s| s.id)
            .unwrap_or_else(|| self.next_id.fetch_add(1, Ordering::Relaxed));
        // A new version with the same routes counts on in its
        // predecessor's counters; one with other routes gets a new set, and
        // the old one is freed with the last request that holds it.
        let inherited = apps.get(&record.host).and_then(|s| s.metrics());
        let slot = Arc::new(Slot::new(
            record.clone(),
            id,
            version.manifest,
            self.registry.data_dir(&record.host),
            self.registry.cache_dir(&record.tenant),
            self.registry.store().cloned(),
            self.epoch,
            inherited,
        ));
        let old = apps.insert(record.host.clone(), slot.clone());
        drop(apps);
        if let Some(old) = old {
            old.unload();
            self.forget_code_of(&old);
        }
        self.redis.set(&record.host, &triggers);
        slot
    }

    /// Stops serving `host`.
    pub fn remove(&self, host: &str) {
        let old = self
            .apps
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(host);
        if let Some(old) = old {
            old.unload();
            self.forget_code_of(&old);
        }
        self.redis.set(host, &[]);
    }

    /// A version no longer served: its kept components will not be asked
    /// for again (a version that stays, as after a rollback, keeps them).
    fn forget_code_of(&self, old: &Slot) {
        let (Some(kept), Some(dir)) = (&self.engines.kept, old.version_dir()) else {
            return;
        };
        let serving = self
            .slot(&old.record.host)
            .and_then(|s| s.version_dir().map(|d| d.to_path_buf()));
        if serving.as_deref() != Some(dir) {
            kept.forget_under(dir);
        }
    }

    pub fn slot(&self, host: &str) -> Option<Arc<Slot>> {
        self.apps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .cloned()
    }

    pub fn slots(&self) -> Vec<Arc<Slot>> {
        let apps = self.apps.read().unwrap_or_else(|p| p.into_inner());
        apps.values().cloned().collect()
    }

    /// Deploys a bundle (blocking: it unpacks and checks it).
    pub fn deploy(&self, tenant: &str, host: &str, bundle: &[u8]) -> Result<AppRecord, Refusal> {
        let record = self
            .registry
            .deploy(tenant, host, bundle, self.opts.bundle_limits)?;
        self.install(record.clone());
        Ok(record)
    }

    /// The app a request is for, and the path it names there when the
    /// app was named by a first path segment.
    fn route<B>(&self, req: &http::Request<B>) -> Option<(Arc<Slot>, Option<http::Uri>)> {
        let by_host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| strip_port(h).to_ascii_lowercase())
            .and_then(|h| self.slot(&h));
        if let Some(slot) = by_host {
            return Some((slot, None));
        }
        // `/HOST/rest`: the app at HOST sees `/rest`.
        let path = req.uri().path();
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let slot = (!first.is_empty()).then(|| self.slot(first)).flatten()?;
        let rest = &path[1 + first.len()..];
        let rest = if rest.is_empty() { "/" } else { rest };
        let pq = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        Some((slot, Some(pq.parse().ok()?)))
    }

    /// Unloads apps idle past the unload time, and sleeps while none is
    /// loaded (no wakeups on an idle platform).
    pub async fn unload_idle_apps(self: Arc<Self>) {
        let after = self.opts.unload_after;
        loop {
            let loaded: Vec<Arc<Slot>> = self
                .slots()
                .into_iter()
                .filter(|s| s.loaded().is_some())
                .collect();
            if loaded.is_empty() {
                match &self.engines.kept {
                    // Code kept for reloads goes too once nothing has been
                    // loaded for another unload time: an idle node gives
                    // its memory back, and then sleeps without wakeups.
                    Some(kept) if !kept.is_empty() => {
                        let woken = tokio::time::timeout(after, self.loaded_one.notified()).await;
                        if woken.is_err() && self.slots().iter().all(|s| s.loaded().is_none()) {
                            let n = kept.clear();
                            crate::metrics::cpu::spawn_blocking(|| {
                                crate::host::release_free_heap(false)
                            })
                            .await
                            .ok();
                            tracing::info!(
                                components = n,
                                "nothing loaded: kept components let go"
                            );
                        }
                    }
                    _ => self.loaded_one.notified().await,
                }
                continue;
            }
            // Closing an app checkpoints and closes its database, and the
            // heap trim walks the allocator's arenas: both block, so they
            // run off the async workers serving the other apps.
            let next = crate::metrics::cpu::spawn_blocking(move || {
                let mut next = after;
                let mut unloaded = false;
                for slot in &loaded {
                    if slot.unload_if_idle(after) {
                        unloaded = true;
                    } else {
                        next = next.min(after.saturating_sub(slot.idle_for()));
                    }
                }
                if unloaded {
                    crate::host::release_free_heap(false);
                }
                next
            })
            .await
            .unwrap_or(after);
            tokio::time::sleep(next.max(Duration::from_millis(50))).await;
        }
    }

    /// The channels the platform subscribes to at a Redis `address`.
    pub fn redis_channels(&self, address: &str) -> Vec<String> {
        self.redis.channels(address)
    }

    /// One Redis message to `host`'s trigger: the app is loaded if it is not,
    /// as for an HTTP request, and counts as used.
    ///
    /// Pub/sub has no backpressure: a subscriber that stops reading makes
    /// Redis buffer for it and at last drop the connection every app on that
    /// address shares. So a tenant flooding its channel is shed on its own
    /// trigger, never waited for: over the app's request rate (one bucket
    /// with its HTTP requests) as 429, beyond what it can have in flight as
    /// 503, both counted on the trigger's route.
    async fn deliver_message(
        &self,
        host: &str,
        trigger: &crate::spin::manifest::RedisTrigger,
        payload: Vec<u8>,
    ) {
        let Some(slot) = self.slot(host) else { return };
        if self.over_rate(&slot).is_some() {
            return self.refuse_message(&slot, trigger, http::StatusCode::TOO_MANY_REQUESTS);
        }
        // As many as its instances and a queue as deep again: beyond that
        // it could not start them soon.
        let places = self.opts.ceilings.max_instances as usize * 2;
        let _place = match self.messages.admit(slot.id, places) {
            Ok(place) => place,
            Err(_) => {
                return self.refuse_message(&slot, trigger, http::StatusCode::SERVICE_UNAVAILABLE)
            }
        };
        let app = match self.load(&slot).await {
            Ok((h, _)) => h,
            Err(e) => {
                tracing::error!(app = %host, channel = %trigger.channel, "Redis message not delivered: cannot load the app: {e:#}");
                return;
            }
        };
        crate::trigger::redis::deliver(&app, trigger, payload)
            .instrument(app_span(&slot))
            .await;
        slot.touch();
    }

    /// How long until the app may take another request or message, if it
    /// is over `--max-rate-per-app` now (one bucket per app, for all its
    /// clients and channels together).
    fn over_rate(&self, slot: &Slot) -> Option<Duration> {
        let limit = self.opts.max_rate_per_app.as_ref()?;
        let everyone = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        self.rate
            .check(slot.id, everyone, limit, Instant::now())
            .err()
    }

    /// A message shed before its app saw it: counted as `status` on the
    /// trigger's route (if the app has counters yet), and logged ever more
    /// rarely.
    fn refuse_message(
        &self,
        slot: &Slot,
        trigger: &crate::spin::manifest::RedisTrigger,
        status: http::StatusCode,
    ) {
        if let Some(metrics) = slot.metrics() {
            metrics
                .route(&trigger.component, &crate::host::redis_route_label(trigger))
                .count(status);
        }
        let refused = self.messages_refused.fetch_add(1, Ordering::Relaxed) + 1;
        // A flood must not become a flood of log lines: the 1st, 2nd, 4th,
        // 8th… refusal is logged, with the count so far.
        if refused.is_power_of_two() {
            let why = if status == http::StatusCode::TOO_MANY_REQUESTS {
                "the app gets more requests than the platform allows it"
            } else {
                "the app has as many messages in flight as it may"
            };
            tracing::warn!(app = %slot.record.host, channel = %trigger.channel, %status, refused, "Redis message dropped: {why}");
        }
    }

    /// The slot's app, loaded if it is not, and whether it was not (a
    /// cold start); a new load wakes the unloader.
    async fn load(&self, slot: &Arc<Slot>) -> Result<(Arc<crate::host::Host>, bool)> {
        let cold = slot.loaded().is_none();
        let host = slot.host(&self.engines, &self.opts.ceilings).await?;
        if cold {
            self.loaded_one.notify_one();
        }
        Ok((host, cold))
    }

    fn page(&self, resp: http::Response<bytes::Bytes>) -> http::Response<Body> {
        let mut resp = resp.map(full_body);
        self.headers.apply(resp.headers_mut());
        resp
    }
}

impl redis_triggers::Deliver for Platform {
    fn deliver(
        self: Arc<Self>,
        host: String,
        trigger: crate::spin::manifest::RedisTrigger,
        payload: Vec<u8>,
    ) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move { self.deliver_message(&host, &trigger, payload).await })
    }
}

/// A Spin app's Redis triggers, read from its manifest only when it names
/// any (most apps have none; reading every manifest at start would cost).
fn redis_triggers_of(manifest: &std::path::Path) -> Vec<crate::spin::manifest::RedisTrigger> {
    if manifest.file_name().is_some_and(|n| n != "spin.toml") {
        return Vec::new();
    }
    match std::fs::read_to_string(manifest) {
        Ok(text) if text.contains("trigger.redis") => {}
        _ => return Vec::new(),
    }
    match crate::app::AnyManifest::load(manifest) {
        Ok(crate::app::AnyManifest::Spin(m)) => m.redis_triggers,
        Ok(_) => Vec::new(),
        Err(e) => {
            tracing::error!(manifest = %manifest.display(), "cannot read the app's Redis triggers: {e:#}");
            Vec::new()
        }
    }
}

/// The app's name on every line it logs (a guest's output included): one
/// process serves many tenants.
fn app_span(slot: &Slot) -> tracing::Span {
    tracing::info_span!("app", host = %slot.record.host)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

impl Service for Platform {
    async fn call(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<Body> {
        let Some((slot, uri)) = self.route(&req) else {
            let what = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            return self.page(pages::error(
                http::StatusCode::NOT_FOUND,
                "-",
                &format!("no app is deployed for host {what:?} on this platform"),
            ));
        };
        let mut req = req;
        if let Some(uri) = uri {
            *req.uri_mut() = uri;
        }
        if let Some(wait) = self.over_rate(&slot) {
            let mut r = self.page(pages::error(
                http::StatusCode::TOO_MANY_REQUESTS,
                "-",
                "this app gets more requests than the platform allows it; try again shortly",
            ));
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(retry_after_secs(wait)),
            );
            return r;
        }
        let received = Instant::now();
        let (host, cold) = match self.load(&slot).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(app = %slot.record.host, "cannot load the app: {e:#}");
                return self.page(pages::error(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "-",
                    "this app cannot be loaded now; its operator has been told",
                ));
            }
        };
        let resp = host.call(req, peer).instrument(app_span(&slot)).await;
        slot.touch();
        if cold {
            slot.last_cold_request_us
                .store(received.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        resp
    }

    fn security_headers(&self) -> &SecurityHeaders {
        &self.headers
    }

    /// The server's idle trim: every app not serving a request goes.
    fn trim(&self) {
        for slot in self.slots() {
            slot.unload_if_idle(Duration::ZERO);
        }
        if let Some(kept) = &self.engines.kept {
            kept.clear();
        }
        crate::host::release_free_heap(false);
    }

    fn shutdown(&self) {
        for slot in self.slots() {
            if let Some(host) = slot.loaded() {
                host.shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn ports_come_off_host_names_and_v6_literals() {
        assert_eq!(strip_port("a.example:8080"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
