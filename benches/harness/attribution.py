"""Issue 19, item 4: does Nebula's per-route CPU split a mixed load right?

The per-route total agrees with /proc by construction (every thread's CPU
clock is handed to some bucket), so agreement proves little. This checks the
split: one app (benches/energy-attribution.toml) with a trivial route
(`hello`) and a compute-heavy one (`hog?mode=busy&n=N`), each driven alone
and then both at once; each route's accounted CPU per request
(nebula_request_cpu_seconds_total / nebula_requests_total, by route, from
the admin listener's /metrics) in the mixed run should be within 10% of the
same route alone. Rounds alternate the order (alone, alone, mixed; then
mixed, alone, alone) so drift does not favour one."""

from __future__ import annotations

import os
import re
import threading

from . import loadgen, procfs
from .hosts import REPO
from .server import Server, free_port, request

MANIFEST = os.path.join(REPO, "benches/energy-attribution.toml")
WASMS = ["guests/target/wasm32-wasip2/release/hello.wasm", "guests/target/wasm32-wasip2/release/hog.wasm"]
_SERIES = re.compile(r'^(nebula_request_cpu_seconds_total|nebula_requests_total)\{([^}]*)\}\s+(\S+)', re.M)
_ROUTE = re.compile(r'route="([^"]*)"')


def per_route(admin: str) -> dict:
    """route → {"cpu_s": …, "requests": …} from /metrics."""
    status, body = request(admin, "GET", "/metrics", timeout=10)
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return parse_routes(body.decode(errors="replace"))


def parse_routes(text: str) -> dict:
    out: dict = {}
    for name, labels, value in _SERIES.findall(text):
        m = _ROUTE.search(labels)
        if not m:
            continue
        row = out.setdefault(m.group(1), {"cpu_s": 0.0, "requests": 0.0})
        row["cpu_s" if name.startswith("nebula_request_cpu") else "requests"] += float(value)
    return out


def _delta(before: dict, after: dict) -> dict:
    return {r: {k: after[r][k] - before.get(r, {}).get(k, 0.0) for k in after[r]} for r in after}


def _phase(scrape, srv, gen, loads, pin) -> dict:
    m0, s0 = scrape(), procfs.snapshot(srv.pid)
    results = [None] * len(loads)

    def go(i, load):
        results[i] = loadgen.run(gen, load, "1" if pin else None)
    threads = [threading.Thread(target=go, args=(i, l)) for i, l in enumerate(loads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m1, s1 = scrape(), procfs.snapshot(srv.pid)
    d = _delta(m0, m1)
    return {"routes": {r: {**v, "cpu_us_per_request": v["cpu_s"] / v["requests"] * 1e6 if v["requests"] else None}
                       for r, v in d.items() if v["requests"]},
            "proc_cpu_ms": s1.minus(s0)["cpu_ms"], "errors": sum(r["errors"] for r in results if r)}


def _alternate(first, second, scrape, srv, gen, rounds: int, pin: bool, say) -> list:
    """Each of two (name, load) pairs alone, then both at once, in every
    round; every other round in the reverse order, so neither side always
    runs on a warmer or cooler machine. Both are warmed first."""
    for _, load in (first, second):
        loadgen.run(gen, loadgen.Load(load.url, "GET", "", 1, 1), "1" if pin else None)
    phases = []
    order = [(f"{first[0]} alone", [first[1]]), (f"{second[0]} alone", [second[1]]), ("mixed", [first[1], second[1]])]
    for rnd in range(rounds):
        for label, loads in (order if rnd % 2 == 0 else order[::-1]):
            p = _phase(scrape, srv, gen, loads, pin)
            p.update(label=label, round=rnd)
            phases.append(p)
            say(f"r{rnd} {label:11} " + ", ".join(
                f"{r} {v['cpu_us_per_request']:.0f} µs/req ({v['requests']:.0f})" for r, v in p["routes"].items()))
    return phases


def run(nebula: str, gen, work: str, seconds: float, rounds: int, hog_n: int, pin: bool, say) -> dict:
    missing = [w for w in WASMS if not os.path.exists(os.path.join(REPO, w))]
    if missing:
        return {"skipped": f"missing {', '.join(missing)}: `cd guests && cargo build --release --target wasm32-wasip2 -p hello -p hog`"}
    addr, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    cmd = [nebula, "up", "--no-build", "-f", MANIFEST, "--db", os.path.join(work, "attribution.db"),
           "--listen", addr, "--admin", admin, "--no-rate-limits"]
    srv = Server(cmd, work, os.path.join(work, "attribution.log"), 0 if pin else None)
    hello_url, hog_url = f"http://{addr}/hello/x", f"http://{addr}/hog?mode=busy&n={hog_n}"
    hello = loadgen.Load(hello_url, "GET", "", seconds, 1)
    hog = loadgen.Load(hog_url, "GET", "", seconds, 1)
    try:
        srv.wait_first_response(addr, "GET", "/hello/x", "")
        phases = _alternate(("hello", hello), ("hog", hog), lambda: per_route(admin), srv, gen, rounds, pin,
                            lambda msg: say("  attribution " + msg))
    finally:
        srv.stop()
    return {"command": " ".join(cmd), "hog_n": hog_n, "seconds": seconds, "rounds": rounds,
            "phases": phases, "verdict": _verdict(phases)}


def _verdict(phases: list, alone: dict | None = None) -> dict:
    """Per route: CPU per request alone and mixed (requests-weighted over
    rounds), their ratio, and whether it is within 10%."""
    out = {}
    # The route label is the manifest's path pattern; found by name, not spelled here.
    keys = {k for p in phases for k in p["routes"]}
    alone = alone or {"hello": "hello alone", "hog": "hog alone"}
    pairs = [(k, label) for name, label in alone.items() for k in sorted(keys) if name in k]
    for route, alone_label in pairs:
        def pooled(label):
            rows = [p["routes"].get(route) for p in phases if p["label"] == label]
            rows = [r for r in rows if r and r["requests"]]
            cpu, n = sum(r["cpu_s"] for r in rows), sum(r["requests"] for r in rows)
            return (cpu / n * 1e6 if n else None), n
        alone, n_alone = pooled(alone_label)
        mixed, n_mixed = pooled("mixed")
        ratio = mixed / alone if alone and mixed else None
        out[route] = {"alone_us": alone, "mixed_us": mixed, "requests_alone": n_alone,
                      "requests_mixed": n_mixed, "mixed_over_alone": ratio,
                      "within_10pct": None if ratio is None else abs(ratio - 1) <= 0.10}
    return out


# --------------------------------------------------------------------------
# The same per app on `nebula platform`: the attribution manifest deployed
# twice through the admin API, as light.test (driven on /hello/x) and
# heavy.test (driven on /hog?mode=busy); each app's CPU per request from
# GET /apps/NAME/metrics, the figures a tenant would be billed by.

APPS = ("light.test", "heavy.test")


def _admin_get(admin: str, token: str, path: str) -> str:
    import http.client
    host, port = admin.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        r = c.getresponse()
        body = r.read().decode(errors="replace")
    finally:
        c.close()
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status} {body[:300]}")
    return body


def per_app(admin: str, token: str) -> dict:
    """app → {"cpu_s", "requests"}, summed over the app's routes."""
    out = {}
    for app in APPS:
        routes = parse_routes(_admin_get(admin, token, f"/apps/{app}/metrics"))
        out[app] = {"cpu_s": sum(r["cpu_s"] for r in routes.values()),
                    "requests": sum(r["requests"] for r in routes.values())}
    return out


def run_platform(nebula: str, gen, work: str, seconds: float, rounds: int, hog_n: int, pin: bool, say) -> dict:
    import subprocess
    missing = [w for w in WASMS if not os.path.exists(os.path.join(REPO, w))]
    if missing:
        return {"skipped": f"missing {', '.join(missing)}"}
    d = os.path.join(work, "platform")
    r = subprocess.run([nebula, "platform", "tenant", "add", "bench", "--dir", d],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return {"skipped": f"`nebula platform tenant add` failed: {r.stderr[-300:]}"}
    token = r.stdout.strip().splitlines()[-1].strip()
    addr, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    cmd = [nebula, "platform", "--dir", d, "--listen", addr, "--admin", admin, "--unload-after", "3600"]
    srv = Server(cmd, work, os.path.join(work, "platform.log"), 0 if pin else None)
    try:
        srv.wait_first_response(admin, "GET", "/apps", "")
        for app in APPS:
            r = subprocess.run([nebula, "deploy", "-f", MANIFEST, "--to", f"http://{admin}", "--token", token,
                                "--host", app, "--no-build"], capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                return {"skipped": f"`nebula deploy --host {app}` failed: {(r.stdout + r.stderr)[-500:]}"}
        # Locally a first path segment naming the app routes to it (no Host header needed).
        light = loadgen.Load(f"http://{addr}/{APPS[0]}/hello/x", "GET", "", seconds, 1)
        heavy = loadgen.Load(f"http://{addr}/{APPS[1]}/hog?mode=busy&n={hog_n}", "GET", "", seconds, 1)
        phases = _alternate(("light", light), ("heavy", heavy), lambda: per_app(admin, token), srv, gen, rounds,
                            pin, lambda msg: say("  platform " + msg))
    finally:
        srv.stop()
    return {"command": " ".join(cmd), "hog_n": hog_n, "seconds": seconds, "rounds": rounds,
            "phases": phases, "verdict": _verdict(phases, {"light": "light alone", "heavy": "heavy alone"})}


# --------------------------------------------------------------------------
# Controls: what "alone" means for a cheap request. Its CPU depends on what
# the core did just before it (idle, another process, or a heavy request on
# the same thread) through caches, the TLB and wake-ups, so a cheap route
# driven back to back (hot) and the same route between heavy requests are
# not the same workload. The control that isolates the accounting: the
# cheap route paced at a fixed rate, beside the same heavy load run by a
# second server on the same core, where none of that load can be charged
# to it, against beside the heavy load in its own process.

_PACED = r"""
import http.client, sys, time
host, port, path, gap, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
c = http.client.HTTPConnection(host, port, timeout=30)
n, t0 = 0, time.monotonic()
due = t0
while time.monotonic() < t0 + secs:
    c.request("GET", path)
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"{path} answered {r.status}")
    n += 1
    due += gap
    time.sleep(max(0.0, due - time.monotonic()))
print(n)
"""


def _paced(addr: str, path: str, gap_ms: float, seconds: float, pin: bool) -> int:
    import subprocess
    import sys
    host, port = addr.rsplit(":", 1)
    cmd = [sys.executable, "-c", _PACED, host, port, path, str(gap_ms / 1000), str(seconds)]
    if pin:
        cmd = ["taskset", "-c", "1"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise RuntimeError(f"paced client failed: {r.stderr[-500:]}")
    return int(r.stdout.strip())


def run_controls(nebula: str, gen, work: str, seconds: float, rounds: int, hog_n: int, gap_ms: float,
                 pin: bool, say) -> dict:
    missing = [w for w in WASMS if not os.path.exists(os.path.join(REPO, w))]
    if missing:
        return {"skipped": f"missing {', '.join(missing)}"}
    addr, admin, other = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    base = [nebula, "up", "--no-build", "-f", MANIFEST, "--no-rate-limits"]
    cpu = 0 if pin else None
    srv = Server(base + ["--db", os.path.join(work, "controls.db"), "--listen", addr, "--admin", admin],
                 work, os.path.join(work, "controls.log"), cpu)
    srv2 = Server(base + ["--db", os.path.join(work, "controls-other.db"), "--listen", other],
                  work, os.path.join(work, "controls-other.log"), cpu)
    hog = f"/hog?mode=busy&n={hog_n}"
    beside = {"alone": None,
              "beside hog, same process": loadgen.Load(f"http://{addr}{hog}", "GET", "", seconds, 1),
              "beside hog, other process": loadgen.Load(f"http://{other}{hog}", "GET", "", seconds, 1)}
    phases = []
    try:
        srv.wait_first_response(addr, "GET", "/hello/x", "")
        srv2.wait_first_response(other, "GET", "/hello/x", "")
        for load in beside.values():
            if load:
                loadgen.run(gen, loadgen.Load(load.url, "GET", "", 1, 1), "1" if pin else None)
        labels = list(beside)
        for rnd in range(rounds):
            for label in (labels if rnd % 2 == 0 else labels[::-1]):
                m0 = per_route(admin)
                side = beside[label]
                th = threading.Thread(target=loadgen.run, args=(gen, side, "1" if pin else None)) if side else None
                if th:
                    th.start()
                _paced(addr, "/hello/x", gap_ms, seconds, pin)
                if th:
                    th.join()
                d = _delta(m0, per_route(admin))
                hello = {r: v for r, v in d.items() if "hello" in r and v["requests"]}
                route, v = next(iter(hello.items()))
                phases.append({"label": label, "round": rnd, "route": route, **v})
                say(f"  attribution control r{rnd} {label:26} hello {v['cpu_s'] / v['requests'] * 1e6:.1f} µs/req "
                    f"({v['requests']:.0f})")
    finally:
        srv.stop()
        srv2.stop()

    def pooled(label):
        rows = [p for p in phases if p["label"] == label]
        n = sum(p["requests"] for p in rows)
        return sum(p["cpu_s"] for p in rows) / n * 1e6 if n else None
    us = {label: pooled(label) for label in beside}
    same, other_ = us["beside hog, same process"], us["beside hog, other process"]
    return {"gap_ms": gap_ms, "hog_n": hog_n, "seconds": seconds, "rounds": rounds, "phases": phases,
            "us_per_request": us, "same_over_other": same / other_ if same and other_ else None}
