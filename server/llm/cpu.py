"""How many CPU threads llama.cpp should use now, from how busy other processes keep the machine.

llama.cpp's threads meet at a barrier hundreds of times per token, so one preempted thread stalls the rest: on a
2-core machine with another busy process, 2 threads generated 0.8-4.7 tokens/s where 1 thread made 25-28
(benchmarks/bench_llm.py). Using only the cores others leave idle avoids that cliff.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuSample:
    """A moment's counters: wall clock, CPU seconds busy on the whole machine, and CPU seconds of this process."""

    wall: float
    machine_busy: float
    own: float


def usable_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def parse_proc_stat(text: str, ticks_per_second: int) -> float:
    """CPU seconds spent busy (everything but idle and iowait) from /proc/stat's first line.

    >>> parse_proc_stat("cpu  300 50 150 1000 20 0 0 0 0 0\\ncpu0 1 2 3 4", 100)
    5.0
    """
    fields = [int(value) for value in text.split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / ticks_per_second


def cpu_sample() -> CpuSample | None:
    """The counters now, or None where /proc/stat can't be read (then all cores are used)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            busy = parse_proc_stat(handle.read(), os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
    times = os.times()
    return CpuSample(wall=time.monotonic(), machine_busy=busy, own=times.user + times.system)


def busy_elsewhere(before: CpuSample, after: CpuSample) -> float:
    """Cores that other processes kept busy between two samples, on average.

    >>> busy_elsewhere(CpuSample(0.0, 10.0, 1.0), CpuSample(2.0, 13.0, 2.0))
    1.0
    """
    wall = after.wall - before.wall
    if wall <= 0:
        return 0.0
    return max(0.0, ((after.machine_busy - before.machine_busy) - (after.own - before.own)) / wall)


def pick_threads(cores: int, busy: float) -> int:
    """Threads for the next generation: the cores left idle by others, rounding a mostly idle core up; at least 1.

    >>> pick_threads(2, 0.0), pick_threads(2, 0.3), pick_threads(2, 0.5), pick_threads(2, 1.6), pick_threads(8, 2.2)
    (2, 2, 1, 1, 6)
    """
    return max(1, min(cores, math.floor(cores - busy + 0.3)))


class ThreadAdvisor:
    """Remembers the last sample, so each generation judges the load since the previous one (itself excluded)."""

    min_window = 0.1  # seconds; shorter windows are noise at /proc/stat's 100 Hz, so a short one is waited out
    max_window = 10.0  # seconds; an older sample says little about now, so a fresh short window is measured

    def __init__(self, cores: int | None = None) -> None:
        """Start counting now."""
        self.cores = cores or usable_cores()
        self.threads = self.cores
        self._mark = cpu_sample()

    def advise(self) -> int:
        """Threads to use now, judged over the time since the last call (at least `min_window`, waited if need be)."""
        now = cpu_sample()
        if now is None or self._mark is None:
            return self.threads
        if now.wall - self._mark.wall > self.max_window:
            self._mark = now
        wait = self.min_window - (now.wall - self._mark.wall)
        if wait > 0:
            time.sleep(wait)
            now = cpu_sample() or now
        self.threads = pick_threads(self.cores, busy_elsewhere(self._mark, now))
        self._mark = now
        return self.threads
