#!/usr/bin/env python3
"""Crash loop for Nebula's crash safety (issue 6, item 5), on 127.0.0.1. The
long version of host/tests/it/crash.rs.

Each iteration starts `nebula up` (app.toml) on the same database, runs a
write load (VOTERS threads voting on memes 1-10, SUBMITTERS threads
submitting memes with unique titles), kills the host with SIGKILL at a
random moment, then checks with Python's sqlite3: PRAGMA integrity_check is
"ok", every acknowledged submission is in the table exactly once, and every
meme has at least its earlier votes plus the acknowledged ones. The next
iteration's start is the "opens cleanly" check.

Usage: python3 benches/crash_loop.py [--iterations N] [--voters V] [--submitters S] [--json OUT]
Build first: cargo build --release && ./target/release/nebula build
"""

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEBULA = os.path.join(ROOT, "target", "release", "nebula")
MEMES = 10


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def post(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data or b"", headers=headers or {}, method="POST")
    try:
        return OPENER.open(req, timeout=30).status
    except urllib.error.HTTPError as e:
        return e.code


def start(db, tmp):
    log = open(os.path.join(tmp, "nebula.log"), "a")
    p = subprocess.Popen(
        [NEBULA, "up", "--no-build", "--no-rate-limits", "-f", os.path.join(ROOT, "app.toml"), "--db", db,
         "--listen", "127.0.0.1:0", "--cache-dir", os.path.join(ROOT, "target", "nebula-test-cache")],
        stdout=subprocess.PIPE, stderr=log, text=True)
    for line in p.stdout:
        if line.startswith("Serving "):
            port = int(line.strip().rstrip("/").rsplit(":", 1)[1])
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, port
    raise SystemExit("nebula up did not start; see " + log.name)


def votes(db):
    c = sqlite3.connect(db)
    v = dict(c.execute("SELECT id, votes FROM memes WHERE id <= ?", (MEMES,)).fetchall())
    c.close()
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--voters", type=int, default=4)
    ap.add_argument("--submitters", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    rng = random.Random(6)
    totals = {"iterations": 0, "acked_votes": 0, "acked_submissions": 0,
              "lost_votes": 0, "lost_submissions": 0, "integrity_failures": 0, "start_failures": 0}
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "app.db")
        p, port = start(db, tmp)
        template = sqlite3.connect(db).execute("SELECT id FROM templates ORDER BY id LIMIT 1").fetchone()[0]
        p.terminate()
        p.wait()
        t0 = time.perf_counter()
        for it in range(a.iterations):
            try:
                p, port = start(db, tmp)
            except SystemExit:
                totals["start_failures"] += 1
                break
            before = votes(db)
            stop = threading.Event()
            acked_votes = {i: 0 for i in range(1, MEMES + 1)}
            acked_titles = []
            lock = threading.Lock()

            def voter(k):
                n = k
                while not stop.is_set():
                    mid = n % MEMES + 1
                    n += 1
                    try:
                        s = post(f"http://127.0.0.1:{port}/memes/{mid}/vote", headers={"accept": "application/json"})
                    except OSError:
                        return
                    if s == 200:
                        with lock:
                            acked_votes[mid] += 1

            def submitter(k):
                n = 0
                while not stop.is_set():
                    title = f"crash-loop {it}-{k}-{n}"
                    n += 1
                    body = urllib.parse.urlencode({"template": template, "top_text": title,
                                                   "bottom_text": "acknowledged", "tags": "crash"}).encode()
                    try:
                        s = post(f"http://127.0.0.1:{port}/memes", body,
                                 {"content-type": "application/x-www-form-urlencoded"})
                    except OSError:
                        return
                    if s == 303:
                        with lock:
                            acked_titles.append(title)

            threads = [threading.Thread(target=voter, args=(k,)) for k in range(a.voters)]
            threads += [threading.Thread(target=submitter, args=(k,)) for k in range(a.submitters)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.1, 1.0))
            p.send_signal(signal.SIGKILL)
            p.wait()
            stop.set()
            for t in threads:
                t.join()

            c = sqlite3.connect(db)
            ok = c.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                totals["integrity_failures"] += 1
            after = dict(c.execute("SELECT id, votes FROM memes WHERE id <= ?", (MEMES,)).fetchall())
            for mid, n in acked_votes.items():
                missing = before[mid] + n - after[mid]
                if missing > 0:
                    totals["lost_votes"] += missing
            for title in acked_titles:
                if c.execute("SELECT count(*) FROM memes WHERE top_text = ?", (title,)).fetchone()[0] != 1:
                    totals["lost_submissions"] += 1
            c.close()
            totals["iterations"] += 1
            totals["acked_votes"] += sum(acked_votes.values())
            totals["acked_submissions"] += len(acked_titles)
            print(f"iteration {it + 1}: {sum(acked_votes.values())} votes, {len(acked_titles)} submissions acknowledged; "
                  f"integrity {ok}", flush=True)
        totals["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(totals, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(totals, f, indent=2)


if __name__ == "__main__":
    main()
