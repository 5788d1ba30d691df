"""Memory: loading rows allocates no more than with an Integer column
(tracemalloc peak, target <= 1.05x), and per-row transitions keep nothing
alive once committed (AppliedStep objects left, and bytes still allocated
after commit against the hand-written ORM loop, informational)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from bench_transitions import Hooked, _engine, fresh
from harness import Result, Settings, benchmark, timing
from models import NOW, PlainRow, StatedRow, sqlite_engine
from sqlalchemy.orm import Session

from statetype import AppliedStep


def _peak(func: Callable[[], object]) -> int:
    """Peak bytes allocated while ``func`` runs (what it returns is dropped afterwards)."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = func()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del kept
    return peak


@benchmark("memory", order=70)
def memory(settings: Settings) -> Iterator[Result]:
    engine = sqlite_engine(settings.tmpdir, settings.rows)
    rows = f"{settings.rows // 1000}k" if settings.rows >= 1000 else str(settings.rows)
    try:

        def load(model: type[Any]) -> Callable[[], object]:
            def run() -> object:
                with Session(engine) as session:
                    return session.scalars(sa.select(model)).all()

            return run

        ours = [_peak(load(StatedRow)) for _ in range(settings.repeats)]
        baseline = [_peak(load(PlainRow)) for _ in range(settings.repeats)]
        yield Result(
            f"ORM load {rows} rows, tracemalloc peak", timing(ours), timing(baseline), 1.05, unit="B"
        )
    finally:
        engine.dispose()

    count = 500 if settings.quick else 10_000
    engine = _engine(settings, count)
    try:

        def retained(model: type[Any], step: Callable[[Any], object]) -> tuple[int, int]:
            """Bytes still allocated after commit (objects kept loaded), and AppliedSteps alive."""
            session, objs = fresh(engine, model)()
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for obj in objs:
                    step(obj)
                session.commit()
                gc.collect()
                after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
            alive = sum(1 for o in gc.get_objects() if isinstance(o, AppliedStep))
            session.close()
            return after - before, alive

        publish = Hooked().publish

        def by_hand(obj: PlainRow) -> None:
            if obj.state == 1 and obj.title:
                obj.start_at = NOW
                obj.state = 2

        ours_runs = [retained(StatedRow, publish) for _ in range(settings.repeats)]
        baseline_runs = [retained(PlainRow, by_hand) for _ in range(settings.repeats)]
        alive = max(a for _, a in ours_runs)
        yield Result(
            f"{count:,} per-row, guard + hook: bytes allocated after commit vs ORM loop "
            f"({alive} AppliedStep objects alive)",
            timing(max(b, 1) for b, _ in ours_runs),
            timing(max(b, 1) for b, _ in baseline_runs),
            float("inf"),
            unit="B",
        )
    finally:
        engine.dispose()
