"""Replaying a synthetic day of FaaS traffic (harness/faas_trace.py) against
one configuration of servers, one server (or socket) per app, and what it
cost: CPU of every process tree (exited servers included), PSS over time,
cold starts, latency from each request's scheduled time (open loop: a late
answer never delays the next request), failures.

Configurations (issue 19, item 3):
  nebula-activated     per app: nebula-launch holds the socket (systemd's
                       part) and starts `nebula up --idle-exit K` on a
                       connection; it exits after K s without requests
  nebula-always-on     per app: `nebula up`, started and warmed before the window
  spin-always-on       per app: `spin up` (only with a Spin binary)
  native-always-on     per app: benches/native, the ceiling
  container-keep-warm  one front (harness/container_front.py) for all apps:
                       a container per app, started by its first request,
                       stopped after K s without one (Knative/Lambda style)

One server per app everywhere, so each configuration pays per app what a
FaaS platform pays per function; `nebula platform` (many apps in one
process) is measured by benches/platform.py instead."""

from __future__ import annotations

import concurrent.futures
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field

from . import energy_proc
from .faas_trace import App
from .hosts import REPO, WORKLOADS, Ctx
from .server import Server, free_port, request

HELLO_SPIN = os.path.join(REPO, "guests/http-hello/spin.toml")
FRONT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "container_front.py")


@dataclass
class Deployment:
    name: str
    servers: list = field(default_factory=list)
    addrs: dict = field(default_factory=dict)  # app index → address
    start_marker: str | None = None  # a log line counted as one cold start
    note: str = ""

    @property
    def roots(self) -> list[int]:
        return [s.pid for s in self.servers]

    def cold_starts(self) -> int:
        if self.start_marker is None:
            return 0
        return sum(s.log_tail(10**9).count(self.start_marker) for s in self.servers)

    def stop(self):
        for s in self.servers:
            s.stop()


def _wait_log(srv: Server, pattern: str, timeout: float = 30.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, srv.log_tail(10**6))
        if m:
            return m
        if srv.proc.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError(f"no /{pattern}/ in {srv.log_path}:\n{srv.log_tail()}")


def nebula_up_args(nebula: str, app: App, db: str) -> list[str]:
    if app.workload == "hello":
        return [nebula, "up", "--no-build", "-f", HELLO_SPIN, "--no-rate-limits"]
    return [nebula, "up", "--no-build", "-f", os.path.join(REPO, "app.toml"), "--db", db, "--no-rate-limits"]


def deploy_activated(nebula: str, launch: str, apps: list[App], dbs: dict, work: str, keep: float) -> Deployment:
    d = Deployment("nebula-activated", start_marker="nebula-launch: started pid",
                   note=f"per app: nebula-launch + `nebula up --idle-exit {keep:g}`; nothing runs until a request")
    for a in apps:
        cmd = [launch, "--listen", "127.0.0.1:0", "--", *nebula_up_args(nebula, a, dbs[a.index]),
               "--idle-exit", f"{keep:g}"]
        srv = Server(cmd, work, os.path.join(work, f"activated-{a.index}.log"), None)
        d.servers.append(srv)
        d.addrs[a.index] = _wait_log(srv, r"listening on http://([0-9.]+:\d+)/").group(1)
    return d


def deploy_always_on(name: str, host, apps: list[App], dbs: dict, work: str) -> Deployment:
    """One server per app from harness/hosts.py's command for the app's
    workload, warmed with one request before the window."""
    d = Deployment(name, note=f"per app: {host.name}, started and warmed before the window")
    for a in apps:
        addr = f"127.0.0.1:{free_port()}"
        rc = os.path.join(work, f"rc-{a.index}.toml")
        with open(rc, "w") as f:
            f.write(f'[sqlite_database.default]\ntype = "spin"\npath = "{dbs[a.index]}"\n')
        ctx = Ctx(addr=addr, db=dbs[a.index], runtime_config=rc, work=work)
        srv = Server(host.command(a.workload, ctx), work, os.path.join(work, f"{name}-{a.index}.log"), None)
        d.servers.append(srv)
        wl = WORKLOADS[a.workload]
        srv.wait_first_response(addr, "GET", "/", "")  # any answer: listening
        request(addr, wl.method, wl.path, wl.accept, timeout=30)
        d.addrs[a.index] = addr
    return d


def deploy_containers(rt, apps: list[App], dbs: dict, work: str, keep: float) -> Deployment:
    d = Deployment("container-keep-warm", start_marker="front: start app=",
                   note=f"one front for all apps; a container per app ({rt.describe()}), "
                        f"stopped after {keep:g} s without a request")
    cmd = [sys.executable, FRONT, "--runtime", rt.name, "--runtime-path", rt.path, "--rootfs", rt.rootfs,
           "--mode", "keep-warm", "--keep-warm", f"{keep:g}"]
    for a in apps:
        d.addrs[a.index] = f"127.0.0.1:{free_port()}"
        cmd += ["--app", f"a{a.index}={d.addrs[a.index]}={os.path.dirname(dbs[a.index])}"]
    srv = Server(cmd, work, os.path.join(work, "front.log"), None)
    d.servers.append(srv)
    for a in apps:
        _wait_log(srv, rf"app a{a.index} listening")
    return d


def replay(events, apps: list[App], addrs: dict, seconds: float, workers: int = 64) -> list[dict]:
    """Sends each event's request at its time on a fresh connection; returns
    one record per request. Bounded: nothing is sent after `seconds`, and
    each request times out after 30 s."""
    out = []

    def one(due: float, app: App):
        wl = WORKLOADS[app.workload]
        rec = {"t": round(due - start, 3), "app": app.index}
        try:
            status, _ = request(addrs[app.index], wl.method, wl.path, wl.accept, timeout=30)
            rec["status"] = status
        except Exception as e:  # noqa: BLE001 — a failure is a figure
            rec["error"] = f"{type(e).__name__}: {e}"[:200]
        rec["ms"] = round((time.monotonic() - due) * 1000, 3)
        out.append(rec)

    start = time.monotonic() + 0.2
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        for t, i in events:
            if t >= seconds:
                break
            due = start + t
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ex.submit(one, due, apps[i])
        # Let the window last `seconds`, even if the trace ends earlier.
        rest = start + seconds - time.monotonic()
        if rest > 0:
            time.sleep(rest)
    return out


def measure(dep: Deployment, events, apps, seconds: float, tail: float, idle_secs: float, model, say) -> dict:
    """The window (replay), then `tail` s of quiet (keep-warm windows
    expire), then `idle_secs` of idle: CPU, memory, cold starts, latency."""
    roots = dep.roots
    c0, cpu0, t0 = dep.cold_starts(), energy_proc.tree_cpu_s(roots), time.monotonic()
    with energy_proc.MemSampler(roots, 1.0) as mem:
        recs = replay(events, apps, dep.addrs, seconds)
    wall = time.monotonic() - t0
    cpu = energy_proc.tree_cpu_s(roots) - cpu0
    colds = dep.cold_starts() - c0
    time.sleep(tail)
    i0 = energy_proc.tree_cpu_s(roots)
    time.sleep(idle_secs)
    idle_cpu = energy_proc.tree_cpu_s(roots) - i0
    idle_rss, idle_pss = energy_proc.tree_mem_kib(roots)
    ok = sorted(r["ms"] for r in recs if r.get("status", 999) < 400)
    failed = [r for r in recs if "error" in r or r.get("status", 0) >= 400]
    e = model.joules(cpu, wall, mem.pss_kib_s)
    n_apps = len(apps)
    day = 86400.0 / wall
    res = {
        "config": dep.name, "note": dep.note, "window_s": round(wall, 2), "requests": len(recs),
        "failed": len(failed), "failures": [f.get("error") or f"status {f['status']}" for f in failed[:5]],
        "cold_starts": colds, "cpu_s": round(cpu, 3), "energy_j": {k: round(v, 3) for k, v in e.items()},
        "energy_j_per_app_day": round(e["total_j"] / n_apps * day, 1),
        "active_j_per_app_day": round(e["active_j"] / n_apps * day, 1),
        "idle_share_j_per_app_day": round(e["idle_share_j"] / n_apps * day, 1),
        "cpu_s_per_app_day": round(cpu / n_apps * day, 2),
        "p50_ms": _pct(ok, 50), "p99_ms": _pct(ok, 99), "max_ms": ok[-1] if ok else None,
        "peak_rss_mib": round(mem.peak_rss_kib / 1024, 1), "peak_pss_mib": round(mem.peak_pss_kib / 1024, 1),
        "mean_pss_mib": round(mem.pss_kib_s / wall / 1024, 1),
        "idle_rss_mib": round(idle_rss / 1024, 1), "idle_pss_mib": round(idle_pss / 1024, 1),
        "idle_cpu_ms": round(idle_cpu * 1000, 1), "idle_secs": idle_secs, "tail_s": tail,
        "latencies_ms": [round(x, 2) for x in ok],
    }
    say(f"  {dep.name:20} {len(recs)} req, {colds} cold starts, {cpu:.2f} CPU-s, "
        f"{e['total_j']:.2f} J (estimate), p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, "
        f"failed {len(failed)}, peak PSS {res['peak_pss_mib']} MiB, idle PSS {res['idle_pss_mib']} MiB")
    return res


def _pct(xs: list[float], p: float):
    if not xs:
        return None
    # Nearest rank, as benches/platform.py.
    return round(xs[max(0, math.ceil(p / 100 * len(xs)) - 1)], 2)
