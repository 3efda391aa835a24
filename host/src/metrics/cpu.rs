//! Where the host's CPU time goes, measured with each thread's own CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`, user + system).
//!
//! Reading the thread CPU clock is a system call (~0.2 µs on the 2-core VMs
//! here, ~0.8 µs on the one this was first written on). A request's polls
//! are what routes and tenants are charged for, so each is measured
//! exactly: the thread clock is read at its end, and at its start unless it
//! was read a few µs before ([`REUSE_READING_NS`]; the thread ran through
//! that gap unless preempted, so the reading plus the wall time since
//! stands in). Every other
//! poll (connections, background tasks) is measured more cheaply: the clock
//! is read only when a runtime thread parks or unparks, and at most once per
//! [`FLUSH_AFTER_NS`] of busy wall time, and what the thread spent between
//! two readings, less what requests were charged exactly, is shared among
//! those polls in proportion to the wall time (`CLOCK_MONOTONIC`, a vDSO
//! read) each took. The share a thread does not give to any poll is the
//! runtime's own (scheduler, epoll, tasks nobody wrapped). Totals are exact
//! per thread, but for a thread preempted in a gap where a reading was
//! reused as it parked (the next reading's share absorbs it). Requests were once split by wall time too: a cheap request
//! preempted by a heavy one on the same core then looked as long as the
//! heavy one's slice, and was charged up to 2.7× its CPU beside a heavy
//! neighbour (benches/energy.py's attribution check).
//!
//! Every charge lands in exactly one [`Charge`] chain whose root is either
//! [`CONNECTIONS`] or one of the [`Background`] tasks, so their sum is all the
//! CPU the host's threads used since they started, and can be compared with
//! the process's `utime + stime`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::RouteStats;

/// How much busy wall time a thread may run before its CPU clock is read.
pub const FLUSH_AFTER_NS: u64 = 2_000_000;

/// Polls remembered between two readings of the thread clock.
const PENDING: usize = 64;

/// A request poll that starts within this much wall time of the thread
/// clock's latest reading takes its start from that reading plus the wall
/// time since, instead of reading the clock again: under load a request
/// starts a few µs after the previous one's end was read (its connection's
/// write and the next one's parse lie between), and the read is a system
/// call, once ~5% of a trivial request's CPU. The thread runs through such a
/// gap unless preempted, so a request is charged at most this much less than
/// it used, and only when preempted in the gap; the end is always read, so
/// the thread's total stays exact.
const REUSE_READING_NS: u64 = 50_000;

/// A counter of CPU nanoseconds; charging it also charges its parent.
#[derive(Debug)]
pub struct Charge {
    ns: AtomicU64,
    parent: Option<&'static Charge>,
}

impl Charge {
    pub const fn new(parent: Option<&'static Charge>) -> Charge {
        Charge {
            ns: AtomicU64::new(0),
            parent,
        }
    }

    fn add(&self, ns: u64) {
        if ns == 0 {
            return;
        }
        let mut c = Some(self);
        while let Some(charge) = c {
            charge.ns.fetch_add(ns, Ordering::Relaxed);
            c = charge.parent;
        }
    }

    pub fn nanos(&self) -> u64 {
        self.ns.load(Ordering::Relaxed)
    }

    pub fn seconds(&self) -> f64 {
        self.nanos() as f64 / 1e9
    }
}

/// Where a measured stretch of CPU goes: one of the host's own charges,
/// which live as long as the process, or an app's route, whose stats live
/// as long as someone holds them (a thread's pending share holds them until
/// it is paid, so a deleted app's stats are freed only after).
#[derive(Debug, Clone)]
pub enum ChargeTo {
    Host(&'static Charge),
    Route(Arc<RouteStats>),
}

impl ChargeTo {
    fn charge(&self) -> &Charge {
        match self {
            ChargeTo::Host(c) => c,
            ChargeTo::Route(r) => &r.cpu,
        }
    }
}

impl From<&'static Charge> for ChargeTo {
    fn from(c: &'static Charge) -> ChargeTo {
        ChargeTo::Host(c)
    }
}

impl From<&Arc<RouteStats>> for ChargeTo {
    fn from(r: &Arc<RouteStats>) -> ChargeTo {
        ChargeTo::Route(r.clone())
    }
}

/// Every connection task: hyper parsing, socket reads and writes, and the
/// requests inside (route charges have this as their parent).
pub static CONNECTIONS: Charge = Charge::new(None);

/// Host work that is not a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Everything the process used before it started serving: loading and
    /// linking components, opening the database.
    Startup,
    /// The accept loop and the idle watcher.
    Accept,
    /// The admin listener serving `/metrics`.
    Admin,
    /// The epoch ticker thread that drives deadlines.
    Epoch,
    /// Runtime threads while running, outside any measured poll: tokio's
    /// scheduler, timers, and tasks nobody wrapped.
    Scheduler,
    /// Runtime threads while parked: epoll and the I/O driver waking tasks.
    Park,
}

impl Background {
    pub const ALL: [Background; 6] = [
        Background::Startup,
        Background::Accept,
        Background::Admin,
        Background::Epoch,
        Background::Scheduler,
        Background::Park,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Background::Startup => "startup",
            Background::Accept => "accept",
            Background::Admin => "admin",
            Background::Epoch => "epoch",
            Background::Scheduler => "scheduler",
            Background::Park => "park",
        }
    }

    pub fn charge(self) -> &'static Charge {
        static CHARGES: [Charge; 6] = [
            Charge::new(None),
            Charge::new(None),
            Charge::new(None),
            Charge::new(None),
            Charge::new(None),
            Charge::new(None),
        ];
        &CHARGES[self as usize]
    }
}

/// All CPU attributed so far: connections plus background.
pub fn accounted_nanos() -> u64 {
    CONNECTIONS.nanos()
        + Background::ALL
            .iter()
            .map(|b| b.charge().nanos())
            .sum::<u64>()
}

/// Charges everything the process used before now, and not yet charged, to
/// [`Background::Startup`]; called once, when the host starts serving.
pub fn serving_started() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let before = process_cpu_ns().saturating_sub(accounted_nanos());
        Background::Startup.charge().add(before);
    });
}

/// This thread's CPU time (user + system) in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    #[cfg(test)]
    tests::CLOCK_READS.set(tests::CLOCK_READS.get() + 1);
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The process's CPU time (user + system, all threads) in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn wall_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into; the clock ids used here
    // exist on every Linux and BSD.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One thread's bookkeeping between two readings of its CPU clock.
struct Meter {
    started: bool,
    cpu_mark: u64,
    wall_mark: u64,
    /// End of the last measured poll (or the last reading): where a poll
    /// measured only by its end ([`charge_since_boundary`]) began.
    boundary: u64,
    len: usize,
    pending: [(ChargeTo, u64); PENDING],
    /// CPU charged exactly (request polls) since the last reading, and the
    /// wall time those polls took: neither is shared among `pending`.
    exact_cpu: u64,
    exact_wall: u64,
    /// The thread clock's latest reading, and the wall time it was taken.
    last_cpu: u64,
    last_wall: u64,
}

static NOBODY: Charge = Charge::new(None);

thread_local! {
    static METER: RefCell<Meter> = const {
        RefCell::new(Meter {
            started: false,
            cpu_mark: 0,
            wall_mark: 0,
            boundary: 0,
            len: 0,
            pending: [const { (ChargeTo::Host(&NOBODY), 0) }; PENDING],
            exact_cpu: 0,
            exact_wall: 0,
            last_cpu: 0,
            last_wall: 0,
        })
    };
    /// Wall time of measured polls nested in the current one, so that the
    /// enclosing poll is charged only its own share.
    static NESTED: Cell<u64> = const { Cell::new(0) };
    /// Where the request being polled on this thread is charged; a request
    /// sets it with [`charge_request_to`] once it knows its route.
    /// The request's own reference, moved in for the poll and back out.
    static REQUEST: RefCell<Option<Arc<RouteStats>>> = const { RefCell::new(None) };
    /// Inside a request's poll, measured exactly: polls nested in it are
    /// part of its CPU and record nothing of their own.
    static EXACT: Cell<bool> = const { Cell::new(false) };
}

impl Meter {
    fn start(&mut self, wall: u64) {
        self.started = true;
        self.cpu_mark = thread_cpu_ns();
        self.wall_mark = wall;
        self.boundary = wall;
        self.len = 0;
        self.exact_cpu = 0;
        self.exact_wall = 0;
        self.last_cpu = self.cpu_mark;
        self.last_wall = wall;
    }

    /// The thread clock at wall time `now`, estimated from its latest
    /// reading if that was taken at most [`REUSE_READING_NS`] before.
    fn cpu_near(&self, now: u64) -> Option<u64> {
        let since = now.checked_sub(self.last_wall)?;
        (self.started && since <= REUSE_READING_NS).then_some(self.last_cpu + since)
    }

    /// Reads the thread clock and shares what was used since the last
    /// reading among the pending polls; the rest goes to `residual`.
    fn flush(&mut self, wall: u64, residual: &'static Charge) {
        if !self.started {
            self.start(wall);
            return;
        }
        self.flush_at(wall, thread_cpu_ns(), residual);
    }

    /// [`Meter::flush`], with the clock estimated from its latest reading
    /// if that is recent ([`Meter::cpu_near`]): for a thread about to park
    /// right after a request's end was read. What the estimate overstates
    /// (the thread preempted in between) the next reading charges less.
    fn flush_near(&mut self, wall: u64, residual: &'static Charge) {
        match self.cpu_near(wall) {
            Some(cpu) => self.flush_at(wall, cpu, residual),
            None => self.flush(wall, residual),
        }
    }

    fn flush_at(&mut self, wall: u64, cpu: u64, residual: &'static Charge) {
        let used = cpu
            .saturating_sub(self.cpu_mark)
            .saturating_sub(self.exact_cpu);
        let polls = &mut self.pending[..self.len];
        let busy: u64 = polls.iter().map(|(_, w)| w).sum();
        let span = wall
            .saturating_sub(self.wall_mark)
            .saturating_sub(self.exact_wall)
            .max(busy)
            .max(1);
        let mut given = 0;
        for pending in polls {
            // Taken out, so that a route's stats are not held past their share.
            let (charge, w) = std::mem::replace(pending, (ChargeTo::Host(&NOBODY), 0));
            let share = (used as u128 * w as u128 / span as u128) as u64;
            charge.charge().add(share);
            given += share;
        }
        residual.add(used - given);
        self.cpu_mark = cpu;
        self.wall_mark = wall;
        self.last_cpu = cpu;
        self.last_wall = wall;
        self.boundary = wall;
        self.len = 0;
        self.exact_cpu = 0;
        self.exact_wall = 0;
    }

    /// A poll whose CPU was read exactly (`cpu_ns`, over `wall_ns`).
    /// `cpu_end` is the thread clock read at `end`.
    fn record_exact(&mut self, charge: &Charge, cpu_ns: u64, wall_ns: u64, end: u64, cpu_end: u64) {
        charge.add(cpu_ns);
        if !self.started {
            // The meter starts now: what came before is nobody's reading.
            self.start(end);
            return;
        }
        self.exact_cpu += cpu_ns;
        self.exact_wall += wall_ns;
        self.boundary = end;
        self.last_cpu = cpu_end;
        self.last_wall = end;
        if end.saturating_sub(self.wall_mark) >= FLUSH_AFTER_NS {
            // The end reading just taken serves: no second read.
            self.flush_at(end, cpu_end, Background::Scheduler.charge());
        }
    }

    fn record(&mut self, charge: ChargeTo, wall_ns: u64, end: u64) {
        if !self.started {
            self.start(end.saturating_sub(wall_ns));
        }
        if self.len == PENDING {
            self.flush(end, Background::Scheduler.charge());
        }
        self.pending[self.len] = (charge, wall_ns);
        self.len += 1;
        self.boundary = end;
        if end.saturating_sub(self.wall_mark) >= FLUSH_AFTER_NS {
            self.flush(end, Background::Scheduler.charge());
        }
    }
}

fn with_meter<R>(f: impl FnOnce(&mut Meter) -> R) -> Option<R> {
    METER
        .try_with(|m| m.try_borrow_mut().ok().map(|mut m| f(&mut m)))
        .ok()
        .flatten()
}

/// tokio runtime hooks: every runtime thread starts its meter when it starts,
/// reads its clock before and after parking, and when it stops.
pub fn instrument(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    builder
        .on_thread_start(|| {
            with_meter(|m| m.start(wall_ns()));
        })
        .on_thread_park(thread_parks)
        .on_thread_unpark(thread_unparks)
        .on_thread_stop(|| {
            with_meter(|m| m.flush(wall_ns(), Background::Scheduler.charge()));
        })
}

/// A runtime thread parks: what it used since the clock's last reading is
/// shared out now. Under light load a thread parks a few µs after a
/// request's end was read (its response written, nothing else to run), so
/// that reading serves, and a request costs one system call less.
fn thread_parks() {
    with_meter(|m| m.flush_near(wall_ns(), Background::Scheduler.charge()));
}

/// A runtime thread unparks: what it used while parked (epoll, waking
/// tasks) is the park's.
fn thread_unparks() {
    with_meter(|m| m.flush(wall_ns(), Background::Park.charge()));
}

/// Reads this thread's clock now (e.g. before it blocks for a long time).
pub fn flush_thread() {
    if EXACT.get() {
        // Inside a request's poll: its exact reading covers this.
        return;
    }
    with_meter(|m| m.flush(wall_ns(), Background::Scheduler.charge()));
}

/// Runs `f`, charging the wall time it takes on this thread to `charge`
/// (excluding measured polls nested inside it).
fn measure<R>(charge: &ChargeTo, f: impl FnOnce() -> R) -> R {
    if EXACT.get() {
        // Part of the request polled around it, which is measured exactly.
        return f();
    }
    let outer = NESTED.replace(0);
    let start = wall_ns();
    let r = f();
    let end = wall_ns();
    let total = end.saturating_sub(start);
    let inner = NESTED.replace(outer + total);
    with_meter(|m| m.record(charge.clone(), total.saturating_sub(inner), end));
    r
}

pin_project_lite::pin_project! {
    /// A future whose every poll is charged to one [`Charge`].
    pub struct Metered<F> {
        #[pin]
        inner: F,
        charge: ChargeTo,
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        measure(this.charge, || inner.poll(cx))
    }
}

/// Charges every poll of `fut` to `charge`.
pub fn metered<F: Future>(charge: impl Into<ChargeTo>, fut: F) -> Metered<F> {
    Metered {
        inner: fut,
        charge: charge.into(),
    }
}

/// A connection task: charged to [`CONNECTIONS`].
pub fn connection<F: Future>(fut: F) -> Metered<F> {
    metered(&CONNECTIONS, fut)
}

/// Background work of the given kind.
pub fn background<F: Future>(kind: Background, fut: F) -> Metered<F> {
    metered(kind.charge(), fut)
}

pin_project_lite::pin_project! {
    /// A request: charged to `unrouted` until it calls [`charge_request_to`]
    /// (once it knows its route), then to that route.
    pub struct Request<F> {
        #[pin]
        inner: F,
        // Always `Some` outside a poll, until the output takes it.
        route: Option<Arc<RouteStats>>,
    }
}

impl<F: Future> Future for Request<F> {
    type Output = (F::Output, Arc<RouteStats>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        // Moved, not cloned: a poll costs no reference counting.
        let before = REQUEST.replace(this.route.take());
        let inside = EXACT.replace(true);
        let start = wall_ns();
        let cpu_start = if inside {
            0
        } else {
            with_meter(|m| m.cpu_near(start))
                .flatten()
                .unwrap_or_else(thread_cpu_ns)
        };
        let poll = inner.poll(cx);
        let cpu_end = if inside { 0 } else { thread_cpu_ns() };
        let end = wall_ns();
        EXACT.set(inside);
        // The request may have learnt its route during this poll.
        let route = REQUEST
            .replace(before)
            .expect("a request's route is only replaced, never taken, while it is polled");
        if !inside {
            let total = end.saturating_sub(start);
            // The poll around it (its connection) is not charged this time.
            NESTED.set(NESTED.get() + total);
            let cpu = cpu_end.saturating_sub(cpu_start);
            with_meter(|m| m.record_exact(&route.cpu, cpu, total, end, cpu_end));
        }
        match poll {
            Poll::Ready(out) => Poll::Ready((out, route)),
            Poll::Pending => {
                *this.route = Some(route);
                Poll::Pending
            }
        }
    }
}

/// Measures a request's polls; the output also says which route it ended
/// up on (so the caller can count it there).
pub fn request<F: Future>(unrouted: &Arc<RouteStats>, fut: F) -> Request<F> {
    Request {
        inner: fut,
        route: Some(unrouted.clone()),
    }
}

/// Called by a request being polled once it knows its route.
pub fn charge_request_to(route: &Arc<RouteStats>) {
    REQUEST.with_borrow_mut(|current| {
        if let Some(r) = current {
            if !Arc::ptr_eq(r, route) {
                *r = route.clone();
            }
        }
    });
}

/// The route of the request being polled on this thread, if any.
pub fn current_request() -> Option<Arc<RouteStats>> {
    REQUEST.with_borrow(|r| r.clone())
}

/// Runs synchronous work on tokio's blocking pool and charges its CPU to
/// the request that asked for it (or to the scheduler outside a request).
pub async fn spawn_blocking<F, R>(f: F) -> Result<R, tokio::task::JoinError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let charge = match current_request() {
        Some(route) => ChargeTo::Route(route),
        None => ChargeTo::Host(Background::Scheduler.charge()),
    };
    tokio::task::spawn_blocking(move || charge_blocking(charge, f)).await
}

/// Runs `f` on this thread and charges exactly its CPU to `charge`: the
/// thread clock is read right before and after.
pub fn charge_blocking<R>(charge: impl Into<ChargeTo>, f: impl FnOnce() -> R) -> R {
    flush_thread();
    let r = measure(&charge.into(), f);
    flush_thread();
    r
}

/// Charges the wall time since this thread's last measured poll ended to
/// `charge`: for tasks we do not spawn ourselves (wasmtime-wasi-http's
/// workers) but whose code calls us at the end of each poll.
pub fn charge_since_boundary(charge: impl Into<ChargeTo>) {
    let charge = charge.into();
    let end = wall_ns();
    with_meter(|m| {
        let start = if m.started { m.boundary } else { end };
        m.record(charge, end.saturating_sub(start), end);
    });
}

/// Marks that nothing before this point belongs to a poll that will later
/// be measured with [`charge_since_boundary`].
pub fn boundary() {
    let now = wall_ns();
    with_meter(|m| {
        if m.started {
            m.boundary = now;
        }
    });
}

/// Called by the epoch ticker thread on each turn: charges the CPU it used
/// since its previous turn (or since it started) to [`Background::Epoch`].
pub fn epoch_thread_tick() {
    thread_local! {
        static LAST: Cell<u64> = const { Cell::new(0) };
    }
    let now = thread_cpu_ns();
    let last = LAST.replace(now);
    Background::Epoch.charge().add(now.saturating_sub(last));
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Readings of this thread's CPU clock.
        pub(super) static CLOCK_READS: Cell<u64> = const { Cell::new(0) };
    }

    /// An app whose component `c` has one route, `/r`, and a runtime to
    /// poll its requests on.
    fn one_route() -> (Arc<super::super::AppMetrics>, tokio::runtime::Runtime) {
        let app = super::super::AppMetrics::new(["c"], [("c", "/r")]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        (app, rt)
    }

    fn spin(ms: u64) {
        let until = wall_ns() + ms * 1_000_000;
        let mut x = 0u64;
        while wall_ns() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[test]
    fn blocking_work_is_charged_to_its_charge() {
        static C: Charge = Charge::new(Some(&CONNECTIONS));
        let conn_before = CONNECTIONS.nanos();
        charge_blocking(&C, || spin(20));
        // 20 ms of busy wall time is at least some ms of CPU even on a
        // loaded machine, and the parent saw the same amount.
        assert!(C.nanos() > 2_000_000, "charged {} ns", C.nanos());
        assert!(CONNECTIONS.nanos() - conn_before >= C.nanos());
    }

    #[test]
    fn polls_share_the_thread_clock() {
        static A: Charge = Charge::new(None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let before = thread_cpu_ns();
        rt.block_on(metered(&A, async { spin(10) }));
        flush_thread();
        let used = thread_cpu_ns() - before;
        assert!(A.nanos() > 0);
        assert!(A.nanos() <= used, "{} > {used}", A.nanos());
    }

    /// A request is charged the CPU it used, however long its poll took on
    /// the wall clock (preempted, or blocked): split by wall time, this one
    /// was charged most of its neighbour's 10 ms.
    #[test]
    fn a_request_is_charged_its_own_cpu_not_its_wall_time() {
        static BUSY: Charge = Charge::new(None);
        let app = super::super::AppMetrics::new(["c"], [("c", "/idle")]);
        let route = app.route("c", "/idle");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            request(route, async {
                std::thread::sleep(std::time::Duration::from_millis(30))
            })
            .await;
            metered(&BUSY, async { spin(10) }).await;
        });
        flush_thread();
        assert!(
            route.cpu.nanos() < 2_000_000,
            "a sleeping request was charged {} ns",
            route.cpu.nanos()
        );
        assert!(BUSY.nanos() > 2_000_000, "charged {} ns", BUSY.nanos());
    }

    /// Under load a request starts a few µs after the clock was last read:
    /// its start is taken from that reading, and only its end is read. It
    /// is still charged its own CPU, never more than the thread used.
    #[test]
    fn a_request_starting_just_after_a_reading_reads_the_clock_once() {
        let (app, rt) = one_route();
        let route = app.route("c", "/r");
        // A preemption between the reading and the request (a busy test
        // machine) makes it read again, rightly: one of a few tries suffices.
        for _ in 0..10 {
            let charged_before = route.cpu.nanos();
            let thread_before = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
            let reads = rt.block_on(async {
                flush_thread();
                let before = CLOCK_READS.get();
                request(route, async { spin(10) }).await;
                CLOCK_READS.get() - before
            });
            let thread_used = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) - thread_before;
            let charged = route.cpu.nanos() - charged_before;
            assert!(
                charged > 1_000_000,
                "charged {charged} ns for 10 ms of spinning"
            );
            assert!(
                charged <= thread_used,
                "charged {charged} > {thread_used} used"
            );
            if reads == 1 {
                return;
            }
        }
        panic!("every request read the clock at its start too");
    }

    /// A request after a pause (the thread idle, or busy with nothing that
    /// read the clock) reads its start: wall time since an old reading may
    /// not have been this thread's CPU.
    #[test]
    fn a_request_after_a_pause_reads_its_start() {
        let (app, rt) = one_route();
        let route = app.route("c", "/r");
        let reads = rt.block_on(async {
            flush_thread();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let before = CLOCK_READS.get();
            request(route, async { spin(1) }).await;
            CLOCK_READS.get() - before
        });
        assert_eq!(reads, 2, "the request read the clock {reads} times");
        let charged = route.cpu.nanos();
        assert!(
            charged < 10_000_000,
            "a 1 ms request after a 20 ms sleep was charged {charged} ns"
        );
    }

    /// A thread that parks right after a reading (a request's end, its
    /// response written, nothing else to run) does not read the clock
    /// again; one that parks after a while does.
    #[test]
    fn parking_right_after_a_reading_does_not_read_the_clock() {
        let mut saved = false;
        // A preemption between the two (a busy test machine) makes it read.
        for _ in 0..10 {
            flush_thread();
            let before = CLOCK_READS.get();
            thread_parks();
            if CLOCK_READS.get() == before {
                saved = true;
                break;
            }
        }
        assert!(saved, "every park read the clock");
        flush_thread();
        spin(1);
        let before = CLOCK_READS.get();
        thread_parks();
        assert_eq!(CLOCK_READS.get() - before, 1, "a park 1 ms after a reading");
        // Unparking always reads: the parked time is not the thread's CPU.
        let before = CLOCK_READS.get();
        thread_unparks();
        assert_eq!(CLOCK_READS.get() - before, 1);
    }

    /// Whatever the readings reused, the thread's CPU is all handed out:
    /// what its charges received since a reading matches its clock.
    #[test]
    fn reused_readings_still_hand_out_the_threads_cpu() {
        static POLLS: Charge = Charge::new(None);
        let (app, rt) = one_route();
        let route = app.route("c", "/r");
        let charged = || {
            POLLS.nanos()
                + route.cpu.nanos()
                + Background::Scheduler.charge().nanos()
                + Background::Park.charge().nanos()
        };
        rt.block_on(async {
            thread_unparks();
            let (cpu_before, charged_before) = (thread_cpu_ns(), charged());
            thread_unparks();
            for _ in 0..200 {
                metered(&POLLS, async { spin(0) }).await;
                request(route, async { spin(0) }).await;
                thread_parks();
                thread_unparks();
            }
            metered(&POLLS, async { spin(1) }).await;
            thread_parks();
            let used = thread_cpu_ns() - cpu_before;
            let handed = charged() - charged_before;
            // Other tests on other threads charge the shared background
            // buckets too, so only a shortfall is this thread's error.
            assert!(
                handed + 20_000 >= used,
                "the thread used {used} ns, its charges got {handed}"
            );
        });
    }

    /// An app's stats are freed once the app and its requests are gone,
    /// even after every way of charging its routes: they were once leaked
    /// for the life of the process (the request path held them as
    /// `&'static`), so a platform leaked each deleted app's counters.
    #[test]
    fn a_deleted_apps_stats_are_freed_once_its_charges_are_paid() {
        let app = super::super::AppMetrics::new(["c"], [("c", "/r")]);
        let route = app.route("c", "/r").clone();
        let (app_freed, route_freed) = (Arc::downgrade(&app), Arc::downgrade(&route));
        let component_freed = Arc::downgrade(&route.component);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ((), counted) = rt.block_on(request(&app.unmatched, async {
            charge_request_to(&route);
            // A read on the blocking pool, charged to the request.
            spawn_blocking(|| spin(2)).await.unwrap();
        }));
        counted.count(http::StatusCode::OK);
        // Polls measured by wall time wait in the thread's pending list
        // until its clock is next read (here: a short one, just after a
        // reading), holding their route.
        flush_thread();
        rt.block_on(metered(&route, async {}));
        drop((app, route, counted));
        assert!(app_freed.upgrade().is_none(), "nothing holds the app's set");
        assert!(
            route_freed.upgrade().is_some(),
            "a share still to be paid keeps its route"
        );
        flush_thread();
        assert!(
            route_freed.upgrade().is_none() && component_freed.upgrade().is_none(),
            "the route's stats outlived the app and its charges"
        );
    }

    #[test]
    fn requests_learn_their_route_while_polled() {
        let (app, rt) = one_route();
        let route = app.route("c", "/r");
        let ((), got) = rt.block_on(request(&app.unmatched, async {
            charge_request_to(route);
            spin(5);
        }));
        assert!(Arc::ptr_eq(&got, route));
        flush_thread();
        assert!(route.cpu.nanos() > 0);
        assert_eq!(app.unmatched.cpu.nanos(), 0);
    }
}
