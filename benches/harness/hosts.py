"""The hosts under test and how each serves each workload.

A host is a binary; a workload is a URL on a server that binary starts. The
same component runs on every Wasm host where the workload allows it: hello is
guests/http-hello (plain wasi:http), the home page and the vote are the Spin
SDK app in examples/academemes-spin on Spin and Nebula-Spin, the pure
components (app.toml) on Nebula, and benches/native natively."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HELLO_WASM = "guests/target/wasm32-wasip2/release/http_hello.wasm"
HELLO_SPIN = "guests/http-hello/spin.toml"
# The pure function (`handle(request, data) -> response`) on the same path.
PURE_HELLO = "benches/pure-hello.toml"
PURE_HELLO_WASM = "guests/target/wasm32-wasip2/release/hello.wasm"
SPIN_APP = "examples/academemes-spin/spin.toml"
SPIN_APP_WASM = "examples/academemes-spin/target/wasm32-wasip2/release/academemes_spin.wasm"


def _app_sources() -> list[str]:
    """Every component app.toml declares: `nebula up --no-build` needs them all."""
    with open(os.path.join(REPO, "app.toml"), "rb") as f:
        manifest = tomllib.load(f)
    return [c["source"] for c in manifest.get("components", {}).values() if "source" in c]


PURE_WASMS = _app_sources()


@dataclass
class Workload:
    name: str
    path: str
    method: str = "GET"
    accept: str = ""
    what: str = ""


WORKLOADS = {
    "hello": Workload("hello", "/hello", what="GET /hello: the same wasi:http component (guests/http-hello) on every Wasm host"),
    "list": Workload("list", "/", what="GET /: the home page, three SQLite reads + HTML render (memoised on nebula: app.toml's `cache`; nebula-nocache runs every request)"),
    "vote": Workload("vote", "/memes/1/vote", "POST", "application/json",
                     what="POST /memes/1/vote (accept: application/json): one read + one write transaction"),
}


@dataclass
class Ctx:
    """What a server command needs: its address, the run's database and folders."""

    addr: str
    db: str
    runtime_config: str
    work: str
    admin: str | None = None


@dataclass
class Host:
    name: str
    binary: str | None
    # workload → (argv builder, files it needs)
    serves: dict = field(default_factory=dict)
    missing: str = ""
    admin: bool = False  # supports `--admin ADDR` (/metrics)

    def command(self, workload: str, ctx: Ctx) -> list[str]:
        build, _ = self.serves[workload]
        return build(self, ctx)

    def needs(self, workload: str) -> list[str]:
        return self.serves[workload][1]


def _nebula_binary() -> str:
    return os.environ.get("NEBULA_BIN") or os.path.join(REPO, "target/release/nebula")


def _has_admin(binary: str) -> bool:
    try:
        out = subprocess.run([binary, "up", "--help"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--admin" in out.stdout


@functools.lru_cache(maxsize=None)
def _has_no_rate_limits(binary: str) -> bool:
    try:
        out = subprocess.run([binary, "up", "--help"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--no-rate-limits" in out.stdout


def _nebula_up(manifest: str, *extra: str):
    def build(host: Host, ctx: Ctx) -> list[str]:
        cmd = [host.binary, "up", "-f", os.path.join(REPO, manifest), "--no-build",
               "--listen", ctx.addr, *[e.format(**vars(ctx)) for e in extra]]
        # The vote workload sends thousands of votes from one address;
        # app.toml's rate_limit would answer most of them 429. Older builds
        # (compare_builds.py) have no limits and no flag.
        if _has_no_rate_limits(host.binary):
            cmd.append("--no-rate-limits")
        if host.admin and ctx.admin:
            cmd += ["--admin", ctx.admin]
        return cmd
    return build


def _spin_up(manifest: str, *extra: str):
    def build(host: Host, ctx: Ctx) -> list[str]:
        return [host.binary, "up", "-f", os.path.join(REPO, manifest), "--listen", ctx.addr,
                *[e.format(**vars(ctx)) for e in extra]]
    return build


def _wasmtime_serve(wasm: str):
    def build(host: Host, ctx: Ctx) -> list[str]:
        # -S cli=y: the component imports wasi:cli (Rust's std); -C cache=y: a
        # warm compile cache, as Nebula and Spin have after their first start.
        return [host.binary, "serve", "--addr", ctx.addr, "-S", "cli=y", "-C", "cache=y",
                os.path.join(REPO, wasm)]
    return build


def _native(host: Host, ctx: Ctx) -> list[str]:
    return [host.binary, "--manifest", os.path.join(REPO, "app.toml"), "--db", ctx.db,
            "--listen", ctx.addr]


def _nginx(host: Host, ctx: Ctx) -> list[str]:
    """nginx answering `return 200` on every path: the floor of what serving
    an HTTP response costs. One worker, as the server gets one CPU when
    pinned; no access log, as Nebula keeps none."""
    conf = os.path.join(ctx.work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
pid {ctx.work}/nginx.pid;
error_log {ctx.work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {ctx.work}/nginx-body;
    server {{
        listen {ctx.addr};
        location / {{ default_type text/plain; return 200 "hello from nginx\\n"; }}
    }}
}}
""")
    return [host.binary, "-c", conf, "-p", ctx.work]


def _which(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        path = os.environ[env]
        return path if os.access(path, os.X_OK) else None
    for n in names:
        found = shutil.which(n) or (
            os.path.expanduser(f"~/.cargo/bin/{n}") if os.access(os.path.expanduser(f"~/.cargo/bin/{n}"), os.X_OK) else None)
        if found:
            return found
    return None


def all_hosts() -> list[Host]:
    nebula = _nebula_binary()
    nebula_ok = os.access(nebula, os.X_OK)
    admin = nebula_ok and _has_admin(nebula)
    spin = _which("SPIN_BIN", "spin")
    wasmtime = _which("WASMTIME_BIN", "wasmtime")
    nginx = _which("NGINX_BIN", "nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    native = os.environ.get("NATIVE_BIN") or os.path.join(REPO, "target/release/academemes-native")
    rc = "--runtime-config-file", "{runtime_config}"
    return [
        Host("nebula", nebula if nebula_ok else None, {
            # Nebula runs plain wasi:http components through a spin.toml.
            "hello": (_nebula_up(HELLO_SPIN), [HELLO_WASM]),
            "list": (_nebula_up("app.toml", "--db", "{db}"), PURE_WASMS),
            "vote": (_nebula_up("app.toml", "--db", "{db}"), PURE_WASMS),
        }, missing=f"no {nebula}: `cargo build --release` (or set NEBULA_BIN)", admin=admin),
        # Issue 18: the pure function on the same path, no reads.
        Host("nebula-pure", nebula if nebula_ok else None, {
            "hello": (_nebula_up(PURE_HELLO), [PURE_HELLO_WASM]),
        }, missing=f"no {nebula}: `cargo build --release` (or set NEBULA_BIN)", admin=admin),
        # The same pure app with every route's `cache` ignored: what the home
        # page costs when each request runs its reads and its component.
        Host("nebula-nocache", nebula if nebula_ok else None, {
            "list": (_nebula_up("app.toml", "--db", "{db}", "--no-cache"), PURE_WASMS),
        }, missing=f"no {nebula}: `cargo build --release` (or set NEBULA_BIN)", admin=admin),
        Host("nebula-spin", nebula if nebula_ok else None, {
            "list": (_nebula_up(SPIN_APP, *rc), [SPIN_APP_WASM]),
            "vote": (_nebula_up(SPIN_APP, *rc), [SPIN_APP_WASM]),
        }, missing=f"no {nebula}: `cargo build --release` (or set NEBULA_BIN)", admin=admin),
        Host("spin", spin, {
            "hello": (_spin_up(HELLO_SPIN), [HELLO_WASM]),
            "list": (_spin_up(SPIN_APP, *rc), [SPIN_APP_WASM]),
            "vote": (_spin_up(SPIN_APP, *rc), [SPIN_APP_WASM]),
        }, missing="no Fermyon Spin: set SPIN_BIN to a `spin` binary (SPIN_BIN=" + os.environ.get("SPIN_BIN", "") + " is not one)" if os.environ.get("SPIN_BIN") else "no Fermyon Spin: set SPIN_BIN to a `spin` binary"),
        Host("wasmtime", wasmtime, {
            "hello": (_wasmtime_serve(HELLO_WASM), [HELLO_WASM]),
        }, missing="no wasmtime: set WASMTIME_BIN to a `wasmtime` binary (`cargo install wasmtime-cli`)"),
        Host("nginx", nginx, {
            "hello": (_nginx, []),
        }, missing="no nginx: `apt-get install nginx-light` (or set NGINX_BIN)"),
        Host("native", native if os.access(native, os.X_OK) else None, {
            "hello": (_native, []),
            "list": (_native, []),
            "vote": (_native, []),
        }, missing=f"no {native}: `cargo build --release -p academemes-native` (or set NATIVE_BIN)"),
    ]
