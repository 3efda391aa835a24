"""Nebula's in-host accounting: /metrics on its admin listener (Prometheus
text format), compared with what /proc says the process spent."""

from __future__ import annotations

import re

from .server import request

ACCOUNTED = "nebula_accounted_cpu_seconds_total"
PROCESS = "process_cpu_seconds_total"
REQUESTS = "nebula_requests_total"
TOLERANCE = 0.10

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse(text: str) -> dict[str, float]:
    """Each metric name → the sum of its values over all label sets."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


def scrape(admin: str) -> dict[str, float] | None:
    try:
        status, body = request(admin, "GET", "/metrics", timeout=5)
    except OSError:
        return None
    return parse(body.decode(errors="replace")) if status == 200 else None


def compare(before: dict | None, after: dict | None, proc_cpu_ms: float) -> dict | None:
    """The accounted CPU delta against /proc's, and whether they agree within 10%."""
    if before is None or after is None:
        return None
    out = {"proc_cpu_ms": proc_cpu_ms}
    for key, name in (("accounted_cpu_ms", ACCOUNTED), ("process_cpu_ms", PROCESS)):
        if name in after:
            out[key] = (after[name] - before.get(name, 0.0)) * 1000.0
    if REQUESTS in after:
        out["requests_counted"] = after[REQUESTS] - before.get(REQUESTS, 0.0)
    if "accounted_cpu_ms" in out and proc_cpu_ms > 0:
        diff = abs(out["accounted_cpu_ms"] - proc_cpu_ms) / proc_cpu_ms
        out["accounted_vs_proc"] = out["accounted_cpu_ms"] / proc_cpu_ms
        out["agree_within_10pct"] = diff <= TOLERANCE
    else:
        out["agree_within_10pct"] = None
    return out
