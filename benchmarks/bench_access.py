"""Reading a state on a loaded instance: ``obj.state.is_x`` against
``obj.int_col == 1`` (target <= 2x)."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from harness import Result, Settings, benchmark, compare_timeit
from models import CondRow, PlainRow, StatedRow, sqlite_engine
from sqlalchemy.orm import Session

ACCESS_TARGET = 2.0


@benchmark("access", order=20)
def access(settings: Settings) -> Iterator[Result]:
    engine = sqlite_engine(settings.tmpdir, 8)
    try:
        with Session(engine) as session:
            # Loaded from the database, as an application would see them.
            namespace = {
                "plain_draft": session.get(PlainRow, 4),  # state 1
                "plain_published": session.get(PlainRow, 1),  # state 2
                "stated_draft": session.get(StatedRow, 4),
                "cond_published": session.get(CondRow, 1),
            }
            assert namespace["stated_draft"].state.is_draft  # type: ignore[union-attr]
            assert namespace["cond_published"].state.is_published  # type: ignore[union-attr]
            n = settings.accesses
            count = f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n:,}"
            ours, baseline = compare_timeit(
                "stated_draft.state.is_draft", "plain_draft.state == 1", namespace, n, settings.repeats
            )
            yield Result(f"obj.state.is_draft vs obj.int_col == 1, {count}x (no conditional)", ours, baseline,
                         ACCESS_TARGET)
            # The object is in the conditional's base state, so its bound value
            # cannot be shared: the slowest path for a non-conditional name.
            ours, baseline = compare_timeit(
                "cond_published.state.is_published", "plain_published.state == 2", namespace, n, settings.repeats
            )
            yield Result(f"obj.state.is_published vs obj.int_col == 2, {count}x (with conditional)", ours,
                         baseline, ACCESS_TARGET)
    finally:
        engine.dispose()
