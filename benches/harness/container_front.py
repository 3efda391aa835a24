#!/usr/bin/env python3
"""The front of the container FaaS baseline (issue 19): it accepts each
app's connections and starts containers (harness/containers.py) to serve
them, as a FaaS gateway does.

  --mode per-request   one fresh container per request: started when the
                       request arrives, the request forwarded once it
                       listens, stopped after it answered (OpenFaaS's
                       classic watchdog forks a process per request; here
                       the whole container is the unit, as the brief asks);
  --mode keep-warm     one container per app, started by the app's first
                       request and stopped after --keep-warm seconds without
                       one (Knative's scale to zero, Lambda's keep-alive);
                       the next request is a cold start again.

Every container start prints `front: start app=A id=ID ready_ms=MS` (runtime
start → the server accepts connections), every stop `front: stop …`. The
front, the runtime and the servers are one process tree, so the harness's
/proc figures include all three (cutime covers the exited ones).

    container_front.py --runtime runc --runtime-path /usr/sbin/runc --rootfs DIR \\
        --mode keep-warm --keep-warm 30 --app NAME=127.0.0.1:PORT=DATA_DIR …"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness.containers import WORK, Runtime, server_args, wait_port  # noqa: E402

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}
_ids = itertools.count()


def log(msg: str) -> None:
    print(f"front: {msg}", flush=True)


def free_addr() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


class Container:
    def __init__(self, rt: Runtime, app: str, data_dir: str):
        self.rt, self.app = rt, app
        self.cid = f"fn-{app}-{os.getpid()}-{next(_ids)}"
        self.addr = free_addr()
        bundle = os.path.join(WORK, "bundles", self.cid)
        self.bundle = bundle
        t0 = time.monotonic()
        self.proc = subprocess.Popen(rt.command(bundle, self.cid, data_dir, server_args(self.addr)),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        try:
            wait_port(self.addr, self.proc)
        except RuntimeError:
            self.stop()
            raise
        self.ready_ms = (time.monotonic() - t0) * 1000
        log(f"start app={app} id={self.cid} ready_ms={self.ready_ms:.2f}")

    def stop(self) -> None:
        # SIGTERM to the runtime, which forwards it to the server.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.rt.cleanup(self.cid)
        import shutil
        shutil.rmtree(self.bundle, ignore_errors=True)
        log(f"stop app={self.app} id={self.cid}")


class App:
    """One app: its containers and policy."""

    def __init__(self, name: str, data_dir: str, rt: Runtime, mode: str, keep_warm: float):
        self.name, self.data_dir, self.rt, self.mode, self.keep_warm = name, data_dir, rt, mode, keep_warm
        self.lock = threading.Lock()
        self.warm: Container | None = None
        self.last_used = time.monotonic()
        self.in_flight = 0

    def forward(self, method, target, headers, body):
        if self.mode == "per-request":
            c = Container(self.rt, self.name, self.data_dir)
            try:
                return _call(c.addr, method, target, headers, body)
            finally:
                # Stopped after the answer is sent, off the request's path.
                threading.Thread(target=c.stop, daemon=True).start()
        with self.lock:
            if self.warm is None or self.warm.proc.poll() is not None:
                self.warm = Container(self.rt, self.name, self.data_dir)
            c = self.warm
            self.in_flight += 1
        try:
            return _call(c.addr, method, target, headers, body)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.last_used = time.monotonic()

    def reap_if_idle(self) -> None:
        with self.lock:
            idle = time.monotonic() - self.last_used
            if self.warm is None or self.in_flight or idle < self.keep_warm:
                return
            c, self.warm = self.warm, None
        c.stop()

    def stop(self) -> None:
        with self.lock:
            c, self.warm = self.warm, None
        if c is not None:
            c.stop()


def _call(addr, method, target, headers, body):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, target, body=body or None,
                     headers={k: v for k, v in headers if k.lower() not in HOP})
        r = conn.getresponse()
        return r.status, r.reason, [(k, v) for k, v in r.getheaders() if k.lower() not in HOP], r.read()
    finally:
        conn.close()


def handler_for(app: App):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            # HTTP/1.1 with keep-alive: one request after another on the connection.
            while True:
                line = self.rfile.readline(65537)
                if not line.strip():
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers, length, close = [], 0, False
                while True:
                    h = self.rfile.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers.append((k.strip(), v.strip()))
                    if k.strip().lower() == "content-length":
                        length = int(v)
                    if k.strip().lower() == "connection" and v.strip().lower() == "close":
                        close = True
                body = self.rfile.read(length) if length else b""
                try:
                    status, reason, rh, rb = app.forward(method, target, headers, body)
                except Exception as e:  # noqa: BLE001 — the client gets a 502, the log says why
                    log(f"error app={app.name}: {e}")
                    status, reason, rh, rb = 502, "Bad Gateway", [("content-type", "text/plain")], f"{e}\n".encode()
                head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in rh)
                head += f"content-length: {len(rb)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n"
                self.wfile.write(head.encode("latin-1") + rb)
                self.wfile.flush()
                if close:
                    return
    return Handler


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runtime", required=True)
    p.add_argument("--runtime-path", required=True)
    p.add_argument("--rootfs", required=True)
    p.add_argument("--mode", choices=["per-request", "keep-warm"], required=True)
    p.add_argument("--keep-warm", type=float, default=30.0)
    p.add_argument("--app", action="append", required=True, help="NAME=HOST:PORT=DATA_DIR")
    a = p.parse_args()
    rt = Runtime(a.runtime, a.runtime_path, a.rootfs)
    apps, servers = [], []
    for spec in a.app:
        name, addr, data = spec.split("=", 2)
        app = App(name, data, rt, a.mode, a.keep_warm)
        host, port = addr.rsplit(":", 1)
        srv = Server((host, int(port)), handler_for(app))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        apps.append(app)
        servers.append(srv)
        log(f"app {name} listening on http://{addr}/ ({a.mode})")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.25):
        if a.mode == "keep-warm":
            for app in apps:
                app.reap_if_idle()
    for srv in servers:
        srv.shutdown()
    for app in apps:
        app.stop()
    # The front's own share (a Go watchdog would cost less than this Python
    # proxy) against the runtime's and the containers' (reaped children).
    t = os.times()
    log(f"cpu front_s={t.user + t.system:.3f} children_s={t.children_user + t.children_system:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
