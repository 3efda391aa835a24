//! A real cluster for the tests in `cluster.rs`, made by the same scripts an
//! operator runs (`deploy/cluster/up`, `ctl`, `down`): PostgreSQL primary and
//! synchronous standby, Nebula nodes, HAProxy, each cluster in a temporary
//! folder on ports of its own, torn down when dropped (a failing test too).
//!
//! Also the load the tests put on it: bounded in count and time, every
//! request with a deadline, each outcome kept for the assertions.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::{build_guests, repo, Resp};

/// Ports a cluster takes from its base: deploy/cluster/lib.sh uses B..B+39.
const PORTS: u16 = 40;

/// One cluster at a time: five clusters of four processes each on two
/// cores would measure the machine, not the failover.
static TURN: Mutex<()> = Mutex::new(());

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub base: u16,
    _turn: MutexGuard<'static, ()>,
}

impl Cluster {
    /// `deploy/cluster/up` with `nodes` nodes (and one spare slot), each
    /// given `node_args` too.
    pub fn up(nodes: usize, node_args: &str) -> Cluster {
        build_guests();
        // A test that failed while holding the turn still gave its cluster back.
        let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::Builder::new()
            .prefix("nebula-cluster-")
            .tempdir()
            .unwrap();
        let base = free_base();
        let out = script("up")
            .arg(dir.path())
            .env("CLUSTER_PORT_BASE", base.to_string())
            .env("CLUSTER_NODES", nodes.to_string())
            .env("CLUSTER_NODE_ARGS", node_args)
            // Built by build_guests above, and compiled by the other tests
            // into the cache they share (support::Server does the same).
            .env("CLUSTER_NO_BUILD", "1")
            .env("CLUSTER_CACHE_DIR", repo().join("target/nebula-test-cache"))
            .env("NEBULA", env!("CARGO_BIN_EXE_nebula"))
            .output()
            .expect("run deploy/cluster/up");
        let c = Cluster {
            dir,
            base,
            _turn: turn,
        };
        assert!(
            out.status.success(),
            "deploy/cluster/up failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            c.logs()
        );
        c
    }

    /// The balancer's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.base)
    }

    /// Node `n`'s own URL for `path` (not through the balancer).
    pub fn node_url(&self, n: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.base + 10 + n as u16)
    }

    /// `deploy/cluster/ctl DIR ARGS…`, which must succeed; its output.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = script("ctl")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run deploy/cluster/ctl");
        assert!(
            out.status.success(),
            "ctl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// One query on the primary, as the app's user; its rows, `|` between
    /// columns.
    pub fn sql(&self, query: &str) -> String {
        self.ctl(&["psql", "-v", "ON_ERROR_STOP=1", "-Atc", query])
    }

    pub fn sql_i64(&self, query: &str) -> i64 {
        let out = self.sql(query);
        out.parse()
            .unwrap_or_else(|_| panic!("{query} gave {out:?}, not a number"))
    }

    pub fn node_log(&self, n: usize) -> String {
        std::fs::read_to_string(self.path(&format!("nodes/{n}/nebula.log"))).unwrap_or_default()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Every log of the cluster, for a failure message.
    /// The lines of every node's and HAProxy's log that say something went
    /// wrong (panics, errors, warnings, HAProxy's non-2xx/3xx log lines).
    pub fn problems(&self) -> String {
        let mut out = String::new();
        for entry in walk_logs(&self.path("")) {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            let haproxy = entry.ends_with("haproxy.log");
            for line in text.lines() {
                let odd_answer =
                    haproxy && ![" 200 ", " 303 ", " 503 "].iter().any(|c| line.contains(c));
                if odd_answer
                    || line.contains("panick")
                    || line.contains("ERROR")
                    || line.contains(" WARN ")
                    || line.contains(" SD-")
                    || line.contains(" SH-")
                    || line.contains(" CD-")
                    || line.contains(" SC-")
                {
                    out.push_str(&format!("{}: {line}\n", entry.display()));
                }
            }
        }
        out
    }

    pub fn logs(&self) -> String {
        let mut all = String::new();
        for rel in [
            "nodes/1/nebula.log",
            "nodes/2/nebula.log",
            "nodes/3/nebula.log",
            "nodes/4/nebula.log",
            "pg/a.log",
            "pg/b.log",
        ] {
            let text = std::fs::read_to_string(self.path(rel)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            all.push_str(&format!("---- {rel} (last lines)\n"));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }

    /// HAProxy's statistics for each node slot (`node1`…).
    pub fn stats(&self) -> HashMap<String, ServerStats> {
        let o = send(
            &client(),
            "GET",
            &format!("http://127.0.0.1:{}/;csv", self.base + 1),
            &[],
            b"",
        );
        let csv = String::from_utf8(o.answer.expect("HAProxy statistics").body).unwrap();
        let mut lines = csv.lines();
        let head: Vec<&str> = lines
            .next()
            .unwrap()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
        let (px, sv, status) = (col("pxname"), col("svname"), col("status"));
        let num = |f: &[&str], name: &str| f[col(name)].parse::<u64>().unwrap_or(0);
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f[px] == "nodes" && f[sv].starts_with("node"))
            .map(|f| {
                (
                    f[sv].to_string(),
                    ServerStats {
                        status: f[status].to_string(),
                        responses_2xx: num(&f, "hrsp_2xx"),
                        responses_5xx: num(&f, "hrsp_5xx"),
                        retries: num(&f, "wretr"),
                        redispatches: num(&f, "wredis"),
                    },
                )
            })
            .collect()
    }

    /// Waits (up to `within`) until HAProxy sees node slot `n` in `status`
    /// ("UP", "DOWN"); how long it took.
    pub fn await_status(&self, n: usize, status: &str, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.stats()[&format!("node{n}")].status == status {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "node {n} not {status} within {within:?}: {:?}",
                self.stats()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = script("down").arg(self.dir.path()).arg("--purge").output();
    }
}

#[derive(Debug, Clone)]
pub struct ServerStats {
    pub status: String,
    pub responses_2xx: u64,
    pub responses_5xx: u64,
    pub retries: u64,
    pub redispatches: u64,
}

fn script(name: &str) -> Command {
    Command::new(repo().join("deploy/cluster").join(name))
}

/// A base port with its 40 ports free now, below Linux's ephemeral range
/// (32768+) so that no outgoing connection takes one meanwhile.
fn free_base() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 200) as u16;
    for _ in 0..200 {
        let slot = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 200;
        let base = 22000 + slot * 50;
        if (base..base + PORTS).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no 40 free ports in 22000..32000");
}

// ------------------------------------------------------------------ load

/// What one request got: an answer, or no answer (the error) — with how
/// long it took.
pub struct Outcome {
    pub at: Instant,
    pub took: Duration,
    pub answer: Result<Resp, String>,
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        self.answer.as_ref().ok().map(|r| r.status)
    }
}

/// Every request is bounded: a hang shows as an error after this long.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(20);

/// A client without a cookie jar, following no redirects.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(REQUEST_DEADLINE))
        .build()
        .into()
}

/// Sends one request; `headers` are added to it.
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Outcome {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.to_vec()).unwrap();
    let at = Instant::now();
    let answer = agent.run(req).map(Resp::from).map_err(|e| e.to_string());
    Outcome {
        at,
        took: at.elapsed(),
        answer,
    }
}

/// Runs `op(i)` for i in 0..count on `threads` threads, each taking the
/// next i, until all are done or `budget` has passed; what each op
/// returned, by i (None: not reached in time).
pub fn run_load<T: Send + 'static>(
    threads: usize,
    count: usize,
    budget: Duration,
    op: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<Option<T>> {
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<Option<T>>>> =
        Arc::new(Mutex::new((0..count).map(|_| None).collect()));
    let op = Arc::new(op);
    let end = Instant::now() + budget;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (next, results, op) = (next.clone(), results.clone(), op.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() > end {
                    break;
                }
                let r = op(i);
                results.lock().unwrap()[i] = Some(r);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a load thread panicked");
    }
    Arc::try_unwrap(results)
        .ok()
        .expect("threads joined")
        .into_inner()
        .unwrap()
}

/// A visitor's cookie (`name=value`), as a browser has it after its first
/// page: writes carry it, and their Idempotency-Key is scoped by it.
pub fn visitor_cookie(c: &Cluster) -> String {
    let o = send(&client(), "GET", &c.url("/"), &[], b"");
    let r = o.answer.expect("GET / for a cookie");
    r.header("set-cookie")
        .and_then(|v| v.split(';').next())
        .expect("a session cookie on the first page")
        .to_string()
}

/// Every `*.log` file under `dir`.
fn walk_logs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_logs(&p));
        } else if p.extension().is_some_and(|x| x == "log") {
            out.push(p);
        }
    }
    out
}
