"""The energy model of benches/energy.py (issue 19): joules estimated from
CPU time and resident memory, in the style of Kepler and Scaphandre, because
these VMs have no RAPL (no /sys/class/powercap). Where RAPL is readable the
measured joules are reported beside the estimate, never mixed with it.

    E = cpu_s × W_busy_core  +  ∫ idle_W × (server's memory / machine's memory) dt

- W_busy_core: the power one fully busy vCPU adds over idle. Cloud Carbon
  Footprint (CCF) estimates a vCPU's power as min + utilisation × (max − min)
  from SPECpower results; its per-microarchitecture min and max watts per
  vCPU (thread) are the table Kepler ships as data/power_data.csv. The
  defaults are that table's Cascade Lake row (min 0.639 W, max 3.967 W per
  thread), the newest Intel Xeon in it: this VM reports an Intel Xeon whose
  flags (AMX, AVX512-FP16) are Sapphire Rapids', which the table lacks.
- idle_W: the machine's idle power, CCF's min watts × vCPUs (2 × 0.639 W
  here). A server that holds memory holds a slice of the machine that no
  other work can be packed into, so it is charged that share of the idle
  power (the "wasted memory time" Shahrad et al. count against keep-alive).
  Scaphandre would split idle power by CPU share instead, which charges a
  sleeping server nothing; `--idle-share cpu` does that.

Every figure the model yields is an ESTIMATE; the parameters are printed
beside each result and can be overridden on the command line."""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass

from . import procfs

CCF_SOURCE = ("Cloud Carbon Footprint coefficients (SPECpower-derived), as shipped in Kepler's "
              "data/power_data.csv: Cascade Lake row, min 0.6389 W and max 3.9673 W per vCPU thread; "
              "https://github.com/sustainable-computing-io/kepler/blob/main/data/power_data.csv, "
              "https://www.cloudcarbonfootprint.org/docs/methodology")
CCF_MIN_W = 0.6389493581523519
CCF_MAX_W = 3.9673047343937564


def mem_total_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


@dataclass
class Model:
    watts_per_core: float  # a fully busy vCPU, over idle
    idle_watts: float  # the whole machine, idle
    idle_share: str  # "memory" or "cpu" or "none"
    mem_total_kib: int
    nproc: int
    source_busy: str
    source_idle: str
    rapl: str

    def joules(self, cpu_s: float, wall_s: float, mem_kib_s: float) -> dict:
        """Estimated joules for `cpu_s` of CPU over `wall_s`, while the server
        held `mem_kib_s` KiB·s of memory (its memory integrated over time)."""
        active = cpu_s * self.watts_per_core
        if self.idle_share == "memory" and self.mem_total_kib:
            idle = self.idle_watts * mem_kib_s / self.mem_total_kib
        elif self.idle_share == "cpu" and wall_s > 0:
            # Scaphandre-style: the idle power split by the share of the
            # machine's CPU capacity the server used in the window.
            idle = self.idle_watts * wall_s * min(1.0, cpu_s / (wall_s * self.nproc))
        else:
            idle = 0.0
        return {"active_j": active, "idle_share_j": idle, "total_j": active + idle}

    def describe(self) -> str:
        return (f"ESTIMATE (no RAPL: {self.rapl}). E = CPU-s × {self.watts_per_core:.3f} W per busy vCPU "
                f"+ {self.idle_watts:.3f} W idle × the server's {self.idle_share} share "
                f"(machine: {self.nproc} vCPUs, {self.mem_total_kib / 1048576:.1f} GiB). "
                f"Busy watts: {self.source_busy}. Idle watts: {self.source_idle}.")

    def as_dict(self) -> dict:
        return asdict(self)


def add_args(p) -> None:
    g = p.add_argument_group("energy model (an estimate; see harness/energy_model.py)")
    g.add_argument("--watts-per-core", type=float, default=None,
                   help=f"watts one busy vCPU adds over idle (default CCF max − min = {CCF_MAX_W - CCF_MIN_W:.3f})")
    g.add_argument("--idle-watts", type=float, default=None,
                   help=f"the machine's idle watts (default CCF min × nproc = {CCF_MIN_W:.3f} × nproc)")
    g.add_argument("--idle-share", choices=["memory", "cpu", "none"], default="memory",
                   help="how a server's share of idle power is taken (default: its share of the machine's memory)")
    g.add_argument("--watts-source", default=None, help="where your --watts-per-core/--idle-watts come from (printed)")


def from_args(a) -> Model:
    n = os.cpu_count() or 1
    own = a.watts_source or "given on the command line"
    busy = a.watts_per_core if a.watts_per_core is not None else CCF_MAX_W - CCF_MIN_W
    idle = a.idle_watts if a.idle_watts is not None else CCF_MIN_W * n
    return Model(busy, idle, a.idle_share, mem_total_kib(), n,
                 own if a.watts_per_core is not None else "CCF max − min per vCPU; " + CCF_SOURCE,
                 own if a.idle_watts is not None else f"CCF min per vCPU × {n} vCPUs (same source)",
                 procfs.rapl_status())


def perf_status() -> dict:
    """Whether `perf stat -e instructions,cycles` counts anything here (a VM
    without a virtual PMU answers `<not supported>`)."""
    try:
        r = subprocess.run(["perf", "stat", "-x", ",", "-e", "instructions,cycles", "true"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"supported": False, "why": f"perf cannot run: {e}"}
    text = r.stderr.strip()
    ok = r.returncode == 0 and "not supported" not in text and "not counted" not in text
    return {"supported": ok, "output": text[-500:],
            "why": "" if ok else "`perf stat -e instructions,cycles true` answers <not supported> (no PMU in this VM)"}
