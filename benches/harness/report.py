"""results.json, results.md (tables with ratios to the first host, pair by
pair) and the plots."""

from __future__ import annotations

import json
import os
import statistics
import subprocess

from . import tools

STEP_FIGURES = [  # key, heading, format, lower is better
    ("rps", "req/s", "{:,.0f}", False),
    ("p50", "p50 ms", "{:.2f}", True),
    ("p99", "p99 ms", "{:.2f}", True),
    ("p99.9", "p99.9 ms", "{:.2f}", True),
    ("errors", "errors", "{:,.0f}", True),
    ("cpu_ms_per_1k", "CPU-ms / 1k req", "{:.1f}", True),
    ("j_per_request", "J / req", "{:.4f}", True),
]
RUN_FIGURES = [
    ("cold_start_ms", "cold start ms", "{:.1f}"),
    ("rss_after_start_mib", "RSS after start MiB", "{:.1f}"),
    ("peak_rss_mib", "peak RSS MiB", "{:.1f}"),
    ("idle_rss_mib", "idle RSS MiB", "{:.1f}"),
    ("idle_cpu_ms", "idle CPU-ms", "{:.0f}"),
    ("idle_wakeups", "idle wakeups", "{:,.0f}"),
]


def step_value(step: dict, key: str):
    if key in ("p50", "p99", "p99.9"):
        return step["percentiles_ms"].get(key[1:])
    return step.get(key)


def run_value(run: dict, key: str):
    idle = run.get("idle") or {}
    return {
        "cold_start_ms": run.get("cold_start_ms"),
        "rss_after_start_mib": (run.get("rss_after_start_kib") or 0) / 1024 or None,
        "peak_rss_mib": (run.get("peak_rss_kib") or 0) / 1024 or None,
        "idle_rss_mib": idle.get("rss_kib", 0) / 1024 or None,
        "idle_cpu_ms": idle.get("cpu_ms"),
        "idle_wakeups": idle.get("wakeups"),
    }[key]


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _ratio(a, b):
    if a is None or b is None:
        return None
    if b == 0:
        return 1.0 if a == 0 else None
    return a / b


def summarise(data: dict) -> dict:
    """Per workload: host order, per (host, step) medians and median ratios
    to the first host of the same round; per host, the run figures."""
    out = {}
    runs = [r for r in data["runs"] if "error" not in r]
    for wname in dict.fromkeys(r["workload"] for r in data["runs"]):
        wruns = [r for r in runs if r["workload"] == wname]
        hosts = list(dict.fromkeys(r["host"] for r in data["runs"] if r["workload"] == wname))
        rounds = sorted({r["round"] for r in wruns})
        base_of = {}
        for rnd in rounds:
            first = next((r for h in hosts for r in wruns if r["host"] == h and r["round"] == rnd), None)
            base_of[rnd] = first
        labels = list(dict.fromkeys(s["label"] for r in wruns for s in r["steps"]))
        steps, per_host = {}, {}
        for h in hosts:
            hruns = [r for r in wruns if r["host"] == h]
            for label in labels:
                row = {}
                for key, *_ in STEP_FIGURES:
                    vals, ratios = [], []
                    for r in hruns:
                        s = next((s for s in r["steps"] if s["label"] == label), None)
                        b = base_of.get(r["round"])
                        bs = next((s for s in b["steps"] if s["label"] == label), None) if b else None
                        if s is None:
                            continue
                        vals.append(step_value(s, key))
                        if bs is not None:
                            ratios.append(_ratio(step_value(s, key), step_value(bs, key)))
                    row[key] = _median(vals)
                    row[key + "_ratio"] = _median(ratios)
                acc = [s.get("accounting") for r in hruns for s in r["steps"] if s["label"] == label and s.get("accounting")]
                if acc:
                    row["accounting"] = acc
                steps.setdefault(label, {})[h] = row
            row = {}
            for key, *_ in RUN_FIGURES:
                vals, ratios = [], []
                for r in hruns:
                    vals.append(run_value(r, key))
                    b = base_of.get(r["round"])
                    if b is not None:
                        ratios.append(_ratio(run_value(r, key), run_value(b, key)))
                row[key] = _median(vals)
                row[key + "_ratio"] = _median(ratios)
            shas = {r.get("body_sha256") for r in hruns}
            base_sha = next((b.get("body_sha256") for b in base_of.values() if b), None)
            row["status"] = sorted({r.get("status") for r in hruns})
            row["body_bytes"] = sorted({r.get("body_bytes") for r in hruns})
            row["same_body_as_first"] = (shas == {base_sha}) if hruns else None
            row["failed"] = [r["error"] for r in data["runs"] if r["workload"] == wname and r["host"] == h and "error" in r]
            row["rounds"] = len(hruns)
            per_host[h] = row
        out[wname] = {"hosts": hosts, "labels": labels, "steps": steps, "per_host": per_host}
    return out


def _cell(value, fmt, ratio, show_ratio):
    if value is None:
        return "n/a"
    text = fmt.format(value)
    if show_ratio and ratio is not None:
        text += f" ({ratio:.2f}×)"
    return text


def markdown(data: dict, summary: dict) -> str:
    m = data["machine"]
    lines = [
        f"# Benchmark run {m['date_utc']}", "",
        f"- **Command:** `{' '.join(data['argv'])}`",
        f"- **Machine:** {m['cpu']}, {m['nproc']} CPUs, Linux {m['kernel']}; {m['memory']}",
        f"- **Load:** at start `{m['load_at_start']}`; at end `{m.get('load_at_end', '')}`",
        f"- **Commit:** {m['commit']}; generator {data['generator']['name']} ({data['generator']['version']});"
        f" server pinned to CPU 0 and load generator to CPU 1: {data['pinned']}",
        f"- **RAPL:** {m['rapl']}",
        f"- **Settings:** {data['settings']}",
        "",
        "Ratios in parentheses are to the first host of the same round (median over rounds);"
        " for req/s higher is better, for everything else lower is better.",
        "",
    ]
    for s in data["skipped"]:
        where = f" ({s['workload']})" if s.get("workload") else ""
        lines.append(f"- skipped **{s['host']}**{where}: {s['why']}")
    if data["skipped"]:
        lines.append("")
    for wname, w in summary.items():
        wl = data["workloads"][wname]
        lines += [f"## {wname}: {wl['what']}", ""]
        head = "| step | host | " + " | ".join(h for _, h, _, _ in STEP_FIGURES) + " |"
        lines += [head, "|" + "---|" * (2 + len(STEP_FIGURES))]
        for label in w["labels"]:
            for h in w["hosts"]:
                row = w["steps"].get(label, {}).get(h)
                if row is None:
                    continue
                cells = [_cell(row[k], f, row[k + "_ratio"], k in ("rps", "cpu_ms_per_1k", "p99"))
                         for k, _, f, _ in STEP_FIGURES]
                lines.append(f"| {label} | {h} | " + " | ".join(cells) + " |")
        lines += ["", "| host | " + " | ".join(h for _, h, _ in RUN_FIGURES) + " | status | body bytes | same body as first host | rounds |",
                  "|" + "---|" * (5 + len(RUN_FIGURES))]
        for h in w["hosts"]:
            row = w["per_host"][h]
            cells = [_cell(row[k], f, row[k + "_ratio"], k in ("cold_start_ms", "peak_rss_mib", "idle_cpu_ms"))
                     for k, _, f in RUN_FIGURES]
            same = {True: "yes", False: "**no**", None: "n/a"}[row["same_body_as_first"]]
            lines.append(f"| {h} | " + " | ".join(cells) +
                         f" | {row['status']} | {row['body_bytes']} | {same} | {row['rounds']} |")
            for err in row["failed"]:
                lines.append(f"|  | failed: {err.splitlines()[0][:300]} |")
        acc_rows = [(label, h, a) for label in w["labels"] for h in w["hosts"]
                    for a in (w["steps"].get(label, {}).get(h, {}).get("accounting") or [])]
        if acc_rows:
            lines += ["", "In-host accounting (Nebula's /metrics) against /proc, per step and round:", "",
                      "| step | host | /proc CPU-ms | nebula_accounted_cpu_seconds_total Δ ms | process_cpu_seconds_total Δ ms | requests counted | agree within 10% |",
                      "|---|---|---|---|---|---|---|"]
            for label, h, a in acc_rows:
                agree = {True: "yes", False: "**no**", None: "n/a"}[a.get("agree_within_10pct")]
                fmt = lambda v: "n/a" if v is None else f"{v:.0f}"  # noqa: E731
                lines.append(f"| {label} | {h} | {fmt(a.get('proc_cpu_ms'))} | {fmt(a.get('accounted_cpu_ms'))} | "
                             f"{fmt(a.get('process_cpu_ms'))} | {fmt(a.get('requests_counted'))} | {agree} |")
        elif any(r["host"].startswith("nebula") for r in data["runs"] if r["workload"] == wname):
            lines += ["", "In-host accounting: not available (this `nebula` has no `--admin` listener, so no /metrics to compare with /proc)."]
        lines.append("")
    lines += ["## Commands", ""]
    for r in data["runs"]:
        if r["round"] == 0:
            lines.append(f"- {r['workload']} / {r['host']}: `{r['command']}`")
    if data["runs"]:
        step = next((s for r in data["runs"] for s in r.get("steps", [])), None)
        if step:
            lines.append(f"- load (example): `{step['command']}`")
    lines.append("")
    return "\n".join(lines)


def write(data: dict, out: str, plots: bool, say) -> None:
    summary = summarise(data)
    data["summary"] = summary
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(data, f, indent=1, default=str)
    md = markdown(data, summary)
    if plots:
        py = tools.venv_python(allow_install=True)
        if py is None:
            say("plots: no matplotlib venv (benches/.venv could not be made); skipped")
        else:
            here = os.path.dirname(os.path.abspath(__file__))
            r = subprocess.run([py, os.path.join(here, "plots.py"), os.path.join(out, "results.json"), out],
                               capture_output=True, text=True)
            if r.returncode != 0:
                say(f"plots failed:\n{r.stderr[-2000:]}")
            else:
                pngs = [p for p in r.stdout.split() if p.endswith(".png")]
                md += "\n## Plots\n\n" + "\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in pngs) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    say(f"wrote {out}/results.json and results.md")
