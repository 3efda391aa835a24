//! Scale to zero: the compile cache, idle trim, idle exit and socket
//! activation through `nebula-launch`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{agent, build_guests, repo, Server};

fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    v.sort();
    v
}

/// How many components the site's manifest declares (Rust, Python and JS).
fn site_components() -> usize {
    nebula::manifest::Manifest::load(&repo().join("app.toml"))
        .unwrap()
        .components
        .len()
}

#[test]
fn second_start_maps_the_cache_and_a_corrupt_entry_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    // A folder inside the temporary one: the cache's key is kept beside it.
    let cache = tmp.path().join("cache");
    let c = cache.to_str().unwrap();
    let s = Server::start("app.toml", &["--cache-dir", c]);
    assert_eq!(s.get("/").status, 200);
    let log = s.all_loaded(Duration::from_secs(120));
    let components = site_components();
    assert_eq!(
        log.matches("origin=Compiled").count(),
        components,
        "first start compiles the {components} components:\n{log}"
    );
    drop(s);
    assert_eq!(cache_entries(&cache).len(), components);

    let s = Server::start("app.toml", &["--cache-dir", c]);
    assert_eq!(s.get("/").status, 200);
    let log = s.all_loaded(Duration::from_secs(120));
    assert_eq!(
        log.matches("origin=Cache").count(),
        components,
        "second start must not compile:\n{log}"
    );
    assert!(!log.contains("origin=Compiled"), "{log}");
    drop(s);

    // Flip bytes in the middle of one entry: detected, deleted, rebuilt.
    let victim = cache_entries(&cache)[0].clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xff;
    }
    std::fs::write(&victim, &bytes).unwrap();
    let s = Server::start("app.toml", &["--cache-dir", c]);
    for path in ["/", "/memes/3", "/memes/3.svg", "/random", "/new"] {
        assert!(
            s.get(path).status < 400,
            "{path} after a corrupt cache entry"
        );
    }
    let log = s.all_loaded(Duration::from_secs(120));
    assert!(log.contains("seal does not match"), "{log}");
    assert_eq!(log.matches("origin=Recompiled").count(), 1, "{log}");
    assert_eq!(log.matches("origin=Cache").count(), components - 1, "{log}");
}

#[test]
fn after_an_idle_trim_the_next_request_is_served() {
    let s = Server::start("app.toml", &["--idle-trim", "0.3"]);
    let before = s.get("/api/memes?page=2").text();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("idle: trimming memory") {
        assert!(
            Instant::now() < deadline,
            "no trim after 10 s:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.get("/api/memes?page=2").text(), before);
    // Only the component of the asked-for route is loaded again.
    let loads_since_trim = |log: String| {
        let trim = log.find("idle: trimming memory").unwrap();
        log[trim..].matches("loaded component=").count()
    };
    assert_eq!(loads_since_trim(s.log()), 1, "{}", s.log());
    let r = s.post_form("/memes/3/vote", &[]);
    assert_eq!(r.status, 303);
    assert_eq!(loads_since_trim(s.log()), 2, "{}", s.log());
    assert_eq!(
        s.get("/api/memes?page=2").text(),
        before,
        "no reload for a loaded one"
    );
    assert_eq!(loads_since_trim(s.log()), 2, "{}", s.log());
}

/// Reads the launcher's stdout lines on a thread.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(_) => panic!("launcher never printed {needle:?}"),
        }
    }
}

#[test]
fn socket_activation_starts_serves_exits_and_starts_again_without_losing_requests() {
    build_guests();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_nebula-launch"))
        .args(["--listen", "127.0.0.1:0", "--"])
        .arg(env!("CARGO_BIN_EXE_nebula"))
        .args(["up", "--no-build", "--idle-exit", "0.5", "-f"])
        .arg(repo().join("app.toml"))
        .arg("--db")
        .arg(&db)
        .arg("--cache-dir")
        .arg(repo().join("target/nebula-test-cache"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("nebula.log")).unwrap())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let rx = lines_of(&mut launcher);
    let _guard = Kill(launcher);
    let addr = wait_for(&rx, "listening on")
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();

    let a = agent();
    let mut pids = Vec::new();
    for round in 0..3 {
        // Nothing runs between rounds; the first request starts nebula.
        for i in 0..5 {
            let r = a
                .post(format!("{addr}/memes/5/vote"))
                .header("accept", "application/json")
                .send_empty()
                .unwrap();
            assert_eq!(r.status(), 200, "round {round}, vote {i}");
        }
        let started = wait_for(&rx, "started pid");
        pids.push(started.rsplit(' ').next().unwrap().to_string());
        wait_for(&rx, "exited (exit status: 0)");
    }
    assert_eq!(pids.len(), 3);
    assert!(
        pids[0] != pids[1] && pids[1] != pids[2],
        "each round is a new process: {pids:?}"
    );

    // Every acknowledged vote survived the exits.
    let r = a.get(format!("{addr}/api/memes?page=1")).call().unwrap();
    assert_eq!(r.status(), 200);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let votes: i64 = conn
        .query_row("SELECT votes FROM memes WHERE id = 5", [], |r| r.get(0))
        .unwrap();
    let seeded = {
        let fresh = tempfile::tempdir().unwrap();
        let m = nebula::manifest::Manifest::load(&repo().join("app.toml")).unwrap();
        let path = fresh.path().join("x.db");
        nebula::data::open(&m, Some(&nebula::data::Location::Sqlite(path.clone())))
            .unwrap()
            .close()
            .unwrap();
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT votes FROM memes WHERE id = 5", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    assert_eq!(votes, seeded + 15);
}
