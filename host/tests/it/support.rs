//! Starts `nebula up` as a real process on an ephemeral loopback port and
//! talks HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A test guest's component, as `build_guests` leaves it.
pub fn guest_wasm(name: &str) -> PathBuf {
    repo().join(format!("guests/target/wasm32-wasip2/release/{name}.wasm"))
}

pub fn nebula() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nebula"))
}

/// Builds the site's and the test apps' components once per test run.
pub fn build_guests() {
    static BUILT: OnceLock<()> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    BUILT.get_or_init(|| {
        let _g = LOCK.lock().unwrap();
        for manifest in [
            "app.toml",
            "host/tests/apps/probe.toml",
            "host/tests/apps/escape.toml",
            "host/tests/apps/limits.toml",
            "host/tests/apps/spin-hog.toml",
            "host/tests/apps/web.toml",
        ] {
            nebula_build(manifest);
        }
        // Compiled once, before the tests start their hosts: on a fresh
        // checkout every host compiled the 35 MB Python component itself,
        // side by side on two cores, and slow tests timed out.
        succeeded(
            nebula()
                .args(["check", "-f"])
                .arg(repo().join("app.toml"))
                .arg("--cache-dir")
                .arg(repo().join("target/nebula-test-cache")),
        );
    });
}

/// Builds the Spin SDK test apps once per test run.
pub fn build_spin_guests() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        for manifest in [
            "guests/spin-compat/sdk-v5/spin.toml",
            "guests/spin-compat/sdk-v7/spin.toml",
            "guests/spin-compat/redis/spin.toml",
            "examples/academemes-spin/spin.toml",
        ] {
            nebula_build(manifest);
        }
    });
}

/// `nebula build -f MANIFEST` (relative to the repository), which must succeed.
pub fn nebula_build(manifest: &str) {
    succeeded(nebula().args(["build", "-f"]).arg(repo().join(manifest)));
}

/// Runs `cmd`, which must succeed, and gives its standard output.
pub fn succeeded(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run nebula");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Where a test server keeps the site's data: each test crate says which
/// (`crate::STORE`): `it` runs everything on SQLite, `postgres` runs the
/// site's tests again on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use (trust auth on loopback).
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of its own on the local PostgreSQL server, dropped with it.
pub struct PgDatabase {
    pub name: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let name = format!("nebula_it_{:016x}", rand_u64());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDatabase { name }
    }

    pub fn url(&self) -> String {
        format!("{PG_SERVER}/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qAtc",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Runs `sql` with psql on `database`; its rows, columns split on `|`.
pub fn psql(database: &str, sql: &str) -> Vec<Vec<String>> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-qAt",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("run psql (is PostgreSQL's client installed?)");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

pub struct Server {
    child: Child,
    pub base: String,
    /// The admin listener's base URL, with `--admin`.
    pub admin: Option<String>,
    pub dir: tempfile::TempDir,
    log: PathBuf,
    /// The site's database when the crate runs on PostgreSQL (dropped with it).
    pg: Option<PgDatabase>,
    /// The PostgreSQL database it serves from, if any, for [`Server::sql`].
    pg_name: Option<String>,
}

impl Server {
    /// `nebula up -f MANIFEST` with a fresh database: a file in a temporary
    /// folder, or for the site (`app.toml`) in the `postgres` test crate a
    /// fresh PostgreSQL database.
    pub fn start(manifest: &str, extra: &[&str]) -> Server {
        build_guests();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nebula.log");
        if manifest == "app.toml" && crate::STORE == Store::Postgres {
            let pg = PgDatabase::create();
            let opts = vec!["--db".into(), pg.url().into()];
            let mut s = Self::launch(manifest, dir, log, opts, &[], extra, None);
            s.pg_name = Some(pg.name.clone());
            s.pg = Some(pg);
            return s;
        }
        let db = dir.path().join("app.db");
        Self::start_with(manifest, &db, dir, log, extra)
    }

    /// `nebula up -f MANIFEST --db URL`: a node on a PostgreSQL database
    /// the test made (several nodes may share it; tests/postgres).
    #[allow(dead_code)]
    pub fn start_on_db(manifest: &str, url: &str, extra: &[&str]) -> Server {
        build_guests();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nebula.log");
        let opts = vec!["--db".into(), url.into()];
        let mut s = Self::launch(manifest, dir, log, opts, &[], extra, None);
        s.pg_name = url.rsplit('/').next().map(str::to_string);
        s
    }

    /// Runs one query on the server's database (SQLite file `app.db`, or
    /// its PostgreSQL database); the rows as text, NULL as "".
    pub fn sql(&self, sql: &str) -> Vec<Vec<String>> {
        if let Some(name) = &self.pg_name {
            return psql(name, sql);
        }
        let conn = rusqlite::Connection::open(self.dir.path().join("app.db")).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => String::new(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                    })
                })
                .collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// The one integer `sql` selects.
    pub fn sql_i64(&self, sql: &str) -> i64 {
        let rows = self.sql(sql);
        rows[0][0]
            .parse()
            .unwrap_or_else(|_| panic!("{sql}: {rows:?}"))
    }

    pub fn start_with(
        manifest: &str,
        db: &Path,
        dir: tempfile::TempDir,
        log: PathBuf,
        extra: &[&str],
    ) -> Server {
        let opts = vec!["--db".into(), db.as_os_str().to_owned()];
        Self::launch(manifest, dir, log, opts, &[], extra, None)
    }

    /// Like [`Server::start`], with the open-file limit (soft and hard) set
    /// to `nofile` before `nebula` starts.
    pub fn start_with_nofile(manifest: &str, extra: &[&str], nofile: u64) -> Server {
        build_guests();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nebula.log");
        let opts = vec!["--db".into(), dir.path().join("app.db").into_os_string()];
        Self::launch(manifest, dir, log, opts, &[], extra, Some(nofile))
    }

    /// `nebula up -f SPIN_MANIFEST` with its stores in a temporary folder.
    pub fn start_spin(manifest: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        build_spin_guests();
        Self::start_spin_built(manifest, extra, env)
    }

    /// [`Server::start_spin`] for an app the test has built itself.
    pub fn start_spin_built(manifest: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nebula.log");
        let opts = vec!["--data-dir".into(), dir.path().as_os_str().to_owned()];
        Self::launch(manifest, dir, log, opts, env, extra, None)
    }

    fn launch(
        manifest: &str,
        dir: tempfile::TempDir,
        log: PathBuf,
        opts: Vec<std::ffi::OsString>,
        env: &[(&str, &str)],
        extra: &[&str],
        nofile: Option<u64>,
    ) -> Server {
        let mut cmd = nebula();
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, which is async-signal-safe, runs
            // between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .envs(env.iter().copied())
            .arg("up")
            .args(opts)
            .arg("-f")
            .arg(repo().join(manifest))
            .args(["--listen", "127.0.0.1:0", "--no-build"])
            .args(if extra.contains(&"--cache-dir") {
                vec![]
            } else {
                vec![
                    "--cache-dir".into(),
                    repo().join("target/nebula-test-cache").into_os_string(),
                ]
            })
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start nebula up");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut admin = None;
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("Metrics at ") {
                        admin = Some(url.trim().trim_end_matches("/metrics").to_string());
                    }
                    if let Some(rest) = line
                        .split(" at ")
                        .nth(1)
                        .filter(|_| line.starts_with("Serving "))
                    {
                        break rest.trim().trim_end_matches('/').to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!(
                        "nebula up exited before serving:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            admin,
            dir,
            log,
            pg: None,
            pg_name: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to `limit`) for the background load's "every component
    /// loaded"; returns the log then.
    pub fn all_loaded(&self, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let log = self.log();
            if log.contains("every component loaded") {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "components not loaded in {limit:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        Resp::from(agent().get(self.url(path)).call().expect("GET"))
    }

    pub fn get_with(&self, path: &str, header: (&str, &str)) -> Resp {
        Resp::from(
            agent()
                .get(self.url(path))
                .header(header.0, header.1)
                .call()
                .expect("GET"),
        )
    }

    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Resp::from(
            agent()
                .post(self.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .send(body.as_bytes())
                .expect("POST"),
        )
    }

    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        let req = http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .body(body.to_vec())
            .unwrap();
        Resp::from(agent().run(req).expect("request"))
    }

    /// Sends raw bytes and returns the raw answer (for malformed HTTP).
    pub fn raw(&self, bytes: &[u8]) -> String {
        let addr = self.base.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Sends SIGTERM and waits (up to 20 s) for the process to exit; returns
    /// its stderr log.
    pub fn terminate(&mut self) -> String {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.is_running() {
            assert!(
                std::time::Instant::now() < deadline,
                "nebula did not exit within 20 s of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The `host:port` it listens on.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// Sends a signal (`libc::SIGTERM`, `SIGINT`, `SIGKILL`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill only sends a signal to the child we started.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill({sig})");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the process, from /proc (Linux).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Open file descriptors of the process (Linux).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Then `pg` drops its database (no connection is left to it).
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl From<http::Response<ureq::Body>> for Resp {
    fn from(mut r: http::Response<ureq::Body>) -> Self {
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }
}
