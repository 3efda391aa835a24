"""What a Python component can reach under Nebula's closed WASI: each probe
tries something a pure function must not get (files, sockets, the
environment, the real clock, entropy of its own) and reports what happened,
as JSON, for host/tests/it/languages.rs."""

import json
import os
import random
import socket
import time

import wit_world
from wit_world.imports.types import Request, Response, Table


def attempt(f):
    try:
        return f"ok: {f()!r}"
    except BaseException as e:  # noqa: BLE001 - every failure is the answer
        return f"failed: {type(e).__name__}: {e}"


def read_file(path):
    with open(path, "rb") as fh:
        return len(fh.read())


def write_file(path):
    with open(path, "w") as fh:
        fh.write("a pure function was here")
    return path


def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect((host, port))
    return "connected"


def resolve(name):
    return socket.getaddrinfo(name, 80)


class WitWorld(wit_world.WitWorld):
    def handle(self, req: Request, data: list[Table]) -> Response:
        seen = {
            "read_etc_passwd": attempt(lambda: read_file("/etc/passwd")),
            "read_relative": attempt(lambda: read_file("probe.py")),
            "list_root": attempt(lambda: os.listdir("/")),
            "write_file": attempt(lambda: write_file("/tmp/nebula-py-probe")),
            "cwd": attempt(os.getcwd),
            "environ": sorted(os.environ.keys()),
            "connect_loopback": attempt(lambda: connect("127.0.0.1", 9)),
            "resolve": attempt(lambda: resolve("localhost")),
            "time_ms": int(time.time() * 1000),
            "monotonic_ns": time.monotonic_ns(),
            "urandom": os.urandom(8).hex(),
            "random_module": random.random(),
            "seed": str(req.seed),
            "now_ms": req.now_ms,
        }
        print("py probe ran")
        return Response(
            status=200,
            headers=[("content-type", "application/json")],
            body=json.dumps(seen, sort_keys=True).encode(),
            effects=[],
        )
