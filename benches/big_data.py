#!/usr/bin/env python3
"""Academemes on a big database (issue 12, item 7): does a page's cost grow with the data?

Seeds a database with --memes memes (default 200,000) and --tag-rows rows of meme_tags
(default 1,000,000) on top of the app's own schema and seed, starts
`nebula up --db THAT`, requests every page --requests times, one after another on one
keep-alive connection, and prints each page's median and p99 latency, its statuses and the
host's peak resident memory (VmHWM from /proc/PID/status) after that page's requests. With
--memes 0 the database is the 63-meme seed: the baseline to compare with.

The big database is made in SQL (recursive CTEs over the seed's own memes and tags), in one
transaction; whatever triggers the schema has (the search index, tag counts) fire as for any
insert. Seeding is done once per (schema, sizes) and kept in --cache (default
target/big-data/) for the next run.

Usage:
  python3 benches/big_data.py [--memes 200000] [--tag-rows 1000000] [--requests 30]
                              [--nebula target/release/nebula] [--app app.toml] [--json OUT]
Build first: cargo build --release && ./target/release/nebula build
This is a measurement, not a test: it asserts nothing about time.
"""

import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The pages of Academemes, as a visitor meets them. {id} is a meme in the middle of the
# table, {late} one near its end (what the paging of /memes reaches last).
PAGES = [
    "/",
    "/memes",
    "/memes?page=50",
    "/memes?tag=peer-review",
    "/api/memes?page=2",
    "/random",
    "/memes/{id}",
    "/memes/{id}.svg",
    "/search",
    "/search?q=reviewer",
    "/api/search?q=deadline",
    "/api/search?q=p-value&page=3",
    "/stats",
    "/new",
]


def start(nebula, app, db, cache_dir):
    """`nebula up` on a free loopback port; returns (process, port)."""
    proc = subprocess.Popen(
        [nebula, "up", "--no-build", "-f", app, "--db", db, "--cache-dir", cache_dir,
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    found = threading.Event()
    port = []

    def read():
        for line in proc.stdout:
            lines.append(line)
            # "Serving NAME at http://127.0.0.1:PORT/"
            if not found.is_set() and line.startswith("Serving ") and " at http://" in line:
                port.append(int(line.strip().rstrip("/").rsplit(":", 1)[1]))
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(120):
        proc.kill()
        sys.exit("nebula did not start:\n" + "".join(lines[-30:]))
    return proc, port[0], lines


def stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def seed_sql(memes, tag_rows):
    """SQL that grows the seeded database to `memes` memes and about `tag_rows` tag rows.

    Meme i copies the texts, template and first tag of seed meme (i mod 63), with the
    number i appended to its top text (so texts differ), a vote count and a time spread
    over the years. Each meme gets the seed meme's first tag plus `per - 1` tags out of
    5,000 `topic-N` tags, chosen by arithmetic (distinct for one meme)."""
    per = max(1, round(tag_rows / max(memes, 1)))
    return f"""
CREATE TEMP TABLE base AS
  SELECT row_number() OVER (ORDER BY id) - 1 AS k, id, template, top_text, bottom_text,
         (SELECT min(tag) FROM meme_tags t WHERE t.meme_id = m.id) AS tag
  FROM memes m;
INSERT INTO memes (template, top_text, bottom_text, votes, created_ms)
  WITH RECURSIVE n(i) AS (SELECT (SELECT count(*) FROM memes) + 1
                          UNION ALL SELECT i + 1 FROM n WHERE i < {memes})
  SELECT b.template, b.top_text || ' #' || n.i, b.bottom_text, (n.i * 7919) % 500,
         1600000000000 + n.i * 997331
  FROM n JOIN base b ON b.k = n.i % (SELECT count(*) FROM base);
INSERT OR IGNORE INTO meme_tags (meme_id, tag)
  SELECT m.id, b.tag FROM memes m JOIN base b ON b.k = m.id % (SELECT count(*) FROM base)
  WHERE m.id > (SELECT max(id) FROM base) AND b.tag IS NOT NULL;
INSERT OR IGNORE INTO meme_tags (meme_id, tag)
  WITH RECURSIVE j(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM j WHERE j < {per - 1})
  SELECT m.id, 'topic-' || ((m.id * 31 + j.j * 977) % 5000)
  FROM memes m, j WHERE m.id > (SELECT max(id) FROM base);
DROP TABLE base;
"""


def make_db(args, app, cache_dir):
    """The database for this schema and size, made once and copied for each run."""
    schema = open(os.path.join(os.path.dirname(app), "db", "schema.sql"), "rb").read()
    key = hashlib.sha256(schema + f"{args.memes}/{args.tag_rows}".encode()).hexdigest()[:12]
    os.makedirs(args.cache, exist_ok=True)
    kept = os.path.join(args.cache, f"academemes-{args.memes}-{key}.db")
    if not os.path.exists(kept):
        tmp = kept + ".new"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(tmp + suffix):
                os.remove(tmp + suffix)
        # The host creates it from the app's schema and seed, exactly as in production.
        proc, port, _ = start(args.nebula, app, tmp, cache_dir)
        get(port, "/")
        stop(proc)
        if args.memes > 0:
            import sqlite3
            t0 = time.time()
            conn = sqlite3.connect(tmp, isolation_level=None)
            conn.execute("BEGIN")
            for stmt in seed_sql(args.memes, args.tag_rows).split(";\n"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("ANALYZE")
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM memes), (SELECT count(*) FROM meme_tags),"
                " (SELECT count(DISTINCT tag) FROM meme_tags)").fetchone()
            conn.close()
            print(f"seeded {counts[0]} memes, {counts[1]} tag rows, {counts[2]} tags"
                  f" in {time.time() - t0:.1f} s", file=sys.stderr)
        os.rename(tmp, kept)
    return kept


def get(port, path, conn=None):
    """One GET; returns (status, seconds, body length). Reuses `conn` if given."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    secs = time.perf_counter() - t0
    if own:
        conn.close()
    return r.status, secs, len(body)


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memes", type=int, default=200_000)
    ap.add_argument("--tag-rows", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=30, help="requests per page")
    ap.add_argument("--nebula", default=os.environ.get("NEBULA_BIN", os.path.join(ROOT, "target", "release", "nebula")))
    ap.add_argument("--app", default=os.path.join(ROOT, "app.toml"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "target", "big-data"))
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    app = os.path.abspath(args.app)

    work = tempfile.mkdtemp(prefix="nebula-big-")
    cache_dir = os.path.join(args.cache, "compile-cache")
    try:
        db = os.path.join(work, "app.db")
        shutil.copy(make_db(args, app, cache_dir), db)
        proc, port, log = start(args.nebula, app, db, cache_dir)
        try:
            import sqlite3
            c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            lo, hi = c.execute("SELECT min(id), max(id) FROM memes").fetchone()
            c.close()
            ids = {"id": (lo + hi) // 2}
            results = []
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            for page in PAGES:
                path = page.format(**ids)
                times, statuses, size = [], {}, 0
                for _ in range(args.requests):
                    try:
                        status, secs, size = get(port, path, conn)
                    except (http.client.HTTPException, OSError) as e:
                        status, secs = f"error: {type(e).__name__}", float("nan")
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    statuses[status] = statuses.get(status, 0) + 1
                    times.append(secs * 1000)
                row = {
                    "page": path,
                    "median_ms": round(statistics.median(times), 2),
                    "p99_ms": round(percentile(times, 99), 2),
                    "statuses": {str(k): v for k, v in statuses.items()},
                    "bytes": size,
                    "vm_hwm_mib": round(vm_hwm_kib(proc.pid) / 1024, 1),
                }
                results.append(row)
                print(f"{path:32} median {row['median_ms']:9.2f} ms  p99 {row['p99_ms']:9.2f} ms  "
                      f"{row['statuses']}  {size} B  peak RSS {row['vm_hwm_mib']} MiB", flush=True)
            conn.close()
            peak = round(vm_hwm_kib(proc.pid) / 1024, 1)
        finally:
            stop(proc)
        errors = [l for l in log if "ERROR" in l or "answered 500" in l]
        print(f"peak RSS (VmHWM) of the host: {peak} MiB; {len(errors)} error lines in its log")
        for l in errors[:5]:
            print("  " + l.rstrip()[:300])
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"memes": args.memes, "tag_rows": args.tag_rows, "requests": args.requests,
                           "pages": results, "peak_rss_mib": peak}, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
