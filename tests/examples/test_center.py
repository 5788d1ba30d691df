"""The center example: ten transitions, the one-hour timer, the 0am/3am checks, stamps, the persisted machine.

Every test runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from examples.center import (
    Base,
    Center,
    CenterState,
    CenterTransitions,
    MachineState,
    MachineTransition,
    Station,
    diagram,
)
from statetype import ProtectedStateError, TransitionNotAllowed

CreateAll = Callable[[sa.MetaData], None]
UTC = dt.timezone.utc
DAY = dt.datetime(2026, 3, 2, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 0) -> dt.datetime:
    return DAY + dt.timedelta(days=day, hours=hour, minutes=minute)


def naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture
def center(engine: sa.Engine, create_all: CreateAll) -> Center:
    create_all(Base.metadata)
    center = Center(engine)
    center.install()
    return center


def row(engine: sa.Engine, station_id: int) -> tuple[str, dt.datetime | None, str | None, str | None]:
    with engine.connect() as conn:
        r = conn.execute(
            sa.select(Station.state, Station.status_start, Station.current_user, Station.job).where(Station.id == station_id)
        ).one()
    return (r.state.name, r.status_start, r.current_user, r.job)


def test_the_machine_is_persisted_in_tables(center: Center, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        states = conn.execute(sa.select(MachineState.value, MachineState.initial).order_by(MachineState.name)).all()
        edges = conn.execute(sa.select(MachineTransition.name, MachineTransition.from_value, MachineTransition.to_value, MachineTransition.timer_seconds, MachineTransition.guards)).all()
    assert sorted((s.value.value, s.initial) for s in states) == [
        ("edit", False), ("free", True), ("reco_prod", False), ("reco_trans", False), ("wait00_trans", False), ("wait03_prod", False)
    ]
    assert len({e.name for e in edges}) == 10 and len(edges) == 11  # recall leaves both waiting states
    by_name = {(e.name, e.from_value.value): e for e in edges}
    assert by_name["timeout", "edit"].timer_seconds == 3600
    assert by_name["timeout", "edit"].to_value is CenterState.is_free
    assert by_name["run_trans", "wait00_trans"].guards == "at_midnight"
    assert ("recall", "wait03_prod") in by_name

    center.install()  # exporting again replaces the rows, it does not add to them
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(MachineTransition)) == 11
        assert conn.scalar(sa.select(sa.func.count()).select_from(MachineState)) == 6
        # every edge in the table is one the registry allows
        for e in conn.execute(sa.select(MachineTransition.name, MachineTransition.from_value)):
            assert getattr(CenterTransitions, e.name).allows_from(e.from_value, None)


def test_a_transfer_day_stamps_every_change(center: Center, engine: sa.Engine) -> None:
    s1 = center.add_station("ws-1")
    assert row(engine, s1) == ("is_free", None, None, None)

    center.take(s1, "ann", "invoices", now=at(22))
    assert row(engine, s1) == ("is_edit", naive(at(22)), "ann", "invoices")
    assert center.actions(s1, "bob", now=at(22, 5)) == []  # only the holder may act
    with pytest.raises(TransitionNotAllowed) as refused:
        center.do(s1, "release", "bob", now=at(22, 5))
    assert [r.kind for r in refused.value.verdict.reasons] == ["permission"]
    assert center.actions(s1, "ann", now=at(22, 5)) == ["release", "submit_trans", "submit_prod"]

    center.do(s1, "submit_trans", "ann", now=at(23))
    assert row(engine, s1) == ("is_wait00_trans", naive(at(23)), "ann", "invoices")

    assert center.tick(at(23, 30)) == (0, 0, 0)  # not midnight yet
    assert center.tick(at(0, 1, day=1)).transferred == 1
    assert row(engine, s1) == ("is_reco_trans", naive(at(0, 1, day=1)), "system", "invoices")

    center.do(s1, "close_trans", "cy", now=at(6, day=1))
    assert row(engine, s1) == ("is_free", naive(at(6, day=1)), None, None)
    assert center.history(s1) == [
        ("take", "free", "edit", "ann"),
        ("submit_trans", "edit", "wait00_trans", "ann"),
        ("run_trans", "wait00_trans", "reco_trans", "system"),
        ("close_trans", "reco_trans", "free", "cy"),
    ]


def test_the_3am_check_applies_only_at_3am(center: Center, engine: sa.Engine) -> None:
    s1, s2, s3 = (center.add_station(f"ws-{n}") for n in (1, 2, 3))
    for s in (s1, s2, s3):
        center.take(s, "ann", "batch", now=at(20))
    center.do(s1, "submit_prod", "ann", now=at(21))
    center.do(s2, "submit_prod", "ann", now=at(21))
    center.do(s3, "submit_trans", "ann", now=at(21))

    with pytest.raises(TransitionNotAllowed) as refused:
        center.do(s1, "run_prod", "system", now=at(2, 59, day=1))
    assert [(r.kind, r.message) for r in refused.value.verdict.reasons] == [("guard", "The production runs at 3am only.")]
    assert center.tick(at(0, 0, day=1)) == (0, 1, 0)  # midnight: the transfer only
    assert center.tick(at(3, 0, day=1)) == (0, 0, 2)  # 3am: both productions, one UPDATE
    assert center.board(CenterState.is_reconciling) == [
        ("ws-1", "is_reco_prod", "system"), ("ws-2", "is_reco_prod", "system"), ("ws-3", "is_reco_trans", "system")
    ]
    assert row(engine, s2)[1] == naive(at(3, 0, day=1))
    assert center.tick(at(3, 1, day=1)) == (0, 0, 0)  # nothing left waiting


def test_an_idle_edit_is_released_after_one_hour(center: Center, engine: sa.Engine) -> None:
    s1, s2 = center.add_station("ws-1"), center.add_station("ws-2")
    center.take(s1, "ann", "draft", now=at(10))
    center.take(s2, "bob", "draft", now=at(10, 30))
    with pytest.raises(TransitionNotAllowed) as refused:
        center.do(s1, "timeout", "ann", now=at(12))
    assert [r.kind for r in refused.value.verdict.reasons] == ["timer"]
    assert "timeout" not in center.actions(s1, "ann", now=at(12))

    assert center.tick(at(10, 59)).released == 0
    assert center.tick(at(11, 0)).released == 1
    assert row(engine, s1) == ("is_free", naive(at(11)), None, None)
    assert row(engine, s2)[0] == "is_edit"
    assert center.history(s1)[-1] == ("timeout", "edit", "free", "system")
    assert center.tick(at(11, 30)).released == 1
    assert center.board() == [("ws-1", "is_free", None), ("ws-2", "is_free", None)]

    station = center.station(s1)
    with pytest.raises(ProtectedStateError):
        station.state = CenterState.is_edit


def test_recall_from_a_waiting_state(center: Center, engine: sa.Engine) -> None:
    s1 = center.add_station("ws-1")
    center.take(s1, "ann", "report", now=at(9))
    center.do(s1, "submit_prod", "ann", now=at(9, 30))
    assert CenterState.is_waiting.states == (CenterState.is_wait00_trans, CenterState.is_wait03_prod)
    center.do(s1, "recall", "ann", now=at(9, 45))
    assert row(engine, s1) == ("is_edit", naive(at(9, 45)), "ann", "report")
    center.do(s1, "release", "ann", now=at(9, 50))
    assert [h[0] for h in center.history(s1)] == ["take", "submit_prod", "recall", "release"]


def test_diagram_export() -> None:
    text = diagram()
    assert text.startswith("stateDiagram-v2")
    assert "[*] --> is_free" in text
    assert "is_edit --> is_free: Idle timeout [after 1 hour since status_start]" in text
    assert "is_wait00_trans --> is_reco_trans: 0am transfer [if at_midnight - The transfer runs at 0am only.]" in text
    assert text.count("-->") == 12  # the initial arrow and eleven edges
