"""The benchmark registry and timing helpers behind ``make bench``.

A benchmark group is a function decorated with ``@benchmark("name")`` in a
``bench_*.py`` module of this folder; ``run.py`` imports every such module.
The function receives the run's ``Settings`` and yields ``Result`` tuples:
a label, the median seconds of statetype's code, the median seconds of the
hand-written baseline, and the target ratio from docs/design.md (performance targets).

To add a group: create ``benchmarks/bench_<topic>.py``, decorate a function
with ``@benchmark("<topic>")``, build both sides on the same data, time them
with ``compare()`` (``compare_timeit()`` for micro-benchmarks,
``compare_with_setup()`` when each run needs fresh data) and yield
one ``Result`` per line of the table.
"""

from __future__ import annotations

import gc
import statistics
import time
import timeit
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "GROUPS", "Result", "Settings", "Timing", "benchmark", "compare", "compare_timeit", "compare_with_setup",
    "timed_once", "timed_with_setup", "timing",
]


class Timing(float):
    """A median in seconds that remembers the samples it was taken from (for min/max in the results file)."""

    samples: tuple[float, ...]


def timing(samples: Iterable[float]) -> Timing:
    """The median of ``samples``, carrying them."""
    kept = tuple(samples)
    median = Timing(statistics.median(kept))
    median.samples = kept
    return median


@dataclass(frozen=True)
class Settings:
    """What one run of the benchmarks uses; ``--quick`` shrinks everything."""

    quick: bool
    repeats: int  # timed runs per side; the median is reported
    rows: int  # rows for database benchmarks
    accesses: int  # loop count for attribute-access micro-benchmarks
    tmpdir: Path  # a fresh temporary directory for database files


class Result(NamedTuple):
    label: str
    ours: float  # median seconds (or bytes, see unit), statetype
    baseline: float  # median seconds (or bytes), plain SQLAlchemy
    target: float  # the ratio ours / baseline must not exceed
    unit: str = "s"  # "s": ours/baseline are seconds; "B": bytes

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline

    @property
    def passed(self) -> bool:
        return self.ratio <= self.target


Group = Callable[[Settings], Iterable[Result]]
GROUPS: dict[str, Group] = {}


_ORDER: dict[str, int] = {}


def benchmark(name: str, *, order: int = 100) -> Callable[[Group], Group]:
    """Register a benchmark group under ``name`` (selectable with ``run.py NAME``).

    Groups run and print by ``order``, then by name (docs/design.md's
    order: load 10, access 20, transitions 30, persisted 40, bulk 50).
    """

    def register(func: Group) -> Group:
        if name in GROUPS:
            raise ValueError(f"benchmark group {name!r} is registered twice")
        _ORDER[name] = order
        GROUPS[name] = func
        ordered = sorted(GROUPS.items(), key=lambda item: (_ORDER[item[0]], item[0]))
        GROUPS.clear()
        GROUPS.update(ordered)
        return func

    return register


def _timed(func: Callable[[], Any]) -> float:
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        func()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def compare(
    ours: Callable[[], Any], baseline: Callable[[], Any], repeats: int, *, warmup: int = 1
) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``baseline``, run alternately (so drift hits both)."""
    for _ in range(warmup):
        ours()
        baseline()
    ours_times: list[float] = []
    baseline_times: list[float] = []
    for i in range(repeats):
        # Alternate which side goes first, so neither always runs on a warm cache.
        if i % 2:
            baseline_times.append(_timed(baseline))
            ours_times.append(_timed(ours))
        else:
            ours_times.append(_timed(ours))
            baseline_times.append(_timed(baseline))
    return timing(ours_times), timing(baseline_times)


def compare_timeit(
    ours: str, baseline: str, namespace: dict[str, Any], number: int, repeats: int
) -> tuple[float, float]:
    """Median seconds for ``number`` executions of each statement (timeit, gc off), alternated."""
    ours_timer = timeit.Timer(ours, globals=namespace)
    baseline_timer = timeit.Timer(baseline, globals=namespace)
    ours_timer.timeit(min(number, 10_000))
    baseline_timer.timeit(min(number, 10_000))
    ours_times: list[float] = []
    baseline_times: list[float] = []
    for _ in range(repeats):
        ours_times.append(ours_timer.timeit(number))
        baseline_times.append(baseline_timer.timeit(number))
    return timing(ours_times), timing(baseline_times)


def timed_once(setup: Callable[[], Any], run: Callable[[Any], Any]) -> float:
    """Seconds of ``run(setup())``, gc off; setup is not timed."""
    prepared = setup()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        run(prepared)
        return time.perf_counter() - start
    finally:
        gc.enable()


def timed_with_setup(setup: Callable[[], Any], run: Callable[[Any], Any], repeats: int) -> Timing:
    """Median seconds of ``run(setup())`` over ``repeats`` runs after one warm-up; setup is not timed."""
    timed_once(setup, run)
    return timing([timed_once(setup, run) for _ in range(repeats)])


def compare_with_setup(
    ours: tuple[Callable[[], Any], Callable[[Any], Any]],
    baseline: tuple[Callable[[], Any], Callable[[Any], Any]],
    repeats: int,
) -> tuple[Timing, Timing]:
    """Median seconds of each ``run(setup())`` pair, the two sides alternated run by run.

    Alternating (as :func:`compare` does) makes a machine that speeds up or
    slows down during the benchmark weigh on both sides alike, instead of on
    whichever side ran last.
    """
    timed_once(*ours)
    timed_once(*baseline)
    ours_times: list[float] = []
    baseline_times: list[float] = []
    for i in range(repeats):
        if i % 2:
            baseline_times.append(timed_once(*baseline))
            ours_times.append(timed_once(*ours))
        else:
            ours_times.append(timed_once(*ours))
            baseline_times.append(timed_once(*baseline))
    return timing(ours_times), timing(baseline_times)
