"""The harness's own setup: the load generator and a venv with matplotlib,
installed into folders it owns (benches/.tools, benches/.venv, git-ignored)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

BENCHES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(BENCHES, ".tools")
VENV = os.path.join(BENCHES, ".venv")
OHA_VERSION = "1.16.0"


def _say(msg: str):
    print(f"[setup] {msg}", file=sys.stderr, flush=True)


def find_oha() -> str | None:
    local = os.path.join(TOOLS, "bin", "oha")
    if os.access(local, os.X_OK):
        return local
    return shutil.which("oha")


def install_oha() -> str | None:
    """`cargo install --locked oha` into benches/.tools (a few minutes of
    compiling; `--quick` uses wrk from Debian instead to stay fast)."""
    _say(f"installing oha {OHA_VERSION} with cargo into {TOOLS} (takes minutes)")
    r = subprocess.run(["cargo", "install", "--locked", "oha", "--version", OHA_VERSION,
                        "--root", TOOLS])
    return find_oha() if r.returncode == 0 else None


def install_wrk() -> str | None:
    _say("installing wrk from Debian's packages")
    if os.geteuid() != 0:
        _say("not root: cannot apt-get install wrk; install it yourself")
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env,
                       stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        r = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env,
                           stdout=subprocess.DEVNULL)
    return shutil.which("wrk") if r.returncode == 0 else None


def venv_python(allow_install: bool) -> str | None:
    """A Python with matplotlib, from benches/.venv (created if missing)."""
    py = os.path.join(VENV, "bin", "python")
    if os.access(py, os.X_OK) and _has_matplotlib(py):
        return py
    if not allow_install:
        return None
    _say(f"creating {VENV} with matplotlib")
    if not os.access(py, os.X_OK):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "matplotlib==3.10.*"])
    return py if r.returncode == 0 and _has_matplotlib(py) else None


def _has_matplotlib(py: str) -> bool:
    return subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0
