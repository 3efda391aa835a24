#!/usr/bin/env python3
"""`nebula platform` with thousands of small apps on one node (issue 16).

For each N in --apps (default 1,000 and 10,000), all on 127.0.0.1:

  deploy     one app deployed through the real admin API with `nebula deploy`
             (its bundle unpacked and checked by the platform, the compile
             cache filled), then copied to N host names: `DIR/apps/HOST/` is
             copied and `host` rewritten in each app.json. Deploying 10,000
             apps through the API would run `nebula check` 10,000 times, so
             only --deploys real API deploys are timed (deploys/s), on a
             scratch platform of their own.
  idle       the platform started on the N apps: resident memory
             (/proc/PID/status VmRSS, RssAnon), CPU time (/proc/PID/stat
             utime+stime), threads, open fds and context switches 1 s after
             start and --idle-secs later with no requests, against a platform
             started on an empty folder: idle cost per deployed app =
             (RSS_N - RSS_0) / N.
  first      the first request to apps never loaded (a random sample, each
             requested once on a fresh connection): client time (request
             sent -> whole response read) and the server's time for that
             request (`last_cold_request_us` from GET /apps/NAME: from the
             platform receiving the request to its response, so the app's
             load, the component mapped from the tenant's compile cache for
             it, the call; not the connection, not writing the response),
             with the load alone (`last_load_us`: manifest read, the app's
             host built; the database and components are opened by the
             requests that need them) beside it.
  steady     the same app once loaded: repeated requests, fresh connections
             and one keep-alive connection.
  growth     K = 1, 10, 100, 1000 (<= N) apps loaded at once
             (--unload-after 3600): RSS, fds and a steady-state p50 at each
             K, then --idle-secs idle with K loaded.
  unload     a second platform on the same folder with --unload-after
             --unload-secs: apps loaded, then unloaded by the platform when
             idle; RSS and idle CPU after the unload, then the first request
             to each again (client and server time).

Then, side by side, the same app as one `nebula up` process each (shared
compile cache, own database), up to --procs processes (a bounded count: the
machine has 2 cores and 24 GiB; it also stops below --min-free-mib), RSS and
PSS summed (PSS: the binary's code, shared by every process, counted once),
idle CPU, start time; once more with `--idle-trim`. --procs-only runs just
this comparison. `spin up` per app only if a Spin binary
is found (SPIN_BIN, `which spin`, or under /work); otherwise it says so.

    nice -n 19 python3 benches/platform.py [--apps 1000,10000] [--quick] [--out FILE]

Needs target/release/nebula (with `nebula platform`) and
guests/target/wasm32-wasip2/release/hello.wasm (`nebula build`).
Prints a Markdown summary and writes every figure as JSON to --out.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HELLO_WASM = os.path.join(REPO, "guests/target/wasm32-wasip2/release/hello.wasm")
HTTP_HELLO_SPIN = os.path.join(REPO, "guests/http-hello/spin.toml")
HTTP_HELLO_WASM = os.path.join(REPO, "guests/target/wasm32-wasip2/release/http_hello.wasm")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
EXPECTED = b"hello from a pure function\nrest=x\n"
TENANT = "bench"
PATH = "/hello/x"

APP_TOML = """[app]
name = "hello"

[database]
path = "data/app.db"
schema = "db/schema.sql"

[components.hello]
source = "{wasm}"

[[routes]]
path = "/hello/*rest"
component = "hello"
"""
SCHEMA = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL);\n"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------
# Figures


def pct(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def summary(xs: list[float], digits: int = 3) -> dict:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50": round(pct(xs, 50), digits), "p90": round(pct(xs, 90), digits),
            "p99": round(pct(xs, 99), digits), "min": round(min(xs), digits),
            "max": round(max(xs), digits), "mean": round(statistics.fmean(xs), digits)}


def proc_sample(pid: int) -> dict:
    """Memory, CPU, threads, fds and context switches of one process."""
    status = open(f"/proc/{pid}/status").read()

    def kib(field: str) -> int:
        m = re.search(rf"^{field}:\s+(\d+)", status, re.M)
        return int(m.group(1)) if m else 0

    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    vol = invol = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            ts = open(f"/proc/{pid}/task/{tid}/status").read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        vol += int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", ts).group(1))
        invol += int(re.search(r"nonvoluntary_ctxt_switches:\s+(\d+)", ts).group(1))
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except PermissionError:
        fds = None
    # Proportional set size: pages shared with other processes (the binary's
    # code, mapped by every `nebula up`) count for their share only.
    try:
        rollup = open(f"/proc/{pid}/smaps_rollup").read()
    except OSError:
        rollup = ""

    def pss(field: str) -> int | None:
        m = re.search(rf"^{field}:\s+(\d+)", rollup, re.M)
        return int(m.group(1)) if m else None

    return {
        "t": time.monotonic(),
        "rss_kib": kib("VmRSS"), "rss_anon_kib": kib("RssAnon"), "rss_file_kib": kib("RssFile"),
        "pss_kib": pss("Pss"), "pss_anon_kib": pss("Pss_Anon"), "pss_file_kib": pss("Pss_File"),
        "threads": kib("Threads"), "fds": fds,
        "cpu_ticks": int(fields[11]) + int(fields[12]),
        "ctx_voluntary": vol, "ctx_involuntary": invol,
    }


def idle_delta(a: dict, b: dict) -> dict:
    return {"secs": round(b["t"] - a["t"], 2), "cpu_ticks": b["cpu_ticks"] - a["cpu_ticks"],
            "cpu_ms": round((b["cpu_ticks"] - a["cpu_ticks"]) * 1000 / TICKS, 1),
            "ctx_switches": (b["ctx_voluntary"] - a["ctx_voluntary"])
            + (b["ctx_involuntary"] - a["ctx_involuntary"])}


def strip_t(s: dict) -> dict:
    return {k: v for k, v in s.items() if k != "t"}


def machine() -> dict:
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception as e:  # noqa: BLE001
            return f"({e})"
    cpu = ""
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1)
    except Exception:  # noqa: BLE001
        pass
    return {
        "date_utc": run(["date", "-u"]), "nproc": run(["nproc"]), "free_g": run(["free", "-g"]),
        "kernel": run(["uname", "-r"]), "cpu": cpu, "loadavg": list(os.getloadavg()),
        "commit": run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
        "dirty": bool(run(["git", "-C", REPO, "status", "--porcelain", "--", "host"])),
        "compilers_running": busy_compilers(),
    }


def busy_compilers() -> int:
    """rustc/cc1 processes running now (others' builds share the two cores)."""
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if open(f"/proc/{pid}/comm").read().strip() in ("rustc", "cc1", "cc1plus", "ld", "cargo"):
                    n += 1
            except OSError:
                pass
    return n


def conditions() -> dict:
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "compilers_running": busy_compilers()}


# --------------------------------------------------------------------------
# HTTP


def get_fresh(port: int, host: str | None, path: str = PATH, timeout: float = 30) -> tuple[int, bytes, float]:
    """One GET on a fresh connection: (status, body, ms to the whole response)."""
    headers = {"Host": host} if host else {}
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    return r.status, body, (time.perf_counter() - t0) * 1000


def steady(port: int, host: str | None, n: int, keepalive: bool, budget_s: float) -> dict:
    """Up to n requests (and at most budget_s seconds) to one loaded app."""
    times, bad = [], 0
    deadline = time.monotonic() + budget_s
    headers = {"Host": host} if host else {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30) if keepalive else None
    try:
        for _ in range(n):
            if time.monotonic() > deadline:
                break
            if keepalive:
                t0 = time.perf_counter()
                conn.request("GET", PATH, headers=headers)
                r = conn.getresponse()
                body = r.read()
                dt = (time.perf_counter() - t0) * 1000
                status = r.status
            else:
                status, body, dt = get_fresh(port, host)
            if status != 200 or body != EXPECTED:
                bad += 1
            times.append(dt)
    finally:
        if conn:
            conn.close()
    out = summary(times)
    out["bad"] = bad
    out["asked"] = n
    return out


class Admin:
    def __init__(self, addr: str, token: str):
        host, port = addr.rsplit(":", 1)
        self.host, self.port, self.token = host, int(port), token

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            c.request(method, path, body=body, headers={"Authorization": f"Bearer {self.token}"})
            r = c.getresponse()
            data = r.read()
        finally:
            c.close()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, {"raw": data[:500].decode(errors="replace")}

    def app(self, host: str) -> dict:
        status, d = self.call("GET", f"/apps/{host}")
        if status != 200:
            raise RuntimeError(f"GET /apps/{host}: {status} {d}")
        return d

    def loaded_count(self) -> int:
        status, d = self.call("GET", "/apps")
        if status != 200:
            raise RuntimeError(f"GET /apps: {status} {d}")
        return sum(1 for a in d["apps"] if a.get("loaded"))


# --------------------------------------------------------------------------
# Processes


class Proc:
    """A server process whose stdout is read in a thread (it never blocks);
    stderr goes to a log file."""

    def __init__(self, argv: list[str], log_path: str, ready: str = "Serving ", timeout: float = 120,
                 cwd: str | None = None):
        self.argv, self.log_path = argv, log_path
        self.lines: list[str] = []
        self.cv = threading.Condition()
        self._log = open(log_path, "wb")
        self.t_spawn = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                     text=True, cwd=cwd)
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for(ready, timeout)
        self.start_ms = (time.perf_counter() - self.t_spawn) * 1000
        self.url = line.rsplit(" at ", 1)[1].strip().rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        admin = [l for l in self.lines if l.startswith("Admin API at ")]
        self.admin_addr = admin[0].split("http://", 1)[1].rsplit("/apps", 1)[0] if admin else None

    def _read(self):
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for l in self.lines:
                    if l.startswith(prefix):
                        return l
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{' '.join(self.argv[:3])} exited ({self.proc.returncode}) before "
                                       f"printing {prefix!r}:\n{self.log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no {prefix!r} within {timeout} s:\n{self.log_tail()}")
                self.cv.wait(min(left, 0.5))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def log_problems(self) -> dict:
        """WARN and ERROR lines of its log (counted; the first few kept)."""
        text = self.log_tail(1 << 30)
        bad = [l for l in text.splitlines() if " WARN " in l or " ERROR " in l or "panicked" in l]
        return {"count": len(bad), "first": bad[:5]}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


LOADED_COMPONENT = re.compile(r"loaded component=\S+ origin=(\w+) .*elapsed_us=(\d+)")
APP_LOADED = re.compile(r"app loaded app=(\S+) version=\d+ took_us=(\d+)")
SPAN_HOST = re.compile(r"app\{host=([^}\s]+)\}")


def load_breakdown(log_path: str) -> dict:
    """The platform's own log of each load, in order: the whole load (`app
    loaded … took_us`) and the components the app's requests mapped after it
    (`app{host=…}: … loaded component … elapsed_us`: a platform maps a
    component when a request first needs it, not in the load). Grouped by
    how many times that app had been loaded in this process."""
    by_round: dict[int, list[dict]] = {}
    seen: dict[str, int] = {}
    last: dict[str, dict] = {}
    try:
        lines = open(log_path, errors="replace").read().splitlines()
    except OSError:
        return {}
    for line in lines:
        m = LOADED_COMPONENT.search(line)
        h = SPAN_HOST.search(line)
        if m and h and h.group(1) in last:
            rec = last[h.group(1)]
            rec["component_us"] += int(m.group(2))
            rec["origins"].append(m.group(1))
            continue
        m = APP_LOADED.search(line)
        if m:
            host, took = m.group(1), int(m.group(2))
            seen[host] = seen.get(host, 0) + 1
            rec = {"took_us": took, "component_us": 0, "origins": []}
            by_round.setdefault(seen[host], []).append(rec)
            last[host] = rec
    out = {}
    for r, xs in sorted(by_round.items()):
        out[f"load_{r}"] = {
            "n": len(xs),
            "took_us": summary([x["took_us"] for x in xs], 0),
            "component_us": summary([x["component_us"] for x in xs if x["origins"]], 0),
            "origins": sorted({o for x in xs for o in x["origins"]}),
        }
    return out


def platform(nebula: str, d: str, logs: str, name: str, extra: list[str]) -> Proc:
    return Proc([nebula, "platform", "--dir", d, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", *extra],
                os.path.join(logs, f"{name}.log"))


def check_alive(p: Proc, what: str):
    if not p.alive():
        raise RuntimeError(f"the platform exited ({p.proc.returncode}) during {what}:\n{p.log_tail()}")


# --------------------------------------------------------------------------
# Phases


def make_template(nebula: str, work: str, deploys: int, wasm: str) -> dict:
    """Deploys the hello app through the admin API on a scratch platform;
    times `deploys` more real deploys. Returns the template's paths."""
    app = os.path.join(work, "hello-app")
    os.makedirs(os.path.join(app, "db"))
    manifest = os.path.join(app, "app.toml")
    with open(manifest, "w") as f:
        f.write(APP_TOML.format(wasm=os.path.abspath(wasm)))
    with open(os.path.join(app, "db/schema.sql"), "w") as f:
        f.write(SCHEMA)
    ddir = os.path.join(work, "deploy-platform")
    out = subprocess.run([nebula, "platform", "tenant", "add", TENANT, "--dir", ddir],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"tenant add failed: {out.stderr}")
    token = out.stdout.strip().splitlines()[-1].strip()
    p = platform(nebula, ddir, work, "deploy-platform", [])
    result: dict = {}
    try:
        def deploy(host: str) -> float:
            t0 = time.perf_counter()
            r = subprocess.run([nebula, "deploy", "-f", manifest, "--to", f"http://{p.admin_addr}",
                                "--token", token, "--host", host, "--no-build"],
                               capture_output=True, text=True, timeout=300)
            dt = (time.perf_counter() - t0) * 1000
            if r.returncode != 0 or f"deployed {host} version 1" not in r.stdout:
                raise RuntimeError(f"nebula deploy --host {host} failed ({r.returncode}):\n{r.stdout}{r.stderr}\n"
                                   f"platform log:\n{p.log_tail()}")
            return dt
        first_ms = deploy("template.test")
        log(f"deployed the template app through the API in {first_ms:.0f} ms (first deploy: the check compiles it)")
        # It answers, through the platform, before being copied.
        status, body, _ = get_fresh(p.port, "template.test")
        if status != 200 or body != EXPECTED:
            raise RuntimeError(f"the deployed app answered {status} {body!r}")
        times = []
        t0 = time.perf_counter()
        deadline = time.monotonic() + 300
        for i in range(deploys):
            if time.monotonic() > deadline:
                break
            times.append(deploy(f"deploy{i:03d}.test"))
        total = time.perf_counter() - t0
        result = {"first_deploy_ms": round(first_ms, 1), "timed": summary(times, 1),
                  "timed_total_s": round(total, 2),
                  "deploys_per_s": round(len(times) / total, 2) if times else None,
                  "what": "`nebula deploy --no-build` processes run one after another: bundling (tar.gz), "
                          "upload, and the platform's unpack + `check` (the component mapped from the "
                          "tenant's compile cache, filled by the first deploy)"}
        log(f"{len(times)} real API deploys: {result['deploys_per_s']} deploys/s, "
            f"p50 {result['timed'].get('p50')} ms")
    finally:
        p.stop()
    src = os.path.join(ddir, "apps", "template.test")
    with open(os.path.join(src, "app.json")) as f:
        record = json.load(f)
    # The app's database, made by the deploy (since the platform makes it at
    # deploy time rather than on the first request); copied with each app.
    data = os.path.join(ddir, "data", "template.test")
    result["data"] = data if os.path.isdir(data) else None
    result.update({"dir": ddir, "token": token, "template": src, "record": record,
                   "bundle_files": sorted(os.path.relpath(os.path.join(r, f), src)
                                          for r, _, fs in os.walk(src) for f in fs)})
    return result


def host_name(i: int) -> str:
    return f"app{i:05d}.test"


def make_platform_dir(tpl: dict, d: str, n: int) -> float:
    """A platform folder with n copies of the deployed app; seconds taken."""
    t0 = time.perf_counter()
    os.makedirs(os.path.join(d, "apps"))
    shutil.copy2(os.path.join(tpl["dir"], "tenants.json"), d)
    # The tenant's compile cache as the deploy left it (the real deploy's
    # check compiled the component into it); its key lies beside it.
    shutil.copytree(os.path.join(tpl["dir"], "cache"), os.path.join(d, "cache"), symlinks=True)
    for i in range(n):
        host = host_name(i)
        dst = os.path.join(d, "apps", host)
        shutil.copytree(tpl["template"], dst)
        if tpl.get("data"):
            shutil.copytree(tpl["data"], os.path.join(d, "data", host))
        rec = dict(tpl["record"], host=host)
        with open(os.path.join(dst, "app.json"), "w") as f:
            json.dump(rec, f, indent=2)
    # A real platform's apps were written by deploys long before their first
    # request; without this, the kernel writes the fresh copies back while
    # the first loads are timed, and they wait behind it on the disk.
    os.sync()
    return time.perf_counter() - t0


# Seconds between the banner (or the last request) and the idle window: the
# platform prints its banner as it starts serving, and at 10,000 apps the end
# of its start (threads parking after the folder scan) fell into the window's
# first second as one CPU tick and 3-4 context switches.
SETTLE_S = 1.0


def idle_measure(p: Proc, secs: float) -> dict:
    time.sleep(SETTLE_S)
    a = proc_sample(p.pid)
    time.sleep(secs)
    b = proc_sample(p.pid)
    return {"start": strip_t(a), "end": strip_t(b), "idle": idle_delta(a, b)}


def baseline(nebula: str, tpl: dict, work: str, idle_secs: float) -> dict:
    d = os.path.join(work, "p-empty")
    os.makedirs(d)
    shutil.copy2(os.path.join(tpl["dir"], "tenants.json"), d)
    p = platform(nebula, d, work, "platform-empty", ["--unload-after", "3600"])
    try:
        out = {"start_ms": round(p.start_ms, 1), "banner": p.lines[-1]}
        out.update(idle_measure(p, idle_secs))
        check_alive(p, "the empty platform's idle")
    finally:
        p.stop()
    log(f"empty platform: VmRSS {out['end']['rss_kib']} KiB after {idle_secs} s idle, "
        f"{out['idle']['cpu_ticks']} CPU ticks idle, {out['end']['threads']} threads")
    return out


def load_one(p: Proc, admin: Admin, host: str) -> dict:
    status, body, client_ms = get_fresh(p.port, host)
    d = admin.app(host)
    return {"host": host, "status": status, "ok": status == 200 and body == EXPECTED,
            "client_ms": round(client_ms, 3), "server_us": d.get("last_cold_request_us"),
            "load_us": d.get("last_load_us"), "loads": d.get("loads"),
            "loaded": d.get("loaded")}


def run_n(nebula: str, tpl: dict, work: str, n: int, a, base: dict) -> dict:
    d = os.path.join(work, f"p-{n}")
    log(f"N={n}: copying the deployed app to {n} host names")
    copy_s = make_platform_dir(tpl, d, n)
    log(f"N={n}: {n} app folders in {copy_s:.1f} s")
    res: dict = {"n": n, "copy_s": round(copy_s, 1), "conditions_before": conditions()}
    admin = None

    # --- idle, then first requests, steady state and growth ----------------
    p = platform(nebula, d, work, f"platform-{n}", ["--unload-after", "3600"])
    try:
        admin = Admin(p.admin_addr, tpl["token"])
        res["start_ms"] = round(p.start_ms, 1)
        res["banner"] = p.lines[-1]
        log(f"N={n}: platform serving after {p.start_ms:.0f} ms: {p.lines[-1]}")
        res.update({"idle_" + k: v for k, v in idle_measure(p, a.idle_secs).items()})
        check_alive(p, "idle")
        rss_n, rss_0 = res["idle_end"]["rss_kib"], base["end"]["rss_kib"]
        anon_n, anon_0 = res["idle_end"]["rss_anon_kib"], base["end"]["rss_anon_kib"]
        res["per_app_idle_bytes"] = round((rss_n - rss_0) * 1024 / n, 1)
        res["per_app_idle_anon_bytes"] = round((anon_n - anon_0) * 1024 / n, 1)
        res["per_app_start_bytes"] = round((res["idle_start"]["rss_kib"] - base["start"]["rss_kib"]) * 1024 / n, 1)
        log(f"N={n}: idle VmRSS {rss_n} KiB (empty {rss_0}) -> {res['per_app_idle_bytes']} B per app; "
            f"RssAnon -> {res['per_app_idle_anon_bytes']} B per app; idle CPU {res['idle_idle']['cpu_ticks']} ticks "
            f"in {a.idle_secs} s; {res['idle_end']['threads']} threads, {res['idle_end']['fds']} fds")

        rng = random.Random(16 + n)
        checkpoints = sorted({k for k in a.grow if k <= n} | {1})
        order = rng.sample(range(n), max(max(checkpoints), min(a.first_samples, n)))
        order = [host_name(i) for i in order]
        loads, growth = [], []
        deadline = time.monotonic() + a.phase_budget
        stopped = None
        for i, host in enumerate(order):
            if time.monotonic() > deadline:
                stopped = f"time budget of {a.phase_budget} s reached after {i} loads"
                break
            r = load_one(p, admin, host)
            r["loaded_before"] = i
            loads.append(r)
            if not r["ok"]:
                log(f"N={n}: first request to {host}: {r['status']} (not the expected body)")
                if sum(not x["ok"] for x in loads) >= 10:
                    check_alive(p, "the first requests")
                    raise RuntimeError(f"10 first requests failed; platform log:\n{p.log_tail()}")
            k = i + 1
            if k in checkpoints:
                big = k == 1
                g = {"k": k, "conditions": conditions()}
                g["steady_keepalive"] = steady(p.port, order[0], a.steady if big else a.steady_small, True, 120)
                g["steady_fresh"] = steady(p.port, order[0], a.steady if big else a.steady_small // 2, False, 120)
                g["sample"] = strip_t(proc_sample(p.pid))
                g["rss_per_loaded_kib"] = round((g["sample"]["rss_kib"] - res["idle_end"]["rss_kib"]) / k, 1)
                growth.append(g)
                log(f"N={n}: K={k} loaded: VmRSS {g['sample']['rss_kib']} KiB (+{g['rss_per_loaded_kib']} KiB per "
                    f"loaded app), {g['sample']['threads']} threads, {g['sample']['fds']} fds; steady p50 "
                    f"keep-alive {g['steady_keepalive'].get('p50')} ms, fresh {g['steady_fresh'].get('p50')} ms")
        check_alive(p, "the first requests")
        res["loads_stopped"] = stopped
        first = loads[:a.first_samples]
        res["first"] = {
            "n": len(first),
            "client_ms": summary([x["client_ms"] for x in first]),
            "server_us": summary([x["server_us"] for x in first if x["server_us"] is not None], 0),
            "load_us": summary([x["load_us"] for x in first if x["load_us"] is not None], 0),
            "bad": sum(not x["ok"] for x in first),
            "loads_field_not_1": sum(x["loads"] != 1 for x in first),
        }
        bands = []
        lo = 0
        for k in checkpoints:
            band = [x for x in loads if lo <= x["loaded_before"] < k]
            if band:
                bands.append({"loaded_before": f"{lo}-{k - 1}", "n": len(band),
                              "client_ms": summary([x["client_ms"] for x in band]),
                              "server_us": summary([x["server_us"] for x in band if x["server_us"] is not None], 0)})
            lo = k
        res["first_by_band"] = bands
        res["growth"] = growth
        log(f"N={n}: first request to an unloaded app (n={len(first)}): server p50 {res['first']['server_us'].get('p50')} µs "
            f"p99 {res['first']['server_us'].get('p99')} µs (the load alone p50 {res['first']['load_us'].get('p50')} µs); client p50 {res['first']['client_ms'].get('p50')} ms "
            f"p99 {res['first']['client_ms'].get('p99')} ms")
        kmax = len(loads)
        res["loaded_idle"] = {"k": kmax, **idle_measure(p, a.idle_secs)}
        log(f"N={n}: idle {a.idle_secs} s with {kmax} apps loaded: {res['loaded_idle']['idle']['cpu_ticks']} CPU ticks, "
            f"VmRSS {res['loaded_idle']['end']['rss_kib']} KiB")
        check_alive(p, "the idle with apps loaded")
        res["loads_sample"] = loads[:5]
    finally:
        p.stop()
        res["log_problems"] = p.log_problems()
        res["log_loads"] = load_breakdown(p.log_path)

    # --- unloaded when idle, then requested again -------------------------
    res["unload"] = unload_phase(nebula, tpl, work, d, n, order[:min(a.reload, len(order))], a)
    res["conditions_after"] = conditions()
    return res


def unload_phase(nebula: str, tpl: dict, work: str, d: str, n: int, hosts: list[str], a) -> dict:
    p = platform(nebula, d, work, f"platform-{n}-unload", ["--unload-after", str(a.unload_secs)])
    out: dict = {"unload_after_s": a.unload_secs, "n": len(hosts)}
    try:
        admin = Admin(p.admin_addr, tpl["token"])
        before = proc_sample(p.pid)
        t0 = time.monotonic()
        first = [load_one(p, admin, h) for h in hosts]
        took = time.monotonic() - t0
        loaded = proc_sample(p.pid)
        out["loading_s"] = round(took, 2)
        out["loaded_now"] = admin.loaded_count()
        out["rss_before_kib"], out["rss_loaded_kib"] = before["rss_kib"], loaded["rss_kib"]
        out["rss_anon_before_kib"], out["rss_anon_loaded_kib"] = before["rss_anon_kib"], loaded["rss_anon_kib"]
        out["first_in_this_process"] = {"client_ms": summary([x["client_ms"] for x in first]),
                                        "server_us": summary([x["server_us"] for x in first
                                                              if x["server_us"] is not None], 0),
                                        "load_us": summary([x["load_us"] for x in first
                                                            if x["load_us"] is not None], 0),
                                        "bad": sum(not x["ok"] for x in first)}
        # The platform unloads them after unload_secs idle; wait (bounded).
        deadline = time.monotonic() + a.unload_secs + 60
        left = out["loaded_now"]
        while left and time.monotonic() < deadline:
            time.sleep(1)
            left = admin.loaded_count()
        out["all_unloaded_after_s"] = round(time.monotonic() - t0 - took, 1) if not left else None
        out["still_loaded"] = left
        time.sleep(1)
        m = idle_measure(p, a.idle_secs)
        out["after_unload"] = m
        log(f"N={n}: {len(hosts)} apps loaded then unloaded by the platform ({a.unload_secs} s idle): "
            f"VmRSS {before['rss_kib']} -> {loaded['rss_kib']} loaded -> {m['end']['rss_kib']} KiB after the unload; "
            f"idle CPU after {m['idle']['cpu_ticks']} ticks; {left} still loaded")
        again = [load_one(p, admin, h) for h in hosts]
        out["again"] = {"client_ms": summary([x["client_ms"] for x in again]),
                        "server_us": summary([x["server_us"] for x in again if x["server_us"] is not None], 0),
                        "load_us": summary([x["load_us"] for x in again if x["load_us"] is not None], 0),
                        "bad": sum(not x["ok"] for x in again),
                        "loads_field_not_2": sum(x["loads"] != 2 for x in again)}
        log(f"N={n}: first request after an unload (n={len(again)}): server p50 {out['again']['server_us'].get('p50')} µs "
            f"p99 {out['again']['server_us'].get('p99')} µs (the load alone p50 {out['again']['load_us'].get('p50')} µs); client p50 {out['again']['client_ms'].get('p50')} ms")
        # A second unload of the same apps: does what stayed after the first
        # one grow again (a leak) or not (kept once per app, or the allocator's)?
        out["rss_loaded_again_kib"] = proc_sample(p.pid)["rss_kib"]
        deadline = time.monotonic() + a.unload_secs + 60
        left = admin.loaded_count()
        while left and time.monotonic() < deadline:
            time.sleep(1)
            left = admin.loaded_count()
        time.sleep(1)
        out["after_second_unload"] = strip_t(proc_sample(p.pid))
        out["still_loaded_second"] = left
        log(f"N={n}: after the second unload of the same {len(hosts)} apps: VmRSS "
            f"{out['after_second_unload']['rss_kib']} KiB, RssAnon {out['after_second_unload']['rss_anon_kib']} KiB "
            f"(after the first: {m['end']['rss_kib']} / {m['end']['rss_anon_kib']})")
        check_alive(p, "the unload phase")
    finally:
        p.stop()
        out["log_problems"] = p.log_problems()
        out["log_loads"] = load_breakdown(p.log_path)
    return out


def find_spin() -> tuple[str | None, str]:
    env = os.environ.get("SPIN_BIN")
    if env:
        return (env, f"SPIN_BIN={env}") if os.access(env, os.X_OK) else (None, f"SPIN_BIN={env} is not executable")
    w = shutil.which("spin")
    if w:
        return w, f"`which spin`: {w}"
    try:
        r = subprocess.run(["find", "/work", "-maxdepth", "6", "-name", "spin", "-type", "f", "-perm", "-u+x"],
                           capture_output=True, text=True, timeout=60)
        found = [l for l in r.stdout.splitlines() if l]
    except subprocess.TimeoutExpired:
        found = []
    if found:
        return found[0], f"found under /work: {found[0]}"
    return None, ("no Spin binary: SPIN_BIN is unset, `which spin` finds nothing, and no executable named "
                  "`spin` lies under /work (searched 6 levels deep)")


def wait_http(port: int, path: str, timeout: float, proc: subprocess.Popen) -> float:
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited ({proc.returncode}) before answering")
        try:
            status, _, _ = get_fresh(port, None, path, timeout=2)
            return (time.perf_counter() - t0) * 1000
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("no answer")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes(nebula: str, tpl: dict, work: str, a, kind: str, trim: float | None) -> dict:
    """One server process per app, up to max(a.procs); figures at each count."""
    counts = sorted(a.procs)
    cache = os.path.join(work, f"up-cache")
    base = os.path.join(work, f"up-{kind}-{'trim' if trim else 'plain'}")
    os.makedirs(base)
    manifest = os.path.join(tpl["template"], "v1", "app.toml")
    spin = a.spin_bin

    def start(i: int):
        if kind == "nebula":
            argv = [nebula, "up", "-f", manifest, "--no-build", "--listen", "127.0.0.1:0",
                    "--cache-dir", cache, "--db", os.path.join(base, f"app{i}.db")]
            if trim is not None:
                argv += ["--idle-trim", str(trim)]
            return Proc(argv, os.path.join(base, f"{i}.log"), timeout=60)
        # spin up: the wasi:http hello (the pure hello is not a Spin app).
        port = free_port()
        t0 = time.perf_counter()
        pr = subprocess.Popen([spin, "up", "-f", HTTP_HELLO_SPIN, "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(base, f"{i}.log"), "wb"),
                              stdin=subprocess.DEVNULL, cwd=base)
        wait_http(port, "/hello", 60, pr)

        class S:  # the parts of Proc the loop uses
            pass
        s = S()
        s.proc, s.pid, s.port, s.start_ms = pr, pr.pid, port, (time.perf_counter() - t0) * 1000
        s.stop = lambda: (pr.terminate(), pr.wait(10))
        return s

    path = PATH if kind == "nebula" else "/hello"
    procs, starts, firsts, points = [], [], [], []
    stopped = None
    out: dict = {"kind": kind, "idle_trim": trim}
    try:
        if kind == "nebula":
            # Fill the shared compile cache first: later starts map it.
            w = start(-1)
            w.stop()
        deadline = time.monotonic() + a.phase_budget
        for i in range(max(counts)):
            if time.monotonic() > deadline:
                stopped = f"time budget of {a.phase_budget} s reached at {i} processes"
                break
            avail = int(re.search(r"MemAvailable:\s+(\d+)", open("/proc/meminfo").read()).group(1))
            if avail < a.min_free_mib * 1024:
                stopped = f"MemAvailable below {a.min_free_mib} MiB at {i} processes"
                break
            s = start(i)
            procs.append(s)
            starts.append(s.start_ms)
            status, body, ms = get_fresh(s.port, None, path)
            if status != 200:
                raise RuntimeError(f"process {i} answered {status}")
            firsts.append(ms)
            k = i + 1
            if k in counts:
                if trim is not None:
                    time.sleep(trim + 2)  # every process has trimmed
                samples = [proc_sample(x.pid) for x in procs]
                pt = {"count": k, "conditions": conditions(),
                      "rss_total_kib": sum(x["rss_kib"] for x in samples),
                      "rss_anon_total_kib": sum(x["rss_anon_kib"] for x in samples),
                      "pss_total_kib": sum(x["pss_kib"] or 0 for x in samples),
                      "rss_file_per_proc_kib": summary([x["rss_file_kib"] for x in samples], 0),
                      "rss_per_proc_kib": summary([x["rss_kib"] for x in samples], 0),
                      "threads_total": sum(x["threads"] for x in samples),
                      "fds_total": sum(x["fds"] or 0 for x in samples)}
                a0 = [proc_sample(x.pid) for x in procs]
                time.sleep(a.idle_secs)
                a1 = [proc_sample(x.pid) for x in procs]
                pt["idle_cpu_ticks_total"] = sum(y["cpu_ticks"] - x["cpu_ticks"] for x, y in zip(a0, a1))
                pt["idle_ctx_switches_total"] = sum(idle_delta(x, y)["ctx_switches"] for x, y in zip(a0, a1))
                pt["idle_secs"] = a.idle_secs
                # After the idle window: requests would undo a trim.
                pt["steady_keepalive"] = steady(procs[0].port, None, a.steady_small, True, 60)
                points.append(pt)
                log(f"{kind} up x{k}{' --idle-trim ' + str(trim) if trim is not None else ''}: RSS total "
                    f"{pt['rss_total_kib'] / 1024:.1f} MiB, per process p50 {pt['rss_per_proc_kib']['p50']} KiB, "
                    f"{pt['threads_total']} threads, idle CPU {pt['idle_cpu_ticks_total']} ticks in {a.idle_secs} s")
    finally:
        for s in procs:
            try:
                s.stop()
            except Exception:  # noqa: BLE001
                pass
    out.update({"points": points, "start_ms": summary(starts, 1), "first_request_ms": summary(firsts),
                "stopped": stopped or f"bounded at {max(counts)} processes by --procs"})
    return out


# --------------------------------------------------------------------------
# Report


def fmt_int(x) -> str:
    return "—" if x is None else f"{x:,}"


def mib(kib) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f} MiB"


def pp(s: dict, unit: str, digits: int = 2) -> str:
    if not s or not s.get("n"):
        return "—"
    return f"{s['p50']:.{digits}f} / {s['p99']:.{digits}f} {unit} (n={s['n']})"


def markdown(res: dict) -> str:
    runs = res["runs"]
    if not runs:
        return markdown_procs(res)
    ns = [r["n"] for r in runs]
    head = "| figure | " + " | ".join(f"N = {n:,}" for n in ns) + " | target |"
    sep = "|---|" + "---|" * len(ns) + "---|"
    base = res["baseline"]
    L = ["### Idle, first request, steady state", "",
         f"Empty platform (no apps): start {base['start_ms']:.0f} ms, VmRSS {base['end']['rss_kib']:,} KiB "
         f"(RssAnon {base['end']['rss_anon_kib']:,}), {base['end']['threads']} threads, {base['end']['fds']} fds, "
         f"{base['idle']['cpu_ticks']} CPU ticks in {base['idle']['secs']} s idle.", "", head, sep]

    def row(name, f, target=""):
        L.append(f"| {name} | " + " | ".join(f(r) for r in runs) + f" | {target} |")

    row("platform start (spawn → serving)", lambda r: f"{r['start_ms']:.0f} ms")
    row("VmRSS, all idle (after idle s)", lambda r: f"{r['idle_end']['rss_kib']:,} KiB")
    # The headline is anonymous memory: what the apps hold and a node must
    # provide. VmRSS also counts the binary's file pages, mapped as code is
    # touched; they are shared with the page cache, and the empty platform's
    # ranged over 15.2-18.4 MiB between runs (RssAnon within 12 KiB), which is
    # ±1 KiB per app at N = 1,000.
    row("**idle memory per deployed app** (RssAnon_N − RssAnon_0)/N",
        lambda r: f"**{r['per_app_idle_anon_bytes']:,.0f} B**", "≤ 1,024 B")
    row("idle memory per deployed app, VmRSS (with the binary's file pages)",
        lambda r: f"{r['per_app_idle_bytes']:,.0f} B", "")
    if len(runs) >= 2:
        r0, r1 = runs[0], runs[-1]
        slope, slope_anon = res["slope"]["rss_bytes_per_app"], res["slope"]["rss_anon_bytes_per_app"]
        L.append(f"| idle memory per deployed app, slope N = {r0['n']:,} → {r1['n']:,} (VmRSS / RssAnon) | "
                 + " | ".join([f"{slope:,.0f} B / {slope_anon:,.0f} B"] + [""] * (len(runs) - 1)) + " | ≤ 1,024 B |")
    row("**idle CPU** (utime+stime)", lambda r: f"**{r['idle_idle']['cpu_ticks']} ticks** in {r['idle_idle']['secs']} s "
        f"({r['idle_idle']['ctx_switches']} ctx switches)", "0")
    row("threads / open fds, idle", lambda r: f"{r['idle_end']['threads']} / {r['idle_end']['fds']}")
    row("PSS, all idle", lambda r: f"{r['idle_end'].get('pss_kib') or 0:,} KiB")
    row("**first request to an unloaded app, server** (`last_cold_request_us`) p50 / p99",
        lambda r: pp({k: (v / 1000 if isinstance(v, (int, float)) and k != 'n' else v)
                      for k, v in r["first"]["server_us"].items()}, "ms", 3), "≤ 1 ms")
    row("first request to an unloaded app, client p50 / p99", lambda r: pp(r["first"]["client_ms"], "ms"))
    # The apps are copies, so their first load in the main phase also hashes the
    # component and records its digest, which `nebula deploy` does at deploy
    # time. The unload phase's platform is a new process on the same folder:
    # its first loads find the digests recorded, as they would after a deploy.
    row("first request to an app not loaded in this process, its digest recorded as a deploy does "
        "(unload phase's first pass), server p50 / p99",
        lambda r: pp({k: (v / 1000 if isinstance(v, (int, float)) and k != 'n' else v)
                      for k, v in r["unload"]["first_in_this_process"]["server_us"].items()}, "ms", 3), "≤ 1 ms")
    row("first request after an unload (same process), server p50 / p99",
        lambda r: pp({k: (v / 1000 if isinstance(v, (int, float)) and k != 'n' else v)
                      for k, v in r["unload"]["again"]["server_us"].items()}, "ms", 3), "≤ 1 ms")
    row("first request after an unload, client p50 / p99", lambda r: pp(r["unload"]["again"]["client_ms"], "ms"))
    def lb(r, key, part):
        loads = (r.get("log_loads") if key == "main" else r["unload"].get("log_loads") or {}).get(part[0], {})
        x = loads.get(part[1])
        if not (x and x.get("n")):
            return "—"
        # Where the components came from: the compile cache, or still mapped
        # from an earlier load (`--keep-mapped`).
        origins = f" (origin: {', '.join(loads.get('origins', []))})" if part[1] == "component_us" else ""
        return f"{x['p50'] / 1000:.3f} / {x['p99'] / 1000:.3f} ms{origins}"
    row("of a first request (log): the app's load, p50 / p99", lambda r: lb(r, "main", ("load_1", "took_us")))
    row("of a first request (log): its component mapped, p50 / p99", lambda r: lb(r, "main", ("load_1", "component_us")))
    row("of a first request after an unload (log): the app's load", lambda r: lb(r, "unload", ("load_2", "took_us")))
    row("of a first request after an unload (log): its component mapped", lambda r: lb(r, "unload", ("load_2", "component_us")))
    row("steady state, fresh connection, p50 / p99",
        lambda r: pp(r["growth"][0]["steady_fresh"], "ms"))
    row("steady state, keep-alive, p50 / p99", lambda r: pp(r["growth"][0]["steady_keepalive"], "ms"))
    row("VmRSS after unloading (unload phase)",
        lambda r: f"{r['unload']['rss_before_kib']:,} → {r['unload']['rss_loaded_kib']:,} ({r['unload']['n']} loaded) → "
                  f"{r['unload']['after_unload']['end']['rss_kib']:,} KiB (RssAnon {r['unload']['rss_anon_before_kib']:,} → "
                  f"{r['unload']['rss_anon_loaded_kib']:,} → {r['unload']['after_unload']['end']['rss_anon_kib']:,}); "
                  f"idle CPU after: {r['unload']['after_unload']['idle']['cpu_ticks']} ticks; after a second load + unload: "
                  f"{r['unload'].get('after_second_unload', {}).get('rss_kib', 0):,} KiB (RssAnon "
                  f"{r['unload'].get('after_second_unload', {}).get('rss_anon_kib', 0):,})")
    L += ["", "### Growth: apps loaded at once", "",
          "| N | K loaded | VmRSS | + per loaded app (vs all idle) | threads | fds | steady p50 keep-alive / fresh | "
          "first requests of the loads up to K: server p50 / p99 | client p50 / p99 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        bands = {b["loaded_before"].split("-")[1]: b for b in r["first_by_band"]}
        for g in r["growth"]:
            b = bands.get(str(g["k"] - 1))
            L.append(f"| {r['n']:,} | {g['k']:,} | {g['sample']['rss_kib']:,} KiB | {g['rss_per_loaded_kib']:,} KiB | "
                     f"{g['sample']['threads']} | {g['sample']['fds']} | "
                     f"{g['steady_keepalive'].get('p50')} / {g['steady_fresh'].get('p50')} ms | "
                     + (f"{b['server_us'].get('p50')} / {b['server_us'].get('p99')} µs (loads {b['loaded_before']}) | "
                        f"{b['client_ms'].get('p50')} / {b['client_ms'].get('p99')} ms |" if b else "— | — |"))
        li = r["loaded_idle"]
        L.append(f"| {r['n']:,} | {li['k']:,}, idle {li['idle']['secs']} s | {li['end']['rss_kib']:,} KiB (PSS {li['end'].get('pss_kib') or 0:,}) | | "
                 f"{li['end']['threads']} | {li['end']['fds']} | idle CPU {li['idle']['cpu_ticks']} ticks | | |")
    L.append(markdown_procs(res))
    dep = res["deploy"]
    L += ["", f"Real API deploys (`nebula deploy`, one after another): {dep['timed']['n']} in {dep['timed_total_s']} s = "
          f"**{dep['deploys_per_s']} deploys/s** (p50 {dep['timed'].get('p50')} ms, p99 {dep['timed'].get('p99')} ms); "
          f"the first deploy (compiling the component) {dep['first_deploy_ms']} ms."]
    return "\n".join(L) + "\n"


def markdown_procs(res: dict) -> str:
    L = ["", "### Side by side: one process per app", ""]
    for pr in res["processes"]:
        if "skipped" in pr:
            L.append(f"- `{pr['kind']} up` per app: skipped — {pr['skipped']}")
            continue
        L.append(f"`{pr['kind']} up` per app{' with --idle-trim ' + str(pr['idle_trim']) + ' s' if pr['idle_trim'] is not None else ''}: "
                 f"start (spawn → serving) p50 {pr['start_ms'].get('p50')} ms, first request p50 "
                 f"{pr['first_request_ms'].get('p50')} ms; {pr['stopped']}.")
        L += ["", "| processes | RSS summed | PSS summed | RSS per process p50 (max) | RssAnon summed | threads | fds | idle CPU (all) | steady p50 |",
              "|---|---|---|---|---|---|---|---|---|"]
        for pt in pr["points"]:
            L.append(f"| {pt['count']} | {mib(pt['rss_total_kib'])} | {mib(pt.get('pss_total_kib'))} | {pt['rss_per_proc_kib']['p50']:,} KiB "
                     f"({pt['rss_per_proc_kib']['max']:,}) | {mib(pt['rss_anon_total_kib'])} | {pt['threads_total']} | "
                     f"{pt['fds_total']} | {pt['idle_cpu_ticks_total']} ticks / {pt['idle_secs']} s | "
                     f"{(pt['steady_keepalive'] or {}).get('p50', '—')} ms |")
        L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------


def ints(s: str) -> list[int]:
    return [int(x.replace("_", "")) for x in s.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--apps", type=ints, help="numbers of deployed apps (default 1000,10000; --quick 50)")
    ap.add_argument("--quick", action="store_true", help="50 apps, few samples, short idles: a check of the script")
    ap.add_argument("--nebula", default=os.environ.get("NEBULA_BIN", os.path.join(REPO, "target/release/nebula")))
    ap.add_argument("--wasm", default=HELLO_WASM, help="the pure hello component (default: the built guest)")
    ap.add_argument("--out", help="JSON file (default benches/results/DATE-platform/results.json, "
                                  "or benches/results/platform-quick/results.json with --quick, which git ignores)")
    ap.add_argument("--first-samples", type=int, help="distinct apps requested for the first time (default 200)")
    ap.add_argument("--steady", type=int, help="requests to one loaded app, each way (default 2000)")
    ap.add_argument("--grow", type=ints, help="apps loaded at once (default 10,100,1000; 1 always)")
    ap.add_argument("--procs", type=ints, help="counts of one-process-per-app servers (default 10,100)")
    ap.add_argument("--idle-secs", type=float, help="idle windows (default 10)")
    ap.add_argument("--unload-secs", type=float, help="--unload-after of the unload phase (default 10)")
    ap.add_argument("--reload", type=int, help="apps loaded, unloaded and requested again (default 200)")
    ap.add_argument("--deploys", type=int, help="real API deploys timed (default 50)")
    ap.add_argument("--up-trim", type=float, default=1.0,
                    help="--idle-trim of the second one-process-per-app pass (negative: skip it)")
    ap.add_argument("--phase-budget", type=float, default=240, help="seconds any one load loop may take")
    ap.add_argument("--min-free-mib", type=int, default=4096,
                    help="stop starting processes when MemAvailable falls below this")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (apps, logs)")
    ap.add_argument("--procs-only", action="store_true",
                    help="only the one-process-per-app comparison (after the template deploy)")
    a = ap.parse_args()
    q = a.quick
    a.apps = a.apps or ([50] if q else [1000, 10000])
    a.first_samples = a.first_samples or (20 if q else 200)
    a.steady = a.steady or (200 if q else 2000)
    a.steady_small = 100 if q else 300
    a.grow = a.grow or ([10, 30] if q else [10, 100, 1000])
    a.procs = a.procs or ([3, 5] if q else [10, 100])
    a.idle_secs = a.idle_secs if a.idle_secs is not None else (2 if q else 10)
    a.unload_secs = a.unload_secs if a.unload_secs is not None else (2 if q else 10)
    a.reload = a.reload or (10 if q else 200)
    a.deploys = a.deploys if a.deploys is not None else (5 if q else 50)
    if not a.out:
        name = "platform-quick" if q else time.strftime("%Y-%m-%d-platform", time.gmtime())
        a.out = os.path.join(HERE, "results", name, "results.json")

    for f, what in [(a.nebula, "build it: cargo build --release"),
                    (a.wasm, "build the guests: ./target/release/nebula build")]:
        if not os.path.exists(f):
            print(f"{f} is missing: {what}", file=sys.stderr)
            return 2
    help_text = subprocess.run([a.nebula, "--help"], capture_output=True, text=True).stdout
    if "platform" not in help_text:
        print(f"{a.nebula} has no `platform` command", file=sys.stderr)
        return 2
    a.spin_bin, spin_why = find_spin()

    work = tempfile.mkdtemp(prefix="nebula-platform-bench-")
    st = os.stat(a.nebula)
    res: dict = {"command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                 "machine": machine(), "work": work,
                 "binary": {"path": a.nebula, "bytes": st.st_size,
                            "mtime_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.st_mtime))},
                 "settings": {k: v for k, v in vars(a).items() if k not in ("spin_bin",)},
                 "method": {
                     "apps": "one app deployed through the admin API with `nebula deploy`, its DIR/apps/HOST "
                             "folder then copied to N host names (app.json's host rewritten); deploying 10,000 "
                             "through the API would run `check` 10,000 times. One tenant: every app maps the "
                             "same compiled component from the tenant's compile cache.",
                     "server_us": "last_cold_request_us from GET /apps/NAME: the request that found the app "
                                  "unloaded, from the platform receiving it to its response (the load, the "
                                  "component mapped for it, the call) — not the connection, not the write",
                     "load_us": "last_load_us: the slot's load alone (manifest read, host built; components "
                                "and the database are opened by the requests that need them)",
                     "client_ms": "time.perf_counter around a fresh http.client connection: connect, send, "
                                  "whole response read; one Python client, requests one after another, on the "
                                  "same two cores as the server",
                 }}
    t_all = time.monotonic()
    log(f"work folder {work}; nebula {a.nebula}; apps {a.apps}")
    log("apps are made by copying one app deployed through the API: deploying 10,000 through the API "
        "would run `nebula check` 10,000 times; only the real deploys below are timed")
    try:
        res["deploy"] = make_template(a.nebula, work, a.deploys, a.wasm)
        res["baseline"] = baseline(a.nebula, res["deploy"], work, a.idle_secs)
        res["runs"] = [] if a.procs_only else [run_n(a.nebula, res["deploy"], work, n, a, res["baseline"])
                                               for n in a.apps]
        if len(res["runs"]) >= 2:
            # Idle memory per deployed app as the slope between the smallest
            # and the largest N: what one more app costs, fixed costs aside.
            r0, r1 = res["runs"][0], res["runs"][-1]
            dn = r1["n"] - r0["n"]
            res["slope"] = {
                "from": r0["n"], "to": r1["n"],
                "rss_bytes_per_app": round((r1["idle_end"]["rss_kib"] - r0["idle_end"]["rss_kib"]) * 1024 / dn, 1),
                "rss_anon_bytes_per_app": round((r1["idle_end"]["rss_anon_kib"] - r0["idle_end"]["rss_anon_kib"]) * 1024 / dn, 1)}
            log(f"idle memory per deployed app, slope N={r0['n']}->{r1['n']}: {res['slope']['rss_bytes_per_app']} B (VmRSS), "
                f"{res['slope']['rss_anon_bytes_per_app']} B (RssAnon)")
        res["processes"] = [processes(a.nebula, res["deploy"], work, a, "nebula", None)]
        if a.up_trim >= 0:
            res["processes"].append(processes(a.nebula, res["deploy"], work, a, "nebula", a.up_trim))
        if a.spin_bin and os.path.exists(HTTP_HELLO_WASM):
            log(f"spin: {spin_why}")
            res["processes"].append(processes(a.nebula, res["deploy"], work, a, "spin", None))
        else:
            why = spin_why if not a.spin_bin else f"{spin_why}, but {HTTP_HELLO_WASM} is not built"
            log(f"spin up per app: skipped — {why}")
            res["processes"].append({"kind": "spin", "skipped": why})
    except BaseException:
        a.keep = True
        log(f"failed: the work folder {work} is kept (logs, apps)")
        raise
    finally:
        res["total_s"] = round(time.monotonic() - t_all, 1)
        res["conditions_end"] = conditions()
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        dep = res.get("deploy", {})
        dep.pop("token", None)
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
        log(f"wrote {a.out} ({res['total_s']} s in all)")
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
