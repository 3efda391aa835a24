//! Instantiate + call + drop of pure components through Nebula's executor,
//! against the whole in-process request path (`App::handle_with`), plus the
//! per-call pieces the executor is made of.
//!
//! Run from the repository root after building the guests:
//!
//! ```text
//! cargo run --release -- build
//! ./target/release/nebula build -f host/tests/apps/probe.toml
//! ./target/release/nebula build -f host/tests/apps/langs.toml
//! cargo bench -p nebula --bench instantiate
//! ```
//!
//! Groups:
//! - `pure`: `PureComponent::call` (fresh store, closed WASI, instantiate
//!   from the `InstancePre`, call `handle`, drop) for the trivial `hello`
//!   guest and for `meme_list` rendering `/` from the seed data's tables.
//! - `app`: `App::handle_with` on the probe app (`/hello/bench`, no reads)
//!   and on Academemes (`/`, three reads; `/random`, one read), with the
//!   route's SQLite reads on their own for comparison.
//! - `parts`: the pieces of one call, rebuilt here with wasmtime directly
//!   with the executor's own `closed_ctx`.
//! - `engine`: store + instantiate + call + drop, rebuilt the same way, on
//!   engines with `new_engine`'s settings and with `pagemap_scan` and/or
//!   without component-model concurrency.
//! - `lang`: the same trivial function (`hello`: a greeting, the params and
//!   the query) written in Rust, Python (componentize-py) and JavaScript
//!   (jco), each instantiated + called + dropped through `PureComponent::call`;
//!   the components' sizes are printed first. Build the Python and JavaScript
//!   ones with `./target/release/nebula build -f host/tests/apps/langs.toml`.
//!
//! With `RUST_BACKTRACE=1` in the environment (and `RUST_LIB_BACKTRACE`
//! unset) wasmtime captures a host backtrace on every store drop; run with
//! `RUST_LIB_BACKTRACE=0` to measure what a server without it sees.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tokio::runtime::Runtime;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView};

use nebula::app::{App, AppOptions};
use nebula::contract::{PurePre, Request, Table, Value};
use nebula::data::ReadPlan;
use nebula::executor::{
    self, new_engine, CompileCache, Deadlines, EngineOptions, PureComponent, PureLinker,
};
use nebula::manifest::Manifest;

const TIMEOUT: Duration = Duration::from_secs(10);
const SEED: u64 = 42;
const NOW_MS: u64 = 1_790_000_000_000;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

fn guest(name: &str) -> PathBuf {
    repo()
        .join("guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}

/// Stops with a message saying how to build what is missing.
fn require_guests(manifests: &[&Path]) {
    let mut missing = Vec::new();
    for file in manifests {
        let m = Manifest::load(file).unwrap_or_else(|e| panic!("{e}"));
        for c in m.components.values() {
            if !c.source.exists() {
                missing.push(c.source.display().to_string());
            }
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "\nThe instantiate bench needs the guest components, and these are missing:\n  {}\n\n\
             Build them from the repository root with:\n  \
             cargo run --release -- build\n  \
             ./target/release/nebula build -f host/tests/apps/probe.toml\n  \
             ./target/release/nebula build -f host/tests/apps/langs.toml\n",
            missing.join("\n  ")
        );
        std::process::exit(2);
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The request `App` builds for `GET /hello/bench` (no headers, like the
/// `app` cases below).
fn hello_request() -> Request {
    Request {
        id: "1a2b3c4d-000001".into(),
        method: "GET".into(),
        path: "/hello/bench".into(),
        route: "/hello/*rest".into(),
        query: vec![],
        headers: vec![],
        params: vec![("rest".into(), "bench".into())],
        body: vec![],
        seed: SEED,
        now_ms: NOW_MS,
    }
}

fn home_request() -> Request {
    Request {
        id: "1a2b3c4d-000002".into(),
        method: "GET".into(),
        path: "/".into(),
        route: "/".into(),
        query: vec![],
        headers: vec![],
        params: vec![],
        body: vec![],
        seed: SEED,
        now_ms: NOW_MS,
    }
}

fn http_get(path: &str) -> http::Request<Bytes> {
    http::Request::builder()
        .uri(path)
        .body(Bytes::new())
        .expect("request")
}

fn rows(tables: &[Table], name: &str) -> usize {
    tables
        .iter()
        .find(|t| t.name == name)
        .map_or(0, |t| t.rows.len())
}

fn bench(c: &mut Criterion) {
    let repo = repo();
    let app_toml = repo.join("app.toml");
    let probe_toml = repo.join("host/tests/apps/probe.toml");
    let langs_toml = repo.join("host/tests/apps/langs.toml");
    require_guests(&[&app_toml, &probe_toml, &langs_toml]);
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none()
        && std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0")
    {
        eprintln!(
            "note: RUST_BACKTRACE is set and RUST_LIB_BACKTRACE is not, so wasmtime captures \
             a host backtrace for the error it creates on every store drop; \
             set RUST_LIB_BACKTRACE=0 to measure without it"
        );
    }
    let rt = runtime();

    // ---- the executor, as App::load sets it up (pure components run on an
    // engine without component-model concurrency)
    let opts = EngineOptions {
        concurrency: false,
        ..EngineOptions::default()
    };
    let max_memory = opts.max_memory_bytes;
    let engine = new_engine(&opts).expect("engine");
    // Python and JavaScript components take tens of seconds to compile:
    // compile them once, not on every run.
    let cache_dir = repo.join("target/nebula-bench-cache");
    let cache = CompileCache::new(Some(cache_dir.clone()));
    let linker = PureLinker::new(&engine).expect("linker");
    let load = |name: &str| {
        let (component, _) = executor::load(&engine, &cache, &guest(name)).expect(name);
        PureComponent::new(name, &component, &linker).expect(name)
    };
    let hello = load("hello");
    let meme_list = load("meme_list");
    let deadlines = Deadlines::start(&engine);

    // ---- the Academemes app on a fresh database (schema + seed)
    let dir = tempfile::tempdir().expect("tempdir");
    let academemes = App::load(
        Manifest::load(&app_toml).expect("app.toml"),
        AppOptions {
            database: Some(nebula::data::Location::Sqlite(
                dir.path().join("academemes.db"),
            )),
            cache_dir: Some(cache_dir.clone()),
            ..Default::default()
        },
    )
    .expect("load app.toml");
    let probe = App::load(
        Manifest::load(&probe_toml).expect("probe.toml"),
        AppOptions {
            database: Some(nebula::data::Location::Sqlite(dir.path().join("probe.db"))),
            ..Default::default()
        },
    )
    .expect("load probe.toml");

    // The tables `/` gets: app.toml's reads `newest`, `top` and `tags`, run
    // by the data layer against the seed data, so their shape is exactly
    // what a request sees.
    let home_reads = ["newest", "top", "tags"];
    let read_home = || {
        let plans: Vec<ReadPlan> = home_reads
            .iter()
            .map(|r| {
                ReadPlan::bind(
                    &academemes.model.pure_manifest().expect("a pure app").reads[*r],
                    |_| None,
                )
            })
            .collect();
        rt.block_on(
            academemes
                .database()
                .expect("a pure app has a database")
                .read(plans),
        )
        .expect("reads for /")
    };
    let home_data = read_home();
    eprintln!(
        "meme_list data: newest {} rows, top {} rows, tags {} rows; columns {:?}",
        rows(&home_data, "newest"),
        rows(&home_data, "top"),
        rows(&home_data, "tags"),
        home_data[0].columns
    );
    if let Some(Value::Text(t)) = home_data[0].rows.first().and_then(|r| r.get(2)) {
        eprintln!("  first newest top_text: {t:?}");
    }

    // Sanity: every case answers what it should before it is timed.
    rt.block_on(async {
        let out = hello
            .call(&deadlines, TIMEOUT, max_memory, hello_request(), vec![])
            .await
            .unwrap_or_else(|e| panic!("hello failed: {e:?}"));
        assert_eq!(out.response.status, 200);
        let out = meme_list
            .call(
                &deadlines,
                TIMEOUT,
                max_memory,
                home_request(),
                home_data.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("meme_list failed: {e:?}"));
        assert_eq!(out.response.status, 200);
        eprintln!("meme_list / body: {} bytes", out.response.body.len());
        for (app, path) in [
            (&probe, "/hello/bench"),
            (&academemes, "/"),
            (&academemes, "/random"),
        ] {
            let r = app.handle_with(http_get(path), SEED, NOW_MS).await;
            let s = r.status();
            assert!(s.is_success() || s.is_redirection(), "{path}: {s}");
        }
    });

    // ---- pure: instantiate + call + drop through PureComponent::call
    {
        let mut g = c.benchmark_group("pure");
        g.bench_function("hello", |b| {
            b.to_async(&rt).iter_batched(
                hello_request,
                |req| async {
                    hello
                        .call(&deadlines, TIMEOUT, max_memory, req, vec![])
                        .await
                        .expect("hello")
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("meme_list /", |b| {
            b.to_async(&rt).iter_batched(
                || (home_request(), home_data.clone()),
                |(req, data)| async {
                    meme_list
                        .call(&deadlines, TIMEOUT, max_memory, req, data)
                        .await
                        .expect("meme_list")
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }

    // ---- app: the whole in-process request path
    {
        let mut g = c.benchmark_group("app");
        for (name, app, path) in [
            ("probe /hello/bench", &probe, "/hello/bench"),
            ("academemes /", &academemes, "/"),
            ("academemes /random", &academemes, "/random"),
        ] {
            g.bench_function(name, |b| {
                b.to_async(&rt).iter_batched(
                    || http_get(path),
                    |req| app.handle_with(req, SEED, NOW_MS),
                    BatchSize::SmallInput,
                )
            });
        }
        // What `/` spends on its reads before the call: the data store,
        // with the hop to the blocking pool a request's reads take too.
        g.bench_function("reads for / (newest, top, tags)", |b| b.iter(read_home));
        g.finish();
    }

    // ---- lang: the same function in three languages
    languages(c, &rt, &deadlines, max_memory, &hello, |name, path| {
        let (component, _) = executor::load(&engine, &cache, path).expect(name);
        PureComponent::new(name, &component, &linker).expect(name)
    });

    // ---- parts of one call, rebuilt with wasmtime directly
    parts(c, &rt, &engine);
    // ---- the same call on engines with other settings
    engine_variants(c, &rt, &home_data);
}

/// `hello` in Rust, Python and JavaScript (host/tests/apps/langs.toml): each
/// answers the same bytes, then instantiate + call + drop is timed for each.
fn languages(
    c: &mut Criterion,
    rt: &Runtime,
    deadlines: &Deadlines,
    max_memory: usize,
    rust: &PureComponent,
    load: impl Fn(&str, &Path) -> PureComponent,
) {
    let py_path = repo().join("guests/target/py/hello_py.wasm");
    let js_path = repo().join("guests/target/js/hello_js.wasm");
    let python = load("hello-py", &py_path);
    let javascript = load("hello-js", &js_path);
    let cases = [
        ("rust", rust, guest("hello")),
        ("python", &python, py_path),
        ("javascript", &javascript, js_path),
    ];
    let mut bodies = Vec::new();
    for (lang, component, path) in &cases {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let out = rt
            .block_on(component.call(deadlines, TIMEOUT, max_memory, hello_request(), vec![]))
            .unwrap_or_else(|e| panic!("{lang} hello failed: {e:?}"));
        assert_eq!(out.response.status, 200, "{lang}");
        eprintln!(
            "lang/{lang}: {} ({size} bytes), answers {:?}",
            path.display(),
            String::from_utf8_lossy(&out.response.body)
        );
        bodies.push(out.response.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "the three hellos must answer the same bytes"
    );
    let mut g = c.benchmark_group("lang");
    for (lang, component, _) in &cases {
        g.bench_function(format!("hello {lang}"), |b| {
            b.to_async(rt).iter_batched(
                hello_request,
                |req| async {
                    component
                        .call(deadlines, TIMEOUT, max_memory, req, vec![])
                        .await
                        .expect("hello")
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// What the executor's store holds (a copy of `executor::pure::HostState`).
struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl wasmtime_wasi::WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn new_store(engine: &Engine) -> Store<State> {
    let (wasi, _) = executor::closed_ctx(SEED, NOW_MS);
    let state = State {
        wasi,
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size(64 << 20)
            .instances(16)
            .build(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(Deadlines::ticks(TIMEOUT));
    store.epoch_deadline_trap();
    store
}

fn parts(c: &mut Criterion, rt: &Runtime, engine: &Engine) {
    let mut linker = Linker::<State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi linker");
    let component = executor::load(engine, &CompileCache::disabled(), &guest("hello"))
        .expect("hello")
        .0;
    let pre = PurePre::new(linker.instantiate_pre(&component).expect("pre")).expect("pure pre");
    let pre = &pre;

    let mut g = c.benchmark_group("parts");
    g.bench_function("closed WASI ctx build + drop", |b| {
        b.iter(|| executor::closed_ctx(SEED, NOW_MS))
    });
    g.bench_function("store (with closed WASI) new + drop", |b| {
        b.iter(|| new_store(engine))
    });
    g.bench_function("hello: store + instantiate + drop (no call)", |b| {
        b.to_async(rt).iter(|| async {
            let mut store = new_store(engine);
            pre.instantiate_async(&mut store)
                .await
                .expect("instantiate");
        })
    });
    g.finish();
}

/// `executor::new_engine`'s settings, copied, with two changes to try:
/// `pagemap_scan` (reset only the pages a guest dirtied, Linux >= 6.7) and
/// no component-model concurrency (pure components need none; Spin's WASI
/// 0.3 components do).
fn variant_engine(pagemap_scan: bool, concurrency: bool) -> Engine {
    let opts = EngineOptions::default();
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(opts.max_instances)
        .total_core_instances(opts.max_instances * 4)
        .total_memories(opts.max_instances * 2)
        .total_tables(opts.max_instances * 4)
        .total_stacks(opts.max_instances)
        .max_memory_size(opts.max_memory_bytes)
        .linear_memory_keep_resident(opts.keep_resident_bytes)
        .table_keep_resident(64 << 10)
        .max_unused_warm_slots(opts.max_instances.min(64));
    if pagemap_scan {
        pool.pagemap_scan(Enabled::Auto);
    }
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true)
        .epoch_interruption(true)
        .wasm_component_model_async(concurrency)
        .concurrency_support(concurrency)
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20);
    Engine::new(&config).expect("variant engine")
}

/// Store + instantiate + call + drop (no `Deadlines`, output discarded), and
/// for hello also without the call, on engines that differ from `new_engine`
/// in one or two settings.
fn engine_variants(c: &mut Criterion, rt: &Runtime, home_data: &[Table]) {
    let mut g = c.benchmark_group("engine");
    for (label, pagemap_scan, concurrency) in [
        ("as new_engine", false, true),
        ("pagemap_scan", true, true),
        ("no concurrency", false, false),
        ("pagemap_scan + no concurrency", true, false),
    ] {
        let engine = variant_engine(pagemap_scan, concurrency);
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi linker");
        let pre = |name: &str| {
            let component = executor::load(&engine, &CompileCache::disabled(), &guest(name))
                .expect(name)
                .0;
            PurePre::new(linker.instantiate_pre(&component).expect("pre")).expect("pure pre")
        };
        let (hello, meme_list) = (pre("hello"), pre("meme_list"));
        let (engine, hello, meme_list) = (&engine, &hello, &meme_list);
        g.bench_function(format!("hello, no call, {label}"), |b| {
            b.to_async(rt).iter(|| async move {
                let mut store = new_store(engine);
                hello.instantiate_async(&mut store).await.expect("inst");
            })
        });
        g.bench_function(format!("hello, {label}"), |b| {
            b.to_async(rt).iter_batched(
                hello_request,
                |req| async move {
                    let mut store = new_store(engine);
                    let pure = hello.instantiate_async(&mut store).await.expect("inst");
                    pure.call_handle(&mut store, &req, &[]).await.expect("call")
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("meme_list /, {label}"), |b| {
            b.to_async(rt).iter_batched(
                || (home_request(), home_data.to_vec()),
                |(req, data)| async move {
                    let mut store = new_store(engine);
                    let pure = meme_list.instantiate_async(&mut store).await.expect("inst");
                    pure.call_handle(&mut store, &req, &data)
                        .await
                        .expect("call")
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
