"""Plots from results.json (run with the venv's Python, which has matplotlib):
throughput vs concurrency, latency CDF, CPU per request. Prints the files."""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def closed_labels(w):
    return [l for l in w["labels"] if l.startswith("c=")]


def per_workload(names, path, draw):
    """One panel per workload, side by side; `draw(ax, name)` fills a panel
    and returns False when it has nothing to show. Saves to `path`."""
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, wname in zip(axes[0], names):
        if draw(ax, wname) is False:
            continue
        ax.set_title(wname)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(results_path, out):
    data = json.load(open(results_path))
    summary = data["summary"]
    names = list(summary)
    if not names:
        return

    def throughput(ax, wname):
        w = summary[wname]
        labels = closed_labels(w)
        xs = [int(l[2:]) for l in labels]
        for h in w["hosts"]:
            ys = [(w["steps"].get(l, {}).get(h) or {}).get("rps") for l in labels]
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=h)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent connections (closed loop)")
        ax.set_ylabel("requests/s")
        ax.grid(alpha=0.3)

    def latency_cdf(ax, wname):
        # At the highest closed-loop concurrency, from the percentiles of the
        # first round.
        w = summary[wname]
        labels = closed_labels(w)
        if not labels:
            return False
        label = labels[-1]
        for h in w["hosts"]:
            run = next((r for r in data["runs"] if r["workload"] == wname and r["host"] == h
                        and r["round"] == 0 and "error" not in r), None)
            step = next((s for s in run["steps"] if s["label"] == label), None) if run else None
            if not step:
                continue
            pts = sorted((v, float(p)) for p, v in step["percentiles_ms"].items() if v is not None)
            if pts:
                ax.plot([v for v, _ in pts], [p / 100 for _, p in pts], marker=".", label=h)
        ax.set_xscale("log")
        ax.set_xlabel(f"latency ms ({label})")
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)

    def cpu_per_request(ax, wname):
        # CPU per 1,000 requests, per host and closed-loop step.
        w = summary[wname]
        labels = closed_labels(w)
        width = 0.8 / max(1, len(w["hosts"]))
        for i, h in enumerate(w["hosts"]):
            ys = [(w["steps"].get(l, {}).get(h) or {}).get("cpu_ms_per_1k") or 0 for l in labels]
            ax.bar([j + i * width for j in range(len(labels))], ys, width, label=h)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels)
        ax.set_ylabel("server CPU-ms per 1,000 requests")
        ax.grid(alpha=0.3, axis="y")

    made = [
        per_workload(names, os.path.join(out, "throughput.png"), throughput),
        per_workload(names, os.path.join(out, "latency_cdf.png"), latency_cdf),
        per_workload(names, os.path.join(out, "cpu_per_request.png"), cpu_per_request),
    ]
    print("\n".join(made))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
