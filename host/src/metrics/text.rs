//! The Prometheus text format (0.0.4), written with `prometheus-client`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::cpu::{self, Background};
use super::AppMetrics;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything the host measures, as the body of `GET /metrics`.
pub fn render(app: Option<&Arc<AppMetrics>>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot { app: app.cloned() }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Snapshot {
    app: Option<Arc<AppMetrics>>,
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    m.encode_counter::<NoLabelSet, _, f64>(&value, None)
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let secs = Unit::Seconds;
        let bytes = Unit::Bytes;
        if let Some(app) = &self.app {
            let mut m = enc.encode_descriptor(
                "nebula_requests",
                "Requests served, by component, route and status.",
                None,
                MetricType::Counter,
            )?;
            for r in &app.routes {
                for (status, n) in r.statuses() {
                    let labels = [
                        ("component", r.component.name.as_str()),
                        ("route", r.route.as_str()),
                        ("status", &status.to_string()),
                    ];
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, f64>(&n, None)?;
                }
            }
            let mut m = enc.encode_descriptor(
                "nebula_request_cpu",
                "CPU time (user + system) of the requests' work: routing, reads, instantiate, call, effects, response conversion.",
                Some(&secs),
                MetricType::Counter,
            )?;
            for r in &app.routes {
                let labels = [
                    ("component", r.component.name.as_str()),
                    ("route", r.route.as_str()),
                ];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, f64>(&r.cpu.seconds(), None)?;
            }
            let per_route = |enc: &mut DescriptorEncoder,
                             name: &str,
                             help: &str,
                             unit: Option<&Unit>,
                             ty: MetricType,
                             get: &dyn Fn(&super::DataStats) -> u64|
             -> Result<(), std::fmt::Error> {
                let mut m = enc.encode_descriptor(name, help, unit, ty)?;
                for r in &app.routes {
                    let Some(d) = r.data_stats() else { continue };
                    let labels = [
                        ("component", r.component.name.as_str()),
                        ("route", r.route.as_str()),
                    ];
                    let mut f = m.encode_family(&labels)?;
                    let v = get(d) as f64;
                    match ty {
                        MetricType::Gauge => f.encode_gauge(&v)?,
                        _ => f.encode_counter::<NoLabelSet, _, f64>(&v, None)?,
                    }
                }
                Ok(())
            };
            per_route(
                &mut enc,
                "nebula_reads",
                "SQL reads the route ran (one per declared read per request that reached its reads).",
                None,
                MetricType::Counter,
                &|d| d.reads(),
            )?;
            per_route(
                &mut enc,
                "nebula_memo_hits",
                "Requests answered from the response cache: no SQL, no instance.",
                None,
                MetricType::Counter,
                &|d| d.hits(),
            )?;
            per_route(
                &mut enc,
                "nebula_memo_misses",
                "Requests on a memoised route that ran their reads and component.",
                None,
                MetricType::Counter,
                &|d| d.misses(),
            )?;
            per_route(
                &mut enc,
                "nebula_memo_not_modified",
                "Requests answered 304 because the client held the response (If-None-Match).",
                None,
                MetricType::Counter,
                &|d| d.not_modified_count(),
            )?;
            per_route(
                &mut enc,
                "nebula_memo_evictions",
                "Memoised responses dropped to keep the cache within [cache] max_bytes.",
                None,
                MetricType::Counter,
                &|d| d.evictions(),
            )?;
            per_route(
                &mut enc,
                "nebula_memo",
                "Memory the route's memoised responses hold now.",
                Some(&bytes),
                MetricType::Gauge,
                &|d| d.bytes(),
            )?;
            let per_component = |enc: &mut DescriptorEncoder,
                                 name: &str,
                                 help: &str,
                                 unit: Option<&Unit>,
                                 ty: MetricType,
                                 get: &dyn Fn(&super::ComponentStats) -> f64|
             -> Result<(), std::fmt::Error> {
                let mut m = enc.encode_descriptor(name, help, unit, ty)?;
                for c in &app.components {
                    if c.name == super::HOST_COMPONENT {
                        continue;
                    }
                    let labels = [("component", c.name.as_str())];
                    let mut f = m.encode_family(&labels)?;
                    match ty {
                        MetricType::Gauge => f.encode_gauge(&get(c))?,
                        _ => f.encode_counter::<NoLabelSet, _, f64>(&get(c), None)?,
                    }
                }
                Ok(())
            };
            let ns = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
            per_component(
                &mut enc,
                "nebula_instantiate",
                "Wall time spent instantiating the component.",
                Some(&secs),
                MetricType::Counter,
                &|c| ns(&c.instantiate_ns),
            )?;
            per_component(
                &mut enc,
                "nebula_instantiations",
                "Instances made of the component.",
                None,
                MetricType::Counter,
                &|c| n(&c.instantiations),
            )?;
            per_component(
                &mut enc,
                "nebula_call",
                "Wall time spent in the component's handle call (pure components).",
                Some(&secs),
                MetricType::Counter,
                &|c| ns(&c.call_ns),
            )?;
            per_component(
                &mut enc,
                "nebula_guest_memory_peak",
                "The largest linear memory an instance of the component grew to.",
                Some(&bytes),
                MetricType::Gauge,
                &|c| n(&c.memory_peak),
            )?;
        }
        counter(
            &mut enc,
            "nebula_connection_cpu",
            "CPU time of every connection task: HTTP parsing, socket reads and writes, and the requests inside.",
            Some(&secs),
            cpu::CONNECTIONS.seconds(),
        )?;
        let mut m = enc.encode_descriptor(
            "nebula_background_cpu",
            "CPU time of host work that is not a connection: startup (everything before serving), accept loop, admin listener, epoch ticker thread, runtime scheduler and parked threads (epoll).",
            Some(&secs),
            MetricType::Counter,
        )?;
        for b in Background::ALL {
            let labels = [("task", b.label())];
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, f64>(&b.charge().seconds(), None)?;
        }
        counter(
            &mut enc,
            "nebula_accounted_cpu",
            "All CPU time the host attributes: connections plus background. Compare with process_cpu_seconds_total.",
            Some(&secs),
            cpu::accounted_nanos() as f64 / 1e9,
        )?;
        counter(
            &mut enc,
            "process_cpu",
            "Total user and system CPU time spent in seconds.",
            Some(&secs),
            cpu::process_cpu_ns() as f64 / 1e9,
        )?;
        if let Some(rss) = resident_bytes() {
            let mut m = enc.encode_descriptor(
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(&bytes),
                MetricType::Gauge,
            )?;
            m.encode_gauge(&rss)?;
        }
        Ok(())
    }
}

/// Resident set size from `/proc/self/statm` (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}
