#!/usr/bin/env python3
"""Beyond one machine, measured: the home page and a vote on SQLite and on
PostgreSQL with one node, then 1, 2 and 3 nodes behind HAProxy
(deploy/cluster), and what a PostgreSQL failover costs.

Each configuration is measured in turn, the same order every round (A B C …
A B C …), with wrk on the same machine (closed loop, c = 16). CPU is that of
the whole system under test: every `nebula`, `haproxy` and `postgres`
process, from /proc, per 1,000 requests. The load generator's own CPU is
not counted but shares the machine's two cores.

    python3 benches/cluster.py [--rounds 2] [--duration 8] [--out DIR]

Prints a Markdown table (and writes results.json to --out). Needs a built
`target/release/nebula` and the built guests (`nebula build`), PostgreSQL on
127.0.0.1:5432 (trust auth), and HAProxy, socat and wrk (apt-get).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from harness import loadgen  # noqa: E402
from harness.server import free_port  # noqa: E402

NEBULA = os.environ.get("NEBULA_BIN", os.path.join(REPO, "target/release/nebula"))
CLUSTER = os.path.join(REPO, "deploy/cluster")
CACHE = os.path.join(REPO, "target/nebula-bench-cache")
TICKS = os.sysconf("SC_CLK_TCK")
MEASURED = {"nebula", "haproxy", "postgres"}

WORKLOADS = {
    # name: (method, path, accept)
    "home": ("GET", "/", ""),
    # Every request is a new visitor (no cookie), so every vote counts.
    "vote": ("POST", "/memes/7/vote", "application/json"),
}


def cpu_ticks() -> dict[int, int]:
    """utime + stime of every process of the system under test."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if name.split(":")[0].split(" ")[0] not in MEASURED:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(pid)] = int(fields[11]) + int(fields[12])
    return out


def cpu_ms_between(before: dict[int, int], after: dict[int, int]) -> float:
    # Processes that started during the step count whole; one that ended
    # is lost (the pools keep their connections, so none should).
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks * 1000.0 / TICKS


def wait_ok(url: str, seconds: float = 30.0):
    end = time.time() + seconds
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {seconds} s")


def psql(sql: str, db: str = "postgres"):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", sql],
                   check=True, capture_output=True)


class Single:
    """One `nebula up`, on a SQLite file or on the local PostgreSQL."""

    def __init__(self, store: str, work: str):
        self.name = f"1 node, {store}"
        self.store, self.work = store, work

    def start(self):
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        if self.store == "sqlite":
            db = os.path.join(self.work, f"bench-{uuid.uuid4().hex[:8]}.db")
            self.dbname = None
        else:
            self.dbname = f"nebula_bench_{uuid.uuid4().hex[:12]}"
            psql(f"CREATE DATABASE {self.dbname}")
            db = f"postgres://postgres@127.0.0.1:5432/{self.dbname}"
        self.proc = subprocess.Popen(
            [NEBULA, "up", "-f", os.path.join(REPO, "app.toml"), "--no-build", "--no-rate-limits",
             "--db", db, "--listen", f"127.0.0.1:{port}", "--cache-dir", CACHE],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, "single.log"), "a"))
        wait_ok(self.base + "/")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.dbname:
            psql(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")


class Cluster:
    """deploy/cluster/up with N nodes behind HAProxy, PostgreSQL primary + standby."""

    def __init__(self, nodes: int, work: str, port_base: int):
        self.name = f"{nodes} node{'s' if nodes > 1 else ''} + HAProxy, PostgreSQL"
        self.nodes, self.port_base = nodes, port_base
        self.dir = os.path.join(work, f"cluster-{nodes}")

    def env(self):
        return {**os.environ, "CLUSTER_NODES": str(self.nodes), "CLUSTER_PORT_BASE": str(self.port_base),
                "CLUSTER_NODE_ARGS": "--no-rate-limits", "CLUSTER_NO_BUILD": "1",
                "CLUSTER_CACHE_DIR": CACHE, "NEBULA": NEBULA}

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        up = subprocess.run([os.path.join(CLUSTER, "up"), self.dir], env=self.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=180)
        if up.returncode != 0:
            raise RuntimeError(f"deploy/cluster/up failed:\n{up.stderr[-2000:]}")
        self.base = f"http://127.0.0.1:{self.port_base}"
        wait_ok(self.base + "/")

    def ctl(self, *args):
        return subprocess.run([os.path.join(CLUSTER, "ctl"), self.dir, *args], env=self.env(),
                              check=True, capture_output=True, text=True, timeout=60).stdout

    def stop(self):
        subprocess.run([os.path.join(CLUSTER, "down"), self.dir, "--purge"], env=self.env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def measure(gen, base: str, workload: str, duration: float, concurrency: int) -> dict:
    method, path, accept = WORKLOADS[workload]
    url = base + path
    loadgen.run(gen, loadgen.Load(url, method, accept, 1.0, 4), None)  # warm
    before = cpu_ticks()
    result = loadgen.run(gen, loadgen.Load(url, method, accept, duration, concurrency), None)
    cpu = cpu_ms_between(before, cpu_ticks())
    n = result["requests"]
    return {"rps": result["rps"], "p99_ms": result["percentiles_ms"].get("99"),
            "errors": result["errors"], "requests": n,
            "cpu_ms_per_1k": cpu / n * 1000 if n else None}


def failover(cluster: Cluster, seconds: float = 16.0) -> dict:
    """Votes with idempotency keys from 8 clients while the primary is
    stopped and the standby promoted; each failed vote retried with its key.
    Reports the gap (first failure to first success after it), 503s, other
    errors, and whether every acknowledged vote is in the new primary."""
    acked, codes, lock = [], {}, threading.Lock()
    first_fail, recovered = [None], [None]
    stop_at = time.time() + seconds

    def client():
        while time.time() < stop_at:
            key = str(uuid.uuid4())
            for _ in range(50):  # bounded retries of one vote
                req = urllib.request.Request(cluster.base + "/memes/9/vote", method="POST",
                                             headers={"accept": "application/json", "idempotency-key": key})
                t = time.time()
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        code = r.status
                except urllib.error.HTTPError as e:
                    code = e.code
                except (urllib.error.URLError, OSError):
                    code = 0
                with lock:
                    codes[code] = codes.get(code, 0) + 1
                    if code != 200 and first_fail[0] is None:
                        first_fail[0] = t
                    if code == 200 and first_fail[0] is not None and recovered[0] is None and t > first_fail[0]:
                        recovered[0] = time.time()
                if code == 200:
                    with lock:
                        acked.append(key)
                    break
                time.sleep(0.1)

    before = int(cluster.ctl("psql", "-qAtc", "SELECT votes FROM memes WHERE id = 9").strip())
    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(3)
    t_stop = time.time()
    cluster.ctl("stop-primary")
    cluster.ctl("promote-standby")
    for t in threads:
        t.join()
    after = int(cluster.ctl("psql", "-qAtc", "SELECT votes FROM memes WHERE id = 9").strip())
    return {"gap_s": (recovered[0] - first_fail[0]) if first_fail[0] and recovered[0] else None,
            "from_stop_to_recovered_s": (recovered[0] - t_stop) if recovered[0] else None,
            "statuses": codes, "acknowledged": len(acked), "counted": after - before}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = args.out or os.path.join(HERE, "results", time.strftime("%Y%m%d-%H%M%S") + "-cluster")
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="nebula-cluster-bench-")
    # PostgreSQL runs as its own user inside: the folder must be passable.
    os.chmod(work, 0o755)
    gen = loadgen.pick("wrk", work, allow_install=True)
    base_port = 17400
    configs = [Single("sqlite", work), Single("postgres", work)] + [
        Cluster(n, work, base_port + 50 * n) for n in (1, 2, 3)]
    rows = []
    try:
        for rnd in range(args.rounds):
            for cfg in configs:
                cfg.start()
                try:
                    for wl in WORKLOADS:
                        r = measure(gen, cfg.base, wl, args.duration, args.concurrency)
                        r.update(config=cfg.name, workload=wl, round=rnd)
                        rows.append(r)
                        print(f"r{rnd} {cfg.name:34} {wl:5} {r['rps']:8.0f} req/s  p99 {r['p99_ms']:7.2f} ms  "
                              f"{r['cpu_ms_per_1k']:7.1f} CPU-ms/1k  errors {r['errors']}", flush=True)
                    if rnd == args.rounds - 1 and isinstance(cfg, Cluster) and cfg.nodes == 3:
                        f = failover(cfg)
                        rows.append({"config": cfg.name, "workload": "failover", **f})
                        print("failover:", json.dumps(f), flush=True)
                finally:
                    cfg.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with open(os.path.join(out, "results.json"), "w") as fh:
            json.dump(rows, fh, indent=1)
    print("\n| configuration | workload | req/s (rounds) | p99 ms | CPU-ms per 1,000 requests (all processes) |")
    print("|---|---|---|---|---|")
    for cfg in configs:
        for wl in WORKLOADS:
            rs = [r for r in rows if r.get("config") == cfg.name and r.get("workload") == wl]
            rps = " / ".join(f"{r['rps']:.0f}" for r in rs)
            p99 = " / ".join(f"{r['p99_ms']:.1f}" for r in rs)
            cpu = " / ".join(f"{r['cpu_ms_per_1k']:.0f}" for r in rs)
            print(f"| {cfg.name} | {wl} | {rps} | {p99} | {cpu} |")
    print(f"\nresults: {out}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
