#!/usr/bin/env python3
"""Two builds of nebula side by side, alternating, on scale_to_zero.py's
measurements: the cold start from a warm cache (socket activation -> first
response) or the idle trims (RSS after a trim, first request after it, twice).

  python3 benches/compare_builds.py --a /tmp/nebula-old --b target/release/nebula cold
  python3 benches/compare_builds.py --a /tmp/nebula-old --b target/release/nebula idle
  python3 benches/compare_builds.py --a A --b B --manifest other/app.toml --path / cold
  python3 benches/compare_builds.py --a N --b N --launch-a OLD --launch-b NEW cold

Each block runs A then B (B then A in odd blocks), so drift on a shared
machine falls on both. Prints one line per build and writes --json if given.
"""

import argparse
import importlib
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def with_binary(path, launch=None):
    """scale_to_zero, reloaded to run `path` under the launcher `launch`
    (it reads NEBULA_BIN and NEBULA_LAUNCH_BIN at import)."""
    os.environ["NEBULA_BIN"] = os.path.abspath(path)
    if launch:
        os.environ["NEBULA_LAUNCH_BIN"] = os.path.abspath(launch)
    else:
        os.environ.pop("NEBULA_LAUNCH_BIN", None)
    import scale_to_zero
    return importlib.reload(scale_to_zero)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["cold", "idle"])
    ap.add_argument("--a", required=True, help="one nebula binary")
    ap.add_argument("--b", required=True, help="the other")
    ap.add_argument("--launch-a", help="nebula-launch for A (default: target/release's)")
    ap.add_argument("--launch-b", help="nebula-launch for B")
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=8, help="cold starts per block")
    ap.add_argument("--idle-secs", type=float, default=5)
    ap.add_argument("--manifest", help="the app to start (default: app.toml)")
    ap.add_argument("--path", default="/memes/3", help="cold: the first request's path")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.manifest:
        os.environ["NEBULA_MANIFEST"] = os.path.abspath(a.manifest)
    builds = {"a": a.a, "b": a.b}
    launchers = {"a": a.launch_a, "b": a.launch_b}
    out = {k: [] for k in builds}
    for block in range(a.blocks):
        for key in ("a", "b") if block % 2 == 0 else ("b", "a"):
            s = with_binary(builds[key], launchers[key])
            if a.what == "cold":
                if block == 0:
                    s.warm_cache()
                out[key] += s.cold_start(a.rounds, False, a.path)
            else:
                out[key].append(s.idle(a.idle_secs, trim_after=2))
    for key, path in builds.items():
        if launchers[key]:
            path = f"{path} under {launchers[key]}"
        if a.what == "cold":
            t = sorted(out[key])
            q = statistics.quantiles(t, n=4)
            print(f"{key} {path}: n={len(t)} median {statistics.median(t):.2f} ms, "
                  f"quartiles {q[0]:.2f}-{q[2]:.2f} ms, min {t[0]:.2f} ms")
        else:
            for r in out[key]:
                print(f"{key} {path}: after 1st trim {r['rss_kib_after_trim'] / 1024:.1f} MiB, "
                      f"{r['first_request_after_trim_ms']} ms / {r['server_reload_after_trim_us']} us; "
                      f"after 2nd trim {r['rss_kib_after_second_trim'] / 1024:.1f} MiB, "
                      f"{r['first_request_after_second_trim_ms']} ms / {r['server_reload_after_second_trim_us']} us")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"builds": builds, a.what: out}, f, indent=1)


if __name__ == "__main__":
    main()
