"""What a server's whole process tree costs, read from /proc (and RAPL from
/sys/class/powercap where it is readable)."""

from __future__ import annotations

import glob
import os
import threading
import time
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name (field 2) may hold spaces: split after its ')'.
    return text[text.rindex(")") + 2 :].split()


def tree(root: int) -> list[int]:
    """`root` and every live descendant (Spin, for one, runs its trigger as a child)."""
    children: dict[int, list[int]] = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        pid = int(path.split("/")[2])
        fields = _stat_fields(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


@dataclass
class Snapshot:
    """Counters of the whole tree at one instant."""

    at: float
    cpu_s: float  # user + system, all threads, all processes of the tree
    voluntary: int  # context switches, summed over every thread
    involuntary: int
    rss_kib: int
    hwm_kib: int  # each process's own peak RSS, summed
    threads: int
    energy_uj: int | None

    def minus(self, before: "Snapshot") -> dict:
        d = {
            "seconds": self.at - before.at,
            "cpu_ms": (self.cpu_s - before.cpu_s) * 1000.0,
            "voluntary_switches": self.voluntary - before.voluntary,
            "involuntary_switches": self.involuntary - before.involuntary,
        }
        if self.energy_uj is not None and before.energy_uj is not None:
            d["energy_j"] = (self.energy_uj - before.energy_uj) / 1e6
        return d


def _status(pid: int, tid: int | None = None) -> dict[str, str]:
    path = f"/proc/{pid}/status" if tid is None else f"/proc/{pid}/task/{tid}/status"
    text = _read(path) or ""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _kib(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


def snapshot(root: int) -> Snapshot:
    cpu = 0.0
    vol = invol = rss = hwm = threads = 0
    for pid in tree(root):
        fields = _stat_fields(pid)
        if not fields:
            continue
        # utime, stime are fields 14 and 15 (1-based) of /proc/PID/stat.
        cpu += (int(fields[11]) + int(fields[12])) / TICKS
        st = _status(pid)
        rss += _kib(st.get("VmRSS"))
        hwm += _kib(st.get("VmHWM"))
        for task in glob.glob(f"/proc/{pid}/task/*"):
            tst = _status(pid, int(task.rsplit("/", 1)[1]))
            vol += int(tst.get("voluntary_ctxt_switches", 0))
            invol += int(tst.get("nonvoluntary_ctxt_switches", 0))
            threads += 1
    return Snapshot(time.monotonic(), cpu, vol, invol, rss, hwm, threads, rapl_energy_uj())


def _task_switches(root: int) -> dict[tuple[int, int], int]:
    """(pid, tid) → voluntary + involuntary context switches, live threads only."""
    out = {}
    for pid in tree(root):
        for task in glob.glob(f"/proc/{pid}/task/*"):
            tid = int(task.rsplit("/", 1)[1])
            st = _status(pid, tid)
            if "voluntary_ctxt_switches" in st:
                out[(pid, tid)] = int(st["voluntary_ctxt_switches"]) + int(
                    st.get("nonvoluntary_ctxt_switches", 0)
                )
    return out


class Sampler:
    """Calls `_sample()` every `period` seconds in a thread, from `with` to
    its end, and once more at the end."""

    def __init__(self, root: int, period: float):
        self.root, self.period = root, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        raise NotImplementedError

    def _run(self):
        while True:
            self._sample()
            if self._stop.wait(self.period):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


class Wakeups(Sampler):
    """Context switches of the tree over a window, threads that come and go
    included: /proc has no per-process total of context switches, only each
    live thread's own, so a sum over live threads at two instants goes wrong
    (even negative) when a host's threads exit while it is idle, as Spin's
    do. This samples every thread every `period` seconds and keeps the last
    count seen of each, so a thread that exits still counts up to its last
    sample; a thread born in the window counts from 0. What it can miss: a
    thread's switches after its last sample, and threads that live less than
    `period` — both undercounts, never a negative. Reading /proc does not
    wake the server up."""

    def __init__(self, root: int, period: float = 0.05):
        super().__init__(root, period)
        self._first = _task_switches(root)
        self._last = dict(self._first)
        self.threads_seen = len(self._first)

    def _sample(self):
        self._last.update(_task_switches(self.root))
        self.threads_seen = len(self._last)

    @property
    def count(self) -> int:
        return sum(n - self._first.get(k, 0) for k, n in self._last.items())


def rapl_zones() -> list[str]:
    """Readable top-level RAPL package zones; [] where there are none."""
    zones = []
    for path in sorted(glob.glob("/sys/class/powercap/intel-rapl:*/energy_uj")):
        if path.count(":") == 1 and _read(path) is not None:
            zones.append(path)
    return zones


def rapl_energy_uj() -> int | None:
    zones = rapl_zones()
    if not zones:
        return None
    return sum(int((_read(z) or "0").strip()) for z in zones)


def rapl_status() -> str:
    if rapl_zones():
        return "readable: " + ", ".join(rapl_zones())
    if glob.glob("/sys/class/powercap/*"):
        return "not available (powercap present, no readable intel-rapl energy_uj)"
    return "not available (no /sys/class/powercap on this machine)"


class PeakRss(Sampler):
    """Samples the tree's RSS every `period` seconds in a thread; `.peak_kib`."""

    def __init__(self, root: int, period: float = 0.05):
        super().__init__(root, period)
        self.peak_kib = 0

    def _sample(self):
        total = sum(_kib(_status(pid).get("VmRSS")) for pid in tree(self.root))
        self.peak_kib = max(self.peak_kib, total)
