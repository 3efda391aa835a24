#!/usr/bin/env python3
"""Flood and slow-client soak for Nebula's backpressure (issue 6, item 2), all
on 127.0.0.1. The long version of host/tests/it/backpressure.rs.

  flood   CONNS clients connect at once, each sends one request to the
          limits test app (2 instance slots, a queue of 2, max_connections)
          and reads the answer; repeated ROUNDS times. Counts answers by
          status, connections that failed, the server's peak open
          descriptors and peak RSS (sampled from /proc every 5 ms).
  slow    SLOW clients dribble headers one byte every 200 ms, SLOW more
          dribble a body, while a prompt client keeps asking; counts how many
          slow ones were cut off and the prompt client's answers.

Usage: python3 benches/flood.py [--conns N] [--rounds R] [--slow S]
       [--json OUT]
Build first: cargo build --release && ./target/release/nebula build -f host/tests/apps/limits.toml
"""

import argparse
import json
import os
import resource
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEBULA = os.path.join(ROOT, "target", "release", "nebula")
APP = os.path.join(ROOT, "host", "tests", "apps", "limits.toml")


class Server:
    def __init__(self, tmp, extra):
        self.log = open(os.path.join(tmp, "nebula.log"), "w")
        self.proc = subprocess.Popen(
            [NEBULA, "up", "--no-build", "-f", APP, "--db", os.path.join(tmp, "app.db"),
             "--listen", "127.0.0.1:0", "--cache-dir", os.path.join(ROOT, "target", "nebula-test-cache")]
            + extra,
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        for line in self.proc.stdout:
            if line.startswith("Serving "):
                self.port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
                break
        else:
            raise SystemExit("nebula up exited before serving")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return 0

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        return self.proc.returncode


class Sampler:
    def __init__(self, server):
        self.server, self.stop_flag = server, False
        self.peak_fds = self.peak_rss = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag:
            self.peak_fds = max(self.peak_fds, self.server.fds())
            self.peak_rss = max(self.peak_rss, self.server.rss_kib())
            time.sleep(0.005)

    def stop(self):
        self.stop_flag = True
        self.thread.join()


def one_request(port, i, out):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(f"GET /hello/{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        out.append(line.split(" ")[1] if line.startswith("HTTP/1.1 ") else "no answer")
    except OSError as e:
        out.append(f"error {type(e).__name__}")


def flood(server, conns):
    out, threads = [], []
    t0 = time.perf_counter()
    for i in range(conns):
        t = threading.Thread(target=one_request, args=(server.port, i, out))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    counts = {}
    for o in out:
        counts[o] = counts.get(o, 0) + 1
    return counts, time.perf_counter() - t0


def dribble(port, head, tail, result):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.settimeout(0.2)
    t0 = time.perf_counter()
    s.sendall(head)
    answer, sent = b"", 0
    while time.perf_counter() - t0 < 60:
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        except socket.timeout:
            pass
        except OSError:
            break
        if sent < len(tail):
            try:
                s.send(tail[sent:sent + 1])
                sent += 1
            except OSError:
                break
    result.append((sent < len(tail), answer.split(b"\r\n", 1)[0].decode(errors="replace"),
                   time.perf_counter() - t0))


def slow_clients(server, n):
    results, threads = [], []
    for _ in range(n):
        threads.append(threading.Thread(target=dribble, args=(
            server.port, b"GET /hello/x HTTP/1.1\r\nHost: a\r\n", b"X-Slow: " + b"s" * 400 + b"\r\n\r\n", results)))
        threads.append(threading.Thread(target=dribble, args=(
            server.port, b"POST /hello/x HTTP/1.1\r\nHost: a\r\nContent-Length: 400\r\n\r\n", b"b" * 400, results)))
    for t in threads:
        t.start()
    prompt, t0 = {}, time.perf_counter()
    while any(t.is_alive() for t in threads):
        try:
            status = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/hello/prompt", timeout=30).status
        except urllib.error.HTTPError as e:
            status = e.code
        except OSError as e:
            status = type(e).__name__
        prompt[status] = prompt.get(status, 0) + 1
        time.sleep(0.05)
    for t in threads:
        t.join()
    cut = sum(1 for r in results if r[0])
    return {"slow_clients": len(results), "cut_off": cut,
            "answers": sorted({r[1] for r in results}),
            "longest_s": round(max(r[2] for r in results), 2),
            "prompt_answers_meanwhile": prompt, "seconds": round(time.perf_counter() - t0, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--slow", type=int, default=200)
    ap.add_argument("--json")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(tmp, [])
        base_fds, base_rss = server.fds(), server.rss_kib()
        report = {"conns": a.conns, "rounds": a.rounds, "baseline_fds": base_fds, "baseline_rss_kib": base_rss,
                  "rounds_detail": []}
        sampler = Sampler(server)
        for r in range(a.rounds):
            counts, secs = flood(server, a.conns)
            report["rounds_detail"].append({"answers": counts, "seconds": round(secs, 2)})
            print(f"round {r + 1}: {counts} in {secs:.2f} s", flush=True)
        sampler.stop()
        report["peak_fds"], report["peak_rss_kib"] = sampler.peak_fds, sampler.peak_rss
        report["slow"] = slow_clients(server, a.slow // 2)
        print("slow clients:", report["slow"], flush=True)
        report["rss_after_kib"] = server.rss_kib()
        report["exit_code"] = server.stop()
        print(json.dumps(report, indent=2))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
