//! `nebula platform`: two tenants' apps in one process, deployed over the
//! admin API with `nebula deploy`, routed by `Host`, loaded on demand and
//! unloaded when idle.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{agent, build_guests, nebula, nebula_build, psql, repo, PgDatabase, Resp};

/// A running `nebula platform` (platform_oci.rs uses it too).
pub struct Platform {
    /// The shared PostgreSQL store, with several nodes.
    pub store: Option<String>,
    pub child: Child,
    pub base: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Platform {
    pub fn start(dir: tempfile::TempDir, extra: &[&str]) -> Platform {
        Platform::start_on(dir, None, extra)
    }

    /// A node of a platform whose state is in PostgreSQL at `store`.
    pub fn start_on(dir: tempfile::TempDir, store: Option<&str>, extra: &[&str]) -> Platform {
        let log = dir.path().join("platform.log");
        let mut child = nebula()
            .arg("platform")
            .arg("--dir")
            .arg(dir.path().join("p"))
            .args(store.map(|s| vec!["--store", s]).unwrap_or_default())
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut admin = None;
        let base = loop {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                _ => panic!(
                    "nebula platform exited before serving:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            };
            if let Some(a) = line.strip_prefix("Admin API at ") {
                admin = Some(a.trim().trim_end_matches("/apps").to_string());
            }
            if line.starts_with("Serving ") {
                let url = line.rsplit(" at ").next().unwrap();
                break url.trim().trim_end_matches('/').to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Platform {
            store: store.map(str::to_string),
            child,
            base,
            admin: admin.expect("the admin address"),
            dir,
            log,
        }
    }

    /// Killed, then started again on the same folder.
    pub fn restart(mut self) -> Platform {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        Platform::start(dir, &[])
    }

    pub fn pdir(&self) -> PathBuf {
        self.dir.path().join("p")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `nebula platform tenant add NAME`: its token.
    pub fn tenant(&self, name: &str) -> String {
        let out = nebula()
            .args(["platform", "tenant", "add", name, "--dir"])
            .arg(self.pdir())
            .args(self.store.iter().flat_map(|s| ["--store", s.as_str()]))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// `nebula deploy`: (succeeded, what it printed).
    pub fn deploy(&self, manifest: &Path, token: &str, host: &str) -> (bool, String) {
        let out = nebula()
            .args(["deploy", "--no-build", "-f"])
            .arg(manifest)
            .args(["--to", &self.admin, "--token", token, "--host", host])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// An admin call with `token`.
    pub fn admin(&self, method: &str, path: &str, token: &str, body: &[u8]) -> Resp {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.admin))
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_vec())
            .unwrap();
        Resp::from(agent().run(req).expect("admin call"))
    }

    /// POST `path` (no body) to the app served for `host`.
    pub fn post(&self, host: &str, path: &str) -> Resp {
        Resp::from(
            agent()
                .post(format!("{}{path}", self.base))
                .header("host", host)
                .send_empty()
                .expect("POST"),
        )
    }

    /// GET `path` of the app served for `host`.
    pub fn get(&self, host: &str, path: &str) -> Resp {
        Resp::from(
            agent()
                .get(format!("{}{path}", self.base))
                .header("host", host)
                .call()
                .expect("GET"),
        )
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small pure app whose responses say which `version` it is.
fn pure_app(dir: &Path, name: &str, version: u32) -> PathBuf {
    let app = dir.join(format!("{name}-v{version}"));
    std::fs::create_dir_all(app.join("db")).unwrap();
    std::fs::write(
        app.join("db/schema.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);\n",
    )
    .unwrap();
    let hello = repo().join("guests/target/wasm32-wasip2/release/hello.wasm");
    let manifest = app.join("app.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"[app]
name = "{name}"

[database]
path = "data/app.db"
schema = "db/schema.sql"

[limits]
max_instances = 2
queue_size = 2
queue_timeout_ms = 100

[headers]
x-app-version = "{version}"

[components.hello]
source = "{}"

[[routes]]
path = "/hello/*rest"
component = "hello"
"#,
            hello.display()
        ),
    )
    .unwrap();
    manifest
}

/// The Spin hello app (a wasi:http component), as its own folder.
fn spin_app() -> PathBuf {
    nebula_build("guests/http-hello/spin.toml");
    repo().join("guests/http-hello/spin.toml")
}

#[test]
fn two_tenants_deploy_list_roll_back_and_delete_their_own_apps_only() {
    build_guests();
    let work = tempfile::tempdir().unwrap();
    let p = Platform::start(tempfile::tempdir().unwrap(), &[]);
    let alice = p.tenant("alice");
    let bob = p.tenant("bob");
    assert_ne!(alice, bob);
    // Only the tokens' hashes are kept.
    let stored = std::fs::read_to_string(p.pdir().join("tenants.json")).unwrap();
    assert!(
        !stored.contains(&alice) && !stored.contains(&bob),
        "{stored}"
    );

    // Two apps each: alice two pure ones, bob a pure one and a Spin one.
    for (token, host, manifest) in [
        (&alice, "a1.test", pure_app(work.path(), "a1", 1)),
        (&alice, "a2.test", pure_app(work.path(), "a2", 1)),
        (&bob, "b1.test", pure_app(work.path(), "b1", 1)),
        (&bob, "b2.test", spin_app()),
    ] {
        let (ok, said) = p.deploy(&manifest, token, host);
        assert!(ok, "deploy {host}: {said}\n{}", p.log());
        assert!(
            said.contains(&format!("deployed {host} version 1")),
            "{said}"
        );
    }
    // Routed by Host; each app answers as itself.
    for host in ["a1.test", "a2.test", "b1.test"] {
        let r = p.get(host, "/hello/x");
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert!(
            r.text().starts_with("hello from a pure function"),
            "{}",
            r.text()
        );
        assert_eq!(r.header("x-app-version"), Some("1"));
    }
    let r = p.get("b2.test:8080", "/hello");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().to_lowercase().contains("hello"), "{}", r.text());
    // …or by a first path segment naming the app, for local use.
    let r = Resp::from(
        agent()
            .get(format!("{}/a2.test/hello/y", p.base))
            .call()
            .unwrap(),
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("rest=y"), "{}", r.text());
    assert_eq!(p.get("nobody.test", "/hello/x").status, 404);
    // Each app has its own database.
    for host in ["a1.test", "a2.test", "b1.test"] {
        assert!(
            p.pdir().join("data").join(host).join("app.db").is_file(),
            "{host}"
        );
    }

    // Each tenant lists its own apps only.
    let list = p.admin("GET", "/apps", &alice, b"").json();
    let hosts: Vec<&str> = list["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["a1.test", "a2.test"]);
    let one = p.admin("GET", "/apps/a1.test", &alice, b"").json();
    assert_eq!(one["version"], 1);
    assert_eq!(one["loaded"], true);
    assert!(one["requests"].as_u64().unwrap() >= 1, "{one}");
    let prom = p.admin("GET", "/apps/a1.test/metrics", &alice, b"").text();
    assert!(
        prom.contains(
            r#"nebula_requests_total{component="hello",route="/hello/*rest",status="200"} 1"#
        ),
        "{prom}"
    );
    assert!(
        prom.contains("nebula_instantiations_total{component=\"hello\"}"),
        "{prom}"
    );
    assert_eq!(
        p.admin("GET", "/apps/a1.test/metrics", &bob, b"").status,
        403
    );

    let before = std::fs::read_dir(p.pdir().join("apps")).unwrap().count();
    // Refused, each with a clear error, and nothing changed:
    // no token, a wrong one;
    let r = p.admin("GET", "/apps", "nbt_wrong", b"");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    assert!(
        r.json()["error"].as_str().unwrap().contains("Bearer"),
        "{}",
        r.text()
    );
    let (ok, said) = p.deploy(&pure_app(work.path(), "a1", 2), "nbt_wrong", "a1.test");
    assert!(!ok && said.contains("401"), "{said}");
    // another tenant's app;
    for (method, path) in [
        ("GET", "/apps/a1.test"),
        ("POST", "/apps/a1.test/rollback"),
        ("DELETE", "/apps/a1.test"),
    ] {
        let r = p.admin(method, path, &bob, b"");
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(r.text().contains("another tenant"), "{}", r.text());
    }
    // a host another tenant holds;
    let (ok, said) = p.deploy(&pure_app(work.path(), "a1", 2), &bob, "a1.test");
    assert!(
        !ok && said.contains("409") && said.contains("another tenant"),
        "{said}"
    );
    // a corrupt bundle;
    let r = p.admin(
        "POST",
        "/apps?host=a1.test",
        &alice,
        b"\x1f\x8b not really gzip",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not a gzipped tarball"), "{}", r.text());
    // a bundle that fails `check` (its read's SQL names no table of the
    // schema): refused with the report `nebula check` gives.
    let broken = pure_app(work.path(), "broken", 1);
    let text = std::fs::read_to_string(&broken).unwrap();
    let text = text
        .replace(
            "[[routes]]",
            "[reads.missing]\nsql = \"SELECT text FROM no_such_table\"\n\n[[routes]]",
        )
        .replace(
            "component = \"hello\"\n",
            "component = \"hello\"\nreads = [\"missing\"]\n",
        );
    std::fs::write(&broken, text).unwrap();
    let (ok, said) = p.deploy(&broken, &alice, "a1.test");
    assert!(!ok && said.contains("422"), "{said}");
    let check = nebula()
        .args(["check", "-f"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let report = String::from_utf8_lossy(&check.stdout).to_string();
    let database = report
        .lines()
        .find(|l| l.starts_with("database:"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(database.contains("no_such_table"), "{report}");
    // The same words, with the bundle's own path to its manifest.
    let problem = database.split_once("app.toml").unwrap().1;
    assert!(
        said.contains(&format!("database: app.toml{problem}")),
        "deploy said:\n{said}\ncheck said:\n{report}"
    );
    assert_eq!(
        std::fs::read_dir(p.pdir().join("apps")).unwrap().count(),
        before
    );
    let r = p.get("a1.test", "/hello/x");
    assert_eq!((r.status, r.header("x-app-version")), (200, Some("1")));
    assert_eq!(
        p.admin("GET", "/apps/a1.test", &alice, b"").json()["version"],
        1
    );

    // A new version, then back.
    let served = || {
        p.admin("GET", "/apps/a1.test", &alice, b"").json()["requests"]
            .as_u64()
            .unwrap()
    };
    let served_by_v1 = served();
    let (ok, said) = p.deploy(&pure_app(work.path(), "a1", 2), &alice, "a1.test");
    assert!(ok, "{said}");
    assert_eq!(
        p.get("a1.test", "/hello/x").header("x-app-version"),
        Some("2")
    );
    // Its routes are v1's: it counts on in v1's counters (which the host
    // never frees) rather than a new set.
    assert_eq!(served(), served_by_v1 + 1);
    let r = p.admin("POST", "/apps/a1.test/rollback", &alice, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], 1);
    assert_eq!(
        p.get("a1.test", "/hello/x").header("x-app-version"),
        Some("1")
    );
    let r = p.admin("POST", "/apps/a1.test/rollback", &alice, b"");
    assert_eq!(r.status, 409, "nothing left to roll back to: {}", r.text());

    // Delete: gone from the list, from routing and from disk.
    let r = p.admin("DELETE", "/apps/a2.test", &alice, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(p.get("a2.test", "/hello/x").status, 404);
    assert!(!p.pdir().join("apps/a2.test").exists());
    assert!(!p.pdir().join("data/a2.test").exists());
    assert_eq!(p.admin("GET", "/apps/a2.test", &alice, b"").status, 404);
    assert_eq!(
        p.admin("GET", "/apps", &alice, b"").json()["apps"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Bob's apps never noticed.
    assert_eq!(p.get("b1.test", "/hello/x").status, 200);
    assert_eq!(
        p.admin("GET", "/apps", &bob, b"").json()["apps"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A restarted platform serves what was deployed, as it was left.
    let p = p.restart();
    assert_eq!(
        p.get("a1.test", "/hello/x").header("x-app-version"),
        Some("1")
    );
    assert_eq!(p.get("a2.test", "/hello/x").status, 404);
    assert_eq!(p.get("b2.test", "/hello").status, 200);
}

#[test]
fn a_deploy_under_load_drops_no_request_and_idle_apps_unload() {
    build_guests();
    let work = tempfile::tempdir().unwrap();
    let p = Platform::start(tempfile::tempdir().unwrap(), &["--unload-after", "1"]);
    let t = p.tenant("t");
    assert!(p.deploy(&pure_app(work.path(), "app", 1), &t, "app.test").0);

    // Four clients until v2 has been deployed (at most 60 s or 3,000
    // requests each: a busy machine may take seconds to deploy).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let base = p.base.clone();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, base) = (stop.clone(), base.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let end = Instant::now() + Duration::from_secs(60);
                for _ in 0..3_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() > end {
                        break;
                    }
                    let r = Resp::from(
                        agent()
                            .get(format!("{base}/hello/x"))
                            .header("host", "app.test")
                            .call()
                            .unwrap(),
                    );
                    seen.push((r.status, r.header("x-app-version").map(str::to_string)));
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (ok, said) = p.deploy(&pure_app(work.path(), "app", 2), &t, "app.test");
    assert!(ok, "{said}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let per_client: Vec<Vec<_>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    // Each client's requests are in order: once v2 answers it, v1 never does again.
    for seen in &per_client {
        let versions: Vec<&str> = seen.iter().filter_map(|(_, v)| v.as_deref()).collect();
        if let Some(first_v2) = versions.iter().position(|v| *v == "2") {
            assert!(!versions[first_v2..].contains(&"1"), "{versions:?}");
        }
    }
    let seen: Vec<_> = per_client.into_iter().flatten().collect();
    // The clients' own rate may queue past the app's two slots: 503 is the
    // app's queueing limit, never an error of the deploy.
    let failed: Vec<_> = seen
        .iter()
        .filter(|(s, _)| *s != 200 && *s != 503)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let versions: Vec<&str> = seen.iter().filter_map(|(_, v)| v.as_deref()).collect();
    assert!(
        versions.contains(&"1") && versions.contains(&"2"),
        "{versions:?}"
    );
    assert!(seen.len() > 20, "too few requests: {}", seen.len());
    assert_eq!(
        p.get("app.test", "/hello/x").header("x-app-version"),
        Some("2")
    );

    // Idle past its unload time, it is unloaded and the next request loads it.
    let status = |p: &Platform| p.admin("GET", "/apps/app.test", &t, b"").json();
    let end = Instant::now() + Duration::from_secs(10);
    while status(&p)["loaded"] == true {
        assert!(
            Instant::now() < end,
            "not unloaded: {}\n{}",
            status(&p),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = status(&p);
    assert!(s["unloads"].as_u64().unwrap() >= 1, "{s}");
    assert!(p.log().contains("app unloaded"), "{}", p.log());
    let loads = s["loads"].as_u64().unwrap();
    let r = p.get("app.test", "/hello/x");
    assert_eq!((r.status, r.header("x-app-version")), (200, Some("2")));
    let s = status(&p);
    assert_eq!(s["loaded"], true);
    assert_eq!(s["loads"].as_u64().unwrap(), loads + 1);
    // The request that found it unloaded is timed whole: its load, the
    // component mapped for it, the call.
    let (cold, load) = (
        s["last_cold_request_us"].as_u64().unwrap(),
        s["last_load_us"].as_u64().unwrap(),
    );
    assert!(load > 0 && cold >= load, "{s}");
    // Its counters went on across the unload: every request v2 answered
    // (the clients', the check after the deploy, and this one).
    let v2_served = seen
        .iter()
        .filter(|(st, v)| *st == 200 && v.as_deref() == Some("2"))
        .count() as u64;
    assert!(s["requests"].as_u64().unwrap() >= v2_served + 2, "{s}");
}

#[test]
fn one_apps_flood_gets_its_own_503s_while_another_app_is_served() {
    build_guests();
    let work = tempfile::tempdir().unwrap();
    // The hog's requests sleep until the deadline; two slots and a queue of
    // two, so a flood of ten at once must overflow it.
    let p = Platform::start(
        tempfile::tempdir().unwrap(),
        &["--timeout-ms", "1500", "--max-rate-per-app", "50/s"],
    );
    let t = p.tenant("t");
    let calm = pure_app(work.path(), "calm", 1);
    let hog = pure_app(work.path(), "hog", 1);
    let text = std::fs::read_to_string(&hog).unwrap();
    let spin = repo().join("guests/target/wasm32-wasip2/release/hog.wasm");
    std::fs::write(
        &hog,
        text.replace(
            &repo()
                .join("guests/target/wasm32-wasip2/release/hello.wasm")
                .display()
                .to_string(),
            &spin.display().to_string(),
        ),
    )
    .unwrap();
    assert!(p.deploy(&calm, &t, "calm.test").0);
    let (ok, said) = p.deploy(&hog, &t, "hog.test");
    assert!(ok, "{said}");

    let base = p.base.clone();
    let flood: Vec<_> = (0..10)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || {
                Resp::from(
                    agent()
                        .get(format!("{base}/hello/x?mode=sleep"))
                        .header("host", "hog.test")
                        .call()
                        .unwrap(),
                )
                .status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile the calm app answers every request.
    for _ in 0..20 {
        let r = p.get("calm.test", "/hello/x");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let statuses: Vec<u16> = flood.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        statuses.contains(&503),
        "the hog's flood overflowed no queue: {statuses:?}"
    );

    // A request rate past the platform's ceiling gets 429, for that app only.
    let mut limited = 0;
    for _ in 0..80 {
        let r = p.get("calm.test", "/hello/x");
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
            limited += 1;
        }
    }
    assert!(limited > 0, "no 429 past 50/s");
}

/// Waits up to 10 s for `node` to answer `host` with `status` and version.
fn wait_for(node: &Platform, host: &str, status: u16, version: Option<&str>) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let r = node.get(host, "/hello/x");
        if r.status == status && r.header("x-app-version") == version {
            return;
        }
        assert!(
            Instant::now() < end,
            "{host} on {} still answers {} {:?}, not {status} {version:?}:\n{}",
            node.base,
            r.status,
            r.header("x-app-version"),
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nodes_on_one_postgres_store_serve_every_app_and_follow_each_others_deploys() {
    build_guests();
    let work = tempfile::tempdir().unwrap();
    let pg = PgDatabase::create();
    let url = pg.url();
    let n1 = Platform::start_on(tempfile::tempdir().unwrap(), Some(&url), &[]);
    let n2 = Platform::start_on(tempfile::tempdir().unwrap(), Some(&url), &[]);
    let t = n1.tenant("t");
    let other = n2.tenant("u");

    // Deployed through node 1, served by node 2 (which fetched the bundle).
    let (ok, said) = n1.deploy(&pure_app(work.path(), "app", 1), &t, "app.test");
    assert!(ok, "{said}");
    wait_for(&n2, "app.test", 200, Some("1"));
    assert!(n2.pdir().join("apps/app.test/v1/app.toml").is_file());
    // The app's data is in its own schema of the shared database.
    let schemas = psql(
        &pg.name,
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'notes'",
    );
    assert_eq!(schemas.len(), 1, "{schemas:?}");
    assert!(schemas[0][0].starts_with("app_app_test_"), "{schemas:?}");
    // The token works on every node; the host stays its tenant's.
    let list = n2.admin("GET", "/apps", &t, b"").json();
    assert_eq!(list["apps"][0]["host"], "app.test", "{list}");
    let (ok, said) = n2.deploy(&pure_app(work.path(), "app", 9), &other, "app.test");
    assert!(!ok && said.contains("409"), "{said}");

    // A new version through node 2 reaches node 1; a node started now
    // serves it at once.
    assert!(
        n2.deploy(&pure_app(work.path(), "app", 2), &t, "app.test")
            .0
    );
    wait_for(&n1, "app.test", 200, Some("2"));
    let n3 = Platform::start_on(tempfile::tempdir().unwrap(), Some(&url), &[]);
    let r = n3.get("app.test", "/hello/x");
    assert_eq!((r.status, r.header("x-app-version")), (200, Some("2")));

    // A rollback through node 1 reaches the others.
    let r = n1.admin("POST", "/apps/app.test/rollback", &t, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for(&n2, "app.test", 200, Some("1"));
    wait_for(&n3, "app.test", 200, Some("1"));

    // A delete through node 3: gone everywhere, data schema included.
    let r = n3.admin("DELETE", "/apps/app.test", &t, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for(&n1, "app.test", 404, None);
    wait_for(&n2, "app.test", 404, None);
    assert!(psql(
        &pg.name,
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'notes'"
    )
    .is_empty());
    drop((n1, n2, n3));
}

/// An app that stores what it is asked to: each `POST /effects?mode=ok`
/// inserts a note of ~200 KB (the write pads it); `seed` fills it at deploy.
fn storing_app(dir: &Path, name: &str, seed: &str) -> PathBuf {
    let app = dir.join(name);
    std::fs::create_dir_all(app.join("db")).unwrap();
    std::fs::write(
        app.join("db/schema.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);\n",
    )
    .unwrap();
    std::fs::write(app.join("db/seed.sql"), seed).unwrap();
    storing_manifest(
        &app,
        name,
        "INSERT INTO notes (text) VALUES (?1 || hex(zeroblob(100000)))",
    )
}

/// The `app.toml` of a storing app in `app`: `POST /effects?mode=ok` runs
/// the write `note` (`note_sql`) once; schema and seed under `db/`.
fn storing_manifest(app: &Path, name: &str, note_sql: &str) -> PathBuf {
    let effects = repo().join("guests/target/wasm32-wasip2/release/effects_bad.wasm");
    let manifest = app.join("app.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"[app]
name = "{name}"

[database]
path = "data/app.db"
schema = "db/schema.sql"
seed = "db/seed.sql"

[components.effects-bad]
source = "{}"

[writes.note]
sql = "{note_sql}"

[[routes]]
path = "/effects"
methods = ["POST"]
component = "effects-bad"
writes = ["note"]
"#,
            effects.display()
        ),
    )
    .unwrap();
    manifest
}

/// Posts until a write is refused, at most `at_most` times: how many were
/// stored before the refusal, which must be a 507 saying there is no room.
fn fill_until_refused(post: impl Fn() -> Resp, at_most: u64) -> u64 {
    let mut stored = 0;
    let refused = loop {
        let r = post();
        if r.status != 200 {
            break r;
        }
        stored += 1;
        assert!(stored < at_most, "the ceiling never stopped a write");
    };
    assert!(stored >= 2, "only {stored} writes fit in 1 MiB");
    assert_eq!(refused.status, 507, "{}", refused.text());
    assert!(
        refused.text().contains("no room left"),
        "{}",
        refused.text()
    );
    stored
}

#[test]
fn an_apps_data_stops_at_the_storage_ceiling_with_507_and_nothing_written() {
    build_guests();
    let work = tempfile::tempdir().unwrap();
    let p = Platform::start(tempfile::tempdir().unwrap(), &["--max-storage-mb", "1"]);
    let t = p.tenant("carol");
    let (ok, said) = p.deploy(&storing_app(work.path(), "notes", ""), &t, "notes.test");
    assert!(ok, "{said}");
    let post = || p.post("notes.test", "/effects?mode=ok");
    let db = p.pdir().join("data/notes.test/app.db");
    let count = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    // ~200 KB a note: a few fit in 1 MiB, then every write is refused.
    let stored = fill_until_refused(post, 20) as i64;
    assert_eq!(count(), stored, "a refused write left a row behind");
    assert_eq!(post().status, 507, "still full");
    assert_eq!(count(), stored);
    assert!(
        p.log().contains("storage ceiling of 1 MiB"),
        "the log names the ceiling:\n{}",
        p.log()
    );
    assert!(std::fs::metadata(&db).unwrap().len() <= 1 << 20);

    // A bundle whose seed alone does not fit is refused at deploy.
    let big = "INSERT INTO notes (text) VALUES (hex(zeroblob(1500000)));\n";
    let (ok, said) = p.deploy(&storing_app(work.path(), "big", big), &t, "big.test");
    assert!(!ok, "a seed over the ceiling was deployed: {said}");
    assert!(
        said.contains("do not fit in the storage ceiling of 1 MiB"),
        "{said}"
    );
    assert_eq!(
        p.get("big.test", "/effects").status,
        404,
        "nothing is served for it"
    );
    assert_eq!(post().status, 507, "the other app is untouched");
}

/// [`storing_app`] for a platform on PostgreSQL: each `POST /effects?mode=ok`
/// inserts 2,000 rows of random numbers (~150 KB in PostgreSQL, which
/// compresses none of it), in SQL both SQLite (`check`) and PostgreSQL take;
/// `seed_rows` rows at deploy.
fn storing_app_pg(dir: &Path, name: &str, seed_rows: u32) -> PathBuf {
    let app = dir.join(name);
    std::fs::create_dir_all(app.join("db")).unwrap();
    let rows = |n: u32, prefix: &str| {
        format!(
            "INSERT INTO notes (text) WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {n}) SELECT {prefix}CAST(random() AS TEXT) FROM r"
        )
    };
    let schema = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);\n";
    std::fs::write(app.join("db/schema.sql"), schema).unwrap();
    std::fs::write(
        app.join("db/schema.postgres.sql"),
        "CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL);\n",
    )
    .unwrap();
    let seed = if seed_rows > 0 {
        format!("{};\n", rows(seed_rows, ""))
    } else {
        String::new()
    };
    std::fs::write(app.join("db/seed.sql"), &seed).unwrap();
    std::fs::write(app.join("db/seed.postgres.sql"), &seed).unwrap();
    storing_manifest(&app, name, &rows(2000, "?1 || "))
}

#[test]
fn an_apps_postgres_schema_stops_at_the_storage_ceiling_with_507_and_nothing_written() {
    build_guests();
    let work = tempfile::tempdir().unwrap();
    let pg = PgDatabase::create();
    let p = Platform::start_on(
        tempfile::tempdir().unwrap(),
        Some(&pg.url()),
        &["--max-storage-mb", "1"],
    );
    let t = p.tenant("carol");
    let (ok, said) = p.deploy(&storing_app_pg(work.path(), "notes", 0), &t, "notes.test");
    assert!(ok, "{said}\n{}", p.log());
    assert!(
        !p.log().contains("not enforced"),
        "the ceiling is enforced, not warned about:\n{}",
        p.log()
    );
    let schema = psql(
        &pg.name,
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'notes'",
    )[0][0]
        .clone();
    let count = || {
        psql(&pg.name, &format!("SELECT count(*) FROM {schema}.notes"))[0][0]
            .parse::<u64>()
            .unwrap()
    };
    let post = || p.post("notes.test", "/effects?mode=ok");
    let stored = fill_until_refused(post, 40);
    assert_eq!(count(), stored * 2000, "a refused write left rows behind");
    assert_eq!(post().status, 507, "still full");
    assert_eq!(count(), stored * 2000);
    assert!(
        p.log().contains("storage ceiling of 1 MiB"),
        "the log names the ceiling:\n{}",
        p.log()
    );

    // A bundle whose seed alone does not fit is refused at deploy.
    let (ok, said) = p.deploy(&storing_app_pg(work.path(), "big", 30_000), &t, "big.test");
    assert!(!ok, "a seed over the ceiling was deployed: {said}");
    assert!(
        said.contains("do not fit in the storage ceiling of 1 MiB"),
        "{said}"
    );
    assert_eq!(p.get("big.test", "/effects").status, 404);
    assert_eq!(
        psql(
            &pg.name,
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'app_big_test_%'"
        )[0][0],
        "0",
        "the refused app's seeded schema was left behind"
    );
}

/// The files of `app`'s database the platform process holds open.
fn open_db_files(p: &Platform, app: &str) -> Vec<String> {
    let dir = p.pdir().join("data").join(app);
    std::fs::read_dir(format!("/proc/{}/fd", p.child.id()))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .map(|target| target.display().to_string())
        .collect()
}

/// A request that reads and writes nothing does not wait for the app's
/// database to open (about half of a load's time); the first that writes
/// opens it. An open that fails is a 503 naming the database, and the next
/// request tries again.
#[test]
fn an_apps_database_is_opened_by_its_first_request_that_needs_it() {
    build_guests();
    let work = tempfile::tempdir().unwrap();
    let p = Platform::start(tempfile::tempdir().unwrap(), &[]);
    let t = p.tenant("dora");
    let (ok, said) = p.deploy(&pure_app(work.path(), "plain", 1), &t, "plain.test");
    assert!(ok, "{said}");
    let (ok, said) = p.deploy(&storing_app(work.path(), "notes", ""), &t, "notes.test");
    assert!(ok, "{said}");

    let r = p.get("plain.test", "/hello/x");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(p.log().contains("app=plain.test"), "{}", p.log());
    assert_eq!(
        open_db_files(&p, "plain.test"),
        Vec::<String>::new(),
        "a request without reads or writes opened the database"
    );

    // The database made at deploy is gone and a folder is in its way:
    // the first write cannot open it.
    let db = p.pdir().join("data/notes.test/app.db");
    std::fs::remove_file(&db).unwrap();
    std::fs::create_dir(&db).unwrap();
    let post = || p.post("notes.test", "/effects?mode=ok");
    let refused = post();
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        p.log().contains("cannot open sqlite:") && p.log().contains("notes.test/app.db"),
        "the log names the database:\n{}",
        p.log()
    );
    assert_eq!(p.get("plain.test", "/hello/y").status, 200, "others go on");

    std::fs::remove_dir(&db).unwrap();
    let stored = post();
    assert!(stored.status < 300, "{} {}", stored.status, stored.text());
    assert!(
        open_db_files(&p, "notes.test")
            .iter()
            .any(|f| f.ends_with("app.db")),
        "the write opened the database"
    );
    let rows: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "one note stored, none by the refused request");
}

/// An app loaded for a request maps the component that request needs, not
/// every component of the app (they were all checked at deploy); another
/// route's component is mapped when that route is first asked for.
#[test]
fn a_loaded_app_maps_only_the_components_its_requests_need() {
    build_guests();
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("two");
    std::fs::create_dir_all(&app).unwrap();
    let wasm = |name: &str| {
        repo()
            .join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"))
            .display()
            .to_string()
    };
    let manifest = app.join("app.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"[app]
name = "two"

[components.hello]
source = "{}"

[components.trap]
source = "{}"

[[routes]]
path = "/hello/*rest"
component = "hello"

[[routes]]
path = "/trap"
component = "trap"
"#,
            wasm("hello"),
            wasm("trap")
        ),
    )
    .unwrap();
    let p = Platform::start(tempfile::tempdir().unwrap(), &[]);
    let t = p.tenant("erin");
    let (ok, said) = p.deploy(&manifest, &t, "two.test");
    assert!(ok, "{said}");

    let loaded = |component: &str| {
        p.log()
            .lines()
            .filter(|l| l.contains("host=two.test") && l.contains("loaded component"))
            .filter(|l| l.contains(&format!("component=\"{component}\"")))
            .count()
    };
    assert_eq!(p.get("two.test", "/hello/x").status, 200);
    assert_eq!(loaded("hello"), 1, "{}", p.log());
    assert_eq!(
        loaded("trap"),
        0,
        "a component no request needed was mapped"
    );

    let r = p.get("two.test", "/trap?mode=panic");
    assert_eq!(r.status, 500, "the trap guest traps on ?mode=panic");
    assert_eq!(loaded("trap"), 1, "{}", p.log());
    assert_eq!(p.get("two.test", "/hello/y").status, 200);
    assert_eq!(loaded("hello"), 1, "hello was mapped again");
}

#[test]
fn an_unloaded_apps_code_stays_mapped_for_its_next_load_until_nothing_is_loaded() {
    build_guests();
    let work = tempfile::tempdir().unwrap();
    let p = Platform::start(tempfile::tempdir().unwrap(), &["--unload-after", "0.5"]);
    let t = p.tenant("t");
    assert!(p.deploy(&pure_app(work.path(), "app", 1), &t, "app.test").0);
    let kept_loads = |p: &Platform| {
        p.log()
            .lines()
            .filter(|l| l.contains("loaded component") && l.contains("origin=Kept"))
            .count()
    };
    let unloaded = |p: &Platform| {
        let end = Instant::now() + Duration::from_secs(10);
        while p.admin("GET", "/apps/app.test", &t, b"").json()["loaded"] == true {
            assert!(Instant::now() < end, "not unloaded:\n{}", p.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    assert_eq!(p.get("app.test", "/hello/x").status, 200);
    assert_eq!(kept_loads(&p), 0, "{}", p.log());
    unloaded(&p);
    // The app's host went; its code stayed mapped for the next request.
    let r = p.get("app.test", "/hello/x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello from a pure function\nrest=x\n")
    );
    assert_eq!(kept_loads(&p), 1, "{}", p.log());

    // A new version maps its own code; the replaced one's is let go, so
    // once nothing is loaded for an unload time, one component is let go.
    assert!(p.deploy(&pure_app(work.path(), "app", 2), &t, "app.test").0);
    let r = p.get("app.test", "/hello/x");
    assert_eq!((r.status, r.header("x-app-version")), (200, Some("2")));
    assert_eq!(kept_loads(&p), 1, "{}", p.log());
    let end = Instant::now() + Duration::from_secs(10);
    let let_go = loop {
        if let Some(l) = p
            .log()
            .lines()
            .find(|l| l.contains("kept components let go"))
        {
            break l.to_string();
        }
        assert!(Instant::now() < end, "kept code never let go:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(let_go.contains("components=1"), "{let_go}");
    // After that, a load maps from the compile cache again.
    assert_eq!(p.get("app.test", "/hello/x").status, 200);
    assert_eq!(kept_loads(&p), 1, "{}", p.log());
    assert!(
        p.log()
            .lines()
            .filter(|l| l.contains("loaded component") && l.contains("origin=Cache"))
            .count()
            >= 3,
        "v1, v2, and v2 again after the let-go: {}",
        p.log()
    );
}
