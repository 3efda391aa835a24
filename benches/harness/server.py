"""Starting a server, timing its cold start, and stopping it."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time


def exit_on_sigterm():
    """Makes SIGTERM an exception (exit status 128 + 15), so that every
    `finally` of the caller's stops its servers on the way out."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(addr: str, method: str, path: str, accept: str = "", timeout: float = 5.0):
    """One request; (status, body bytes). Raises OSError if nothing answers."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"accept": accept} if accept else {}
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Server:
    """A server process (and its children, in their own process group)."""

    def __init__(self, cmd: list[str], cwd: str, log_path: str, cpu: int | None):
        self.cmd, self.log_path = cmd, log_path
        self._log = open(log_path, "wb")
        pre = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=pre)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, n: int = 3000) -> str:
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def wait_first_response(self, addr: str, method: str, path: str, accept: str,
                            timeout: float = 120.0) -> float:
        """Polls until the server answers `method path` (any status);
        returns process start → first response, in milliseconds."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode} before answering:\n{self.log_tail()}")
            try:
                request(addr, method, path, accept, timeout=timeout)
                return (time.monotonic() - self.started) * 1000.0
            except (ConnectionError, socket.timeout, http.client.HTTPException, OSError):
                time.sleep(0.0005)
        raise RuntimeError(f"no answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self._log.close()
