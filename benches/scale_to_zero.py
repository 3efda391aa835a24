#!/usr/bin/env python3
"""Scale-to-zero measurements for Nebula (issue 4), all on 127.0.0.1:

  cold      process not running -> first response, through socket activation
            (nebula-launch, as systemd would), with a warm compile cache and
            with an empty one;
  trim      the first request after an idle trim (client latency, and the
            server's own reload time from its log);
  idle      30 s with no requests: CPU time and context switches of every
            thread (/proc/PID/task/*/stat|status), resident memory before and
            after the trim.

Usage: python3 benches/scale_to_zero.py [--rounds N] [--idle-secs S] [--json OUT]
(the idle figures are taken twice: with the default trim and with --idle-trim-keep-code)
Build first: cargo build --release && ./target/release/nebula build
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEBULA = os.environ.get("NEBULA_BIN", os.path.join(ROOT, "target", "release", "nebula"))
LAUNCH = os.environ.get("NEBULA_LAUNCH_BIN", os.path.join(ROOT, "target", "release", "nebula-launch"))
# The app to start (NEBULA_MANIFEST): Academemes by default.
MANIFEST = os.environ.get("NEBULA_MANIFEST", os.path.join(ROOT, "app.toml"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def get(port, path="/memes/3"):
    """One GET on a fresh connection; returns (status, seconds to the whole response)."""
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, time.perf_counter() - t0


class Launcher:
    def __init__(self, cache_dir, db, extra):
        self.proc = subprocess.Popen(
            [LAUNCH, "--listen", "127.0.0.1:0", "--", NEBULA, "up", "--no-build",
             "-f", MANIFEST, "--db", db, "--cache-dir", cache_dir] + extra,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for("listening on")
        self.port = int(line.rstrip("/").rsplit(":", 1)[1])

    def _read(self):
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(line.strip())
                self.cv.notify_all()

    def wait_for(self, needle, start=0, timeout=30):
        deadline = time.time() + timeout
        with self.cv:
            while True:
                for line in self.lines[start:]:
                    if needle in line:
                        return line
                left = deadline - time.time()
                if left <= 0:
                    raise RuntimeError(f"launcher never printed {needle!r}")
                self.cv.wait(left)

    def count(self, needle):
        with self.cv:
            return sum(needle in l for l in self.lines)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def cold_start(rounds, empty_cache, path="/memes/3"):
    tmp = tempfile.mkdtemp(prefix="nebula-cold-")
    cache = os.path.join(tmp, "cache")
    if not empty_cache:
        shutil.copytree(os.path.join(ROOT, "target", "nebula-bench-cache"), cache, dirs_exist_ok=True)
        # Entries are sealed with the key kept beside the folder: copy it too.
        shutil.copy2(os.path.join(ROOT, "target", "nebula-bench-cache.key"), cache + ".key")
    l = Launcher(cache, os.path.join(tmp, "app.db"), ["--idle-exit", "0.2"])
    times = []
    try:
        for i in range(rounds):
            if empty_cache:
                shutil.rmtree(cache, ignore_errors=True)
            exits = l.count("exited")
            status, secs = get(l.port, path)
            assert status == 200, status
            times.append(secs * 1000)
            # Wait until the process has exited again: the next round is cold.
            deadline = time.time() + 10
            while l.count("exited") <= exits:
                if time.time() > deadline:
                    raise RuntimeError("nebula did not exit")
                time.sleep(0.01)
    finally:
        l.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return times


def warm_cache():
    """Fill target/nebula-bench-cache once, so 'warm' means what it says."""
    cache = os.path.join(ROOT, "target", "nebula-bench-cache")
    tmp = tempfile.mkdtemp(prefix="nebula-warm-")
    p = subprocess.Popen([NEBULA, "up", "--no-build", "--listen", "127.0.0.1:0", "-f", MANIFEST,
                          "--db", os.path.join(tmp, "a.db"), "--cache-dir", cache],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Components load after the bind: wait for the log line that says all are in the cache.
    for line in p.stderr:
        if "every component loaded" in line:
            break
    p.kill()
    p.wait()
    shutil.rmtree(tmp, ignore_errors=True)


class Server:
    def __init__(self, extra, log):
        self.tmp = tempfile.mkdtemp(prefix="nebula-idle-")
        self.log_path = os.path.join(self.tmp, "nebula.log")
        self.proc = subprocess.Popen(
            [NEBULA, "up", "--no-build", "--listen", "127.0.0.1:0", "-f", MANIFEST,
             "--db", os.path.join(self.tmp, "a.db"), "--cache-dir", os.path.join(ROOT, "target", "nebula-bench-cache")] + extra,
            stdout=subprocess.PIPE, stderr=open(self.log_path, "w"), text=True)
        line = self.proc.stdout.readline()
        self.port = int(re.search(r":(\d+)/", line).group(1))
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def log(self):
        return open(self.log_path).read()

    def sample(self):
        """CPU seconds and context switches summed over all threads, and RSS."""
        pid = self.proc.pid
        cpu = vol = invol = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                stat = open(f"/proc/{pid}/task/{tid}/stat").read()
                fields = stat[stat.rindex(")") + 2:].split()
                cpu += int(fields[11]) + int(fields[12])
                status = open(f"/proc/{pid}/task/{tid}/status").read()
                vol += int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", status).group(1))
                invol += int(re.search(r"nonvoluntary_ctxt_switches:\s+(\d+)", status).group(1))
            except FileNotFoundError:
                pass
        rss = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{pid}/status").read()).group(1))
        return {"cpu_s": cpu / CLK_TCK, "ctx_voluntary": vol, "ctx_involuntary": invol, "rss_kib": rss,
                "threads": len(os.listdir(f"/proc/{pid}/task"))}

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def idle(idle_secs, trim_after, keep_code=False):
    s = Server(["--idle-trim", str(trim_after)] + (["--idle-trim-keep-code"] if keep_code else []), None)
    try:
        for path in ["/", "/memes", "/memes/3", "/memes/3.svg", "/random", "/new", "/api/memes"]:
            for _ in range(20):
                get(s.port, path)
        busy = s.sample()
        # The idle window starts once the trim is done (the trim itself ends a
        # thread and does work; the window measures what idling costs).
        deadline = time.time() + trim_after + 10
        while "trimming memory" not in s.log():
            if time.time() > deadline:
                raise RuntimeError("no idle trim")
            time.sleep(0.05)
        time.sleep(0.5)
        start = s.sample()
        time.sleep(idle_secs)
        end = s.sample()
        trimmed = True
        # First request after the trim, then steady state for comparison.
        _, after_trim = get(s.port, "/memes/3")
        steady = sorted(get(s.port, "/memes/3")[1] for _ in range(50))
        # The server's own reload: the one component the first request's
        # route runs (the engine stays; the others load when asked for).
        log = s.log()
        after = log[log.rfind("idle: trimming memory"):]
        reload_us = [int(x) for x in
                     re.findall(r"loaded component=\S+ origin=\w+ elapsed_us=(\d+)", after)[:1]]
        # A second idle period: what the trim keeps once requests have run
        # since the first one.
        deadline = time.time() + trim_after + 10
        while s.log().count("idle: trimming memory") < 2:
            if time.time() > deadline:
                raise RuntimeError("no second idle trim")
            time.sleep(0.05)
        time.sleep(0.5)
        second = s.sample()
        _, after_second = get(s.port, "/memes/3")
        log = s.log()
        after = log[log.rfind("idle: trimming memory"):]
        reload2_us = [int(x) for x in
                      re.findall(r"loaded component=\S+ origin=\w+ elapsed_us=(\d+)", after)[:1]]
    finally:
        s.stop()
    return {
        "idle_secs": idle_secs,
        "trim_after_secs": trim_after,
        "rss_kib_after_load": busy["rss_kib"],
        "rss_kib_idle_before_trim": busy["rss_kib"],
        "rss_kib_after_trim": end["rss_kib"],
        "trimmed": trimmed,
        "idle_cpu_ms": round((end["cpu_s"] - start["cpu_s"]) * 1000, 1),
        "idle_voluntary_switches": end["ctx_voluntary"] - start["ctx_voluntary"],
        "idle_involuntary_switches": end["ctx_involuntary"] - start["ctx_involuntary"],
        "threads": end["threads"],
        "first_request_after_trim_ms": round(after_trim * 1000, 2),
        "steady_request_median_ms": round(statistics.median(steady) * 1000, 2),
        "server_reload_after_trim_us": reload_us,
        "rss_kib_after_second_trim": second["rss_kib"],
        "first_request_after_second_trim_ms": round(after_second * 1000, 2),
        "server_reload_after_second_trim_us": reload2_us,
    }


def summary(ms):
    ms = sorted(ms)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 2),
            "p90_ms": round(ms[int(len(ms) * 0.9) - 1], 2), "min_ms": round(ms[0], 2), "max_ms": round(ms[-1], 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--idle-secs", type=float, default=30)
    ap.add_argument("--json")
    a = ap.parse_args()
    for b in (NEBULA, LAUNCH):
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: run `cargo build --release` first")
    warm_cache()
    out = {
        "cold_start_warm_cache": summary(cold_start(a.rounds, empty_cache=False)),
        "cold_start_empty_cache": summary(cold_start(max(3, a.rounds // 4), empty_cache=True)),
        "idle": idle(a.idle_secs, trim_after=2),
        "idle_keep_code": idle(a.idle_secs, trim_after=2, keep_code=True),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        open(a.json, "w").write(text + "\n")


if __name__ == "__main__":
    main()
