"""How busy the machine is with other work: CPU time used by other processes, measured, not guessed.

`CpuMeter` reads the machine's busy CPU time (`/proc/stat`) and this process's own CPU time
(`os.times`, children included) at two moments; the difference is the work of *other* processes,
in cores: 0 on an idle machine, 1.0 when another process keeps one core busy. The load average is
reported beside it, but it lags by a minute and counts this process too, so the verdict
(`contended`) comes from the meter. Where `/proc/stat` is missing (not Linux) the meter falls back
to the 1-minute load average minus this process's threads.

What it is not: a profiler or a scheduler; it explains a slow run, it does not prevent one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

CONTENDED_CORES = 0.5  # other processes using more than half a core on average: the run was contended


def _busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all cores), or None without /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


@dataclass
class CpuMeter:
    """Other processes' CPU use between `start()` and `read()`, in cores."""

    busy: float | None = None
    own: float = 0.0
    wall: float = 0.0

    def start(self) -> CpuMeter:
        self.busy, self.own, self.wall = _busy_seconds(), _own_seconds(), time.perf_counter()
        return self

    def read(self, own_threads: int = 1) -> float:
        """Cores kept busy by other processes since `start()` (>= 0)."""
        elapsed = max(1e-6, time.perf_counter() - self.wall)
        busy = _busy_seconds()
        if busy is None or self.busy is None:
            la = load_average()
            return max(0.0, (la or 0.0) - own_threads)
        others = (busy - self.busy) - (_own_seconds() - self.own)
        return max(0.0, others / elapsed)


def sample_others(seconds: float = 0.5) -> float:
    """Other processes' CPU use over a short idle wait, in cores (call it before starting work)."""
    meter = CpuMeter().start()
    time.sleep(seconds)
    return meter.read(own_threads=0)


def describe(others_before: float, others_during: float, cores: int | None = None) -> dict[str, object]:
    """The report's `machine` section: cores, other processes' load before and during, the verdict."""
    cores = cores or os.cpu_count() or 1
    contended = max(others_before, others_during) > CONTENDED_CORES
    note = (f"contended: other processes used {others_during:.1f} of {cores} cores during training "
            f"({others_before:.1f} before); expect fewer steps and a weaker model than on a quiet machine"
            if contended else f"quiet: other processes used {others_during:.1f} of {cores} cores")
    return {"cores": cores, "others_cores_before": round(others_before, 2),
            "others_cores_during": round(others_during, 2), "load_average": load_average(),
            "contended": contended, "note": note}
