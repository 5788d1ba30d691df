"""Peers, in one run with statetype: an in-memory transition (publish then
unpublish on a mapped instance) in sqlalchemy-fsm and python-statemachine,
against the same hand-written check-and-assign on a plain Integer column.

The peers' ratios are informational (no target of ours applies to them); the
statetype line repeats the ``transitions`` group's measurement so that the
three read side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from harness import Result, Settings, benchmark, compare_timeit
from models import BenchState, PlainRow, StatedRow
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

INFORMATIONAL = float("inf")

try:  # the dev extra installs both peers
    from sqlalchemy_fsm import FSMField, transition
    from statemachine import State, StateMachine
except ImportError as error:
    MISSING: str | None = str(error)
else:
    MISSING = None

    class PeerBase(DeclarativeBase):
        pass

    class FsmRow(PeerBase):
        __tablename__ = "peer_fsm_row"
        id: Mapped[int] = mapped_column(primary_key=True)
        state = sa.Column(FSMField, nullable=False, default="draft")

        @transition(source="draft", target="published")
        def publish(self) -> None:
            pass

        @transition(source="published", target="draft")
        def unpublish(self) -> None:
            pass

    class DocMachine(StateMachine):  # type: ignore[misc]
        draft = State(initial=True, value=1)
        published = State(value=2)
        publish = draft.to(published)
        unpublish = published.to(draft)


@benchmark("peers", order=35)
def peers(settings: Settings) -> Iterator[Result]:
    if MISSING is not None:
        print(f"peers: skipped ({MISSING})")
        return
    from bench_transitions import Plain

    machine_row = PlainRow(title="y", state=1)
    namespace: dict[str, Any] = {
        "tx": Plain(),
        "stated": StatedRow(title="x", state=BenchState.is_draft),
        "plain": PlainRow(title="x", state=1),
        "fsm_row": FsmRow(state="draft"),
        "machine": DocMachine(model=machine_row, state_field="state"),
    }
    baseline_stmt = "if plain.state == 1: plain.state = 2\nif plain.state == 2: plain.state = 1"
    n = max(settings.accesses // 50, 500)
    for label, stmt in [
        ("statetype", "tx.publish(stated); tx.unpublish(stated)"),
        ("sqlalchemy-fsm", "fsm_row.publish.set(); fsm_row.unpublish.set()"),
        ("python-statemachine", "machine.publish(); machine.unpublish()"),
    ]:
        ours, baseline = compare_timeit(stmt, baseline_stmt, namespace, n, settings.repeats)
        target = 3.0 if label == "statetype" else INFORMATIONAL
        yield Result(f"{label}: in-memory publish+unpublish vs int check-and-assign, {n:,}x", ours, baseline, target)
