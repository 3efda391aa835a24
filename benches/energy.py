#!/usr/bin/env python3
"""Energy: joules per request and per day of FaaS traffic, Nebula against a
container FaaS baseline, Spin, wasmtime serve and native (issue 19).

    python3 benches/energy.py            # everything found: ~30 min
    python3 benches/energy.py --quick    # CI: Nebula alone, well under a minute

Sections (--sections):
  per-request  bench.py's harness (same hosts, workloads, cold start, steps,
               /proc sampling) plus two container hosts: the native server
               in a warm container, and in a fresh container per request;
               CPU-ms and estimated joules per request.
  day          a synthetic day of FaaS traffic (harness/faas_trace.py, after
               Shahrad et al., ATC'20) replayed for --day-seconds against
               one server per app: Nebula socket-activated with idle exit,
               Nebula / Spin / native always on, containers with a
               keep-warm window (harness/replay.py).
  attribution  per-route CPU of a mixed load against each route alone
               (harness/attribution.py).

Energy is an ESTIMATE from CPU time and memory (harness/energy_model.py;
no RAPL on these VMs); its parameters are printed with every figure and
can be overridden (--watts-per-core, --idle-watts, --idle-share). Output:
benches/results/DATE-energy[-quick]/ (results.json, results.md, *.png)."""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench  # noqa: E402  (its run_one, machine, make_golden_db, fresh_db)
from harness import (attribution, containers, energy_model, energy_report, faas_trace,  # noqa: E402
                     loadgen, procfs, replay)
from harness.hosts import REPO, WORKLOADS, Host, all_hosts  # noqa: E402
from harness.server import Server, exit_on_sigterm, free_port  # noqa: E402

LAUNCH = os.path.join(REPO, "target/release/nebula-launch")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="Nebula alone, short steps and window: CI")
    p.add_argument("--sections", default="per-request,day,attribution")
    p.add_argument("--hosts", default="nebula,nebula-nocache,native,container-warm,container-per-request,wasmtime,spin")
    p.add_argument("--workloads", default="hello,list,vote")
    p.add_argument("--concurrency", default="1,8")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per load step")
    p.add_argument("--warm", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=2, help="per-request: A B C A B C …")
    p.add_argument("--idle-secs", type=float, default=10.0, help="per-request: idle measured in round 0")
    p.add_argument("--configs", default="nebula-activated,nebula-always-on,spin-always-on,native-always-on,container-keep-warm")
    p.add_argument("--apps", type=int, default=40, help="day: apps in the synthetic trace")
    p.add_argument("--day-seconds", type=float, default=120.0, help="day: wall-clock replay window")
    p.add_argument("--keep-warm", type=float, default=30.0,
                   help="day: idle seconds before Nebula exits / a container is stopped")
    p.add_argument("--max-app-rate", type=float, default=5.0, help="day: per-app requests/s cap")
    p.add_argument("--day-idle-secs", type=float, default=10.0)
    p.add_argument("--day-rounds", type=int, default=2, help="day: A B C D, D C B A …")
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--attr-seconds", type=float, default=5.0)
    p.add_argument("--attr-rounds", type=int, default=2)
    p.add_argument("--hog-n", type=int, default=4, help="attribution: hog ?mode=busy&n= (millions of rounds)")
    p.add_argument("--attr-gaps", default="3,6",
                   help="attribution controls: ms between the cheap route's requests (paced), comma-separated")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--out", default=None)
    energy_model.add_args(p)
    a = p.parse_args(argv)
    if a.quick:
        a.hosts, a.configs = "nebula", "nebula-activated,nebula-always-on"
        a.concurrency, a.duration, a.warm, a.rounds, a.idle_secs = "1", 1.0, 0.3, 1, 0.0
        a.apps, a.day_seconds, a.keep_warm, a.day_idle_secs, a.day_rounds = 6, 6.0, 1.0, 1.0, 1
        a.attr_seconds, a.attr_rounds, a.attr_gaps = 1.0, 1, "3"
    return a


def machine() -> dict:
    info = bench.machine()
    info["free_g"] = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.strip()
    info["loadavg"] = list(os.getloadavg())
    info["compilers_running"] = compilers_running()
    return info


def compilers_running() -> list[str]:
    """cargo/rustc/cc1 processes now: another engineer's build shares the cores."""
    names = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm in ("cargo", "rustc", "cc1", "cc1plus", "ld", "clang"):
                names.append(comm)
    return sorted(names)


# --------------------------------------------------------------------------
# The container hosts, in bench.py's Host shape so run_one can drive them.

def container_hosts(rt) -> list[Host]:
    if rt is None:
        why = "no container runtime can run here, or no academemes-native (see the message above)"
        return [Host("container-warm", None, missing=why), Host("container-per-request", None, missing=why)]

    def warm(host, ctx):
        cid = f"warm-{os.getpid()}-{free_port()}"
        return rt.command(os.path.join(ctx.work, "bundle"), cid, ctx.work,
                          containers.server_args(ctx.addr))

    def per_request(host, ctx):
        return [sys.executable, replay.FRONT, "--runtime", rt.name, "--runtime-path", rt.path,
                "--rootfs", rt.rootfs, "--mode", "per-request", "--app", f"fn={ctx.addr}={ctx.work}"]
    serves = lambda build: {w: (build, []) for w in ("hello", "list", "vote")}  # noqa: E731
    return [Host("container-warm", rt.path, serves(warm)),
            Host("container-per-request", sys.executable, serves(per_request))]


def with_reaped_cpu():
    """bench.run_one reads CPU with procfs.snapshot, which sums live
    processes only; a container per request exits within the step and takes
    its CPU with it. Count the reaped children's CPU too (cutime + cstime),
    for every host alike: a long-running server has none."""
    from harness import energy_proc
    original = procfs.snapshot

    def snapshot(root):
        s = original(root)
        s.cpu_s = energy_proc.tree_cpu_s([root])
        return s
    procfs.snapshot = snapshot
    bench.procfs.snapshot = snapshot


def per_request(args, model, hosts, golden, gen, out, pin, say) -> dict:
    runs, skipped = [], []
    ns = argparse.Namespace(warm=args.warm, duration=args.duration, concurrency=args.concurrency,
                            rates="", open_loop_connections=1, idle_rounds=1, idle_secs=args.idle_secs)
    for wname in [w for w in args.workloads.split(",") if w]:
        wl = WORKLOADS[wname]
        present = []
        for h in hosts:
            if not h.binary:
                continue
            if wname not in h.serves:
                continue
            missing = [f for f in h.needs(wname) if not os.path.exists(os.path.join(REPO, f))]
            if missing or (wname != "hello" and golden is None):
                skipped.append({"host": h.name, "workload": wname, "why": f"missing {missing or 'database'}"})
                say(f"skipping {h.name} for {wname}: missing {missing or 'the database'}")
                continue
            present.append(h)
        for rnd in range(args.rounds):
            for h in present:
                r = bench.run_one(ns, gen, h, wl, rnd, golden, out, pin, say)
                r["container_ready_ms"], r["front_cpu_split"] = _front_log(out, wname, h.name, rnd)
                for s in r.get("steps", []):
                    e = model.joules(s["cpu_ms"] / 1000, s["seconds"], s["peak_rss_kib"] * s["seconds"])
                    n = s["requests"]
                    s["energy_estimate_j"] = e
                    s["j_per_request_estimate"] = e["total_j"] / n if n else None
                    s["cpu_ms_per_request"] = s["cpu_ms"] / n if n else None
                runs.append(r)
    return {"runs": runs, "skipped": skipped}


def _front_log(out, wname, host, rnd):
    """From the front's log: each container's start → listening time, and the
    CPU of the front itself against its children's (runtime + containers)."""
    if host != "container-per-request":
        return None, None
    path = os.path.join(out, "work", f"{wname}-{host}-{rnd}", "server.log")
    try:
        text = open(path).read()
    except OSError:
        return None, None
    ready = [float(x) for x in re.findall(r"ready_ms=([0-9.]+)", text)]
    m = re.search(r"cpu front_s=([0-9.]+) children_s=([0-9.]+)", text)
    return ready, ({"front_s": float(m.group(1)), "children_s": float(m.group(2))} if m else None)


# --------------------------------------------------------------------------

def prewarm_cache(nebula: str, work: str, say) -> None:
    """One start of each manifest, so every configuration finds the compile
    cache filled (a first-ever start would compile the components)."""
    for manifest in (os.path.join(REPO, "guests/http-hello/spin.toml"), os.path.join(REPO, "app.toml")):
        addr = f"127.0.0.1:{free_port()}"
        cmd = [nebula, "up", "--no-build", "-f", manifest, "--listen", addr, "--db", os.path.join(work, "prewarm.db")]
        srv = Server(cmd, work, os.path.join(work, "prewarm.log"), None)
        try:
            srv.wait_first_response(addr, "GET", "/", "")
        except RuntimeError as e:
            say(f"prewarm {manifest}: {e}")
        finally:
            srv.stop()


def deploy(name, args, apps, by_name, rt, golden, work):
    """Starts configuration `name` on fresh copies of the database; returns
    (deployment, None) or (None, why it cannot run here)."""
    nebula = by_name["nebula"].binary
    dbs = {}
    for a in apps:
        d = os.path.join(work, f"app{a.index}")
        os.makedirs(d, exist_ok=True)
        dbs[a.index] = bench.fresh_db(golden, d) if golden else os.path.join(d, "app.db")
    if name == "nebula-activated":
        if not (nebula and os.access(LAUNCH, os.X_OK)):
            return None, f"no nebula or {LAUNCH}"
        return replay.deploy_activated(nebula, LAUNCH, apps, dbs, work, args.keep_warm), None
    if name.endswith("-always-on"):
        host = by_name.get(name[: -len("-always-on")])
        if not (host and host.binary):
            return None, host.missing if host else f"unknown host in {name}"
        miss = [f for w in {a.workload for a in apps} for f in host.needs(w)
                if host.name != "native" and not os.path.exists(os.path.join(REPO, f))]
        if miss:
            return None, f"missing {sorted(set(miss))}"
        return replay.deploy_always_on(name, host, apps, dbs, work), None
    if name == "container-keep-warm":
        if not rt:
            return None, "no container runtime can run here (see above)"
        return replay.deploy_containers(rt, apps, dbs, work, args.keep_warm), None
    return None, "unknown configuration"


def day(args, model, by_name, rt, golden, out, say) -> dict:
    apps = faas_trace.make_apps(args.apps, args.seed, args.max_app_rate)
    events = faas_trace.make_trace(apps, args.day_seconds, args.seed, max_events=200_000)
    info = faas_trace.describe(apps, events, args.day_seconds, args.max_app_rate)
    say(f"day: {info['n_apps']} apps, {info['requests']} requests in {args.day_seconds:g} s "
        f"({info['apps_with_no_request_in_window']} apps get none); keep-warm {args.keep_warm:g} s")
    configs = [c for c in args.configs.split(",") if c]
    results, skipped = [], {}
    for rnd in range(args.day_rounds):
        # A B C D, then D C B A: the machine's drift falls on each alike.
        for name in (configs if rnd % 2 == 0 else configs[::-1]):
            if name in skipped:
                continue
            work = os.path.join(out, "work", f"day-{name}-{rnd}")
            os.makedirs(work, exist_ok=True)
            try:
                dep, why = deploy(name, args, apps, by_name, rt, golden, work)
            except Exception as e:  # noqa: BLE001 — one failing config must not lose the others
                dep, why = None, f"could not start: {type(e).__name__}: {e}"[:500]
            if why:
                say(f"day: skipping {name}: {why}")
                skipped[name] = why
                continue
            try:
                tail = args.keep_warm + 3 if name in ("nebula-activated", "container-keep-warm") else 1.0
                r = replay.measure(dep, events, apps, args.day_seconds, tail, args.day_idle_secs, model, say)
            except Exception as e:  # noqa: BLE001
                say(f"day: {name} FAILED: {type(e).__name__}: {e}")
                r = {"config": name, "error": f"{type(e).__name__}: {e}"[:1000]}
            finally:
                dep.stop()
                if rt:
                    _clean_containers(rt)
            r["round"] = rnd
            results.append(r)
    return {"trace": info, "results": results,
            "skipped": [{"config": k, "why": v} for k, v in skipped.items()],
            "settings": {k: getattr(args, k) for k in ("apps", "day_seconds", "keep_warm", "max_app_rate",
                                                        "seed", "day_rounds")}}


def _clean_containers(rt) -> None:
    """Containers the front could not stop (it was killed): none should remain."""
    if rt.name == "bwrap":
        return
    r = subprocess.run([rt.path, "--root", rt.state, "list", "-q"], capture_output=True, text=True)
    for cid in r.stdout.split():
        rt.cleanup(cid)


# --------------------------------------------------------------------------

def main(argv=None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)

    def say(msg):
        print(msg, file=sys.stderr, flush=True)
    t_start = time.monotonic()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")
    out = os.path.abspath(args.out or os.path.join(REPO, "benches", "results", stamp + "-energy" + ("-quick" if args.quick else "")))
    os.makedirs(os.path.join(out, "work"), exist_ok=True)
    model = energy_model.from_args(args)
    perf = energy_model.perf_status()
    info = machine()
    say(f"results → {out}\nmodel: {model.describe()}\nperf: {'supported' if perf['supported'] else perf['why']}")
    if info["compilers_running"]:
        say(f"note: compilers running now: {info['compilers_running']}")
    sections = [s for s in args.sections.split(",") if s]
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2

    by_name = {h.name: h for h in all_hosts()}
    nebula = by_name["nebula"]
    if not nebula.binary:
        say(f"no Nebula: {nebula.missing}; nothing to measure")
        return 1
    rt = None
    wanted = [h for h in args.hosts.split(",") if h]
    if any(h.startswith("container") for h in wanted) or "container-keep-warm" in args.configs and "day" in sections:
        rt = containers.find_runtime(say)
        if rt:
            say(f"container runtime: {rt.describe()}")
    for h in container_hosts(rt):
        by_name[h.name] = h
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
    golden = bench.make_golden_db([nebula], os.path.join(out, "work"), say)
    prewarm_cache(nebula.binary, os.path.join(out, "work"), say)
    with_reaped_cpu()
    gen = loadgen.pick("wrk", out, allow_install=True)

    data = {"argv": ["python3", "benches/energy.py", *(argv if argv is not None else sys.argv[1:])],
            "machine": info, "model": model.as_dict(), "model_text": model.describe(), "perf": perf,
            "runtime": rt.describe() if rt else None, "skipped": skipped, "pinned": pin,
            "generator": {"name": gen.name, "version": gen.version()}}
    if "per-request" in sections:
        say("== per request")
        data["per_request"] = per_request(args, model, hosts, golden, gen, out, pin, say)
    if "day" in sections:
        say("== a day of FaaS traffic")
        data["day"] = day(args, model, by_name, rt, golden, out, say)
    if "attribution" in sections:
        say("== attribution")
        work = os.path.join(out, "work", "attribution")
        os.makedirs(work, exist_ok=True)
        data["attribution"] = attribution.run(nebula.binary, gen, work, args.attr_seconds, args.attr_rounds,
                                              args.hog_n, pin, say)
        if "skipped" in data["attribution"]:
            say(f"attribution skipped: {data['attribution']['skipped']}")
        data["attribution_platform"] = attribution.run_platform(nebula.binary, gen, work, args.attr_seconds,
                                                                args.attr_rounds, args.hog_n, pin, say)
        if "skipped" in data["attribution_platform"]:
            say(f"platform attribution skipped: {data['attribution_platform']['skipped']}")
        data["attribution_controls"] = [
            attribution.run_controls(nebula.binary, gen, work, args.attr_seconds, args.attr_rounds, args.hog_n,
                                     gap, pin, say)
            for gap in (float(g) for g in args.attr_gaps.split(",") if g)]
    info["load_at_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    info["compilers_running_at_end"] = compilers_running()
    info["elapsed_s"] = round(time.monotonic() - t_start, 1)
    energy_report.write(data, out, plots=not args.no_plots, say=say)
    if not args.quick:
        shutil.rmtree(os.path.join(out, "work"), ignore_errors=True)
    failed = [r for r in data.get("per_request", {}).get("runs", []) if "error" in r]
    failed += [r for r in data.get("day", {}).get("results", []) if "error" in r]
    for f in failed:
        say(f"FAILED: {f.get('host', f.get('config'))}: {f['error'][:300]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
