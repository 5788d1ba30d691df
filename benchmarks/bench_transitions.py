"""Transitions against hand-written SQLAlchemy (targets: docs/performance.md).

* ``transitions``: an in-memory transition on a transient instance against
  the same check-and-assign by hand on the same instance, without hooks
  (<= 1.5x) and with a guard and an execute hook (<= 2x);
* ``available``: ``tx.available(obj)`` for a registry of 10 transitions
  (informational: ns per call);
* ``persisted``: 10k per-row transitions in one commit against a hand-written
  ORM loop doing the same checks: plain (<= 1.15x), with a guard and an
  execute hook that stamps a column (<= 1.3x), and with history against the
  loop adding one log row per step, without and with the guard and the hook
  (<= 1.3x);
* ``bulk``: 100k rows in one set-based transition against the same UPDATE
  written by hand with ids returned (<= 1.1x), and with history against a raw
  UPDATE plus a raw INSERT ... SELECT (<= 1.2x).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from harness import Result, Settings, benchmark, compare_timeit, compare_with_setup, timed_with_setup
from models import NOW, Base, BenchState, PlainRow, StatedRow
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from statetype import AppliedStep, Transition, TransitionLogMixin, Transitions


class BenchLog(TransitionLogMixin, Base):
    __tablename__ = "bench_log"


class Plain(Transitions[StatedRow]):
    publish = Transition(BenchState.is_draft, BenchState.is_published)
    unpublish = Transition(BenchState.is_published, BenchState.is_draft)


class Hooked(Transitions[StatedRow]):
    publish = Transition(BenchState.is_draft, BenchState.is_published)

    @publish.guard
    def has_title(self, row: StatedRow) -> bool:
        """The row needs a title."""
        return bool(row.title)

    @has_title.expression
    def _has_title_sql(self, row: type[StatedRow]) -> ColumnElement[bool]:
        return row.title != ""

    @publish.execute
    def stamp(self, row: StatedRow, data: Mapping[str, Any]) -> None:
        row.start_at = NOW

    @stamp.expression
    def _stamp_sql(self, row: type[StatedRow], now: dt.datetime) -> Mapping[str, Any]:
        return {"start_at": NOW}


class HookedPingPong(Transitions[StatedRow]):
    """Publish and unpublish, each with a guard and an execute hook (the in-memory measure)."""

    publish = Transition(BenchState.is_draft, BenchState.is_published)
    unpublish = Transition(BenchState.is_published, BenchState.is_draft)

    @publish.guard
    @unpublish.guard
    def has_title(self, row: StatedRow) -> bool:
        return bool(row.title)

    @publish.execute
    def stamp(self, row: StatedRow, data: Mapping[str, Any]) -> None:
        row.start_at = NOW

    @unpublish.execute
    def unstamp(self, row: StatedRow, data: Mapping[str, Any]) -> None:
        row.start_at = None


class Logged(Transitions[StatedRow]):
    log = BenchLog
    publish = Transition(BenchState.is_draft, BenchState.is_published)


class HookedLogged(Hooked):
    """Hooked, with history."""

    log = BenchLog


notified: list[int] = []


class Notified(Transitions[StatedRow]):
    publish = Transition(BenchState.is_draft, BenchState.is_published)

    @publish.after_commit
    def ping(self, step: AppliedStep[StatedRow]) -> None:
        notified.append(step.obj.id)


@benchmark("transitions", order=30)
def in_memory(settings: Settings) -> Iterator[Result]:
    """An unsaved (transient) instance: the transition changes it in memory."""
    tx = Plain()
    hooked = HookedPingPong()
    stated = StatedRow(title="x", state=BenchState.is_draft)
    plain = PlainRow(title="x", state=1)
    draft, published = BenchState.is_draft, BenchState.is_published
    namespace = {
        "tx": tx, "hooked": hooked, "stated": stated, "plain": plain, "draft": draft, "published": published,
        "NOW": NOW,
    }
    n = max(settings.accesses // 10, 1000)
    ours, baseline = compare_timeit(
        "tx.publish(stated); tx.unpublish(stated)",
        "if stated.state.is_draft: stated.state = published\nif stated.state.is_published: stated.state = draft",
        namespace,
        n,
        settings.repeats,
    )
    yield Result(f"in-memory publish+unpublish vs check-and-assign, same instance, {n:,}x", ours, baseline, 1.5)
    ours, baseline = compare_timeit(
        "hooked.publish(stated); hooked.unpublish(stated)",
        "if stated.state.is_draft and stated.title:\n    stated.start_at = NOW; stated.state = published\n"
        "if stated.state.is_published and stated.title:\n    stated.start_at = None; stated.state = draft",
        namespace,
        n,
        settings.repeats,
    )
    yield Result(f"in-memory, guard + hook, vs the same by hand, same instance, {n:,}x", ours, baseline, 2.0)
    ours, baseline = compare_timeit(
        "tx.publish(stated); tx.unpublish(stated)",
        "if plain.state == 1: plain.state = 2\nif plain.state == 2: plain.state = 1",
        namespace,
        n,
        settings.repeats,
    )
    yield Result(f"in-memory publish+unpublish vs int check-and-assign, {n:,}x", ours, baseline, 3.0)


class Many(Transitions[StatedRow]):
    """Ten transitions, three of them available from a draft (one behind a guard)."""

    publish = Transition(BenchState.is_draft, BenchState.is_published)
    publish_now = Transition(BenchState.is_draft, BenchState.is_published)
    withdraw = Transition(BenchState.is_published, BenchState.is_withdrawn)
    restore = Transition(BenchState.is_withdrawn, BenchState.is_draft)
    delete = Transition(BenchState.is_draft | BenchState.is_withdrawn, BenchState.is_deleted)
    republish = Transition(BenchState.is_withdrawn, BenchState.is_published)
    unpublish = Transition(BenchState.is_published, BenchState.is_draft)
    retract = Transition(BenchState.is_published, BenchState.is_withdrawn)
    purge = Transition(BenchState.is_withdrawn, BenchState.is_deleted)
    reopen = Transition(BenchState.is_withdrawn, BenchState.is_draft)

    @publish_now.guard
    def has_title(self, row: StatedRow) -> bool:
        return bool(row.title)


@benchmark("available", order=32)
def available(settings: Settings) -> Iterator[Result]:
    """``tx.available(obj)`` with 10 transitions against the same list built by hand."""
    tx = Many()
    stated = StatedRow(title="x", state=BenchState.is_draft)
    assert [b.name for b in tx.available(stated)] == ["publish", "publish_now", "delete"]
    namespace = {"tx": tx, "stated": stated}
    n = max(settings.accesses // 10, 1000)
    ours, baseline = compare_timeit(
        "tx.available(stated)",
        "[name for name, ok in (('publish', stated.state.is_draft), ('publish_now', stated.state.is_draft and "
        "bool(stated.title)), ('delete', stated.state.is_draft or stated.state.is_withdrawn)) if ok]",
        namespace,
        n,
        settings.repeats,
    )
    yield Result(
        f"tx.available(obj), 10 transitions, vs a hand-written list, {n:,}x ({ours / n * 1e9:,.0f} ns per call)",
        ours,
        baseline,
        float("inf"),
    )


def _engine(settings: Settings, rows: int) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{settings.tmpdir / 'transitions.db'}")
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    data = [{"id": i, "title": f"row {i}", "state": 1, "start_at": None} for i in range(1, rows + 1)]
    with engine.begin() as conn:
        conn.execute(sa.insert(PlainRow), data)
        conn.execute(sa.insert(StatedRow), data)
    return engine


def _reset(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(PlainRow).values(state=1, start_at=None))
        conn.execute(sa.update(StatedRow).values(state=1, start_at=None))
        conn.execute(sa.delete(BenchLog))


def fresh(engine: sa.Engine, model: type[Any]) -> Callable[[], tuple[Session, list[Any]]]:
    """The setup of a per-row run: the rows reset, then loaded in key order in a new session."""

    def setup() -> tuple[Session, list[Any]]:
        _reset(engine)
        session = Session(engine)
        return session, list(session.scalars(sa.select(model).order_by(model.id)))

    return setup


def loop(step: Callable[[Any], object]) -> Callable[[tuple[Session, list[Any]]], None]:
    """Apply ``step`` to every loaded object, then commit: one timed run of a per-row benchmark."""

    def run(prepared: tuple[Session, list[Any]]) -> None:
        session, objs = prepared
        for obj in objs:
            step(obj)
        session.commit()
        session.close()

    return run


def by_hand(obj: PlainRow) -> None:
    """The hand-written check-and-assign of a publish."""
    if obj.state == 1:
        obj.state = 2


def by_hand_hooked(obj: PlainRow) -> None:
    """The same with the guard (a title) and the stamp."""
    if obj.state == 1 and obj.title:
        obj.start_at = NOW
        obj.state = 2


@benchmark("persisted", order=40)
def persisted(settings: Settings) -> Iterator[Result]:
    rows = 500 if settings.quick else 10_000
    engine = _engine(settings, rows)
    stated, plain = fresh(engine, StatedRow), fresh(engine, PlainRow)
    try:
        ours, baseline = compare_with_setup(
            (stated, loop(Plain().publish)), (plain, loop(by_hand)), settings.repeats
        )
        yield Result(f"{rows:,} per-row transitions, one commit, vs ORM loop", ours, baseline, 1.15)

        ours, baseline = compare_with_setup(
            (stated, loop(Hooked().publish)), (plain, loop(by_hand_hooked)), settings.repeats
        )
        yield Result(f"{rows:,} per-row, guard + stamping hook, vs ORM loop", ours, baseline, 1.3)

        def baseline_logged(hooked: bool) -> Callable[[tuple[Session, list[PlainRow]]], None]:
            """The ORM loop adding one log row per step (with the guard and the stamp when ``hooked``)."""

            def run(prepared: tuple[Session, list[PlainRow]]) -> None:
                session, objs = prepared
                for obj in objs:
                    if obj.state == 1 and (not hooked or obj.title):
                        if hooked:
                            obj.start_at = NOW
                        obj.state = 2
                        session.add(
                            BenchLog(
                                table_name="plain_row", object_id=str(obj.id), column_name="state",
                                transition="publish", from_value="1", to_value="2", actor=None,
                                created_at=dt.datetime.now(dt.timezone.utc), data=None,
                            )
                        )
                session.commit()
                session.close()

            return run

        ours, baseline = compare_with_setup(
            (stated, loop(Logged().publish)), (plain, baseline_logged(False)), settings.repeats
        )
        yield Result(f"{rows:,} per-row with history, vs ORM loop adding log rows", ours, baseline, 1.3)

        ours, baseline = compare_with_setup(
            (stated, loop(HookedLogged().publish)), (plain, baseline_logged(True)), settings.repeats
        )
        yield Result(f"{rows:,} per-row, guard + stamping hook + history, vs the same ORM loop", ours, baseline, 1.3)
    finally:
        engine.dispose()


@benchmark("bulk", order=50)
def bulk(settings: Settings) -> Iterator[Result]:
    rows = settings.rows
    engine = _engine(settings, rows)
    try:

        def setup() -> Session:
            _reset(engine)
            return Session(engine)

        def ours_bulk(session: Session) -> None:
            result = Plain().publish.bulk(session)
            assert result.count == rows
            session.commit()
            session.close()

        table = StatedRow.__table__

        def baseline_bulk(session: Session) -> None:
            stmt = sa.update(table).where(table.c.state == 1).values(state=2).returning(table.c.id)
            ids = [row[0] for row in session.execute(stmt)]
            assert len(ids) == rows
            session.commit()
            session.close()

        ours, baseline = compare_with_setup((setup, ours_bulk), (setup, baseline_bulk), settings.repeats)
        yield Result(f"bulk publish of {rows:,} rows vs hand-written UPDATE ... RETURNING", ours, baseline, 1.1)

        def ours_logged(session: Session) -> None:
            result = Logged().publish.bulk(session)
            assert result.count == rows
            session.commit()
            session.close()

        log = BenchLog.__table__

        def baseline_logged(session: Session) -> None:
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            session.execute(
                sa.insert(log).from_select(
                    ["table_name", "object_id", "column_name", "transition", "from_value", "to_value", "created_at"],
                    sa.select(
                        sa.literal("stated_row"),
                        sa.cast(table.c.id, sa.String),
                        sa.literal("state"),
                        sa.literal("publish"),
                        sa.literal("1"),
                        sa.literal("2"),
                        sa.literal(now),
                    ).where(table.c.state == 1),
                )
            )
            stmt = sa.update(table).where(table.c.state == 1).values(state=2).returning(table.c.id)
            ids = [row[0] for row in session.execute(stmt)]
            assert len(ids) == rows
            session.commit()
            session.close()

        ours, baseline = compare_with_setup((setup, ours_logged), (setup, baseline_logged), settings.repeats)
        yield Result(
            f"bulk with history, {rows:,} rows, vs raw UPDATE + INSERT ... SELECT", ours, baseline, 1.2
        )

        def ours_notified(session: Session) -> None:
            notified.clear()
            result = Notified().publish.bulk(session)
            session.commit()  # the hooks run here: every row loaded by primary key, in chunks
            assert result.count == rows and len(notified) == rows
            session.close()

        ours, baseline = compare_with_setup((setup, ours_notified), (setup, ours_bulk), settings.repeats)
        per_row = (ours - baseline) / rows * 1e6
        yield Result(
            f"bulk of {rows:,} rows with a trivial after_commit hook vs without ({per_row:.1f} us/row for the hooks)",
            ours,
            baseline,
            float("inf"),  # informational: the hooks' own cost
        )
    finally:
        engine.dispose()



class DueBase(sa.orm.DeclarativeBase):
    pass


class DueRow(DueBase):
    __tablename__ = "due_row"
    __table_args__ = (sa.Index("ix_due_row_state_created_at", "state", "created_at"),)
    id: sa.orm.Mapped[int] = sa.orm.mapped_column(primary_key=True)
    state: sa.orm.Mapped[BenchState] = sa.orm.mapped_column(BenchState())
    created_at: sa.orm.Mapped[dt.datetime]


class Expiring(Transitions[DueRow]):
    expire = Transition(BenchState.is_draft, BenchState.is_deleted, after=dt.timedelta(days=30), since="created_at")


@benchmark("run_due", order=60)
def run_due(settings: Settings) -> Iterator[Result]:
    """run_due's cost follows the due rows, not the table: 1k due rows in 100k vs 1M."""
    due = 100 if settings.quick else 1_000
    small, large = (2_000, 20_000) if settings.quick else (100_000, 1_000_000)
    now = dt.datetime(2026, 6, 1)
    timings: dict[int, float] = {}
    for rows in (small, large):
        engine = sa.create_engine(f"sqlite:///{settings.tmpdir / f'due_{rows}.db'}")
        DueBase.metadata.create_all(engine)
        with engine.begin() as conn:
            # The first `due` rows are drafts older than 30 days; the rest are recent
            # drafts or other states, spread over the table.
            batch = 100_000
            for start in range(0, rows, batch):
                conn.execute(
                    sa.insert(DueRow),
                    [
                        {
                            "id": i,
                            "state": 1 if i <= due or i % 3 else 2,
                            "created_at": now - dt.timedelta(days=40 if i <= due else 1),
                        }
                        for i in range(start + 1, min(start + batch, rows) + 1)
                    ],
                )

        def setup() -> Session:
            with engine.begin() as conn:
                conn.execute(sa.update(DueRow).where(DueRow.id <= due).values(state=1))
            return Session(engine)

        def apply(session: Session) -> None:
            count = Expiring().run_due(session, now=now)
            assert count == due, count
            session.commit()
            session.close()

        timings[rows] = timed_with_setup(setup, apply, settings.repeats)
        engine.dispose()
    yield Result(
        f"run_due, {due:,} due rows: {large:,}-row table vs {small:,}-row table", timings[large], timings[small], 1.5
    )
