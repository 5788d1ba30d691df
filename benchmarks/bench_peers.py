"""Peers, in one run with statetype: an in-memory transition (publish then
unpublish on a mapped instance) in sqlalchemy-fsm and python-statemachine,
against the same hand-written check-and-assign on a plain Integer column; and
(``peers-persisted``) 10k per-row persisted transitions in ``transitions``
(one Machine shared by every row) and sqlalchemy-fsm, against the hand-written
ORM loop that the ``persisted`` group compares statetype with. The peers
offer neither a compare-and-set nor history.

The peers' ratios are informational (no target of ours applies to them); the
statetype line repeats the ``transitions`` group's measurement so that the
three read side by side.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from harness import Result, Settings, benchmark, compare_timeit, timed_with_setup
from models import NOW, Base, BenchState, PlainRow, StatedRow
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

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


if MISSING is None:

    class MachineRow(PeerBase):
        """A row driven by the ``transitions`` library: one Machine shared by every row, state as text."""

        __tablename__ = "peer_machine_row"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(50))
        status: Mapped[str] = mapped_column(sa.String(20))
        start_at: Mapped[dt.datetime | None]

        def has_title(self) -> bool:
            return bool(self.title)

        def stamp(self) -> None:
            self.start_at = NOW

    class FsmHookedRow(PeerBase):
        __tablename__ = "peer_fsm_hooked_row"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(50))
        state = sa.Column(FSMField, nullable=False, default="draft")
        start_at: Mapped[dt.datetime | None]

        @transition(source="draft", target="published", conditions=[lambda row: bool(row.title)])
        def publish(self) -> None:
            self.start_at = NOW

    class FsmPlainRow(PeerBase):
        __tablename__ = "peer_fsm_plain_row"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(50))
        state = sa.Column(FSMField, nullable=False, default="draft")

        @transition(source="draft", target="published")
        def publish(self) -> None:
            pass


@benchmark("peers-persisted", order=45)
def peers_persisted(settings: Settings) -> Iterator[Result]:
    """10k per-row persisted transitions in the peers, against the same hand-written ORM loop as ``persisted``."""
    if MISSING is not None:
        print(f"peers-persisted: skipped ({MISSING})")
        return
    from bench_transitions import by_hand, by_hand_hooked, loop
    from transitions import Machine

    rows = 500 if settings.quick else 10_000
    engine = sa.create_engine(f"sqlite:///{settings.tmpdir / 'peers.db'}")
    PeerBase.metadata.create_all(engine)
    Base.metadata.create_all(engine)
    data = [{"id": i, "title": f"row {i}", "start_at": None} for i in range(1, rows + 1)]
    with engine.begin() as conn:
        conn.execute(sa.insert(PlainRow), [{**d, "state": 1} for d in data])
        conn.execute(sa.insert(MachineRow), [{**d, "status": "draft"} for d in data])
        conn.execute(sa.insert(FsmHookedRow), [{**d, "state": "draft"} for d in data])
        conn.execute(sa.insert(FsmPlainRow), [{"id": d["id"], "title": d["title"], "state": "draft"} for d in data])

    def load(model: type[Any]) -> Callable[[], tuple[Session, list[Any]]]:
        def setup() -> tuple[Session, list[Any]]:
            with engine.begin() as conn:
                conn.execute(sa.update(PlainRow).values(state=1, start_at=None))
                conn.execute(sa.update(MachineRow).values(status="draft", start_at=None))
                conn.execute(sa.update(FsmHookedRow).values(state="draft", start_at=None))
                conn.execute(sa.update(FsmPlainRow).values(state="draft"))
            session = Session(engine)
            return session, list(session.scalars(sa.select(model).order_by(model.id)))

        return setup

    plain_machine = Machine(
        model=None, states=["draft", "published"], initial=None, auto_transitions=False, model_attribute="status",
        transitions=[{"trigger": "publish", "source": "draft", "dest": "published"}],
    )
    hooked_machine = Machine(
        model=None, states=["draft", "published"], initial=None, auto_transitions=False, model_attribute="status",
        transitions=[
            {"trigger": "publish", "source": "draft", "dest": "published", "conditions": "has_title", "before": "stamp"}
        ],
    )
    plain_event = plain_machine.events["publish"]
    hooked_event = hooked_machine.events["publish"]
    baseline = timed_with_setup(load(PlainRow), loop(by_hand), settings.repeats)
    baseline_hooked = timed_with_setup(load(PlainRow), loop(by_hand_hooked), settings.repeats)
    for label, model, step, base in [
        ("transitions (shared Machine)", MachineRow, plain_event.trigger, baseline),
        ("transitions (shared Machine), guard + stamping hook", MachineRow, hooked_event.trigger, baseline_hooked),
        ("sqlalchemy-fsm", FsmPlainRow, lambda row: row.publish.set(), baseline),
        ("sqlalchemy-fsm, guard + stamping hook", FsmHookedRow, lambda row: row.publish.set(), baseline_hooked),
    ]:
        ours = timed_with_setup(load(model), loop(step), settings.repeats)
        yield Result(f"{label}: {rows:,} per-row, one commit, vs ORM loop", ours, base, INFORMATIONAL)
    engine.dispose()
