//! `nebula up --watch`: a component's source changes while clients keep
//! requesting its route; every request is answered, the new output arrives,
//! and the process serving it is the same one throughout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::new_component::{new, Up};
use crate::support::agent;

const OLD: &str = "Hello from live, a pure function in Rust!\n";
const NEW: &str = "Swapped in without a restart!\n";

/// What one client request got: the body, or what went wrong.
type Outcome = Result<(String, String), String>;

struct Clients {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Vec<Outcome>>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Clients {
    /// `n` clients requesting `url` back to back until stopped; each keeps
    /// its outcomes in order.
    fn start(n: usize, url: String) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(vec![Vec::new(); n]));
        let threads = (0..n)
            .map(|i| {
                let (stop, seen, url) = (stop.clone(), seen.clone(), url.clone());
                std::thread::spawn(move || {
                    let agent = agent();
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = match agent.get(&url).call() {
                            Ok(mut r) if r.status() == 200 => {
                                let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
                                Ok((r.body_mut().read_to_string().unwrap_or_default(), id))
                            }
                            Ok(r) => Err(format!("status {}", r.status())),
                            Err(e) => Err(e.to_string()),
                        };
                        seen.lock().unwrap()[i].push(outcome);
                    }
                })
            })
            .collect();
        Clients {
            stop,
            seen,
            threads,
        }
    }

    fn any_saw(&self, body: &str) -> bool {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .any(|o| matches!(o, Ok((b, _)) if b == body))
    }

    fn stop(self) -> Vec<Vec<Outcome>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

fn wait_for(what: &str, up: &Up, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "no {what} after {limit:?}; log:\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_changed_component_is_swapped_in_while_every_request_is_answered() {
    let app = tempfile::tempdir().unwrap();
    new(app.path(), &["rust", "live"]);
    let mut up = Up::start(app.path(), &["--watch"]);
    let pid = up.child.id();
    assert_eq!(up.get("/live").text(), OLD);

    let clients = Clients::start(4, format!("{}/live", up.base));
    wait_for("request answered", &up, Duration::from_secs(30), || {
        clients.any_saw(OLD)
    });
    let lib = app.path().join("live/src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let changed = source.replace(OLD.trim_end(), NEW.trim_end());
    assert_ne!(changed, source);
    std::fs::write(&lib, &changed).unwrap();
    // Generous: the rebuild compiles the crate (its dependencies are shared).
    wait_for("new output", &up, Duration::from_secs(300), || {
        clients.any_saw(NEW)
    });

    // A build that fails leaves the last good version serving.
    std::fs::write(
        &lib,
        changed.replace("struct Component;", "struct Component"),
    )
    .unwrap();
    wait_for(
        "failed rebuild in the log",
        &up,
        Duration::from_secs(300),
        || {
            up.log()
                .contains("rebuild failed, still serving the previous version")
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    let outcomes = clients.stop();
    assert_eq!(up.get("/live").text(), NEW);

    assert!(up.child.try_wait().unwrap().is_none(), "nebula up exited");
    assert_eq!(up.child.id(), pid);
    let log = up.log();
    let prefix = |id: &str| id.split('-').next().unwrap().to_string();
    let mut prefixes = std::collections::BTreeSet::new();
    let mut total = 0;
    for (client, seen) in outcomes.iter().enumerate() {
        let mut swapped = false;
        for o in seen {
            total += 1;
            let (body, id) = o
                .as_ref()
                .unwrap_or_else(|e| panic!("client {client}: a request failed: {e}\nlog:\n{log}"));
            prefixes.insert(prefix(id));
            match body.as_str() {
                NEW => swapped = true,
                OLD => assert!(
                    !swapped,
                    "client {client}: the old version answered after the new one"
                ),
                other => panic!("client {client}: unexpected body {other:?}"),
            }
        }
    }
    // Request ids start with a random number drawn once per process: one
    // prefix means one process answered everything.
    assert_eq!(
        prefixes.len(),
        1,
        "more than one process answered: {prefixes:?}"
    );
    assert!(total > 8, "only {total} requests were made");
    assert!(
        log.contains("rebuilt; new requests get the new version"),
        "{log}"
    );
    // Two edits, two rebuilds: a build reading its sources is no change.
    assert_eq!(
        log.matches("sources changed: rebuilding").count(),
        2,
        "{log}"
    );
}
