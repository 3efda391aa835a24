"""The container FaaS baseline (issue 19): benches/native's server in an OCI
container started by a real runtime from Debian's packages.

The image is a folder built at run time from the repo's files (never
committed): the release binary, the shared libraries `ldd` lists, and
app.toml (the native server reads its SQL from it; the HTML is compiled in).
The database is bind-mounted read-write at /data, so the fresh container of
each request sees the votes of the ones before it, as a FaaS function's
external store would.

Namespaces: mount, IPC and UTS of its own; the host's network (as
`--network=host`: no CNI or veth setup, which would only add to the
container's start) and the host's PID namespace (the server does not handle
SIGTERM, and as PID 1 of a namespace it would ignore it; `runc run` forwards
SIGTERM to it). runc makes a cgroup (v1 here) per container, as it does
under containerd. Both choices make this baseline's starts cheaper than a
real FaaS platform's, never dearer.

Runtimes are tried in order: crun, runc (CONTAINER_RUNTIME overrides), each
with a smoke test; bubblewrap is the fallback, reported as such."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from .hosts import REPO

WORK = "/tmp/nebula-energy-containers"  # rootfs and runtime state: never in the repo
BINARY = "academemes-native"


def native_binary() -> str:
    return os.environ.get("NATIVE_BIN") or os.path.join(REPO, "target/release", BINARY)


def _libs(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libs.append(path)
    return libs


def build_rootfs(binary: str) -> str:
    """WORK/rootfs: the binary, its libraries and app.toml; rebuilt each run."""
    root = os.path.join(WORK, "rootfs")
    shutil.rmtree(root, ignore_errors=True)
    for path in _libs(binary):
        dest = root + path
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(os.path.realpath(path), dest)
    shutil.copy2(binary, os.path.join(root, BINARY))
    os.makedirs(os.path.join(root, "app"), exist_ok=True)
    shutil.copy2(os.path.join(REPO, "app.toml"), os.path.join(root, "app", "app.toml"))
    for d in ("data", "proc", "dev", "sys", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    return root


def server_args(addr: str) -> list[str]:
    return ["/" + BINARY, "--manifest", "/app/app.toml", "--db", "/data/app.db", "--listen", addr]


class Runtime:
    """An OCI runtime (crun or runc) or bubblewrap, with the rootfs to run."""

    def __init__(self, name: str, path: str, rootfs: str, note: str = ""):
        self.name, self.path, self.rootfs, self.note = name, path, rootfs, note
        self.state = os.path.join(WORK, "state-" + name)
        os.makedirs(self.state, exist_ok=True)
        self._spec = None

    def _base_spec(self) -> dict:
        if self._spec is None:
            tmp = os.path.join(WORK, "spec-" + self.name)
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            subprocess.run([self.path, "spec"], cwd=tmp, check=True, capture_output=True)
            with open(os.path.join(tmp, "config.json")) as f:
                self._spec = json.load(f)
        return json.loads(json.dumps(self._spec))

    def command(self, bundle: str, cid: str, data_dir: str, args: list[str]) -> list[str]:
        """The argv that runs `args` in a fresh container in the foreground;
        writes BUNDLE/config.json first (OCI runtimes only)."""
        if self.name == "bwrap":
            return [self.path, "--ro-bind", self.rootfs, "/", "--bind", data_dir, "/data",
                    "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                    "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--", *args]
        spec = self._base_spec()
        spec["root"] = {"path": self.rootfs, "readonly": True}
        spec["process"]["args"] = args
        spec["process"]["terminal"] = False
        spec["hostname"] = cid[:60]
        ns = spec["linux"]["namespaces"]
        spec["linux"]["namespaces"] = [n for n in ns if n["type"] not in ("pid", "network")]
        # Without a network namespace the kernel refuses a fresh sysfs: bind the host's, read-only.
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/sys"] + [
            {"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "ro", "nosuid", "noexec"]},
            {"destination": "/data", "type": "bind", "source": data_dir, "options": ["rbind", "rw"]},
        ]
        os.makedirs(bundle, exist_ok=True)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        return [self.path, "--root", self.state, "run", "--bundle", bundle, cid]

    def cleanup(self, cid: str) -> None:
        if self.name != "bwrap":
            subprocess.run([self.path, "--root", self.state, "delete", "--force", cid],
                           capture_output=True, timeout=30)

    def describe(self) -> str:
        v = subprocess.run([self.path, "--version"], capture_output=True, text=True).stdout.splitlines()
        return f"{self.name} ({v[0] if v else '?'}; {self.path}){'; ' + self.note if self.note else ''}"


def _smoke(rt: Runtime) -> str | None:
    """Runs the image's binary with --help in a container: None if it works,
    else why not."""
    cid = f"smoke-{rt.name}-{os.getpid()}"
    bundle = os.path.join(WORK, "bundles", cid)
    data = os.path.join(WORK, "smoke-data")
    os.makedirs(data, exist_ok=True)
    try:
        r = subprocess.run(rt.command(bundle, cid, data, ["/" + BINARY, "--help"]),
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    finally:
        rt.cleanup(cid)
        shutil.rmtree(bundle, ignore_errors=True)
    return None if r.returncode == 0 and "--listen" in r.stdout else (r.stderr or r.stdout).strip()[-300:]


def find_runtime(say) -> Runtime | None:
    """The first runtime that can run the image here, or None (the binary is
    missing, or nothing can run a container)."""
    binary = native_binary()
    if not os.access(binary, os.X_OK):
        say(f"container baseline: no {binary}: `cargo build --release -p academemes-native`")
        return None
    rootfs = build_rootfs(binary)
    wanted = [os.environ["CONTAINER_RUNTIME"]] if os.environ.get("CONTAINER_RUNTIME") else ["crun", "runc", "bwrap"]
    failures = []
    for name in wanted:
        path = shutil.which(name)
        if not path:
            failures.append(f"{name}: not installed")
            continue
        note = "not an OCI runtime: bubblewrap namespaces, no cgroup; " + "; ".join(failures) if name == "bwrap" else ""
        rt = Runtime(name, path, rootfs, note)
        why = _smoke(rt)
        if why is None:
            if failures:
                rt.note = rt.note or "not usable here: " + "; ".join(failures)
            return rt
        failures.append(f"{name}: {why.splitlines()[-1] if why else 'failed'}")
    say("container baseline: no runtime can run a container here: " + "; ".join(failures))
    return None


def wait_port(addr: str, proc: subprocess.Popen | None, timeout: float = 30.0) -> float:
    """Polls until `addr` accepts a connection; returns the seconds waited."""
    import socket
    host, port = addr.rsplit(":", 1)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"container exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return time.monotonic() - t0
        except OSError:
            time.sleep(0.0005)
    raise RuntimeError(f"nothing listens on {addr} after {timeout:.0f} s")
