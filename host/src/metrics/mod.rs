//! What each request costs, per component and route: requests by status, CPU
//! time, instantiation time, guest memory peak; and where the rest of the
//! host's CPU goes. Served in the Prometheus text format by the admin
//! listener (`nebula up --admin ADDR`, [`crate::server::admin`]) and
//! summarised on stderr at shutdown.
//!
//! The hot path only touches atomics that belong to its route or component,
//! allocated once when the app loads; labels are bounded by the manifest.

pub mod cpu;
pub mod memory;
mod status_counts;
mod text;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use cpu::{Charge, ChargeTo};
pub use memory::PeakLimits;
pub use text::{render, CONTENT_TYPE};

/// The component label of responses the host gives without a component:
/// static files and requests no route matches.
pub const HOST_COMPONENT: &str = "-";

/// Per component: instantiation, call time and memory.
#[derive(Debug)]
pub struct ComponentStats {
    pub name: String,
    instantiate_ns: AtomicU64,
    instantiations: AtomicU64,
    call_ns: AtomicU64,
    calls: AtomicU64,
    /// The largest linear memory an instance of it grew to, in bytes.
    pub memory_peak: AtomicU64,
}

impl ComponentStats {
    fn new(name: &str) -> ComponentStats {
        ComponentStats {
            name: name.to_string(),
            instantiate_ns: AtomicU64::new(0),
            instantiations: AtomicU64::new(0),
            call_ns: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            memory_peak: AtomicU64::new(0),
        }
    }

    pub fn instantiated(&self, took: Duration) {
        self.instantiate_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.instantiations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn called(&self, took: Duration) {
        self.call_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn memory(&self, peak_bytes: usize) {
        self.memory_peak
            .fetch_max(peak_bytes as u64, Ordering::Relaxed);
    }
}

/// Per (component, route): requests by status and the CPU they used.
#[derive(Debug)]
pub struct RouteStats {
    pub component: Arc<ComponentStats>,
    pub route: String,
    /// CPU of the requests' work; its parent is [`cpu::CONNECTIONS`].
    pub cpu: Charge,
    by_status: status_counts::StatusCounts,
    /// Reads run and the response cache's figures, made on first use.
    data: std::sync::OnceLock<Box<DataStats>>,
}

/// A route's reads and memoised responses.
#[derive(Debug, Default)]
pub struct DataStats {
    /// SQL statements the route's reads ran (one per read per request).
    reads: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    not_modified: AtomicU64,
    evictions: AtomicU64,
    /// Bytes its memoised responses hold now.
    bytes: std::sync::atomic::AtomicI64,
}

impl DataStats {
    pub fn read(&self, statements: usize) {
        self.reads.fetch_add(statements as u64, Ordering::Relaxed);
    }
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
    pub fn missed(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
    pub fn not_modified(&self) {
        self.not_modified.fetch_add(1, Ordering::Relaxed);
    }
    pub fn evicted(&self) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
    }
    pub fn stored(&self, delta: i64) {
        self.bytes.fetch_add(delta, Ordering::Relaxed);
    }
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
    pub fn not_modified_count(&self) -> u64 {
        self.not_modified.load(Ordering::Relaxed)
    }
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed).max(0) as u64
    }
}

impl RouteStats {
    fn new(component: Arc<ComponentStats>, route: &str) -> RouteStats {
        RouteStats {
            component,
            route: route.to_string(),
            cpu: Charge::new(Some(&cpu::CONNECTIONS)),
            by_status: Default::default(),
            data: Default::default(),
        }
    }

    /// The route's reads and memoised responses (made on first use: most
    /// routes of a platform's idle apps never need them).
    pub fn memo(&self) -> &DataStats {
        self.data.get_or_init(Default::default)
    }

    /// Its data figures, if it ever had any.
    pub fn data_stats(&self) -> Option<&DataStats> {
        self.data.get().map(|b| &**b)
    }

    pub fn count(&self, status: http::StatusCode) {
        self.by_status.count(status.as_u16());
    }

    /// `(status, requests)` in status order.
    fn statuses(&self) -> Vec<(u16, u64)> {
        self.by_status.counts()
    }

    fn requests(&self) -> u64 {
        self.statuses().iter().map(|(_, n)| n).sum()
    }
}

/// One route's totals, as [`AppMetrics::route_totals`] gives them.
#[derive(Debug, Clone)]
pub struct RouteTotal {
    pub component: String,
    pub route: String,
    pub requests: u64,
    pub by_status: Vec<(u16, u64)>,
    pub cpu_ns: u64,
}

/// The stats of one app, allocated once per set of routes. Shared: the
/// app's loaded versions, the platform's record of it (counters go on
/// across unloads) and requests in flight each hold it, so it is freed when
/// the app is deleted and the last of them is done.
#[derive(Debug)]
pub struct AppMetrics {
    components: Vec<Arc<ComponentStats>>,
    routes: Vec<Arc<RouteStats>>,
    by_label: HashMap<(String, String), Arc<RouteStats>>,
    /// In the order the routes were given (duplicates share one entry).
    by_index: Vec<Arc<RouteStats>>,
    /// Static files served by the host.
    pub static_files: Arc<RouteStats>,
    /// Requests no route matched (404, 405).
    pub unmatched: Arc<RouteStats>,
}

impl AppMetrics {
    /// `components` in the order to report them; `routes` as (component,
    /// route) pairs, duplicates merged.
    pub fn new<'a>(
        components: impl IntoIterator<Item = &'a str>,
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Arc<AppMetrics> {
        let mut comps: Vec<Arc<ComponentStats>> = components
            .into_iter()
            .map(|c| Arc::new(ComponentStats::new(c)))
            .collect();
        let host = Arc::new(ComponentStats::new(HOST_COMPONENT));
        let static_files = Arc::new(RouteStats::new(host.clone(), "(static)"));
        let unmatched = Arc::new(RouteStats::new(host.clone(), "(unmatched)"));
        let mut by_label: HashMap<(String, String), Arc<RouteStats>> = HashMap::new();
        let mut ordered = Vec::new();
        let mut by_index = Vec::new();
        for (component, route) in routes {
            let key = (component.to_string(), route.to_string());
            if let Some(stats) = by_label.get(&key) {
                by_index.push(stats.clone());
                continue;
            }
            let comp = match comps.iter().find(|c| c.name == component) {
                Some(c) => c.clone(),
                None => {
                    let c = Arc::new(ComponentStats::new(component));
                    comps.push(c.clone());
                    c
                }
            };
            let stats = Arc::new(RouteStats::new(comp, route));
            by_label.insert(key, stats.clone());
            ordered.push(stats.clone());
            by_index.push(stats);
        }
        comps.push(host);
        ordered.push(static_files.clone());
        ordered.push(unmatched.clone());
        Arc::new(AppMetrics {
            components: comps,
            routes: ordered,
            by_label,
            by_index,
            static_files,
            unmatched,
        })
    }

    /// The stats of a (component, route) pair given to [`AppMetrics::new`].
    pub fn route(&self, component: &str, route: &str) -> &Arc<RouteStats> {
        self.by_label
            .get(&(component.to_string(), route.to_string()))
            .unwrap_or(&self.unmatched)
    }

    /// Whether these stats were made for exactly these routes (and know
    /// these components), so that a new version of an app with the same
    /// routes can count on in them instead of starting from zero.
    pub fn fits<'a>(
        &self,
        components: impl IntoIterator<Item = &'a str>,
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> bool {
        let mut given = 0;
        for (i, (component, route)) in routes.into_iter().enumerate() {
            match self.by_index.get(i) {
                Some(s) if s.component.name == component && s.route == route => given += 1,
                _ => return false,
            }
        }
        given == self.by_index.len() && components.into_iter().all(|c| self.component(c).is_some())
    }

    /// The stats of the `i`th (component, route) pair given to [`AppMetrics::new`].
    pub fn route_at(&self, i: usize) -> &Arc<RouteStats> {
        self.by_index.get(i).unwrap_or(&self.unmatched)
    }

    pub fn component(&self, name: &str) -> Option<&Arc<ComponentStats>> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Per route: requests, by status, and their CPU (what a platform's
    /// admin API reports per app).
    pub fn route_totals(&self) -> Vec<RouteTotal> {
        self.routes
            .iter()
            .map(|r| RouteTotal {
                component: r.component.name.clone(),
                route: r.route.clone(),
                requests: r.requests(),
                by_status: r.statuses(),
                cpu_ns: r.cpu.nanos(),
            })
            .collect()
    }

    /// One line per component that served requests: requests, mean CPU per
    /// request, mean instantiation time, guest memory peak.
    pub fn summary(&self) -> Vec<String> {
        self.components
            .iter()
            .filter_map(|c| {
                let routes = self
                    .routes
                    .iter()
                    .filter(|r| Arc::ptr_eq(&r.component, c));
                let (requests, cpu_ns) = routes.fold((0, 0), |(n, ns), r| {
                    (n + r.requests(), ns + r.cpu.nanos())
                });
                if requests == 0 {
                    return None;
                }
                let inst = c.instantiations.load(Ordering::Relaxed);
                let inst_us = if inst == 0 {
                    "-".to_string()
                } else {
                    format!(
                        "{:.1}",
                        c.instantiate_ns.load(Ordering::Relaxed) as f64 / inst as f64 / 1e3
                    )
                };
                Some(format!(
                    "component {}: {requests} requests, {:.1} µs CPU/request, {inst_us} µs instantiate (mean of {inst}), guest memory peak {:.1} MiB",
                    c.name,
                    cpu_ns as f64 / requests as f64 / 1e3,
                    c.memory_peak.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
                ))
            })
            .collect()
    }
}

/// Prints the per-component summary to stderr (at shutdown).
pub fn print_summary(app: &AppMetrics) {
    cpu::flush_thread();
    for line in app.summary() {
        eprintln!("nebula: {line}");
    }
    eprintln!(
        "nebula: host CPU {:.3} s accounted ({:.3} s in connections), process CPU {:.3} s",
        cpu::accounted_nanos() as f64 / 1e9,
        cpu::CONNECTIONS.seconds(),
        cpu::process_cpu_ns() as f64 / 1e9,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_count_by_status_and_render() {
        let m = AppMetrics::new(["a"], [("a", "/x"), ("a", "/x"), ("b", "/y")]);
        let x = m.route("a", "/x");
        x.count(http::StatusCode::OK);
        x.count(http::StatusCode::OK);
        m.route("b", "/y").count(http::StatusCode::NOT_FOUND);
        m.unmatched.count(http::StatusCode::NOT_FOUND);
        // The edges of the classes, each counted in its own.
        for code in [100, 199, 599, 999] {
            m.route("b", "/y")
                .count(http::StatusCode::from_u16(code).unwrap());
        }
        let edges: Vec<(u16, u64)> = m.route("b", "/y").statuses();
        assert_eq!(edges, [(100, 1), (199, 1), (404, 1), (599, 1), (999, 1)]);
        m.component("a").unwrap().memory(3 << 20);
        let text = render(Some(&m));
        assert!(
            text.contains(r#"nebula_requests_total{component="a",route="/x",status="200"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"nebula_requests_total{component="b",route="/y",status="404"} 1"#));
        assert!(text.contains(
            r#"nebula_requests_total{component="-",route="(unmatched)",status="404"} 1"#
        ));
        assert!(text.contains(r#"nebula_guest_memory_peak_bytes{component="a"} 3145728"#));
        // The same routes fit; another route, order or count does not.
        let routes = [("a", "/x"), ("a", "/x"), ("b", "/y")];
        assert!(m.fits(["a"], routes));
        assert!(!m.fits(["a"], [("a", "/x"), ("b", "/y")]));
        assert!(!m.fits(["a"], [("a", "/x"), ("a", "/x"), ("b", "/z")]));
        assert!(!m.fits(["a", "c"], routes));
        assert!(text.contains("process_cpu_seconds_total "));
        let summary = m.summary();
        assert_eq!(summary.len(), 3, "{summary:?}");
        assert!(
            summary[0].starts_with("component a: 2 requests"),
            "{summary:?}"
        );
    }
}
