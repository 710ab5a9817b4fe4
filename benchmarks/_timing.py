"""The one timing helper the benchmarks share.

Every benchmark times compiled calls the same way: one first call (compilation plus the
first run, reported apart), then the median of repeated calls, each blocked until its
result is ready. `interleaved` alternates several callables so that a ratio holds while the
machine's load changes; `machine_load` is printed with every table, since a ratio taken
under load has misled us before.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax


class Timing(NamedTuple):
    median: float
    """Median wall time of the repeated calls (seconds)."""
    first: float
    """Wall time of the first call: compilation plus one run (seconds)."""
    out: Any
    """The result of the last call."""


def _once(fn: Callable, args: tuple, cpu: list | None = None) -> tuple[float, Any]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    t = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return t, out


def timed(fn: Callable, *args, repeats: int = 7, budget_s: float | None = None) -> Timing:
    """Times `fn(*args)`: the first call apart, then the median of `repeats` calls.

    With `budget_s`, slow calls get fewer repeats (about `budget_s` seconds in all, at
    least three).
    """
    first, out = _once(fn, args)
    if budget_s is not None:
        repeats = max(3, min(repeats, int(budget_s / max(first, 1e-9))))
    times = []
    for _ in range(repeats):
        t, out = _once(fn, args)
        times.append(t)
    return Timing(statistics.median(times), first, out)


def interleaved(
    calls: dict[str, tuple[Callable, tuple]], repeats: int = 7, cpu: dict | None = None
) -> dict[str, Timing]:
    """Times several `name: (fn, args)` calls in alternation; gives a `Timing` for each.

    With a dict `cpu`, also fills `cpu[name]` with the median CPU time of the process over
    the same calls (seconds, all its threads): on a shared, overloaded machine wall time
    counts the waits for a core, CPU time does not.
    """
    firsts, outs, times = {}, {}, {name: [] for name in calls}
    cpus = {name: [] for name in calls}
    for name, (fn, args) in calls.items():
        firsts[name], outs[name] = _once(fn, args)
    for _ in range(repeats):
        for name, (fn, args) in calls.items():
            t, outs[name] = _once(fn, args, cpus[name])
            times[name].append(t)
    if cpu is not None:
        cpu.update({n: statistics.median(cpus[n]) for n in calls})
    return {n: Timing(statistics.median(times[n]), firsts[n], outs[n]) for n in calls}


def machine_load() -> str:
    """The 1-minute load average and the core count, for the header of every table."""
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "unknown"
    return f"load average {load} on {os.cpu_count()} cores ({jax.devices()[0].platform})"
