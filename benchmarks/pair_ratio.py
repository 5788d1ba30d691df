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

import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_transitions import Hooked, Plain, _engine, by_hand, by_hand_hooked, fresh, loop  # noqa: E402
from harness import Settings, timed_once  # noqa: E402
from models import PlainRow, StatedRow  # noqa: E402


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "hooked"
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 2_000
    ours_step, hand_step = {"plain": (Plain().publish, by_hand), "hooked": (Hooked().publish, by_hand_hooked)}[kind]
    with tempfile.TemporaryDirectory() as tmp:
        engine = _engine(Settings(quick=False, repeats=1, rows=rows, accesses=0, tmpdir=Path(tmp)), rows)
        try:
            ours_run = (fresh(engine, StatedRow), loop(ours_step))
            hand_run = (fresh(engine, PlainRow), loop(hand_step))
            for _ in range(3):  # warm-up
                timed_once(*ours_run)
                timed_once(*hand_run)
            ratios: list[float] = []
            ours: list[float] = []
            hand: list[float] = []
            for i in range(pairs):
                if i % 2:
                    h = timed_once(*hand_run)
                    o = timed_once(*ours_run)
                else:
                    o = timed_once(*ours_run)
                    h = timed_once(*hand_run)
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
