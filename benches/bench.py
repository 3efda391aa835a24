#!/usr/bin/env python3
"""Side-by-side load and energy benchmark: Nebula against Spin, wasmtime serve
and a native server (issue 5). Python 3.11, standard library only; plots use
matplotlib from a venv the harness makes (benches/.venv).

    python3 benches/bench.py --setup                # install oha, wrk, matplotlib
    python3 benches/bench.py                        # every host and workload found
    python3 benches/bench.py --quick --hosts nebula # CI: under a minute, Nebula alone

For each workload it alternates the hosts A B C A B C … (`--rounds`) and
reports every figure as a ratio to the first host of the same round, so the
drift of a shared machine cancels. Results: benches/results/NAME/ (results.json,
results.md, *.png). See benches/README.md."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import loadgen, metrics, procfs, report, tools  # noqa: E402
from harness.hosts import REPO, WORKLOADS, Ctx, all_hosts  # noqa: E402
from harness.server import Server, exit_on_sigterm, free_port, request  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="one round, c=1 and 8, one rate, 2 s steps, 5 s idle: under a minute per host and workload")
    p.add_argument("--hosts", default="nebula,nebula-pure,nebula-nocache,nebula-spin,spin,wasmtime,nginx,native",
                   help="comma-separated, in order; the first one present is each ratio's baseline")
    p.add_argument("--workloads", default="hello,list,vote")
    p.add_argument("--concurrency", default="1,4,16,64", help="closed-loop connection counts")
    p.add_argument("--rates", default="200,1000,4000", help="open-loop request rates (req/s)")
    p.add_argument("--open-loop-connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per load step")
    p.add_argument("--warm", type=float, default=2.0, help="seconds of warm-up load after start")
    p.add_argument("--rounds", type=int, default=2, help="A B A B …: runs of each host per workload")
    p.add_argument("--idle-secs", type=float, default=30.0)
    p.add_argument("--idle-rounds", type=int, default=1, help="rounds that also measure idle")
    p.add_argument("--generator", default="auto", choices=["auto", "oha", "wrk"],
                   help="auto: oha if installed, else wrk (--quick prefers wrk: it installs in seconds)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the server to CPU 0 and the load generator to CPU 1")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--setup", action="store_true", help="install oha, wrk and the plotting venv, then exit")
    p.add_argument("--out", default=None, help="results folder (default benches/results/DATE-TIME[-quick])")
    a = p.parse_args(argv)
    if a.quick:
        a.concurrency, a.rates, a.duration, a.warm = "1,8", "500", 2.0, 0.5
        a.rounds, a.idle_secs, a.idle_rounds = 1, 5.0, 1
        if a.generator == "auto":
            a.generator = "wrk"
    return a


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def machine() -> dict:
    def sh(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""
    lscpu = sh("lscpu")
    model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "")
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": model, "nproc": os.cpu_count(), "kernel": sh("uname", "-r"),
        "load_at_start": sh("uptime"), "commit": sh("git", "-C", REPO, "rev-parse", "--short", "HEAD"),
        "rapl": procfs.rapl_status(),
        "memory": next((l.split()[1] + " RAM" for l in sh("free", "-h").splitlines() if l.startswith("Mem:")), ""),
    }


def make_golden_db(hosts, work: str, say) -> str | None:
    """A database with the Academemes schema and seed, made by Nebula itself
    from app.toml, copied fresh for every run."""
    # Any of the nebula hosts: they run one binary.
    nebula = next((h for h in hosts if h.name.startswith("nebula") and h.binary), None)
    if nebula is None:
        return None
    db = os.path.join(work, "golden.db")
    addr = f"127.0.0.1:{free_port()}"
    cmd = [nebula.binary, "up", "-f", os.path.join(REPO, "app.toml"), "--no-build", "--db", db, "--listen", addr]
    srv = Server(cmd, work, os.path.join(work, "golden.log"), None)
    try:
        srv.wait_first_response(addr, "GET", "/", "")
    except RuntimeError as e:
        say(f"cannot make the database with `{' '.join(cmd)}`: {e}")
        return None
    finally:
        srv.stop()
    say(f"golden database: {db}")
    return db


def fresh_db(golden: str, run_dir: str) -> str:
    db = os.path.join(run_dir, "app.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(golden + suffix):
            shutil.copyfile(golden + suffix, db + suffix)
    return db


def run_one(args, gen, host, wl, rnd, golden, out, pin, say) -> dict:
    run_dir = os.path.join(out, "work", f"{wl.name}-{host.name}-{rnd}")
    os.makedirs(run_dir, exist_ok=True)
    db = fresh_db(golden, run_dir) if golden else os.path.join(run_dir, "app.db")
    rc = os.path.join(run_dir, "runtime-config.toml")
    with open(rc, "w") as f:
        f.write(f'[sqlite_database.default]\ntype = "spin"\npath = "{db}"\n')
    addr = f"127.0.0.1:{free_port()}"
    admin = f"127.0.0.1:{free_port()}" if host.admin else None
    ctx = Ctx(addr=addr, db=db, runtime_config=rc, work=run_dir, admin=admin)
    cmd = host.command(wl.name, ctx)
    res = {"host": host.name, "workload": wl.name, "round": rnd, "command": " ".join(cmd), "steps": []}
    srv = Server(cmd, run_dir, os.path.join(run_dir, "server.log"), 0 if pin else None)
    try:
        res["cold_start_ms"] = srv.wait_first_response(addr, wl.method, wl.path, wl.accept)
        started = procfs.snapshot(srv.pid)
        res["rss_after_start_kib"] = started.rss_kib
        res["threads_after_start"] = started.threads
        status, body = request(addr, wl.method, wl.path, wl.accept)
        res["status"], res["body_bytes"] = status, len(body)
        res["body_sha256"] = hashlib.sha256(body).hexdigest()
        gen_cpu = "1" if pin else None
        url = f"http://{addr}{wl.path}"
        if args.warm > 0:
            loadgen.run(gen, loadgen.Load(url, wl.method, wl.accept, args.warm, 4), gen_cpu)
        loads = [loadgen.Load(url, wl.method, wl.accept, args.duration, c) for c in ints(args.concurrency)]
        if gen.supports_rate():
            loads += [loadgen.Load(url, wl.method, wl.accept, args.duration, args.open_loop_connections, r)
                      for r in ints(args.rates)]
        peak = 0
        for load in loads:
            m0 = metrics.scrape(admin) if admin else None
            before = procfs.snapshot(srv.pid)
            with procfs.PeakRss(srv.pid) as sampler:
                result = loadgen.run(gen, load, gen_cpu)
            after = procfs.snapshot(srv.pid)
            m1 = metrics.scrape(admin) if admin else None
            peak = max(peak, sampler.peak_kib, after.rss_kib)
            d = after.minus(before)
            n = result["requests"]
            step = {"label": load.label, "concurrency": None if load.rate else load.concurrency,
                    "rate": load.rate, **result, **d, "peak_rss_kib": sampler.peak_kib,
                    "cpu_ms_per_1k": d["cpu_ms"] / n * 1000 if n else None,
                    "switches_per_1k": (d["voluntary_switches"]) / n * 1000 if n else None,
                    "j_per_request": d["energy_j"] / n if n and "energy_j" in d else None}
            if admin:
                step["accounting"] = metrics.compare(m0, m1, d["cpu_ms"])
            res["steps"].append(step)
            say(f"  {wl.name:5} {host.name:12} r{rnd} {load.label:13} {result['rps']:9.0f} req/s  "
                f"p99 {result['percentiles_ms'].get('99', float('nan')):7.2f} ms  "
                f"{step['cpu_ms_per_1k'] or 0:7.1f} CPU-ms/1k  errors {result['errors']}")
        res["peak_rss_kib"] = peak
        if rnd < args.idle_rounds and args.idle_secs > 0:
            time.sleep(min(2.0, args.idle_secs))  # let keep-alive connections close
            s0 = procfs.snapshot(srv.pid)
            with procfs.Wakeups(srv.pid) as wakeups:
                time.sleep(args.idle_secs)
            s1 = procfs.snapshot(srv.pid)
            d = s1.minus(s0)
            res["idle"] = {"seconds": d["seconds"], "cpu_ms": d["cpu_ms"],
                           "wakeups": wakeups.count, "threads_seen": wakeups.threads_seen,
                           "rss_kib": s1.rss_kib, "threads": s1.threads}
            say(f"  {wl.name:5} {host.name:12} idle {d['seconds']:.0f} s: {d['cpu_ms']:.0f} CPU-ms, "
                f"{res['idle']['wakeups']} wakeups, RSS {s1.rss_kib / 1024:.1f} MiB")
    except Exception as e:  # one host failing must not lose the others' figures
        res["error"] = f"{type(e).__name__}: {e}"
        say(f"  {wl.name} {host.name} r{rnd}: FAILED: {res['error'][:2000]}")
    finally:
        srv.stop()
    return res


def main(argv=None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)
    def say(msg):
        print(msg, file=sys.stderr, flush=True)

    if args.setup:
        oha = tools.find_oha() or tools.install_oha()
        wrk = shutil.which("wrk") or tools.install_wrk()
        py = tools.venv_python(allow_install=True)
        say(f"oha: {oha or 'MISSING'}\nwrk: {wrk or 'MISSING'}\nmatplotlib venv: {py or 'MISSING'}")
        return 0 if (oha or wrk) and py else 1

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(args.out or os.path.join(REPO, "benches", "results", stamp + ("-quick" if args.quick else "")))
    os.makedirs(os.path.join(out, "work"), exist_ok=True)
    gen = loadgen.pick(args.generator, out, allow_install=True)
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    info = machine()
    say(f"results → {out}\ngenerator: {gen.name} ({gen.version()}); server on CPU 0, load on CPU 1: {pin}")
    if not gen.supports_rate():
        say(f"note: {gen.name} has no open loop; the fixed-rate steps are skipped (use --generator oha)")

    wanted = [h.strip() for h in args.hosts.split(",") if h.strip()]
    by_name = {h.name: h for h in all_hosts()}
    unknown = [h for h in wanted if h not in by_name]
    if unknown:
        say(f"unknown host(s) {unknown}; known: {list(by_name)}")
        return 2
    hosts = [by_name[h] for h in wanted]
    skipped = []
    for h in hosts:
        if not h.binary:
            skipped.append({"host": h.name, "why": h.missing})
            say(f"skipping {h.name}: {h.missing}")
    golden = make_golden_db(hosts, os.path.join(out, "work"), say)

    runs = []
    for wname in [w.strip() for w in args.workloads.split(",") if w.strip()]:
        wl = WORKLOADS[wname]
        present = []
        for h in hosts:
            if not h.binary:
                continue
            if wname not in h.serves:
                skipped.append({"host": h.name, "workload": wname, "why": "does not serve this workload"})
                continue
            missing = [f for f in h.needs(wname) if not os.path.exists(os.path.join(REPO, f))]
            if missing:
                why = f"missing {', '.join(missing)}: build the guests (`./target/release/nebula build`, `nebula build -f` the spin.toml)"
                skipped.append({"host": h.name, "workload": wname, "why": why})
                say(f"skipping {h.name} for {wname}: {why}")
                continue
            if wname in ("list", "vote") and golden is None:
                skipped.append({"host": h.name, "workload": wname,
                                "why": "no database: Nebula makes it from app.toml, and could not (see the log above)"})
                continue
            present.append(h)
        say(f"workload {wname}: {wl.what}; hosts {[h.name for h in present]}")
        for rnd in range(args.rounds):
            for h in present:
                runs.append(run_one(args, gen, h, wl, rnd, golden, out, pin, say))

    info["load_at_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    data = {"machine": info, "argv": ["python3", "benches/bench.py", *(argv if argv is not None else sys.argv[1:])],
            "generator": {"name": gen.name, "version": gen.version()}, "pinned": pin,
            "settings": {k: getattr(args, k) for k in ("concurrency", "rates", "open_loop_connections",
                                                        "duration", "warm", "rounds", "idle_secs", "idle_rounds")},
            "workloads": {k: vars(v) for k, v in WORKLOADS.items()},
            "skipped": skipped, "runs": runs}
    report.write(data, out, plots=not args.no_plots, say=say)
    failed = [r for r in runs if "error" in r]
    if not runs:
        say("no host ran: nothing was measured")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
