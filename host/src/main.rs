use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use nebula::app::AnyManifest;
use nebula::executor::wasi_http::ReusePolicy;
use nebula::executor::EngineOptions;
use nebula::host::{Host, HostOptions};
use nebula::manifest::Limits;
use nebula::server::idle::IdlePolicy;
use nebula::server::ConnectionLimits;

#[derive(Parser)]
#[command(
    name = "nebula",
    version,
    about = "A Function-as-a-Service host for pure WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ManifestArg {
    /// The app manifest: a Nebula app.toml or a Spin spin.toml (default:
    /// app.toml, else spin.toml, in the current folder).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
}

impl ManifestArg {
    fn path(&self) -> PathBuf {
        match &self.file {
            Some(f) => f.clone(),
            None if !Path::new("app.toml").exists() && Path::new("spin.toml").exists() => {
                "spin.toml".into()
            }
            None => "app.toml".into(),
        }
    }
}

// Parsed once per process; boxing `Up`'s flags would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Build what is missing or stale, open the database and serve the app.
    Up(UpArgs),
    /// Create a component from a template and add it (and a route) to the manifest.
    New(nebula::scaffold::NewArgs),
    /// Run each component's build command.
    Build {
        #[command(flatten)]
        manifest: ManifestArg,
        /// Only these components.
        components: Vec<String>,
    },
    /// Validate the manifest, its SQL and every component; list their imports.
    Check {
        #[command(flatten)]
        manifest: ManifestArg,
        /// The compile cache to fill, the one `nebula up --cache-dir` will
        /// read (default: .nebula/cache beside the manifest).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Host many tenants' apps in one process, deployed over an admin API.
    Platform(nebula::platform::cli::PlatformArgs),
    /// Build an app, bundle it and upload it to a platform's admin API.
    Deploy(nebula::platform::cli::DeployArgs),
    /// Run a recorded call again, offline, and say whether it answers as
    /// recorded (exit code 0), differently (1), or cannot be replayed (2).
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// A recording: a file `nebula up --record DIR` (or a route's `record`) wrote.
    recording: PathBuf,
    /// Run this component instead of the recorded one (a fix, say).
    #[arg(long, value_name = "PATH.wasm")]
    component: Option<PathBuf>,
    /// Take the recorded component's .wasm from this app manifest.
    #[arg(short = 'f', long = "file", value_name = "app.toml")]
    manifest: Option<PathBuf>,
    /// Where compiled components are cached (default: .nebula/cache beside
    /// the manifest, if it is there).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct UpArgs {
    #[command(flatten)]
    manifest: ManifestArg,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Serve Prometheus metrics at http://ADDR/metrics on this separate
    /// address (e.g. 127.0.0.1:9100; port 0 picks a free one). Off by default.
    /// Must be a loopback address unless --admin-public is given.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Allow --admin on a non-loopback address. The metrics have no
    /// authentication: put a firewall or an authenticating proxy in front.
    #[arg(long, requires = "admin")]
    admin_public: bool,
    /// Use this database instead of the manifest's: a SQLite file, or a
    /// PostgreSQL URL (postgres://USER@HOST:PORT/DB; several hosts with
    /// ?target_session_attrs=read-write find the primary after a failover).
    #[arg(long, value_name = "PATH|URL", env = "NEBULA_DB")]
    db: Option<String>,
    /// Do not build components before serving.
    #[arg(long)]
    no_build: bool,
    /// Ignore every route's `rate_limit`: for load tests and benchmarks
    /// that send many requests from one address, never for a public site.
    #[arg(long)]
    no_rate_limits: bool,
    /// Ignore every route's `cache`: every request runs its reads and its
    /// component (to compare, or to debug a component).
    #[arg(long)]
    no_cache: bool,
    /// Where compiled components are cached (default: .nebula/cache beside the manifest).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Instances that may run at once (default: [limits] max_instances, else 256).
    #[arg(long)]
    max_instances: Option<u32>,
    /// Per-request deadline in milliseconds (default: [limits] timeout_ms, else 10000).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Largest linear memory one instance may grow to, in MiB (default:
    /// [limits] max_memory_mb, else 64).
    #[arg(long)]
    max_memory_mb: Option<usize>,
    /// Requests that may wait for a busy instance slot before further
    /// ones get 503 (default: [limits] queue_size, else max_instances).
    #[arg(long)]
    queue_size: Option<usize>,
    /// How long a request may wait for a slot before it gets 503
    /// (default: [limits] queue_timeout_ms, else 5000).
    #[arg(long)]
    queue_timeout_ms: Option<u64>,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to
    /// finish (default: [limits] shutdown_grace_ms, else 10000).
    #[arg(long)]
    shutdown_grace_ms: Option<u64>,
    /// On SIGTERM, how long to fail the health check
    /// (/.well-known/nebula/health) while still serving, before the
    /// listener closes: a few health-check intervals of the load balancer
    /// in front (default 0: close at once).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    drain_delay_ms: u64,
    /// After this many seconds without requests, give memory back
    /// (instance pool, compiled code mappings, idle connections).
    #[arg(long, value_name = "SECS")]
    idle_trim: Option<f64>,
    /// With --idle-trim: keep the binary's code resident (about 12 MiB
    /// more while idle; the first request after a trim is ~4 ms faster).
    #[arg(long)]
    idle_trim_keep_code: bool,
    /// After this many seconds without requests, exit cleanly; with
    /// socket activation the next connection starts nebula again.
    #[arg(long, value_name = "SECS")]
    idle_exit: Option<f64>,
    /// Spin apps: where the default key-value store and SQLite database
    /// live (default: .spin/ beside spin.toml).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Spin apps: a runtime configuration file ([key_value_store.X] and
    /// [sqlite_database.X] with type = "spin" and a path).
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
    /// Spin apps, WASI 0.3 components: requests one instance may serve
    /// before it is dropped (WASI 0.2 components always get a fresh one).
    #[arg(long, default_value_t = 128)]
    max_instance_reuse: usize,
    /// Spin apps, WASI 0.3 components: requests one instance may serve at once.
    #[arg(long, default_value_t = 16)]
    max_instance_concurrent_reuse: usize,
    /// Rebuild a component when its watched sources change and swap it
    /// in without a restart; requests in flight finish on the old version.
    #[arg(long)]
    watch: bool,
    /// Write down, one JSON file per request named by its request id, what
    /// every call answered 5xx saw (request, seed, time, data) and gave,
    /// for `nebula replay` (pure apps; routes' `record` keys write here too).
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// With --record: every call, not only those answered 5xx.
    #[arg(long, requires = "record")]
    record_all: bool,
}

fn main() -> ExitCode {
    // Before anything opens a file: the soft open-file limit (often 1024)
    // is what a flood of connections exhausts first.
    let nofile = nebula::server::connections::raise_open_file_limit();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NEBULA_LOG")
                .unwrap_or_else(|_| "nebula=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tracing::debug!(?nofile, "open-file limit");
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_cache_dir(base_dir: &Path) -> PathBuf {
    base_dir.join(".nebula").join("cache")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Build {
            manifest,
            components,
        } => {
            match AnyManifest::load(&manifest.path())? {
                AnyManifest::Pure(m) => nebula::builder::build(&m, &components, false)?,
                AnyManifest::Spin(m) => nebula::builder::build_spin(&m, &components, false)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::New(args) => {
            let made = nebula::scaffold::new_component(&args)?;
            println!(
                "Created {} ({}) and added route {} to {}{}. `nebula up` builds and serves it.",
                made.dir.display(),
                args.lang,
                made.route,
                args.file.display(),
                if made.manifest_created { " (new)" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            manifest,
            cache_dir,
        } => {
            let m = AnyManifest::load(&manifest.path())?;
            let cache_dir = cache_dir.unwrap_or_else(|| default_cache_dir(m.base_dir()));
            let report = nebula::check::check_any(m, &cache_dir)?;
            print!("{}", report.text);
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Up(args) => up(args),
        Command::Replay(args) => Ok(replay(args)),
        Command::Platform(args) => {
            match args.action {
                Some(nebula::platform::cli::PlatformAction::Tenant { action }) => {
                    nebula::platform::cli::tenant(action)?
                }
                None => nebula::platform::cli::serve(&args.serve, shutdown_signal())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy(args) => {
            let manifest = ManifestArg {
                file: args.file.clone(),
            }
            .path();
            nebula::platform::cli::deploy(&args, manifest)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `nebula up`: build, load, serve.
fn up(args: UpArgs) -> Result<ExitCode> {
    // Before anything is built, loaded or bound.
    if let Some(admin) = args.admin {
        nebula::server::admin::check_address(admin, args.admin_public)?;
    }
    // The runtime (its worker threads, epoll) needs nothing from the app:
    // it is built on a second thread while this one reads the manifest and
    // makes the engine.
    let runtime = std::thread::Builder::new()
        .name("nebula-runtime".into())
        .spawn(new_runtime)
        .context("cannot start a thread to build the tokio runtime")?;
    let file = args.manifest.path();
    // The engine, the start's costliest step, is made meanwhile too, with
    // the options the command line implies; the host makes another only if
    // the manifest asks for different ones (its [limits], a Spin app).
    let early_engine = Arc::new(nebula::executor::EarlyEngine::start(EngineOptions {
        concurrency: file.file_name().is_some_and(|n| n == "spin.toml"),
        ..engine_options(&args, &Limits::default())
    })?);
    let app = match AnyManifest::load(&file)? {
        AnyManifest::Pure(m) => {
            if !args.no_build {
                nebula::builder::build(&m, &[], true)?;
            }
            let mut opts = host_options(&args, &m.limits, &m.base_dir);
            opts.early_engine = Some(early_engine);
            // Serve first; `serve` loads them right after, and stops with
            // the error if one cannot be loaded.
            opts.defer_components = true;
            Host::load(m, opts)?
        }
        AnyManifest::Spin(m) => {
            if !args.no_build {
                nebula::builder::build_spin(&m, &[], true)?;
            }
            let mut opts = host_options(&args, &m.limits, &m.base_dir);
            opts.early_engine = Some(early_engine);
            Host::load_spin(m, opts)?
        }
    };
    if args.no_rate_limits {
        tracing::warn!("--no-rate-limits: every route's rate_limit is ignored");
    }
    let mut conn_limits = ConnectionLimits::from_manifest(&app.model.limits);
    conn_limits.drain_delay = std::time::Duration::from_millis(args.drain_delay_ms);
    if let Some(g) = args.shutdown_grace_ms {
        conn_limits.shutdown_grace = std::time::Duration::from_millis(g);
    }
    let app = Arc::new(app);
    let _watching = args
        .watch
        .then(|| nebula::watch::start(app.clone()))
        .transpose()?;
    let rt = runtime
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    serve(
        rt,
        args.listen,
        args.admin,
        app,
        idle_policy(&args),
        conn_limits,
    )
}

/// `nebula replay`: 0 if the replay answers as recorded, 1 if not, 2 if it
/// cannot be replayed (like `diff`).
fn replay(args: ReplayArgs) -> ExitCode {
    let opts = nebula::replay::ReplayOptions {
        component: args.component,
        manifest: args.manifest,
        cache_dir: args.cache_dir,
    };
    match nebula::replay::replay(&args.recording, &opts) {
        Ok(r) => {
            if args.json {
                println!("{:#}", r.json());
            } else {
                print!("{}", r.report());
            }
            if r.same() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The command line over the manifest's `[limits]`, over the defaults.
fn host_options(args: &UpArgs, limits: &Limits, base_dir: &Path) -> HostOptions {
    let ms = std::time::Duration::from_millis;
    let timeout_ms = args.timeout_ms.or(limits.timeout_ms).unwrap_or(10_000);
    HostOptions {
        engine: engine_options(args, limits),
        cache_dir: Some(
            args.cache_dir
                .clone()
                .unwrap_or_else(|| default_cache_dir(base_dir)),
        ),
        database: args.db.as_deref().map(nebula::data::Location::parse),
        timeout: ms(timeout_ms),
        queue_size: args.queue_size,
        queue_timeout: args.queue_timeout_ms.map(ms),
        trim_code: !args.idle_trim_keep_code,
        rate_limits: !args.no_rate_limits,
        memo: !args.no_cache,
        max_storage_bytes: None,
        reuse: ReusePolicy {
            max_requests: args.max_instance_reuse.max(1),
            max_concurrent: args.max_instance_concurrent_reuse.max(1),
            ..Default::default()
        },
        data_dir: args.data_dir.clone(),
        runtime_config: args.runtime_config_file.clone(),
        shared_engines: None,
        metrics: None,
        record: args.record.clone(),
        record_all: args.record_all,
        defer_components: false,
        // A start stops on a database that cannot be opened or migrated.
        defer_database: false,
        early_engine: None,
    }
}

/// The engine the command line over the manifest's `[limits]` asks for
/// (the host raises its memory cap to the largest component's).
fn engine_options(args: &UpArgs, limits: &Limits) -> EngineOptions {
    let max_instances = args.max_instances.or(limits.max_instances).unwrap_or(256);
    let max_memory_mb = args.max_memory_mb.or(limits.max_memory_mb).unwrap_or(64);
    EngineOptions {
        max_instances,
        max_memory_bytes: max_memory_mb << 20,
        ..Default::default()
    }
}

fn idle_policy(args: &UpArgs) -> IdlePolicy {
    let secs = |v: Option<f64>| {
        v.filter(|s| *s >= 0.0)
            .map(std::time::Duration::from_secs_f64)
    };
    IdlePolicy {
        trim: secs(args.idle_trim),
        exit: secs(args.idle_exit),
    }
}

/// The server's runtime, its threads' CPU measured (`metrics::cpu`).
fn new_runtime() -> Result<tokio::runtime::Runtime> {
    nebula::metrics::cpu::instrument(&mut tokio::runtime::Builder::new_multi_thread())
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn serve(
    rt: tokio::runtime::Runtime,
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    app: Arc<Host>,
    idle: IdlePolicy,
    limits: ConnectionLimits,
) -> Result<ExitCode> {
    use nebula::metrics::cpu::{self, Background};
    let metrics = app.metrics().clone();
    let admin_metrics = metrics.clone();
    let served = rt.block_on(async move {
        let listener = match nebula::server::activation::inherited_listener()? {
            Some(l) => l,
            None => tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?,
        };
        if let Some(admin) = admin {
            let admin_listener = tokio::net::TcpListener::bind(admin)
                .await
                .with_context(|| format!("cannot listen on {admin} (--admin)"))?;
            println!("Metrics at http://{}/metrics", admin_listener.local_addr()?);
            tokio::spawn(nebula::server::admin::serve(
                admin_listener,
                Some(admin_metrics),
            ));
        }
        print_banner(&app, listener.local_addr()?);
        cpu::serving_started();
        nebula::trigger::redis::start(&app);
        // On a runtime thread (not this one), so that its CPU is measured
        // like every other task's.
        let failed = load_components_in_background(&app);
        let stop = {
            let failed = failed.clone();
            async move {
                tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = failed.notify.notified() => {}
                }
            }
        };
        let server = nebula::server::serve(listener, app, stop, idle, limits);
        tokio::spawn(cpu::background(Background::Accept, server))
            .await
            .context("the server task failed")??;
        if let Some(e) = failed
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        anyhow::Ok(())
    });
    // Requests are drained and the database closed by now. Dropping the
    // runtime would wait for the background loader, which may be minutes
    // into compiling a component; its cache writes are temp-file + rename,
    // so abandoning it leaves no torn entry.
    rt.shutdown_background();
    served?;
    nebula::metrics::print_summary(&metrics);
    Ok(ExitCode::SUCCESS)
}

fn print_banner(app: &Host, addr: SocketAddr) {
    let m = &app.model;
    if m.is_spin() {
        println!("Serving {} (Spin app) at http://{addr}/", m.name);
        for (route, component, kind) in app.routes() {
            println!("  {route:<24} → {component} ({kind})");
        }
        for t in app.redis_triggers() {
            println!("  redis {} {:<12} → {}", t.address, t.channel, t.component);
        }
    } else {
        println!("Serving {} at http://{addr}/", m.name);
        if let Some(st) = &m.static_files {
            println!(
                "  GET       {}/*  → static files in {}",
                st.prefix,
                st.dir.display()
            );
        }
        for r in &m.routes {
            println!(
                "  {:<9} {:<18} → {}{}",
                r.methods.as_deref().unwrap_or_default().join(","),
                r.text,
                r.component,
                grants(r)
            );
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// `  (reads: a, b; writes: c)` for a route's banner line.
fn grants(r: &nebula::model::RouteModel) -> String {
    let mut extra = Vec::new();
    if !r.reads.is_empty() {
        let names: Vec<&str> = r.reads.iter().map(|x| x.name.as_str()).collect();
        extra.push(format!("reads: {}", names.join(", ")));
    }
    if !r.writes.is_empty() {
        let names: Vec<&str> = r.writes.iter().map(|(n, _)| n.as_str()).collect();
        extra.push(format!("writes: {}", names.join(", ")));
    }
    if extra.is_empty() {
        String::new()
    } else {
        format!("  ({})", extra.join("; "))
    }
}

/// A component that could not be loaded after the start: the server stops
/// (requests in flight finish) and `up` fails with its error.
#[derive(Default)]
struct LoadFailure {
    notify: tokio::sync::Notify,
    error: std::sync::Mutex<Option<anyhow::Error>>,
}

/// Loads the components a deferred start left, on a runtime thread given
/// up to blocking meanwhile, charged to the start's CPU.
fn load_components_in_background(app: &Arc<Host>) -> Arc<LoadFailure> {
    use nebula::metrics::cpu::{self, Background};
    let failed = Arc::new(LoadFailure::default());
    let (app, report) = (app.clone(), failed.clone());
    tokio::spawn(cpu::background(Background::Startup, async move {
        let mut wait = std::time::Duration::from_millis(100);
        loop {
            match tokio::task::block_in_place(|| app.load_components()) {
                Ok(()) => {
                    tracing::info!("every component loaded");
                    return;
                }
                // Out of file descriptors or memory for a moment (a flood):
                // nothing is wrong with the component. Requests load what
                // they need themselves; this tries again later.
                Err(e) if nebula::executor::transient(&e) => {
                    tracing::warn!("loading components: {e:#}; trying again in {wait:?}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    *report.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    report.notify.notify_one();
                    return;
                }
            }
        }
    }));
    failed
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing requests in flight");
}
