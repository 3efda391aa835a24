"""results.json, results.md and the plots of benches/energy.py (issue 19).
Every energy figure is written as an estimate with the model beside it."""

from __future__ import annotations

import json
import os
import statistics
import subprocess

from . import tools


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _f(v, fmt="{:.2f}"):
    return "n/a" if v is None else fmt.format(v)


def per_request_rows(pr: dict) -> list[dict]:
    """(workload, host, step) → medians over rounds, and the median of each
    round's ratio to nebula's run of the same round and step."""
    runs = [r for r in pr["runs"] if "error" not in r]
    rows = []
    keys = list(dict.fromkeys((r["workload"], r["host"]) for r in runs))
    for wl, host in keys:
        hr = [r for r in runs if r["workload"] == wl and r["host"] == host]
        labels = list(dict.fromkeys(s["label"] for r in hr for s in r["steps"]))
        for label in labels:
            def vals(key, rr=hr):
                return [next((s.get(key) for s in r["steps"] if s["label"] == label), None) for r in rr]

            def ratio(key):
                out = []
                for r in hr:
                    base = next((b for b in runs if b["workload"] == wl and b["host"] == "nebula"
                                 and b["round"] == r["round"]), None)
                    a = next((s.get(key) for s in r["steps"] if s["label"] == label), None)
                    b = next((s.get(key) for s in base["steps"] if s["label"] == label), None) if base else None
                    if a is not None and b:
                        out.append(a / b)
                return _med(out)
            ready = [x for r in hr for x in (r.get("container_ready_ms") or [])]
            rows.append({
                "workload": wl, "host": host, "step": label, "rounds": len(hr),
                "cold_start_ms": _med([r.get("cold_start_ms") for r in hr]),
                "container_ready_ms_p50": _med(ready),
                "rps": _med(vals("rps")), "p50_ms": _med([p.get("50") for p in vals("percentiles_ms") if p]),
                "p99_ms": _med([p.get("99") for p in vals("percentiles_ms") if p]),
                "errors": sum(x or 0 for x in vals("errors")),
                "cpu_ms_per_request": _med(vals("cpu_ms_per_request")),
                "j_per_request": _med(vals("j_per_request_estimate")),
                # bench.py's RAPL joules (a measurement), only where powercap is readable.
                "rapl_j_per_request": _med(vals("j_per_request")),
                "j_ratio_to_nebula": ratio("j_per_request_estimate"),
                "peak_rss_mib": _med([(x or 0) / 1024 for x in vals("peak_rss_kib")]),
                "idle_rss_mib": _med([(r.get("idle") or {}).get("rss_kib", 0) / 1024 or None for r in hr]),
            })
    return rows


def markdown(data: dict) -> str:
    m = data["machine"]
    lines = [
        f"# Energy run {m['date_utc']} (issue 19)", "",
        f"- **Command:** `{' '.join(data['argv'])}` ({m.get('elapsed_s')} s)",
        f"- **Machine:** {m['cpu']}, {m['nproc']} vCPUs, Linux {m['kernel']}, {m['memory']}; "
        f"load average at start {m['loadavg']}, `{m.get('load_at_end', '')}` at end",
        f"- **Compilers running** (another engineer's build shares the 2 cores): at start "
        f"{_count(m['compilers_running'])}, at end {_count(m.get('compilers_running_at_end', []))}",
        f"- **Commit:** {m['commit']}; load generator {data['generator']['name']} ({data['generator']['version']}); "
        f"server on CPU 0 and load on CPU 1 in the per-request section: {data['pinned']}",
        f"- **RAPL:** {m['rapl']}",
        f"- **perf stat -e instructions,cycles:** {'supported' if data['perf']['supported'] else 'unsupported: ' + data['perf']['why']}",
        f"- **Energy model:** {data['model_text']}",
        f"- **Container runtime:** {data['runtime'] or 'none usable'}",
        "",
    ]
    for s in data["skipped"]:
        lines.append(f"- skipped **{s['host']}**: {s['why']}")
    if "per_request" in data:
        lines += per_request_md(data["per_request"])
    if "day" in data:
        lines += day_md(data["day"])
    if "attribution" in data:
        lines += attribution_md(data["attribution"], "per route, on `nebula up`")
    if "attribution_platform" in data:
        lines += attribution_md(data["attribution_platform"], "per app, on `nebula platform` (GET /apps/NAME/metrics)")
    if data.get("attribution_controls"):
        lines += controls_md(data["attribution_controls"])
    return "\n".join(lines) + "\n"


def _count(names):
    return f"{len(names)} ({', '.join(sorted(set(names)))})" if names else "none"


def per_request_md(pr: dict) -> list[str]:
    lines = ["", "## Per request (energy: estimate)", "",
             "Medians over rounds; × nebula: the median of each round's ratio to Nebula's run of the same round"
             " (lower is better). Memory term: the step's peak RSS × its duration.", "",
             "| workload | host | step | cold start ms | req/s | p50 ms | p99 ms | errors | CPU-ms / req | mJ / req (est.) | × nebula | peak RSS MiB | idle RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = per_request_rows(pr)
    for r in rows:
        cold = _f(r["cold_start_ms"], "{:.1f}")
        if r["container_ready_ms_p50"] is not None:
            cold += f" (container: {r['container_ready_ms_p50']:.1f} per request)"
        lines.append(f"| {r['workload']} | {r['host']} | {r['step']} | {cold} | {_f(r['rps'], '{:,.0f}')} | "
                     f"{_f(r['p50_ms'])} | {_f(r['p99_ms'])} | {r['errors']} | {_f(r['cpu_ms_per_request'], '{:.3f}')} | "
                     f"{_f(r['j_per_request'] and r['j_per_request'] * 1000, '{:.3f}')} | {_f(r['j_ratio_to_nebula'])} | "
                     f"{_f(r['peak_rss_mib'], '{:.1f}')} | {_f(r['idle_rss_mib'], '{:.1f}')} |")
    if any(r["rapl_j_per_request"] is not None for r in rows):
        lines += ["", "RAPL readable: measured package joules per request (the whole package, not the"
                  " server's share), beside the estimate:", "",
                  *[f"- {r['workload']} / {r['host']} / {r['step']}: {r['rapl_j_per_request'] * 1000:.3f} mJ measured"
                    for r in rows if r["rapl_j_per_request"] is not None]]
    for r in pr["runs"]:
        split = r.get("front_cpu_split")
        if split and split["front_s"] + split["children_s"] > 0:
            share = split["front_s"] / (split["front_s"] + split["children_s"])
            lines.append(f"\n- {r['workload']} / {r['host']} round {r['round']}: the Python front's own CPU is "
                         f"{share:.0%} of the tree's ({split['front_s']:.2f} s of {split['front_s'] + split['children_s']:.2f} s, "
                         "start to stop); the rest is runc and the containers")
    for r in pr["runs"]:
        if "error" in r:
            lines.append(f"\n- FAILED {r['workload']} / {r['host']} round {r['round']}: {r['error'].splitlines()[0][:300]}")
    for s in pr["skipped"]:
        lines.append(f"- skipped {s['host']} for {s['workload']}: {s['why']}")
    lines += ["", "Commands (round 0):", ""]
    lines += [f"- {r['workload']} / {r['host']}: `{r['command']}`" for r in pr["runs"] if r["round"] == 0]
    return lines


def day_md(d: dict) -> list[str]:
    t = d["trace"]
    s = d["settings"]
    lines = ["", "## A day of FaaS traffic (energy: estimate)", "",
             f"Synthetic trace (harness/faas_trace.py, after Shahrad et al., ATC'20), seed {s['seed']}: "
             f"{t['n_apps']} apps, {t['requests']} requests in a {s['day_seconds']:g} s window; "
             f"{t['share_at_most_1_per_hour']:.0%} of apps at ≤ 1/hour, {t['share_at_most_1_per_min']:.0%} at ≤ 1/min; "
             f"{t['apps_with_no_request_in_window']} apps get no request in the window; "
             f"{t['apps_clipped_to_max_rate']} app(s) clipped to {s['max_app_rate']:g}/s; shapes {t['shapes']}. "
             f"Keep-warm / idle-exit window {s['keep_warm']:g} s. Per app per day = the window's figure ÷ apps × (86,400 s ÷ window).",
             "",
             "| configuration | round | requests | failed | cold starts | CPU-s | J (est.) | J / app / day (est.) | of which idle share | CPU-s / app / day | p50 ms | p99 ms | max ms | peak RSS / PSS MiB | idle RSS / PSS MiB | idle CPU-ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(d["results"], key=lambda r: (r["config"], r.get("round", 0))):
        if "error" in r:
            lines.append(f"| {r['config']} | {r.get('round', 0)} | FAILED: {r['error'][:200]} |")
            continue
        lines.append(f"| {r['config']} | {r.get('round', 0)} | {r['requests']} | {r['failed']} | {r['cold_starts']} | {r['cpu_s']:.2f} | "
                     f"{r['energy_j']['total_j']:.2f} | {r['energy_j_per_app_day']:,.0f} | {r['idle_share_j_per_app_day']:,.0f} | "
                     f"{r['cpu_s_per_app_day']:,.1f} | {_f(r['p50_ms'])} | {_f(r['p99_ms'])} | {_f(r['max_ms'])} | "
                     f"{r['peak_rss_mib']:.0f} / {r['peak_pss_mib']:.0f} | {r['idle_rss_mib']:.1f} / {r['idle_pss_mib']:.1f} | {r['idle_cpu_ms']:.0f} |")
    notes = {r["config"]: r for r in d["results"] if "note" in r}
    for r in notes.values():
        if "note" in r:
            lines.append(f"- {r['config']}: {r['note']}" + (f"; failures: {r['failures']}" if r.get("failures") else ""))
    for sk in d["skipped"]:
        lines.append(f"- skipped {sk['config']}: {sk['why']}")
    return lines


def attribution_md(a: dict, what: str) -> list[str]:
    if "skipped" in a:
        return ["", f"## Attribution {what}", "", f"Skipped: {a['skipped']}"]
    lines = ["", f"## Attribution {what}: CPU per request, mixed against alone", "",
             f"`{a['command']}`; hog `?mode=busy&n={a['hog_n']}`; {a['rounds']} round(s) of {a['seconds']:g} s phases, "
             "wrk c=1 per route; nebula_request_cpu_seconds_total ÷ nebula_requests_total.", "",
             "| route or app | alone µs / req | mixed µs / req | mixed ÷ alone | within 10% | requests alone / mixed |",
             "|---|---|---|---|---|---|"]
    for route, v in a["verdict"].items():
        ok = {True: "yes", False: "**no**", None: "n/a"}[v["within_10pct"]]
        lines.append(f"| `{route}` | {_f(v['alone_us'], '{:.1f}')} | {_f(v['mixed_us'], '{:.1f}')} | "
                     f"{_f(v['mixed_over_alone'], '{:.3f}')} | {ok} | {v['requests_alone']:.0f} / {v['requests_mixed']:.0f} |")
    return lines


def controls_md(controls: list) -> list[str]:
    lines = ["", "## Attribution controls: the cheap route paced, beside the heavy one in its own process or another", "",
             "`/hello/x` one request every GAP ms (one keep-alive connection), alone, beside `hog` (wrk c=1) in the "
             "same `nebula up`, and beside the same `hog` load on a second `nebula up` pinned to the same CPU, where "
             "none of it can be charged to `/hello`. Same-process ÷ other-process near 1 means the in-process split "
             "charges the cheap route what the core's state makes it cost, not the heavy route's CPU.", "",
             "| gap ms | alone µs / req | same process | other process | same ÷ other |", "|---|---|---|---|---|"]
    for c in controls:
        if "skipped" in c:
            lines.append(f"| — | skipped: {c['skipped']} | | | |")
            continue
        us = c["us_per_request"]
        lines.append(f"| {c['gap_ms']:g} | {_f(us['alone'], '{:.1f}')} | {_f(us['beside hog, same process'], '{:.1f}')} | "
                     f"{_f(us['beside hog, other process'], '{:.1f}')} | {_f(c['same_over_other'], '{:.3f}')} |")
    return lines


def write(data: dict, out: str, plots: bool, say) -> None:
    with open(os.path.join(out, "results.json"), "w") as f:
        # Compact: the day's latencies make an indented file too big to commit.
        json.dump(data, f, separators=(",", ":"), default=str)
    md = markdown(data)
    if plots:
        py = tools.venv_python(allow_install=True)
        if py is None:
            md += "\n## Plots\n\nmatplotlib could not be installed (benches/.venv): the plots' data is in results.json.\n"
            say("plots: no matplotlib; their data is in results.json")
        else:
            here = os.path.dirname(os.path.abspath(__file__))
            r = subprocess.run([py, os.path.join(here, "energy_plots.py"), os.path.join(out, "results.json"), out],
                               capture_output=True, text=True)
            if r.returncode != 0:
                say(f"plots failed:\n{r.stderr[-2000:]}")
            pngs = [p for p in r.stdout.split() if p.endswith(".png")]
            if pngs:
                md += "\n## Plots\n\n" + "\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in pngs) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    say(f"wrote {out}/results.json and results.md")
