#!/usr/bin/env python3
"""Process start -> first response of `nebula up` spawned directly (no
socket activation, no launcher), for one or more builds, alternating.

  python3 benches/start_direct.py --manifest benches/pure-hello.toml --path /hello \
      --starts 60 /tmp/nebula-before target/release/nebula

Each start spawns `BIN up --no-build -f MANIFEST --listen 127.0.0.1:PORT`
(a new port each time), tries to connect every 0.3 ms, sends one GET and
stops the clock at the response's headers; the status must be 200. The
builds take turns start by start, so drift on a shared machine falls on all
of them. Run it once with the compile cache cold to fill it: the figures are
of warm-cache starts. A build that prints `TMARK NAME NANOS` lines
(CLOCK_MONOTONIC) on stderr gets the median of each mark after the spawn too.
"""

import argparse
import collections
import json
import os
import re
import socket
import statistics
import subprocess
import time

CONNECT_EVERY_S = 0.0003
START_TIMEOUT_S = 10.0


def one_start(binary, manifest, path, port):
    """Milliseconds from the spawn to the response's headers, and the
    process's TMARK lines as milliseconds after the spawn."""
    t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    proc = subprocess.Popen(
        [binary, "up", "--no-build", "-f", manifest, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ, NEBULA_LOG="error"),
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", port))
                break
            except OSError:
                s.close()
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} did not listen on {port}")
                time.sleep(CONNECT_EVERY_S)
        with s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
            t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{binary} answered {head[:60]!r} for {path}")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    marks = {m.group(1).decode(): (int(m.group(2)) - t0) / 1e6
             for m in re.finditer(rb"TMARK (\S+) (\d+)", err)}
    return (t1 - t0) / 1e6, marks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binaries", nargs="+", help="nebula binaries to compare")
    ap.add_argument("--manifest", default="benches/pure-hello.toml")
    ap.add_argument("--path", default="/hello", help="the first request's path")
    ap.add_argument("--starts", type=int, default=40, help="starts per binary")
    ap.add_argument("--first-port", type=int, default=23000)
    ap.add_argument("--json", help="write every start's figures here")
    a = ap.parse_args()

    times = {b: [] for b in a.binaries}
    marks = {b: collections.defaultdict(list) for b in a.binaries}
    port = a.first_port
    for i in range(a.starts):
        # Alternate the order too, so that neither build always goes first.
        order = a.binaries if i % 2 == 0 else list(reversed(a.binaries))
        for b in order:
            port += 1
            ms, m = one_start(b, a.manifest, a.path, port)
            times[b].append(ms)
            for k, v in m.items():
                marks[b][k].append(v)
    for b in a.binaries:
        t = times[b]
        print(f"{b}: spawn -> 200 p50 {statistics.median(t):.2f} ms, min {min(t):.2f} ms (n={len(t)})")
        for k, v in marks[b].items():
            print(f"    {k:20s} {statistics.median(v):.2f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"manifest": a.manifest, "path": a.path, "ms": times,
                       "marks": {b: dict(m) for b, m in marks.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
