"""Where the time of a per-row transition goes: cProfile of 10k steps in one session, summarized.

    python benchmarks/profile_steps.py            # plain, guard + hook, history, in memory
    python benchmarks/profile_steps.py hooked     # one of them

For each case it prints the wall time per step without the profiler, then the
profiler's cumulative time per step of the parts of a step (check, hooks,
snapshot, compare-and-set and, inside it, the driver and SQLAlchemy's
execution layer, history, savepoints, bookkeeping, commit). Under cProfile
every Python call costs more, so the parts add up to more than the wall time:
read them as shares. The number of function calls per step (Python functions
and builtins, as cProfile counts them) does not depend on the machine's
speed: on a noisy machine it is the figure to compare before and after a
change. docs/performance.md summarizes a run before and after a change.
"""

from __future__ import annotations

import cProfile
import gc
import importlib
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sqlalchemy as sa  # noqa: E402
from bench_transitions import Hooked, HookedPingPong, Logged, Plain, _engine, fresh  # noqa: E402
from harness import Settings  # noqa: E402
from models import BenchState, StatedRow  # noqa: E402

STEPS = 10_000

# part -> the functions it is made of, as "module:qualname" (or a builtin's profile name); absent ones are skipped.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("call, total", ("statetype.execution:apply",)),
    # The state and guard check runs inline in apply (only refusals call _reasons): the guards' own time shows it.
    ("guards (the registries' functions)", (
        "bench_transitions:Hooked.has_title", "bench_transitions:HookedPingPong.has_title",
        "statetype.transitions:_reasons",
    )),
    # Hooks run inline when no hook takes the AppliedStep (_run_hooks otherwise).
    ("hooks (before, execute)", (
        "statetype.execution:_run_hooks", "bench_transitions:Hooked.stamp", "bench_transitions:HookedPingPong.stamp",
        "bench_transitions:HookedPingPong.unstamp",
    )),
    ("snapshot of objects", ("statetype._atomic:SessionSnapshot.__init__", "statetype._atomic:ObjectSnapshot.__init__")),
    ("compare-and-set, total", ("statetype.execution:_compare_and_set",)),
    ("  driver (cursor.execute)", ("<method 'execute' of 'sqlite3.Cursor' objects>",)),
    ("  SQLAlchemy execution layer", ("sqlalchemy.engine.base:Connection._execute_context",)),
    ("history row", ("statetype.execution:_insert_history",)),
    ("savepoint", ("statetype._atomic:Savepoint.__init__", "statetype._atomic:Savepoint.release")),
    ("bookkeeping (commit attributes)", ("statetype.execution:_committed",)),
    ("session.commit()", ("sqlalchemy.orm.session:Session.commit",)),
]


def _key(name: str) -> tuple[str, int, str] | None:
    """pstats' key of a function named "module:qualname", or of a builtin by its profile name."""
    if ":" not in name:
        return ("~", 0, name)
    module_name, _, qualname = name.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    code = getattr(target, "__code__", None) or getattr(getattr(target, "func", None), "__code__", None)  # a hook's function
    if code is None:
        return None
    return (code.co_filename, code.co_firstlineno, code.co_name)


def _cumulative(stats: pstats.Stats, names: tuple[str, ...]) -> float:
    """Cumulative seconds of ``names``, not counting one of them twice when it calls another."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    keys = {k for k in (_key(n) for n in names) if k is not None and k in raw}
    total = 0.0
    for key in keys:
        _, _, _, cumulative, callers = raw[key]
        total += cumulative - sum(timing[3] for caller, timing in callers.items() if caller in keys)
    return total


def _cases() -> dict[str, tuple[Callable[[], Any], bool]]:
    return {"plain": (Plain, True), "hooked": (Hooked, True), "history": (Logged, True), "in-memory": (HookedPingPong, False)}


def run(case: str, engine: sa.Engine) -> None:
    registry_class, persisted = _cases()[case]
    tx = registry_class()

    def once(profile: cProfile.Profile | None) -> float:
        if persisted:
            session, objs = fresh(engine, StatedRow)()
            publish = tx.publish
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            if profile:
                profile.enable()
            for obj in objs:
                publish(obj)
            session.commit()
            if profile:
                profile.disable()
            elapsed = time.perf_counter() - start
            gc.enable()
            session.close()
            return elapsed
        row = StatedRow(title="x", state=BenchState.is_draft)
        gc.disable()
        start = time.perf_counter()
        if profile:
            profile.enable()
        for _ in range(STEPS // 2):
            tx.publish(row)
            tx.unpublish(row)
        if profile:
            profile.disable()
        elapsed = time.perf_counter() - start
        gc.enable()
        return elapsed

    once(None)
    wall = min(once(None) for _ in range(3))
    profile = cProfile.Profile()
    profiled = once(profile)
    stats = pstats.Stats(profile)
    calls: int = stats.total_calls  # type: ignore[attr-defined]
    print(f"\n{case}: {wall / STEPS * 1e6:.1f} us per step without the profiler "
          f"({profiled / STEPS * 1e6:.1f} us under cProfile); {calls / STEPS:.1f} function calls per step")
    for label, names in PARTS:
        spent = _cumulative(stats, names)
        if spent / STEPS >= 0.05e-6:
            print(f"  {label:34s} {spent / STEPS * 1e6:7.1f} us  {spent / profiled:6.1%}")


def main() -> None:
    cases = sys.argv[1:] or list(_cases())
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(quick=False, repeats=1, rows=STEPS, accesses=0, tmpdir=Path(tmp))
        engine = _engine(settings, STEPS)
        try:
            for case in cases:
                run(case, engine)
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
