"""The load generators: oha (closed and open loop, JSON out) and wrk (closed
loop only; a Lua script prints its figures as JSON). Each run returns the
same dict: requests, rps, latency percentiles in ms, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass

from . import tools

# Latency percentiles kept for the tables and the CDF plot.
PERCENTILES = [10, 25, 50, 75, 90, 95, 99, 99.9, 99.99]

WRK_LUA = r"""
-- Set by the harness: method, accept header.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local accept = os.getenv("BENCH_ACCEPT")
if accept and accept ~= "" then wrk.headers["accept"] = accept end

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  local ps = {}
  for _, p in ipairs({10, 25, 50, 75, 90, 95, 99, 99.9, 99.99}) do
    ps[#ps + 1] = string.format('"%s": %.6f', tostring(p), latency:percentile(p) / 1000.0)
  end
  local codes = {}
  for code, n in pairs(statuses) do codes[#codes + 1] = string.format('"%d": %d', code, n) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "percentiles_ms": {%s}, "statuses": {%s}, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration, table.concat(ps, ", "), table.concat(codes, ", "),
    e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class Load:
    """One load step: closed loop at `concurrency`, or open loop at `rate` req/s."""

    url: str
    method: str
    accept: str
    duration_s: float
    concurrency: int
    rate: int | None = None

    @property
    def label(self) -> str:
        return f"rate={self.rate}/s" if self.rate else f"c={self.concurrency}"


def _is_error(status: int) -> bool:
    return status >= 400


class Oha:
    name = "oha"

    def __init__(self, path: str):
        self.path = path

    def version(self) -> str:
        return subprocess.run([self.path, "--version"], capture_output=True, text=True).stdout.strip()

    def supports_rate(self) -> bool:
        return True

    def command(self, load: Load) -> list[str]:
        cmd = [
            self.path, "--no-tui", "--output-format", "json",
            # -w: requests in flight at the deadline finish (else oha counts
            # them as errors, "aborted due to deadline").
            "-z", f"{load.duration_s}s", "-w", "-c", str(load.concurrency),
            "-m", load.method,
        ]
        if load.accept:
            cmd += ["-H", f"accept: {load.accept}"]
        if load.rate:
            # Open loop: requests are due at fixed times and latency is counted
            # from when each was due (no coordinated omission).
            cmd += ["-q", str(load.rate), "--latency-correction"]
        return cmd + [load.url]

    def parse(self, stdout: str) -> dict:
        data = json.loads(stdout)
        summary = data["summary"]
        statuses = {int(k): v for k, v in data.get("statusCodeDistribution", {}).items()}
        socket_errors = sum(n for e, n in data.get("errorDistribution", {}).items()
                            if "aborted due to deadline" not in e)
        total = sum(statuses.values())
        pct = data.get("latencyPercentiles", {})
        percentiles = {}
        for p in PERCENTILES:
            key = f"p{p:g}"
            if pct.get(key) is not None:
                percentiles[f"{p:g}"] = pct[key] * 1000.0
        return {
            "requests": total,
            "rps": summary.get("requestsPerSec") or 0.0,
            "percentiles_ms": percentiles,
            "statuses": statuses,
            "errors": socket_errors + sum(n for s, n in statuses.items() if _is_error(s)),
        }


class Wrk:
    name = "wrk"

    def __init__(self, path: str, script: str):
        self.path, self.script = path, script

    def version(self) -> str:
        out = subprocess.run([self.path, "--version"], capture_output=True, text=True)
        return (out.stdout + out.stderr).splitlines()[0].strip()

    def supports_rate(self) -> bool:
        return False

    def command(self, load: Load) -> list[str]:
        return [
            # wrk takes whole seconds.
            self.path, "-t", "1", "-c", str(load.concurrency), "-d", f"{max(1, round(load.duration_s))}s",
            "--timeout", "10s", "-s", self.script, load.url,
        ]

    def env(self, load: Load) -> dict:
        return {"BENCH_METHOD": load.method, "BENCH_ACCEPT": load.accept}

    def parse(self, stdout: str) -> dict:
        line = next(l for l in stdout.splitlines() if l.startswith("BENCH_JSON "))
        data = json.loads(line[len("BENCH_JSON "):])
        statuses = {int(k): v for k, v in data["statuses"].items()}
        seconds = data["duration_us"] / 1e6
        return {
            "requests": data["requests"],
            "rps": data["requests"] / seconds if seconds else 0.0,
            "percentiles_ms": data["percentiles_ms"],
            "statuses": statuses,
            "errors": data["socket_errors"] + sum(n for s, n in statuses.items() if _is_error(s)),
        }


def run(gen, load: Load, cpu: str | None) -> dict:
    cmd = gen.command(load)
    if cpu is not None:
        cmd = ["taskset", "-c", cpu] + cmd
    env = dict(os.environ)
    if isinstance(gen, Wrk):
        env.update(gen.env(load))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         timeout=load.duration_s + 60)
    if out.returncode != 0:
        raise RuntimeError(f"{gen.name} failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout[-1000:]}{out.stderr[-2000:]}")
    result = gen.parse(out.stdout)
    result["command"] = " ".join(cmd)
    return result


def pick(name: str, work_dir: str, allow_install: bool):
    """The generator to use: `oha`, `wrk`, or `auto` (oha if present, else
    wrk, installing wrk from Debian's packages if needed)."""
    if name in ("oha", "auto"):
        path = tools.find_oha()
        if path is None and name == "oha":
            path = tools.install_oha() if allow_install else None
            if path is None:
                raise SystemExit("oha is not installed: run `python3 benches/bench.py --setup` (cargo install --locked oha into benches/.tools)")
        if path:
            return Oha(path)
    path = shutil.which("wrk") or (tools.install_wrk() if allow_install else None)
    if path is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (or run with --setup)")
    script = os.path.join(work_dir, "wrk-report.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA)
    return Wrk(path, script)
