"""A training run's CPU threads, changed while it runs: by hand, or following what other work leaves idle.

Why: a background run on a shared machine should take one thread while other work runs (tests, an evaluation:
with two threads on two cores, the run's second thread would wait on a busy core at every step) and all of them
when the machine is idle, without stopping (a restart costs the data loading and up to a checkpoint interval of
steps). ``OUT/threads`` holds the run's count, written when it starts; a number written there sets it from the
next step on; ``auto`` makes the run measure, at each step, how much CPU the machine's other processes took during
the last one (Linux's /proc/stat less this process's own time) and take the cores they left.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from ..outputs import atomic_write_bytes

NAME = "threads"
AUTO = "auto"


def threads_for(cores: int, others: float) -> int:
    """Threads to run beside ``others`` cores' worth of other work on ``cores`` cores: what is left, rounded (a
    core more than half taken counts as taken), at least one."""
    return max(1, min(cores, int(cores - others + 0.5)))


class CpuLoad:
    """Cores' worth of CPU that other processes took since the last measurement (None for the first call, within
    ``MIN_SECONDS`` of the last measurement, whose sample then stays the start, or where the machine has no
    /proc/stat)."""

    #: Shorter intervals measure noise (the clock ticks are 10 ms).
    MIN_SECONDS = 1.0

    def __init__(self, stat: Path = Path("/proc/stat")) -> None:
        self.stat, self.last = stat, None

    def _sample(self) -> tuple[float, float, float] | None:
        """(wall seconds, the machine's busy CPU seconds, this process's CPU seconds)."""
        try:
            fields = [int(v) for v in self.stat.read_text().split("\n", 1)[0].split()[1:8]]
        except (OSError, ValueError):
            return None
        if len(fields) < 5:
            return None
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait, in clock ticks
        own = os.times()
        return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system

    def others(self) -> float | None:
        now, last = self._sample(), self.last
        if now is not None and last is not None and now[0] - last[0] < self.MIN_SECONDS:
            return None
        self.last = now
        if now is None or last is None:
            return None
        return max(0.0, (now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0])


class ThreadsFile:
    """``OUT/threads`` of a running run (in a run of several processes only the first one's: it alone writes the
    file at the start, so the others could read a previous run's)."""

    def __init__(self, path: Path, write: bool, load: CpuLoad | None = None, auto: bool = False) -> None:
        """``auto``: the run was started so (``--threads auto``), and the file says it."""
        self.load = load or CpuLoad()
        self.path, self.text, self.auto = path, AUTO if auto else str(torch.get_num_threads()), False
        if auto:
            self._follow_load()
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if write:
            atomic_write_bytes(path, f"{self.text}\n".encode())

    def poll(self) -> str | None:
        """Apply what the file asks (or, under ``auto``, what the machine's load leaves): a line to say (a new
        count, or why the file's text is not taken), or None."""
        said = self._read()
        if self.auto and said is None:  # (just switched on: measured from the next step)
            others = self.load.others()
            if others is not None and (n := threads_for(self.cores, others)) != torch.get_num_threads():
                torch.set_num_threads(n)
                return f"{_count(n)}, other work taking {others:.1f} of {self.cores} cores ({self.path}: auto)"
        return said

    def _follow_load(self) -> bool:
        """Switch ``auto`` on: the first sample, from which the next step measures; False where there is no
        /proc/stat to sample."""
        self.load.others()
        self.auto = self.load.last is not None
        return self.auto

    def _read(self) -> str | None:
        try:
            text = self.path.read_text()[:32].strip()
        except (OSError, UnicodeDecodeError):
            return None  # removed or being replaced: the run goes on as it is
        if text == self.text:
            return None
        self.text = text
        if text == AUTO:
            if not self._follow_load():
                return f"{self.path}: auto needs /proc/stat, which this machine has not; {torch.get_num_threads()} kept"
            return f"threads follow the machine's idle cores ({self.path}: auto)"
        self.auto = False
        if not text.isdigit() or not 1 <= int(text) <= 1024:
            return (f"{self.path} holds {text!r}, not a thread count from 1 to 1024 or auto; "
                    f"{torch.get_num_threads()} kept")  # fmt: skip
        torch.set_num_threads(int(text))
        return f"{_count(int(text))} ({self.path})"


def _count(n: int) -> str:
    return f"{n} thread{'s' if n > 1 else ''}"
