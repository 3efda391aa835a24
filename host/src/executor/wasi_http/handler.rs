//! How one component's requests run. Every instance gets the same store
//! (WASI, wasi:http, Spin's interfaces, memory cap) and deadline. WASI 0.2
//! components get a fresh instance per request, made, called and dropped by
//! the request itself (`handle_fresh_p2`); WASI 0.3 ones are reused up to a
//! bound, which is what wasmtime-wasi-http's `ProxyHandler` is for: this
//! module tells it when a worker expires, when it takes another request,
//! and where its CPU is charged.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use nebula_spin_interfaces::{
    Blocking, CallLimits, ComponentGrants, ComponentUnits, HostUnit, InstanceContext,
    SpinResources, SpinState, SpinView,
};

use super::guest_log::{CurrentRequest, GuestLog};
use super::outbound::{OutboundHooks, OutboundHttp, OutboundHttpComponent, OutboundHttpGrants};
use crate::executor::Deadlines;
use crate::metrics::{self, ComponentStats, PeakLimits, RouteStats};

/// How instances of WASI 0.3 components are reused (WASI 0.2 components get
/// a fresh instance for every request).
#[derive(Debug, Clone, Copy)]
pub struct ReusePolicy {
    /// Requests one instance serves before it is dropped.
    pub max_requests: usize,
    /// Requests one instance serves at the same time.
    pub max_concurrent: usize,
    /// How long an idle instance is kept for the next request.
    pub idle_timeout: Duration,
}

impl Default for ReusePolicy {
    fn default() -> Self {
        ReusePolicy {
            max_requests: 128,
            max_concurrent: 16,
            idle_timeout: Duration::from_secs(1),
        }
    }
}

pub struct SpinStore {
    /// The key-value, SQLite and variables units' instance state.
    spin: SpinState,
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// The outbound HTTP unit's instance state.
    hooks: OutboundHooks,
    limits: PeakLimits,
    /// The deadlines of the requests on this instance: past the earliest,
    /// the guest traps at the next epoch tick.
    deadlines: RequestDeadlines,
}

/// The deadlines of the requests running on one instance. A reused
/// instance's guest code cannot be told apart by request at an epoch tick,
/// so the instance runs under the earliest deadline of its requests: one
/// that spins is stopped at its own deadline however many requests start on
/// the instance after it (they share its fate, as they share its memory).
/// A deadline leaves the set when its request is answered; one that passed
/// stays, since its request's task may still run (wasmtime cannot cancel
/// it) and must not run on.
#[derive(Clone)]
struct RequestDeadlines(Arc<std::sync::Mutex<DeadlineSet>>);

struct DeadlineSet {
    /// (deadline, request number) of every request not yet answered.
    pending: std::collections::BTreeSet<(Instant, u64)>,
    next: u64,
    /// The latest deadline set, for code that runs after the requests
    /// (post-return tasks) and for instantiation.
    latest: Instant,
}

impl RequestDeadlines {
    fn new(first: Instant) -> RequestDeadlines {
        RequestDeadlines(Arc::new(std::sync::Mutex::new(DeadlineSet {
            pending: Default::default(),
            next: 0,
            latest: first,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DeadlineSet> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the guest must stop.
    fn current(&self) -> Instant {
        let set = self.lock();
        set.pending.first().map_or(set.latest, |(d, _)| *d)
    }

    /// The earliest deadline of a request not yet answered.
    fn earliest_pending(&self) -> Option<Instant> {
        self.lock().pending.first().map(|(d, _)| *d)
    }

    /// Adds a request's deadline; the future ends at it and, dropped before
    /// (the request answered), takes it out again.
    fn start(&self, timeout: Duration) -> RequestExpiry {
        let deadline = Instant::now() + timeout;
        let key = {
            let mut set = self.lock();
            let key = (deadline, set.next);
            set.next += 1;
            set.pending.insert(key);
            set.latest = set.latest.max(deadline);
            key
        };
        RequestExpiry {
            sleep: Box::pin(tokio::time::sleep_until(deadline.into())),
            deadlines: self.clone(),
            key,
            expired: false,
        }
    }
}

struct RequestExpiry {
    sleep: Pin<Box<tokio::time::Sleep>>,
    deadlines: RequestDeadlines,
    key: (Instant, u64),
    expired: bool,
}

impl Future for RequestExpiry {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let done = self.sleep.as_mut().poll(cx);
        if done.is_ready() {
            self.expired = true;
        }
        done
    }
}

impl Drop for RequestExpiry {
    fn drop(&mut self) {
        if !self.expired && Instant::now() < self.key.0 {
            self.deadlines.lock().pending.remove(&self.key);
        }
    }
}

impl SpinView for SpinStore {
    fn spin(&mut self) -> &mut SpinState {
        &mut self.spin
    }
}

impl WasiView for SpinStore {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for SpinStore {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Adds everything a Spin HTTP component may import: WASI 0.2 and 0.3 (CLI,
/// clocks, random, filesystem limited to its `files`, TCP to its
/// `allowed_outbound_hosts` only),
/// wasi:http in both versions, and the host units: Spin's key-value, SQLite
/// and variables, and outbound HTTP.
pub fn add_to_linker(linker: &mut Linker<SpinStore>) -> Result<()> {
    use wasmtime_wasi_http::{p2, p3, WasiHttp};
    nebula_spin_interfaces::add_to_linker(linker)?;
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi::p3::add_to_linker(linker)?;
    // wasi:http's types carry the incoming request as well as outbound ones,
    // so they are the host's; the outbound HTTP unit adds the functions that
    // send. Together, what wasmtime-wasi-http's `add_only_http_to_linker_async`
    // (0.2) and `p3::add_to_linker` add.
    let p2_options = p2::bindings::LinkOptions::default();
    p2::bindings::http::types::add_to_linker::<_, WasiHttp>(
        linker,
        &p2_options.into(),
        SpinStore::http,
    )?;
    p3::bindings::http::types::add_to_linker::<_, WasiHttp>(linker, SpinStore::http)?;
    OutboundHttp::add_to_linker(linker, SpinStore::http)?;
    // spin-sdk 5's Redis handler (`fermyon:spin/inbound-redis`) imports this
    // interface for its types only (an enum and a list): nothing to define.
    linker.instance("fermyon:spin/redis-types")?;
    Ok(())
}

/// What a component is served with, from its manifest entry (for a Spin
/// app, `spin::app` makes it from the component's `[component.ID]`).
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    pub id: String,
    pub environment: std::collections::BTreeMap<String, String>,
    /// Key-value stores, SQLite databases and variables it may use.
    pub grants: ComponentGrants,
    pub outbound: super::outbound::OutboundHttpGrants,
    /// Its own bound on requests per instance, over the app's.
    pub max_instance_reuse: Option<usize>,
}

/// Everything needed to make a store for one component.
pub struct ComponentRuntime {
    pub id: String,
    /// The wasi:http entry point; `None` for a component that only handles
    /// Redis messages.
    pub pre: Option<ProxyPre<SpinStore>>,
    instance_pre: wasmtime::component::InstancePre<SpinStore>,
    spec: ComponentSpec,
    /// The private tree of exactly the files `files` matched, seen at `/`.
    files: Option<std::path::PathBuf>,
    /// The component in each host unit, shared by its instances.
    spin: ComponentUnits,
    outbound_http: Arc<OutboundHttpComponent>,
    /// The app's components, for service chaining.
    chain: Option<Arc<super::chain::Chain>>,
    max_memory: usize,
    timeout: Duration,
    reuse: ReusePolicy,
}

impl ComponentRuntime {
    pub fn new(
        linker: &Linker<SpinStore>,
        component: &Component,
        spin: &ComponentSpec,
        resources: Arc<SpinResources>,
        max_memory: usize,
        timeout: Duration,
        reuse: ReusePolicy,
    ) -> Result<ComponentRuntime> {
        let (instance_pre, stubbed) = super::platform_stubs::instantiate_pre(linker, component)
            .with_context(|| {
                // Name the Spin features behind imports Nebula does not serve.
                let engine = linker.engine();
                let features: Vec<String> = crate::executor::imports_of(engine, component)
                    .iter()
                    .filter_map(|i| {
                        nebula_spin_interfaces::unsupported_feature(i).map(|f| format!("{i}: {f}"))
                    })
                    .collect();
                if features.is_empty() {
                    format!(
                        "component {:?} imports something Nebula does not provide",
                        spin.id
                    )
                } else {
                    format!(
                        "component {:?} uses what Nebula does not support: {}",
                        spin.id,
                        features.join("; ")
                    )
                }
            })?;
        if !stubbed.is_empty() {
            tracing::info!(
                component = %spin.id,
                "imports of Spin's platform that Nebula does not implement, linked as traps (calling one fails the request): {}",
                stubbed.join(", ")
            );
        }
        let pre = match wasmtime_wasi_http::p3::bindings::ServicePre::new(instance_pre.clone()) {
            Ok(p3) => Some(ProxyPre::P3(p3)),
            Err(_) => match wasmtime_wasi_http::p2::bindings::ProxyPre::new(instance_pre.clone()) {
                Ok(p2) => Some(ProxyPre::P2(p2)),
                Err(_) if super::inbound_redis::export_of(linker.engine(), component).is_some() => {
                    None
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e).context(format!(
                        "component {:?} exports neither wasi:http/incoming-handler@0.2, wasi:http/handler@0.3 nor a Redis handler (fermyon:spin/inbound-redis, spin:redis/inbound-redis@3)",
                        spin.id
                    )))
                }
            },
        };
        // Outbound HTTP keeps nothing per app, so configuring it here, per
        // component, costs nothing.
        // Its entries may name application variables, rendered as every outbound unit's.
        let outbound_http = Arc::new(
            Arc::new(OutboundHttp::configure_app(())?)
                .configure_component(OutboundHttpGrants {
                    allowed_hosts: resources.render_allowed_hosts(&spin.grants)?,
                })
                .with_context(|| format!("component.{}.allowed_outbound_hosts", spin.id))?,
        );
        let units = resources
            .configure_component(&ComponentGrants {
                // A statement stops at the component's own deadline, and no result can be
                // larger than the memory it must be copied into.
                limits: CallLimits {
                    statement_timeout: timeout,
                    max_result_bytes: max_memory,
                },
                ..spin.grants.clone()
            })
            .with_context(|| format!("component {:?}", spin.id))?;
        Ok(ComponentRuntime {
            spin: units,
            outbound_http,
            chain: None,
            id: spin.id.clone(),
            pre,
            instance_pre,
            spec: spin.clone(),
            files: None,
            max_memory,
            timeout,
            // `[component.ID.tool.nebula.limits] max_instance_reuse`, e.g. 1
            // for a component whose requests must not share memory.
            reuse: ReusePolicy {
                max_requests: spin.max_instance_reuse.unwrap_or(reuse.max_requests),
                ..reuse
            },
        })
    }

    /// Preopens `tree` (built by `spin::files::MountedFiles`) at `/`.
    pub fn mount_files(mut self, tree: Option<&std::path::Path>) -> Self {
        self.files = tree.map(std::path::Path::to_path_buf);
        self
    }

    /// Lets the component's instances call the app's other components at
    /// `http://COMPONENT.spin.internal`, as far as their allowed hosts permit.
    pub fn chain_through(mut self, chain: Arc<super::chain::Chain>) -> Self {
        self.chain = Some(chain);
        self
    }

    pub fn is_p3(&self) -> bool {
        matches!(self.pre, Some(ProxyPre::P3(_)))
    }

    /// The component as loaded.
    pub fn component(&self) -> &Component {
        self.instance_pre.component()
    }

    /// How long one call may run.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A fresh instance for one call outside wasi:http (a Redis message),
    /// with the same store, limits and deadline as a request's; its guest
    /// output is logged under `id`, its CPU charged to `route`.
    pub(super) async fn instantiate_plain(
        &self,
        engine: &Engine,
        stats: Arc<ComponentStats>,
        route: Arc<RouteStats>,
        id: Arc<str>,
    ) -> Result<(Store<SpinStore>, wasmtime::component::Instance)> {
        let charge = WorkerCharge::new(route);
        let current = CurrentRequest::default();
        current.set(id);
        let mut store = self.new_store(engine, stats.clone(), &charge, &current)?;
        let started = Instant::now();
        let instance = self.instance_pre.instantiate_async(&mut store).await?;
        stats.instantiated(started.elapsed());
        Ok((store, instance))
    }

    fn new_store(
        &self,
        engine: &Engine,
        stats: Arc<ComponentStats>,
        charge: &WorkerCharge,
        current: &CurrentRequest,
    ) -> Result<Store<SpinStore>> {
        let mut b = WasiCtxBuilder::new();
        // The guest's output becomes log lines with its request's id.
        b.stdout(GuestLog::stream(&self.id, "stdout", current.clone()));
        b.stderr(GuestLog::stream(&self.id, "stderr", current.clone()));
        for (k, v) in &self.spec.environment {
            b.env(k, v);
        }
        if let Some(tree) = &self.files {
            b.preopened_dir(tree, "/", FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "component.{}.files: cannot mount {}",
                        self.id,
                        tree.display()
                    )
                })?;
        }
        super::sockets::grant(&mut b, &self.spin.allowed_hosts);
        let units = InstanceContext::new(charge.blocking());
        let data = SpinStore {
            spin: SpinState::prepare(&self.spin, &units),
            table: ResourceTable::new(),
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHttp::prepare(&self.outbound_http, &units)
                .chaining(self.chain.clone(), current.clone()),
            limits: PeakLimits::new(
                StoreLimitsBuilder::new()
                    .memory_size(self.max_memory)
                    .build(),
                Some(stats),
            ),
            deadlines: RequestDeadlines::new(Instant::now() + self.timeout),
        };
        let mut store = Store::new(engine, data);
        store.limiter(|s| &mut s.limits);
        // At every epoch tick (10 ms, only while requests are in flight) the
        // guest yields to tokio, so a guest spinning without ever awaiting
        // does not hold a worker and `ProxyHandler` gets to poll its request
        // timeouts; past the earliest deadline of its requests it traps,
        // which stops even a guest whose instance is reused.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|s| Ok(Deadlines::yield_until(s.data().deadlines.current())));
        Ok(store)
    }
}

/// One `ProxyHandler` per component.
pub struct ComponentHandler {
    runtime: Arc<ComponentRuntime>,
    engine: Engine,
    stats: Arc<ComponentStats>,
    /// Where a worker's CPU goes before its first request says its route.
    first_route: Arc<RouteStats>,
}

impl ComponentHandler {
    pub fn new(
        engine: &Engine,
        runtime: ComponentRuntime,
        stats: Arc<ComponentStats>,
        first_route: Arc<RouteStats>,
    ) -> ProxyHandler<ComponentHandler> {
        ProxyHandler::new(ComponentHandler {
            runtime: Arc::new(runtime),
            engine: engine.clone(),
            stats,
            first_route,
        })
    }

    /// Whether it exports WASI 0.3's handler (instances reused).
    pub fn is_p3(&self) -> bool {
        self.runtime.is_p3()
    }

    /// What the component imports, by name.
    pub fn imports(&self) -> Vec<String> {
        crate::executor::imports_of(&self.engine, self.runtime.component())
    }
}

/// The route a worker's CPU is charged to: the one of its latest request.
/// The worker task is spawned by wasmtime-wasi-http, so its polls are
/// measured from our hooks inside it: from the start of `instantiate` and
/// from the end of the previous measured poll on the thread, up to each
/// [`Expiration::poll`] (called after every pending poll) and to
/// [`Worker::drop`] (the last one).
#[derive(Clone)]
struct WorkerCharge(Arc<Mutex<Arc<RouteStats>>>);

impl WorkerCharge {
    fn new(route: Arc<RouteStats>) -> WorkerCharge {
        WorkerCharge(Arc::new(Mutex::new(route)))
    }
    fn set(&self, route: Arc<RouteStats>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = route;
    }
    fn route(&self) -> Arc<RouteStats> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn charge_poll(&self) {
        metrics::cpu::charge_since_boundary(metrics::ChargeTo::Route(self.route()));
    }
    /// Spin's SQLite and key-value calls run on tokio's blocking pool, off the
    /// async workers, their CPU charged to the route of the worker's request.
    fn blocking(&self) -> Blocking {
        let charge = self.clone();
        Blocking::new(move |job| {
            let route = charge.route();
            let handle =
                tokio::task::spawn_blocking(move || metrics::cpu::charge_blocking(&route, job));
            Box::pin(async move {
                let _ = handle.await;
            })
        })
    }
}

impl HandlerState for ComponentHandler {
    type StoreData = SpinStore;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<SpinStore, Expiration, Worker>> {
        metrics::cpu::boundary();
        let rt = &self.runtime;
        let started = Instant::now();
        let charge = WorkerCharge::new(self.first_route.clone());
        let current = CurrentRequest::default();
        let mut store = rt
            .new_store(&self.engine, self.stats.clone(), &charge, &current)
            .map_err(wasmtime::Error::from_anyhow)?;
        let pre = rt.pre.as_ref().ok_or_else(|| {
            wasmtime::Error::msg(format!("component {:?} has no wasi:http export", rt.id))
        })?;
        let proxy = pre.instantiate_async(&mut store).await?;
        self.stats.instantiated(started.elapsed());
        let deadlines = store.data().deadlines.clone();
        // Only WASI 0.3 requests come here (`super::handle`); a WASI 0.2
        // instance would serve one request.
        let (max_requests, max_concurrent) = if rt.is_p3() {
            (rt.reuse.max_requests, rt.reuse.max_concurrent)
        } else {
            (1, 1)
        };
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                idle_timeout: rt.reuse.idle_timeout,
                request_timeout: rt.timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
                charge: charge.clone(),
                deadlines,
            },
            state: Worker {
                max_requests,
                max_concurrent,
                request_timeout: rt.timeout,
                component: rt.id.clone(),
                charge,
                current,
            },
        })
    }
}

pub struct Expiration {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    charge: WorkerCharge,
    deadlines: RequestDeadlines,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        self.charge.charge_poll();
        // `start` is when the latest request started: with requests in
        // flight the instance expires at the earliest of their deadlines.
        let deadline = match status {
            WorkerStatus::Idle => start.checked_add(self.idle_timeout),
            WorkerStatus::Requests => self
                .deadlines
                .earliest_pending()
                .or_else(|| start.checked_add(self.request_timeout)),
            WorkerStatus::PostReturn => start.checked_add(self.request_timeout),
        };
        match deadline {
            Some(deadline) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                if self.sleep.deadline() != deadline {
                    self.sleep.as_mut().reset(deadline);
                }
                self.sleep.as_mut().poll(cx)
            }
            None => Poll::Pending,
        }
    }
}

pub struct Worker {
    max_requests: usize,
    max_concurrent: usize,
    request_timeout: Duration,
    component: String,
    charge: WorkerCharge,
    /// The id of the latest request, for the guest's output.
    current: CurrentRequest,
}

/// What the host tells a worker about each request: the route its CPU is
/// charged to and the request's id.
#[derive(Clone)]
pub struct RequestTag {
    pub route: Arc<RouteStats>,
    pub id: Arc<str>,
}

impl WorkerState for Worker {
    type StoreData = SpinStore;
    type RequestData = RequestTag;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_requests {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, SpinStore>,
        tag: RequestTag,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync + 'static>> {
        self.charge.set(tag.route);
        self.current.set(tag.id);
        Box::pin(store.data().deadlines.start(self.request_timeout))
    }

    fn drop(&self, store: Store<SpinStore>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            tracing::error!(request = %self.current.get(), component = %self.component, "instance failed: {e:?}");
        }
        // Giving the instance's memory back is part of its cost.
        drop(store);
        self.charge.charge_poll();
    }
}

/// A WASI 0.2 request on a fresh instance of its own, the way a pure
/// component's request runs: make the instance, call
/// `incoming-handler.handle`, drop the instance, with no worker, request
/// queue or concurrent-call loop around it (`ProxyHandler` keeps those for
/// WASI 0.3 instances, which serve many requests).
///
/// The call runs in the caller's task until the guest has set the response
/// head. A guest that writes a small body has finished by then, in the same
/// poll; one still writing (a large or slow body) goes on in a task of its
/// own, so that the caller can stream what it writes.
impl ComponentHandler {
    pub async fn handle_fresh_p2(
        &self,
        tag: RequestTag,
        req: wasmtime_wasi_http::handler::Request,
    ) -> wasmtime::Result<wasmtime_wasi_http::handler::Response> {
        use futures::future::{select, Either};
        let Some(ProxyPre::P2(pre)) = &self.runtime.pre else {
            return Err(wasmtime::Error::msg(format!(
                "component {:?} has no wasi:http@0.2 export",
                self.runtime.id
            )));
        };
        let pre = pre.clone();
        let rt = self.runtime.clone();
        let engine = self.engine.clone();
        let stats = self.stats.clone();
        let deadline = tokio::time::Instant::now() + rt.timeout;
        let (tx, mut head) = tokio::sync::oneshot::channel();
        let route = tag.route.clone();
        let mut call = Box::pin(async move {
            let charge = WorkerCharge::new(tag.route.clone());
            let current = CurrentRequest::default();
            current.set(tag.id.clone());
            let run = async {
                let (mut store, proxy) =
                    instantiate_when_pooled(&rt, &engine, &stats, &charge, &current, &pre).await?;
                let mut http = store.data_mut().http();
                let request = http.new_incoming_request(
                    wasmtime_wasi_http::p2::bindings::http::types::Scheme::Http,
                    req,
                )?;
                let out = http.new_response_outparam(tx)?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, out)
                    .await
                // The store (and the instance's memory) goes here, charged
                // to the request wherever the call runs.
            };
            // Past the deadline the call is dropped wherever it waits (the
            // epoch deadline stops a guest that computes).
            let result = tokio::time::timeout_at(deadline, run)
                .await
                .unwrap_or_else(|_| Err(wasmtime::Trap::Interrupt.into()));
            if let Err(e) = &result {
                tracing::error!(request = %current.get(), component = %rt.id, "instance failed: {e:?}");
            }
            result
        });
        let sent = match select(call.as_mut(), &mut head).await {
            // The call is over: it set the head during it, or never did.
            Either::Left((result, _)) => {
                return match head.try_recv() {
                    Ok(sent) => sent.map_err(Into::into),
                    Err(_) => result.and_then(|()| Err(never_answered())),
                }
            }
            Either::Right((sent, _)) => sent,
        };
        match sent {
            Ok(response) => {
                // The guest is still writing the body.
                tokio::spawn(metrics::cpu::metered(&route, call));
                response.map_err(Into::into)
            }
            // It dropped its response-outparam without setting it, and runs
            // on: its outcome is the request's.
            Err(_) => call.await.and_then(|()| Err(never_answered())),
        }
    }
}

fn never_answered() -> wasmtime::Error {
    wasmtime::Error::msg("guest never invoked `response-outparam::set` method")
}

/// A fresh instance in a new store, tried again while the instance pool is
/// full (a slot given back by a finished request is free a moment later).
/// The caller's deadline bounds the tries.
async fn instantiate_when_pooled(
    rt: &ComponentRuntime,
    engine: &Engine,
    stats: &Arc<ComponentStats>,
    charge: &WorkerCharge,
    current: &CurrentRequest,
    pre: &wasmtime_wasi_http::p2::bindings::ProxyPre<SpinStore>,
) -> wasmtime::Result<(Store<SpinStore>, wasmtime_wasi_http::p2::bindings::Proxy)> {
    loop {
        let mut store = rt
            .new_store(engine, stats.clone(), charge, current)
            .map_err(wasmtime::Error::from_anyhow)?;
        let started = Instant::now();
        match pre.instantiate_async(&mut store).await {
            Ok(proxy) => {
                stats.instantiated(started.elapsed());
                return Ok((store, proxy));
            }
            Err(e) if e.is::<wasmtime::PoolConcurrencyLimitError>() => {
                drop(store);
                tokio::time::sleep(super::POOL_RETRY_WAIT).await;
            }
            Err(e) => return Err(e),
        }
    }
}
