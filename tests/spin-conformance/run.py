#!/usr/bin/env python3
"""Runs Spin's conformance suite (github.com/fermyon/conformance-tests) against Nebula.

The suite is a set of test apps (core modules built by wit-bindgen for
wasm32-unknown-unknown, which Nebula makes into components at load, as Spin does),
their spin.toml files and test.json5 expectations. Spin runs each app with its
services in Docker; this runner uses the machine's own servers instead (Redis
127.0.0.1:6379, Mosquitto 127.0.0.1:1883, PostgreSQL 127.0.0.1:5432 with trust auth)
and the suite's own Python echo servers for TCP and HTTP. Nothing here is fetched:
give it a checkout of the suite.

    python3 tests/spin-conformance/run.py --suite /path/to/conformance-tests \
        [--nebula target/release/nebula] [--only NAME]... [--markdown]

It builds the suite's components (`cargo build --target wasm32-unknown-unknown` in
the checkout, as the suite's own `archive` command does), then for each test: fills
in `%{source=…}` and `%{port=…}` as Spin's runner does, meets the preconditions,
starts `nebula up`, sends each invocation and compares status, body and headers the
way the suite's `assert_response` does (every header not expected is an error).
Nebula's `x-request-id` is the one header reported apart: the table shows a test
that differs only by it as passing with that note.

Exit status: 0 when every test passed, 1 otherwise.
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import json5
except ImportError:  # the venv below provides it
    json5 = None

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(__file__).resolve().parent / ".venv"
# Services of this machine that stand for the suite's Docker services: guest port →
# host port (the same here).
LOCAL_SERVICES = {"redis": 6379, "mqtt": 1883, "postgres": 5432}
# What Nebula adds to every response (its request id and the security headers of
# [application.tool.nebula.headers]): reported, not failed.
OWN_HEADERS = {"x-request-id", "content-security-policy", "x-frame-options", "referrer-policy",
               "x-content-type-options"}


def ensure_json5():
    global json5
    if json5 is not None:
        return
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "json5==0.9.25"], check=True)
    os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), *sys.argv])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_components(suite):
    subprocess.run(["rustup", "target", "add", "wasm32-unknown-unknown"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # One target folder for the suite's workspace, so that the components
    # share their dependencies' builds (the suite's own `archive` builds each
    # in its own folder).
    built = {}
    for comp in sorted((suite / "components").iterdir()):
        if not comp.is_dir():
            continue
        subprocess.run(["cargo", "build", "--release", "--target=wasm32-unknown-unknown",
                        "--manifest-path", str(comp / "Cargo.toml"),
                        "--target-dir", str(suite / "target")], check=True)
        name = re.search(r'^name\s*=\s*"([^"]+)"', (comp / "Cargo.toml").read_text(), re.M)[1]
        wasm = suite / "target/wasm32-unknown-unknown/release" / f"{name.replace('-', '_')}.wasm"
        if not wasm.exists():
            raise SystemExit(f"{comp}: {wasm} was not built")
        built[comp.name] = wasm
    return built


class EchoServer:
    """One of the suite's Python services: prints PORT=(guest,host) then READY."""

    def __init__(self, script):
        self.proc = subprocess.Popen([sys.executable, "-u", str(script)],
                                     stdout=subprocess.PIPE, text=True)
        self.ports = {}
        deadline = time.time() + 10
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            m = re.match(r"PORT=\((\d+),(\d+)\)", line)
            if m:
                self.ports[int(m[1])] = int(m[2])
            if line.startswith("READY"):
                return
        raise SystemExit(f"{script} did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def substitute(text, sources, ports):
    def repl(m):
        key, value = m[1], m[2]
        if key == "source":
            return str(sources[value])
        if key == "port":
            return str(ports[int(value)])
        raise KeyError(f"unknown template key {key}")
    return re.sub(r"%\{(\w+)=([^}]*)\}", repl, text)


def psql(sql, db="postgres"):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-q", "-v",
                    "ON_ERROR_STOP=1", "-c", sql], check=True, stdout=subprocess.DEVNULL)


def meet(preconditions, suite):
    """Meets the test's preconditions; returns what undoes them."""
    undo = []
    for p in preconditions:
        kind = p["kind"]
        if kind in LOCAL_SERVICES:
            with socket.create_connection(("127.0.0.1", LOCAL_SERVICES[kind]), timeout=2):
                pass
        if kind == "postgres":
            # The suite's Postgres image: database spin_dev with the init scripts' tables.
            psql("DROP DATABASE IF EXISTS spin_dev")
            psql("CREATE DATABASE spin_dev")
            for script in sorted((suite / "crates/test-environment/services/postgres-init").glob("*.sql")):
                subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "spin_dev", "-q",
                                "-v", "ON_ERROR_STOP=1", "-f", str(script)], check=True,
                               stdout=subprocess.DEVNULL)
            undo.append(lambda: psql("DROP DATABASE IF EXISTS spin_dev"))
    return undo


def start_nebula(nebula, manifest, port, log):
    proc = subprocess.Popen([str(nebula), "up", "-f", str(manifest), "--listen", f"127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            return proc, False
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/.well-known/nebula/health?live")
            c.getresponse().read()
            return proc, True
        except OSError:
            time.sleep(0.05)
    return proc, False


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def invoke(port, request, sources, ports):
    method = request.get("method", "get").upper()
    path = substitute(request.get("path", "/"), sources, ports)
    body = request.get("body")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    headers = request.get("headers", [])
    # As the suite's reqwest client: a Host header unless the test gives one.
    if not any(h["name"].lower() == "host" for h in headers):
        c.putheader("Host", f"127.0.0.1:{port}")
    for h in headers:
        c.putheader(h["name"], substitute(h["value"], sources, ports))
    if body is not None:
        data = body.encode() if isinstance(body, str) else bytes(body)
        c.putheader("Content-Length", str(len(data)))
        c.endheaders(data)
    else:
        c.endheaders()
    r = c.getresponse()
    return r.status, r.read(), [(k.lower(), v.lower()) for k, v in r.getheaders()]


def compare(expected, status, body, headers):
    """The suite's assert_response; returns (failures, Nebula's own headers seen)."""
    want_status = expected.get("status", 200)
    if status != want_status:
        return [f"status {status} != {want_status}: {body[:300]!r}"], []
    want_body = expected.get("body") or ""
    if body.decode(errors="replace") != want_body:
        return [f"body {body[:300]!r} != {want_body!r}"], []
    actual = dict(headers)
    problems = []
    for h in expected.get("headers", []):
        name = h["name"].lower()
        value = actual.pop(name, None)
        if value is None:
            if not h.get("optional"):
                problems.append(f"header {name} missing")
            continue
        if "value" in h and value != h["value"].lower():
            problems.append(f"header {name}: {value!r} != {h['value'].lower()!r}")
    own = sorted(k for k in actual if k in OWN_HEADERS)
    extra = {k: v for k, v in actual.items() if k not in OWN_HEADERS}
    if extra:
        problems.append(f"unexpected headers {extra}")
    return problems, own


def run_test(test_dir, nebula, sources, services, suite):
    config = json5.loads((test_dir / "test.json5").read_text())
    ports = dict(services)
    ports.update({p: p for p in LOCAL_SERVICES.values()})
    work = Path(tempfile.mkdtemp(prefix=f"conformance-{test_dir.name}-"))
    undo = []
    try:
        manifest = work / "spin.toml"
        manifest.write_text(substitute((test_dir / "spin.toml").read_text(), sources, ports))
        undo = meet(config.get("preconditions", []), suite)
        port = free_port()
        with open(work / "nebula.log", "w") as log:
            proc, up = start_nebula(nebula, manifest, port, log)
        try:
            if not up:
                return "fail", "nebula did not start: " + (work / "nebula.log").read_text()[-600:], []
            own_seen = set()
            for inv in config["invocations"]:
                status, body, headers = invoke(port, inv["request"], sources, ports)
                problems, own = compare(inv["response"], status, body, headers)
                own_seen.update(own)
                if problems:
                    log_tail = (work / "nebula.log").read_text()[-600:]
                    return "fail", "; ".join(problems) + f"\n    log: {log_tail}", sorted(own_seen)
            return "pass", "", sorted(own_seen)
        finally:
            stop(proc)
    finally:
        for u in undo:
            u()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", required=True, type=Path, help="a checkout of fermyon/conformance-tests")
    ap.add_argument("--nebula", type=Path, default=ROOT / "target/release/nebula")
    ap.add_argument("--only", action="append", default=[], help="run only this test (repeatable)")
    ap.add_argument("--markdown", action="store_true", help="print the result as a Markdown table")
    args = ap.parse_args()
    ensure_json5()
    suite = args.suite.resolve()
    sources = build_components(suite)
    echo = [EchoServer(suite / "crates/test-environment/services" / s) for s in ("tcp-echo.py", "http-echo.py")]
    services = {}
    for e in echo:
        services.update(e.ports)
    results = []
    try:
        for test_dir in sorted((suite / "tests").iterdir()):
            if args.only and test_dir.name not in args.only:
                continue
            outcome, detail, own = run_test(test_dir, args.nebula.resolve(), sources, services, suite)
            results.append((test_dir.name, outcome, detail, own))
            print(f"{outcome:4} {test_dir.name}" + (f"\n    {detail}" if detail else ""), file=sys.stderr)
    finally:
        for e in echo:
            e.stop()
    if args.markdown:
        print("| test | result |\n|---|---|")
        for name, outcome, detail, own in results:
            note = " (differs only by Nebula's " + ", ".join(own) + ")" if outcome == "pass" and own else ""
            print(f"| `{name}` | {outcome}{note}{': ' + detail.splitlines()[0] if detail else ''} |")
    passed = sum(r[1] == "pass" for r in results)
    print(f"{passed}/{len(results)} passed", file=sys.stderr)
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
