"""CPU and memory of several process trees over a window, for servers that
start and exit inside it (socket activation, containers per request).

procfs.snapshot sums the live processes only: a server that exited in the
window takes its CPU time with it. Here each live process also contributes
its cutime + cstime, the CPU of the children it has reaped, so a child that
ran and exited (nebula up under nebula-launch, a container under runc) still
counts, once, in its reaper's figures."""

from __future__ import annotations

import re
import time

from . import procfs

_PSS = re.compile(r"^Pss:\s+(\d+)", re.M)


def tree_cpu_s(roots: list[int]) -> float:
    """utime + stime + cutime + cstime of every live process in the trees."""
    total = 0
    for pid in {p for r in roots for p in procfs.tree(r)}:
        f = procfs._stat_fields(pid)
        if f:
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / procfs.TICKS


def tree_mem_kib(roots: list[int]) -> tuple[int, int]:
    """(RSS, PSS) summed over the trees; PSS counts shared pages (the same
    binary in 40 processes) once in total, RSS once per process."""
    rss = pss = 0
    for pid in {p for r in roots for p in procfs.tree(r)}:
        rss += procfs._kib(procfs._status(pid).get("VmRSS"))
        text = procfs._read(f"/proc/{pid}/smaps_rollup") or ""
        m = _PSS.search(text)
        pss += int(m.group(1)) if m else 0
    return rss, pss


class MemSampler(procfs.Sampler):
    """Samples the trees' RSS and PSS every `period` s in a thread: peak and
    the PSS integral (KiB·s, the model's idle share). `roots` is read at
    each sample, so the caller may add roots while it runs."""

    def __init__(self, roots: list[int], period: float = 1.0):
        super().__init__(root=0, period=period)
        self.roots = roots
        self.peak_rss_kib = self.peak_pss_kib = 0
        self.pss_kib_s = 0.0
        self.samples = 0
        self._last = None

    def _sample(self):
        now = time.monotonic()
        rss, pss = tree_mem_kib(list(self.roots))
        if self._last is not None:
            t0, p0 = self._last
            self.pss_kib_s += (now - t0) * (p0 + pss) / 2  # trapezoids
        self._last = (now, pss)
        self.peak_rss_kib, self.peak_pss_kib = max(self.peak_rss_kib, rss), max(self.peak_pss_kib, pss)
        self.samples += 1

