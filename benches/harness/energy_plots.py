"""Plots of benches/energy.py's results.json (run with benches/.venv's
Python, which has matplotlib): estimated energy per request by host,
estimated energy per app-day by configuration, latency CDF of the day's
replay (cold starts included). Prints the files it wrote."""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness.energy_report import per_request_rows  # noqa: E402

NOTE = "ESTIMATE from CPU time and memory (no RAPL); model in results.md"


def per_request(data, out):
    rows = [r for r in per_request_rows(data["per_request"]) if r["step"] == "c=1" and r["j_per_request"]]
    if not rows:
        return None
    wls = list(dict.fromkeys(r["workload"] for r in rows))
    fig, axes = plt.subplots(1, len(wls), figsize=(5 * len(wls), 4.2), squeeze=False)
    for ax, wl in zip(axes[0], wls):
        rs = [r for r in rows if r["workload"] == wl]
        ax.bar([r["host"] for r in rs], [r["j_per_request"] * 1000 for r in rs], color="tab:blue")
        ax.set_yscale("log")
        ax.set_title(f"{wl} (c=1)")
        ax.set_ylabel("mJ per request (estimate, log)")
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(NOTE, fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "energy_per_request.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def per_app_day(data, out):
    rs = [r for r in data["day"]["results"] if "error" not in r]
    if not rs:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    # The mean over rounds of each configuration.
    names = list(dict.fromkeys(r["config"] for r in rs))

    def mean(name, key):
        xs = [r[key] for r in rs if r["config"] == name]
        return sum(xs) / len(xs)
    active = [mean(n, "active_j_per_app_day") for n in names]
    idle = [mean(n, "idle_share_j_per_app_day") for n in names]
    ax.bar(names, active, label="CPU (active)", color="tab:blue")
    ax.bar(names, idle, bottom=active, label="share of idle power (memory held)", color="tab:orange")
    ax.set_ylabel("J per app per day (estimate)")
    ax.set_title("A synthetic day of FaaS traffic\n" + NOTE, fontsize=9)
    ax.tick_params(axis="x", rotation=20)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out, "energy_per_app_day.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_cdf(data, out):
    rs = [r for r in data["day"]["results"] if r.get("latencies_ms")]
    if not rs:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    # Every round of a configuration pooled into one curve.
    for name in dict.fromkeys(r["config"] for r in rs):
        xs = sorted(x for r in rs if r["config"] == name for x in r["latencies_ms"])
        colds = sum(r["cold_starts"] for r in rs if r["config"] == name)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(xs, ys, where="post", label=f"{name} ({colds} cold starts)")
    ax.set_xscale("log")
    ax.set_xlabel("latency ms (from the scheduled time; log)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("Latency CDF of the day's replay, cold starts included")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out, "latency_cdf.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    data = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    made = []
    if "per_request" in data:
        made.append(per_request(data, out))
    if "day" in data:
        made += [per_app_day(data, out), latency_cdf(data, out)]
    for p in made:
        if p:
            print(p)


if __name__ == "__main__":
    main()
