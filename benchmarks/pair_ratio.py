"""Per-row steps against the hand-written ORM loop, as many short alternated pairs: the median of per-pair ratios.

    python benchmarks/pair_ratio.py hooked            # or plain; 40 pairs of 2,000 rows
    python benchmarks/pair_ratio.py hooked 60 5000    # pairs, rows
    PYTHONPATH=/path/to/older/checkout/src python benchmarks/pair_ratio.py hooked

On a machine whose speed drifts during a run (a shared 2-core VM), the
medians of ``make bench`` can move by 20% between runs. Each pair here times
statetype and the ORM loop back to back on fresh data, so a drift shifts
both sides of a ratio alike; the median and quartiles of the pair ratios are
a steadier comparison of two versions of the code (run the script once per
checkout, alternately). It is a development aid: ``make bench`` remains the
measure of record.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sqlalchemy as sa  # noqa: E402
from bench_transitions import Hooked, Plain, _engine, _reset, by_hand, by_hand_hooked  # noqa: E402
from harness import Settings  # noqa: E402
from models import PlainRow, StatedRow  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402


def _once(engine: sa.Engine, model: type[Any], step: Callable[[Any], object]) -> float:
    _reset(engine)
    session = Session(engine)
    objs = list(session.scalars(sa.select(model).order_by(model.id)))
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for obj in objs:
            step(obj)
        session.commit()
        return time.perf_counter() - start
    finally:
        gc.enable()
        session.close()


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "hooked"
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 2_000
    ours_step, hand_step = {"plain": (Plain().publish, by_hand), "hooked": (Hooked().publish, by_hand_hooked)}[kind]
    with tempfile.TemporaryDirectory() as tmp:
        engine = _engine(Settings(quick=False, repeats=1, rows=rows, accesses=0, tmpdir=Path(tmp)), rows)
        try:
            for _ in range(3):  # warm-up
                _once(engine, StatedRow, ours_step)
                _once(engine, PlainRow, hand_step)
            ratios: list[float] = []
            ours: list[float] = []
            hand: list[float] = []
            for i in range(pairs):
                if i % 2:
                    h = _once(engine, PlainRow, hand_step)
                    o = _once(engine, StatedRow, ours_step)
                else:
                    o = _once(engine, StatedRow, ours_step)
                    h = _once(engine, PlainRow, hand_step)
                ratios.append(o / h)
                ours.append(o)
                hand.append(h)
        finally:
            engine.dispose()
    ratios.sort()
    quarter = len(ratios) // 4
    print(
        f"{kind}, {pairs} pairs of {rows:,} rows: median pair ratio {statistics.median(ratios):.3f} "
        f"(quartiles {ratios[quarter]:.3f}-{ratios[-quarter - 1]:.3f}); per step: statetype "
        f"{statistics.median(ours) / rows * 1e6:.1f} us, ORM loop {statistics.median(hand) / rows * 1e6:.1f} us"
    )


if __name__ == "__main__":
    main()
