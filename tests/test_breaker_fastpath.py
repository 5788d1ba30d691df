"""Adversarial tests of the fast paths: the direct-cursor statements (``_raw``), the session
connection shortcut, history on SQLite (per-row and bulk; written first there for a while, which these
tests showed wrong), ``available()`` from loaded
members, cached bound transitions and the in-memory paths.

Tests that pass document a guarantee. A test that exposes a defect is kept and marked
``xfail(strict=True)`` (on the backends where it fails only), with the DESIGN.md sentence
it contradicts in its reason.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import importlib.util
import pickle
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    aliased,
    defer,
    mapped_column,
    relationship,
)
from sqlalchemy.types import TypeDecorator

from statetype import (
    AppliedStep,
    ConcurrentTransitionError,
    State,
    StateType,
    Transition,
    TransitionLogMixin,
    Transitions,
)
from statetype._raw import quiet

CreateAll = Callable[[sa.MetaData], None]
FIXED = dt.datetime(2026, 6, 1, 12, 0, 0)


class FState(StateType[int]):
    is_draft = State(1, "Draft")
    is_live = State(2, "Live")
    is_closed = State(3, "Closed")
    is_gone = State(4, "Gone", final=True)


# ====================================================================== raw path models


class Upper(TypeDecorator[str]):
    """A column type whose bind processing must run: stores upper case."""

    impl = sa.String(40)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else value.upper()


class RawBase(DeclarativeBase):
    pass


class Card(RawBase):
    __tablename__ = "bf_card"
    __table_args__ = (sa.CheckConstraint("state <> 2 OR title <> 'forbidden'", name="ck_bf_card_live_title"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(40), default="ok")
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    label: Mapped[str | None] = mapped_column(Upper())
    payload: Mapped[dict[str, Any] | None] = mapped_column(MutableDict.as_mutable(sa.JSON()))
    py_stamp: Mapped[str | None] = mapped_column(sa.String(20), onupdate=lambda: "py-onupdate")
    sql_stamp: Mapped[str | None] = mapped_column(
        sa.String(20), onupdate=sa.func.lower(sa.literal_column("'SQL-ONUPDATE'"))
    )
    tags: Mapped[list[Tag]] = relationship(back_populates="card")


class Tag(RawBase):
    __tablename__ = "bf_tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int | None] = mapped_column(sa.ForeignKey("bf_card.id"))
    card: Mapped[Card | None] = relationship(back_populates="tags")


class Note(RawBase):
    """The caller's own earlier work in the same transaction."""

    __tablename__ = "bf_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(40))


class CardLog(TransitionLogMixin, RawBase):
    __tablename__ = "bf_card_log"


class Plain(Transitions[Card]):
    publish = Transition(FState.is_draft, FState.is_live)
    close = Transition(FState.is_draft | FState.is_live, FState.is_closed)


class Logged(Transitions[Card]):
    log = CardLog
    publish = Transition(FState.is_draft, FState.is_live)


class Hooked(Transitions[Card]):
    log = CardLog
    publish = Transition(FState.is_draft, FState.is_live)
    close = Transition(FState.is_draft | FState.is_live, FState.is_closed)

    @publish.execute
    def decorate(self, card: Card, data: Mapping[str, Any]) -> str:
        card.label = "shouted"
        card.payload = {"tags": ["a", "b"], "n": 1}
        card.py_stamp = "from-hook"  # set explicitly: the Python onupdate must not replace it
        return "decorated"

    @close.execute
    def fail_after_touching(self, card: Card, data: Mapping[str, Any]) -> None:
        card.label = "touched"
        if card.payload is not None:
            card.payload["mutated"] = True  # in place, on a MutableDict
        card.tags.append(Tag(id=99))
        raise RuntimeError("hook failed")


@pytest.fixture
def raw_db(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(RawBase.metadata)
    with Session(engine) as session:
        session.add_all([Card(id=1), Card(id=2, title="forbidden"), Card(id=3)])
        session.commit()
        yield session


def _caller_work(db: Session) -> None:
    db.add(Note(id=1, text="mine"))
    db.flush()


def _notes_after_commit(db: Session) -> list[str]:
    db.commit()
    return list(db.scalars(sa.select(Note.text)))


def _log_count(db: Session) -> int:
    return db.scalar(sa.select(sa.func.count()).select_from(CardLog)) or 0


# ---------------------------------------------------------------------- quiet()


@pytest.mark.parametrize(
    "how", ["named", "once", "retval", "before_execute", "after_execute", "do_execute", "Engine class"]
)
def test_listeners_added_in_unusual_ways_switch_the_direct_path_off_and_see_the_update(
    raw_db: Session, how: str
) -> None:
    engine = raw_db.get_bind()
    assert isinstance(engine, sa.Engine)
    seen: list[str] = []

    def cursor_event(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
        seen.append(statement)
        return (statement, parameters) if how == "retval" else None

    def named_event(**kw: Any) -> None:
        seen.append(kw["statement"])

    def execute_event(conn: Any, clause: Any, *rest: Any) -> None:
        seen.append(str(clause))

    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        seen.append(statement)  # returns None: the dialect still executes

    target: Any = engine
    name: str = "before_cursor_execute"
    fn: Callable[..., Any] = cursor_event
    kw: dict[str, bool] = {}
    if how == "named":
        fn, kw = named_event, {"named": True}
    elif how == "once":
        kw = {"once": True}
    elif how == "retval":
        kw = {"retval": True}
    elif how in ("before_execute", "after_execute"):
        name, fn = how, execute_event
    elif how == "do_execute":
        name, fn = "do_execute", do_execute
    elif how == "Engine class":
        target, name = sa.Engine, "after_cursor_execute"
    event.listen(target, name, fn, **kw)
    try:
        assert not quiet(raw_db.connection())
        card = raw_db.get(Card, 1)
        assert card is not None
        seen.clear()
        Logged().publish(card)
    finally:
        event.remove(target, name, fn)
    if how != "once":
        assert any(s.lstrip().startswith("UPDATE bf_card") for s in seen), seen
    raw_db.commit()
    assert raw_db.scalar(sa.select(Card.state).where(Card.id == 1)) is FState.is_live
    assert raw_db.scalars(sa.select(CardLog.object_id)).all() == ["1"]


def test_echo_debug_logs_the_update(db_url: sa.URL, create_all: CreateAll, caplog: pytest.LogCaptureFixture) -> None:
    create_all(RawBase.metadata)
    loud = sa.create_engine(db_url, echo="debug")
    try:
        with Session(loud) as session:
            session.add(Card(id=1))
            session.commit()
            assert not quiet(session.connection())
            card = session.get(Card, 1)
            assert card is not None
            Logged().publish(card)
            session.commit()
            assert session.scalar(sa.select(Card.state)) is FState.is_live
    finally:
        loud.dispose()
    assert any(r.getMessage().startswith("UPDATE bf_card") for r in caplog.records)


def test_hidden_parameters_stay_hidden_in_a_direct_path_error(db_url: sa.URL, create_all: CreateAll) -> None:
    create_all(RawBase.metadata)
    hidden = sa.create_engine(db_url, hide_parameters=True)
    try:
        with Session(hidden) as session:
            session.add(Card(id=2, title="forbidden"))
            session.commit()
            assert quiet(session.connection())
            card = session.get(Card, 2)
            assert card is not None
            with pytest.raises(sa.exc.DBAPIError) as raised:
                Plain().publish(card)
            assert raised.value.hide_parameters
            assert "parameters hidden" in str(raised.value)
            assert card.state.is_draft
    finally:
        hidden.dispose()


class Converted(Exception):
    pass


@pytest.mark.parametrize("registry", [Plain, Hooked])  # without history: PostgreSQL's pipelined savepoint
def test_a_handle_error_listener_that_converts_the_error_is_honoured(raw_db: Session, registry: type[Any]) -> None:
    _caller_work(raw_db)
    engine = raw_db.get_bind()
    assert isinstance(engine, sa.Engine)

    def convert(context: Any) -> None:
        raise Converted(f"converted: {type(context.original_exception).__name__}")

    event.listen(engine, "handle_error", convert)
    try:
        assert quiet(raw_db.connection())
        card = raw_db.get(Card, 2)
        assert card is not None
        with pytest.raises(Converted):
            registry().publish(card)
        assert card.state.is_draft and card.label is None and card.payload is None
        assert card not in raw_db.dirty
    finally:
        event.remove(engine, "handle_error", convert)
    assert _notes_after_commit(raw_db) == ["mine"]
    assert _log_count(raw_db) == 0


def test_a_disconnect_on_the_direct_path_invalidates_the_connection(raw_db: Session, engine: sa.Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("no server connection to kill")
    card = raw_db.get(Card, 1)
    assert card is not None
    connection = raw_db.connection()
    assert quiet(connection)
    if engine.dialect.name == "postgresql":
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        kill = f"SELECT pg_terminate_backend({pid})"
    else:
        pid = connection.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        kill = f"KILL {pid}"
    with engine.connect() as other:
        other.exec_driver_sql(kill)
        other.commit()
    with pytest.raises(sa.exc.DBAPIError) as raised:
        Plain().publish(card)
    assert raised.value.connection_invalidated
    assert card.state.is_draft
    raw_db.rollback()
    card = raw_db.get(Card, 1)
    assert card is not None
    Logged().publish(card)
    raw_db.commit()
    assert raw_db.scalar(sa.select(Card.state).where(Card.id == 1)) is FState.is_live


# ---------------------------------------------------------------------- what the folded UPDATE writes


def test_python_and_sql_onupdate_defaults_are_applied_by_the_compare_and_set(raw_db: Session) -> None:
    card = raw_db.get(Card, 1)
    assert card is not None
    Plain().publish(card)
    assert card.py_stamp == "py-onupdate" and card.sql_stamp == "sql-onupdate"
    raw_db.commit()
    row = raw_db.execute(sa.text("SELECT state, py_stamp, sql_stamp FROM bf_card WHERE id = 1")).one()
    assert tuple(row) == (2, "py-onupdate", "sql-onupdate")


def test_hook_values_go_through_bind_processing_typedecorator_and_json(raw_db: Session) -> None:
    card = raw_db.get(Card, 1)
    assert card is not None
    applied = Hooked().publish(card)
    assert applied.results == {"decorate": "decorated"}
    raw_db.commit()
    label, stamp = raw_db.execute(sa.text("SELECT label, py_stamp FROM bf_card WHERE id = 1")).one()
    assert (label, stamp) == ("SHOUTED", "from-hook")
    raw_db.expire_all()
    card = raw_db.get(Card, 1)
    assert card is not None and card.payload == {"tags": ["a", "b"], "n": 1}
    assert [h.to_value for h in Hooked().history(card)] == ["2"]


def test_a_failing_hook_puts_back_collections_and_mutable_values_changed_in_place(raw_db: Session) -> None:
    """A clean object is reverted from its committed_state: a collection or MutableDict the hook changed
    in place loads again from the database."""
    card = raw_db.get(Card, 1)
    assert card is not None
    card.payload = {"kept": 1}
    raw_db.commit()
    card = raw_db.get(Card, 1)
    assert card is not None
    assert card.tags == [] and card.payload == {"kept": 1}
    with pytest.raises(RuntimeError, match="hook failed"):
        Hooked().close(card)
    assert card.state.is_draft and card.label is None
    assert (len(card.tags), dict(card.payload or {})) == (0, {"kept": 1})
    assert not raw_db.dirty


@pytest.mark.xfail(
    strict=True,
    reason="DESIGN 4: a failing hook must leave 'the transitioned objects ... exactly as before'; an object "
    "with unflushed changes is copied by ObjectSnapshot, which is shallow, so a collection appended to or a "
    "MutableDict changed in place by the hook keeps the change in memory",
)
def test_a_failing_hook_puts_back_in_place_changes_of_an_object_with_unflushed_changes(raw_db: Session) -> None:
    card = raw_db.get(Card, 1)
    assert card is not None
    card.payload = {"kept": 1}
    raw_db.commit()
    card = raw_db.get(Card, 1)
    assert card is not None and card.tags == []
    card.py_stamp = "unflushed"
    with pytest.raises(RuntimeError, match="hook failed"):
        Hooked().close(card)
    assert card.state.is_draft and card.label is None and card.py_stamp == "unflushed"
    assert (len(card.tags), dict(card.payload or {})) == (0, {"kept": 1})


class Revised(RawBase):
    """A revision counter kept by a SQL onupdate expression that carries a bound literal (``+ 1``)."""

    __tablename__ = "bf_revised"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    revision: Mapped[int] = mapped_column(default=0, onupdate=sa.literal_column("revision") + 1)


class RevisedTx(Transitions[Revised]):
    publish = Transition(FState.is_draft, FState.is_live)


def test_a_sql_onupdate_with_a_bound_literal_is_applied(raw_db: Session) -> None:
    raw_db.add(Revised(id=1))
    raw_db.commit()
    revised = raw_db.get(Revised, 1)
    assert revised is not None
    RevisedTx().publish(revised)
    raw_db.commit()
    assert tuple(raw_db.execute(sa.text("SELECT state, revision FROM bf_revised")).one()) == (2, 1)
    assert revised.revision == 1


# ---------------------------------------------------------------------- version counters and keys


class VerBase(DeclarativeBase):
    pass


class Counted(VerBase):
    __tablename__ = "bf_counted"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    version: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"version_id_col": version}


class Uuided(VerBase):
    __tablename__ = "bf_uuided"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    version: Mapped[str] = mapped_column(sa.String(32))
    __mapper_args__ = {"version_id_col": version, "version_id_generator": lambda v: uuid.uuid4().hex}


class Manual(VerBase):
    __tablename__ = "bf_manual"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    version: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class Pair(VerBase):
    __tablename__ = "bf_pair"
    part: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    num: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)


class Slug(VerBase):
    __tablename__ = "bf_slug"
    slug: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)


class VerLog(TransitionLogMixin, VerBase):
    __tablename__ = "bf_ver_log"


class VerNote(VerBase):
    __tablename__ = "bf_ver_note"
    id: Mapped[int] = mapped_column(primary_key=True)


class CountedTx(Transitions[Counted]):
    log = VerLog
    publish = Transition(FState.is_draft, FState.is_live)


class UuidedTx(Transitions[Uuided]):
    log = VerLog
    publish = Transition(FState.is_draft, FState.is_live)


class ManualTx(Transitions[Manual]):
    log = VerLog
    publish = Transition(FState.is_draft, FState.is_live)


class PairTx(Transitions[Pair]):
    log = VerLog
    publish = Transition(FState.is_draft, FState.is_live)


class SlugTx(Transitions[Slug]):
    log = VerLog
    publish = Transition(FState.is_draft, FState.is_live)


@pytest.fixture
def ver_db(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(VerBase.metadata)
    with Session(engine) as session:
        session.add_all([
            Counted(id=1), Counted(id=2), Uuided(id=1, version="v0"), Uuided(id=2, version="v0"),
            Manual(id=1), Manual(id=2), Pair(part="a", num=1), Pair(part="a", num=2),
            Slug(slug="x-1"), Slug(slug="x-2"),
        ])
        session.commit()
        yield session


@pytest.mark.parametrize("model", [Counted, Uuided, Manual])
def test_version_counters_are_bumped_and_checked(ver_db: Session, model: type[Any]) -> None:
    registry: Any = {Counted: CountedTx, Uuided: UuidedTx, Manual: ManualTx}[model]()
    obj: Any = ver_db.get(model, 1)
    before = obj.version
    registry.publish(obj)
    ver_db.commit()
    stored = ver_db.execute(sa.select(model.__table__.c.version).where(model.__table__.c.id == 1)).scalar_one()
    assert obj.version == stored
    if model is Manual:
        assert stored == before
    else:
        assert stored != before
    # A version changed behind the session is a conflict, with nothing written.
    ver_db.add(VerNote(id=1))
    ver_db.flush()
    other: Any = ver_db.get(model, 2)
    new_version = "other" if model is Uuided else 7
    ver_db.execute(sa.update(model.__table__).where(model.__table__.c.id == 2).values(version=new_version))
    with pytest.raises(ConcurrentTransitionError):
        registry.publish(other)
    assert other.state.is_draft
    ver_db.commit()
    assert ver_db.scalars(sa.select(VerNote.id)).all() == [1]
    logged = ver_db.scalars(sa.select(VerLog.object_id).where(VerLog.table_name == model.__tablename__)).all()
    assert logged == ["1"]


def test_composite_and_string_keys_with_history_and_conflicts(ver_db: Session) -> None:
    pair = ver_db.get(Pair, ("a", 1))
    slug = ver_db.get(Slug, "x-1")
    assert pair is not None and slug is not None
    PairTx().publish(pair)
    SlugTx().publish(slug)
    ver_db.add(VerNote(id=1))
    ver_db.flush()
    pair2 = ver_db.get(Pair, ("a", 2))
    slug2 = ver_db.get(Slug, "x-2")
    assert pair2 is not None and slug2 is not None
    ver_db.execute(sa.text("UPDATE bf_pair SET state = 3 WHERE num = 2"))
    ver_db.execute(sa.text("DELETE FROM bf_slug WHERE slug = 'x-2'"))
    with pytest.raises(ConcurrentTransitionError):
        PairTx().publish(pair2)
    with pytest.raises(ConcurrentTransitionError, match="deleted"):
        SlugTx().publish(slug2)
    ver_db.commit()
    rows = sorted((r.table_name, r.object_id) for r in ver_db.scalars(sa.select(VerLog)))
    assert rows == [("bf_pair", '["a", 1]'), ("bf_slug", "x-1")]
    assert ver_db.scalars(sa.select(VerNote.id)).all() == [1]


# ====================================================================== history first on SQLite: log triggers


class TrigBase(DeclarativeBase):
    pass


class TCard(TrigBase):
    __tablename__ = "bf_tcard"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)


class TLog(TransitionLogMixin, TrigBase):
    __tablename__ = "bf_tlog"


class TNote(TrigBase):
    __tablename__ = "bf_tnote"
    id: Mapped[int] = mapped_column(primary_key=True)


class Counter(TrigBase):
    """Maintained by a trigger on the log table: history rows ever inserted."""

    __tablename__ = "bf_counter"
    id: Mapped[int] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(default=0)


class TTx(Transitions[TCard]):
    log = TLog
    publish = Transition(FState.is_draft, FState.is_live)


def _triggers(engine: sa.Engine, *, append_only: bool, counting: bool) -> None:
    name = engine.dialect.name
    with engine.begin() as conn:
        if name == "sqlite":
            if append_only:
                conn.exec_driver_sql(
                    "CREATE TRIGGER bf_tlog_ro BEFORE DELETE ON bf_tlog BEGIN SELECT RAISE(ABORT, 'append only'); END"
                )
            if counting:
                conn.exec_driver_sql(
                    "CREATE TRIGGER bf_tlog_count AFTER INSERT ON bf_tlog BEGIN "
                    "UPDATE bf_counter SET n = n + 1; END"
                )
        elif name == "postgresql":
            if append_only:
                conn.exec_driver_sql(
                    "CREATE OR REPLACE FUNCTION bf_ro() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'append only'; END $$ LANGUAGE plpgsql"
                )
                conn.exec_driver_sql("CREATE TRIGGER bf_tlog_ro BEFORE DELETE ON bf_tlog FOR EACH ROW EXECUTE FUNCTION bf_ro()")
            if counting:
                conn.exec_driver_sql(
                    "CREATE OR REPLACE FUNCTION bf_count() RETURNS trigger AS $$ BEGIN "
                    "UPDATE bf_counter SET n = n + 1; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
                conn.exec_driver_sql(
                    "CREATE TRIGGER bf_tlog_count AFTER INSERT ON bf_tlog FOR EACH ROW EXECUTE FUNCTION bf_count()"
                )
        else:
            if append_only:
                conn.exec_driver_sql(
                    "CREATE TRIGGER bf_tlog_ro BEFORE DELETE ON bf_tlog FOR EACH ROW "
                    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'append only'"
                )
            if counting:
                conn.exec_driver_sql(
                    "CREATE TRIGGER bf_tlog_count AFTER INSERT ON bf_tlog FOR EACH ROW UPDATE bf_counter SET n = n + 1"
                )


@pytest.fixture
def trig_db(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(TrigBase.metadata)
    with Session(engine) as session:
        session.add_all([TCard(id=1), TCard(id=2), Counter(id=1, n=0)])
        session.commit()
        yield session


def test_a_conflict_with_an_append_only_log_leaves_the_callers_work_committable(
    request: pytest.FixtureRequest, trig_db: Session, engine: sa.Engine
) -> None:
    _triggers(engine, append_only=True, counting=False)
    trig_db.add(TNote(id=1))
    trig_db.flush()
    card = trig_db.get(TCard, 1)
    assert card is not None
    trig_db.execute(sa.text("UPDATE bf_tcard SET state = 3 WHERE id = 1"))  # another writer
    with pytest.raises(ConcurrentTransitionError):
        TTx().publish(card)
    trig_db.commit()
    assert trig_db.scalars(sa.select(TNote.id)).all() == [1]
    assert trig_db.scalar(sa.select(sa.func.count()).select_from(TLog)) == 0
    # and the log still works for a step that holds
    other = trig_db.get(TCard, 2)
    assert other is not None
    TTx().publish(other)
    trig_db.commit()
    assert trig_db.scalar(sa.select(sa.func.count()).select_from(TLog)) == 1


def test_a_conflict_leaves_no_trace_of_the_history_rows_triggers(
    request: pytest.FixtureRequest, trig_db: Session, engine: sa.Engine
) -> None:
    _triggers(engine, append_only=False, counting=True)
    card = trig_db.get(TCard, 1)
    assert card is not None
    trig_db.execute(sa.text("UPDATE bf_tcard SET state = 3 WHERE id = 1"))
    with pytest.raises(ConcurrentTransitionError):
        TTx().publish(card)
    trig_db.commit()
    assert trig_db.scalar(sa.select(Counter.n)) == 0
    assert trig_db.scalar(sa.select(sa.func.count()).select_from(TLog)) == 0


def test_sqlite_autocommit_engine_conflict_leaves_no_history_row(db_url: sa.URL, engine: sa.Engine,
                                                                  create_all: CreateAll) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("pysqlite's isolation_level=None")
    create_all(TrigBase.metadata)
    auto = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    try:
        with Session(auto) as session:
            session.add_all([TCard(id=1), TCard(id=2)])
            session.commit()
            card = session.get(TCard, 1)
            assert card is not None
            session.execute(sa.text("UPDATE bf_tcard SET state = 3 WHERE id = 1"))
            with pytest.raises(ConcurrentTransitionError):
                TTx().publish(card)
            other = session.get(TCard, 2)
            assert other is not None
            TTx().publish(other)
            session.commit()
            assert session.scalars(sa.select(TLog.object_id)).all() == ["2"]
    finally:
        auto.dispose()


def test_a_history_row_a_trigger_skips_does_not_make_the_undo_delete_another_row(
    request: pytest.FixtureRequest, trig_db: Session, engine: sa.Engine
) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER bf_tlog_skip BEFORE INSERT ON bf_tlog WHEN NEW.transition = 'archive' "
                "BEGIN SELECT RAISE(IGNORE); END"
            )
    first = trig_db.get(TCard, 1)
    second = trig_db.get(TCard, 2)
    assert first is not None and second is not None
    TTx().publish(first)
    trig_db.execute(sa.text("UPDATE bf_tcard SET state = 2 WHERE id = 2"))  # another writer
    with pytest.raises(ConcurrentTransitionError):
        ArchiveTx().archive(second)
    trig_db.commit()
    assert trig_db.scalars(sa.select(TLog.object_id)).all() == ["1"]


class ArchiveTx(Transitions[TCard]):
    log = TLog
    archive = Transition(FState.is_draft, FState.is_closed)


def test_a_database_lock_on_the_direct_path_is_a_conflict(db_url: sa.URL, engine: sa.Engine,
                                                         create_all: CreateAll) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's database lock")
    create_all(TrigBase.metadata)
    with Session(engine) as setup:
        setup.add_all([TCard(id=1)])
        setup.commit()
    impatient = sa.create_engine(db_url, connect_args={"timeout": 0.1})
    blocker = impatient.raw_connection()
    try:
        with Session(impatient) as session:
            card = session.get(TCard, 1)
            assert card is not None
            assert quiet(session.connection())
            cursor = blocker.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            with pytest.raises(ConcurrentTransitionError) as raised:
                TTx().publish(card)
            assert isinstance(raised.value.__cause__, sa.exc.OperationalError)
            assert card.state.is_draft
            blocker.rollback()
            session.rollback()
            TTx().publish(card)
            session.commit()
            assert session.scalars(sa.select(TLog.object_id)).all() == ["1"]
    finally:
        blocker.close()
        impatient.dispose()


class UnloggedTTx(Transitions[TCard]):
    publish = Transition(FState.is_draft, FState.is_live)


@pytest.mark.parametrize("registry", [TTx, UnloggedTTx])
def test_an_autocommit_engine(
    request: pytest.FixtureRequest, db_url: sa.URL, engine: sa.Engine, create_all: CreateAll, registry: type[Any]
) -> None:
    name = engine.dialect.name
    if name == "postgresql" or (name == "mysql" and registry is TTx):
        request.applymarker(pytest.mark.xfail(
            strict=True,
            reason="DESIGN 3/4: works on PostgreSQL and MariaDB, as a plain ORM write does; with "
            "isolation_level='AUTOCOMMIT' statetype's SAVEPOINT runs outside a transaction block "
            "(ensure_transaction() defends SQLite only): PostgreSQL refuses it (the pipelined error even "
            "names the UPDATE), MariaDB then fails on RELEASE SAVEPOINT",
        ))
    create_all(TrigBase.metadata)
    with Session(engine) as setup:
        setup.add_all([TCard(id=1)])
        setup.commit()
    auto = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    try:
        with Session(auto) as session:
            card = session.get(TCard, 1)
            assert card is not None
            registry().publish(card)
            session.commit()
            assert session.scalar(sa.select(TCard.state)) is FState.is_live
    finally:
        auto.dispose()


@pytest.mark.parametrize("registry", [TTx, ArchiveTx, UnloggedTTx])
def test_a_row_changed_by_a_committed_transaction_under_repeatable_read_is_a_conflict(
    db_url: sa.URL, engine: sa.Engine, create_all: CreateAll, registry: type[Any]
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("no isolation levels to speak of")
    create_all(TrigBase.metadata)
    with Session(engine) as setup:
        setup.add_all([TCard(id=1)])
        setup.commit()
    strict = sa.create_engine(db_url, isolation_level="REPEATABLE READ")
    try:
        with Session(strict) as session:
            session.add(TNote(id=1))
            session.flush()
            card = session.get(TCard, 1)
            assert card is not None
            assert quiet(session.connection())
            with engine.begin() as other:
                other.execute(sa.text("UPDATE bf_tcard SET state = 3 WHERE id = 1"))
            with pytest.raises(ConcurrentTransitionError):
                getattr(registry(), "archive" if registry is ArchiveTx else "publish")(card)
            assert card.state.is_draft
            session.commit()
            assert session.scalars(sa.select(TNote.id)).all() == [1]
            assert session.scalar(sa.select(sa.func.count()).select_from(TLog)) == 0
    finally:
        strict.dispose()


# ---------------------------------------------------------------------- custom logs


class LogBase(DeclarativeBase):
    pass


class LCard(LogBase):
    __tablename__ = "bf_lcard"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    logged: Mapped[int] = mapped_column(default=0)


class LNote(LogBase):
    __tablename__ = "bf_lnote"
    id: Mapped[int] = mapped_column(primary_key=True)


class UuidLog(TransitionLogMixin, LogBase):
    """A log keyed by a Python-side UUID, with an extra column filled by a Python default."""

    __tablename__ = "bf_uuid_log"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=lambda: str(uuid.uuid4()))  # type: ignore[assignment]
    source: Mapped[str] = mapped_column(sa.String(20), default=lambda: "python-default")


class StampLog(TransitionLogMixin, LogBase):
    """An integer-keyed log with an extra column filled by a Python default."""

    __tablename__ = "bf_stamp_log"
    source: Mapped[str] = mapped_column(sa.String(20), default=lambda: "python-default")


class UuidTx(Transitions[LCard]):
    log = UuidLog
    publish = Transition(FState.is_draft, FState.is_live)


class StampTx(Transitions[LCard]):
    log = StampLog
    publish = Transition(FState.is_draft, FState.is_live)
    recount = Transition(FState.is_draft | FState.is_live, FState.is_closed)

    @recount.execute
    def count_history(self, card: LCard, data: Mapping[str, Any]) -> None:
        card.logged = _history_count(LCard)

    @count_history.expression
    def _count_history_sql(self, model: type[LCard], now: dt.datetime) -> Mapping[str, Any]:
        return {"logged": _history_count(model)}


def _history_count(model: type[LCard]) -> Any:
    """The number of history rows of this object, evaluated by the database in the UPDATE."""
    return (
        sa.select(sa.func.count())
        .select_from(StampLog)
        .where(StampLog.object_id == sa.cast(model.id, sa.String(255)))
        .scalar_subquery()
    )


@pytest.fixture
def log_db(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(LogBase.metadata)
    with Session(engine) as session:
        session.add_all([LCard(id=i) for i in (1, 2, 3)])
        session.commit()
        yield session


class ExprLog(TransitionLogMixin, LogBase):
    """A log whose extra column has a SQL-expression default carrying a bound literal."""

    __tablename__ = "bf_expr_log"
    source: Mapped[str] = mapped_column(sa.String(20), default=sa.func.lower("SQL-DEFAULT"))


class ExprTx(Transitions[LCard]):
    log = ExprLog
    publish = Transition(FState.is_draft, FState.is_live)


def test_a_log_with_a_sql_expression_default(log_db: Session) -> None:
    card = log_db.get(LCard, 1)
    assert card is not None
    ExprTx().publish(card)
    log_db.commit()
    assert [(r.object_id, r.source) for r in log_db.scalars(sa.select(ExprLog))] == [("1", "sql-default")]


@pytest.mark.parametrize("registry", [UuidTx, StampTx])
def test_custom_logs_with_python_defaults_and_conflicts(log_db: Session, registry: type[Any]) -> None:
    log: Any = registry.log
    log_db.add(LNote(id=1))
    log_db.flush()
    card = log_db.get(LCard, 1)
    assert card is not None
    registry().publish(card)
    other = log_db.get(LCard, 2)
    assert other is not None
    log_db.execute(sa.text("UPDATE bf_lcard SET state = 3 WHERE id = 2"))
    with pytest.raises(ConcurrentTransitionError):
        registry().publish(other)
    gone = log_db.get(LCard, 3)
    assert gone is not None
    log_db.execute(sa.text("DELETE FROM bf_lcard WHERE id = 3"))
    with pytest.raises(ConcurrentTransitionError, match="deleted"):
        registry().publish(gone)
    log_db.commit()
    rows = [(r.object_id, r.source) for r in log_db.scalars(sa.select(log))]
    assert rows == [("1", "python-default")]
    assert log_db.scalars(sa.select(LNote.id)).all() == [1]


def test_a_hooks_sql_expression_does_not_see_the_steps_own_history_row_per_row(
    request: pytest.FixtureRequest, log_db: Session, engine: sa.Engine
) -> None:
    card = log_db.get(LCard, 1)
    assert card is not None
    StampTx().recount(card)
    log_db.commit()
    assert log_db.scalar(sa.select(LCard.logged).where(LCard.id == 1)) == 0


def test_a_hooks_sql_form_does_not_see_the_steps_own_history_rows_in_bulk(
    request: pytest.FixtureRequest, log_db: Session, engine: sa.Engine
) -> None:
    StampTx().recount.bulk(log_db, LCard.id == 1)
    log_db.commit()
    assert log_db.scalar(sa.select(LCard.logged).where(LCard.id == 1)) == 0


# ====================================================================== bulk history-first


class BulkBase(DeclarativeBase):
    pass


class Page(BulkBase):
    __tablename__ = "bf_page"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(10), default="page")
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    rank: Mapped[int] = mapped_column(default=0)
    logs: Mapped[list[PageLog]] = relationship(
        primaryjoin="foreign(PageLog.object_id) == cast(Page.id, String(255))", viewonly=True
    )
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "page"}


class Special(Page):
    __tablename__ = "bf_special"
    id: Mapped[int] = mapped_column(sa.ForeignKey("bf_page.id"), primary_key=True)
    extra: Mapped[int] = mapped_column(default=0)
    __mapper_args__ = {"polymorphic_identity": "special"}


class PageLog(TransitionLogMixin, BulkBase):
    __tablename__ = "bf_page_log"


class PageNote(BulkBase):
    __tablename__ = "bf_page_note"
    id: Mapped[int] = mapped_column(primary_key=True)


committed_steps: list[tuple[int, str | None]] = []


class PageTx(Transitions[Page]):
    log = PageLog
    publish = Transition(FState.is_draft, FState.is_live)
    refresh = Transition(FState.is_draft | FState.is_live, FState.is_live)  # a self-loop

    @refresh.guard
    def ranked(self, page: Page) -> bool:
        """Only ranked pages."""
        return page.rank >= 1

    @ranked.expression
    def _ranked_sql(self, model: type[Page]) -> sa.ColumnElement[bool]:
        return model.rank + 0 >= 1

    @refresh.after_commit
    def remember(self, step: AppliedStep[Page]) -> None:
        committed_steps.append((step.obj.id, step.from_state.name if step.from_state is not None else None))


class SpecialTx(Transitions[Special]):
    log = PageLog
    close = Transition(FState.is_draft | FState.is_live, FState.is_closed)


@pytest.fixture
def bulk_db(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(BulkBase.metadata)
    committed_steps.clear()
    with Session(engine) as session:
        session.add_all([Page(id=i, rank=i % 3) for i in (1, 2, 3, 4)])
        session.add_all([Special(id=i, rank=1, state=FState.is_live if i == 6 else FState.is_draft) for i in (5, 6)])
        session.commit()
        yield session


def _page_history(db: Session) -> list[tuple[str, str | None, str, str]]:
    return sorted((r.object_id, r.from_value, r.to_value, r.transition) for r in db.scalars(sa.select(PageLog)))


def _moved(db: Session) -> list[int]:
    return sorted(db.scalars(sa.select(Page.id).where(Page.state != FState.is_draft)))


@pytest.mark.parametrize("form", ["lightweight table", "text"])
def test_a_criterion_reading_the_log_table_statetype_cannot_see_records_the_rows_it_moved(
    request: pytest.FixtureRequest, bulk_db: Session, engine: sa.Engine, form: str
) -> None:
    criterion: sa.ColumnElement[bool]
    if form == "text":
        criterion = sa.text("bf_page.id = (SELECT count(*) FROM bf_page_log) + 1")  # type: ignore[assignment]
    else:
        light = sa.table("bf_page_log")
        criterion = Page.id == sa.select(sa.func.count()).select_from(light).scalar_subquery() + 1
    result = PageTx().publish.bulk(bulk_db, criterion)
    bulk_db.commit()
    assert result.ids == [1]
    assert _moved(bulk_db) == [1, 6]
    assert _page_history(bulk_db) == [("1", "1", "2", "publish")]


@pytest.mark.parametrize("form", ["aliased", "relationship any", "exists"])
def test_criteria_reading_the_log_table_through_the_orm_take_the_general_way(
    bulk_db: Session, form: str
) -> None:
    tx = PageTx()
    tx.publish.bulk(bulk_db, Page.id == 1)
    criterion: sa.ColumnElement[bool]
    if form == "aliased":
        log = aliased(PageLog)
        criterion = Page.id == sa.select(sa.func.count()).select_from(log).scalar_subquery() + 1
    elif form == "relationship any":
        criterion = ~Page.logs.any()
    else:
        criterion = ~sa.exists().where(PageLog.object_id == sa.cast(Page.id, sa.String(255)))
    result = tx.publish.bulk(bulk_db, criterion, Page.id <= 4)
    bulk_db.commit()
    expected = [2] if form == "aliased" else [2, 3, 4]
    assert sorted(result.ids) == expected
    assert sorted(int(h[0]) for h in _page_history(bulk_db)) == [1, *expected]
    assert _moved(bulk_db) == [1, *expected, 6]


def test_a_self_loop_with_a_guard_and_after_commit_hooks_records_each_row_once(bulk_db: Session) -> None:
    bulk_db.add(PageNote(id=1))
    bulk_db.flush()
    bulk_db.execute(sa.update(Page).where(Page.id == 1).values(state=FState.is_live))
    result = PageTx().refresh.bulk(bulk_db)
    assert sorted(result.ids) == [1, 2, 4, 5, 6]  # rank >= 1
    assert committed_steps == []
    bulk_db.commit()
    assert sorted(committed_steps) == [(1, "is_live"), (2, "is_draft"), (4, "is_draft"), (5, "is_draft"),
                                       (6, "is_live")]
    assert _page_history(bulk_db) == [
        ("1", "2", "2", "refresh"), ("2", "1", "2", "refresh"), ("4", "1", "2", "refresh"),
        ("5", "1", "2", "refresh"), ("6", "2", "2", "refresh"),
    ]
    assert bulk_db.scalars(sa.select(PageNote.id)).all() == [1]


def test_joined_inheritance_bulk_with_history_touches_only_the_subclass(bulk_db: Session) -> None:
    result = SpecialTx().close.bulk(bulk_db, Page.rank >= 1)
    bulk_db.commit()
    assert sorted(result.ids) == [5, 6]
    assert _page_history(bulk_db) == [("5", "1", "3", "close"), ("6", "2", "3", "close")]
    assert sorted(bulk_db.scalars(sa.select(Page.id).where(Page.state == FState.is_closed))) == [5, 6]


# ====================================================================== the session's connection


def test_a_per_mapper_bind_is_honoured(engine: sa.Engine, create_all: CreateAll, tmp_path: Path) -> None:
    create_all(RawBase.metadata)
    second = sa.create_engine(f"sqlite:///{tmp_path / 'second.db'}")
    try:
        RawBase.metadata.create_all(second)
        for target in (engine, second):
            with Session(target) as setup:
                setup.add(Card(id=1))
                setup.commit()
        with Session(bind=engine, binds={Card: second, CardLog: second}) as session:
            session.add(Note(id=1, text="mine"))  # on the session's default bind
            session.flush()
            card = session.get(Card, 1)
            assert card is not None
            Logged().publish(card)
            session.commit()
        with Session(engine) as check:
            assert check.scalar(sa.select(Card.state)) is FState.is_draft
            assert check.scalars(sa.select(Note.text)).all() == ["mine"]
        with Session(second) as check:
            assert check.scalar(sa.select(Card.state)) is FState.is_live
            assert check.scalar(sa.select(sa.func.count()).select_from(CardLog)) == 1
    finally:
        second.dispose()


class Routing(Session):
    """A session routing Card to another database (horizontal partitioning, as in SQLAlchemy's docs)."""

    other: sa.Engine | None = None

    def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Any:
        if mapper is not None and self.other is not None and sa.inspect(mapper).class_ in (Card, CardLog):
            return self.other
        return super().get_bind(mapper, clause=clause, **kw)


def test_a_get_bind_override_is_honoured(engine: sa.Engine, create_all: CreateAll, tmp_path: Path) -> None:
    create_all(RawBase.metadata)
    second = sa.create_engine(f"sqlite:///{tmp_path / 'second.db'}")
    try:
        RawBase.metadata.create_all(second)
        for target in (engine, second):
            with Session(target) as setup:
                setup.add(Card(id=1))
                setup.commit()
        with Routing(bind=engine) as session:
            session.other = second
            session.connection()  # the default bind's connection exists first
            card = session.get(Card, 1)
            assert card is not None
            Logged().publish(card)
            session.commit()
        with Session(engine) as check:
            assert check.scalar(sa.select(Card.state)) is FState.is_draft
        with Session(second) as check:
            assert check.scalar(sa.select(Card.state)) is FState.is_live
    finally:
        second.dispose()


def test_inside_begin_nested_a_savepoint_rollback_undoes_the_step(raw_db: Session) -> None:
    _caller_work(raw_db)
    card = raw_db.get(Card, 1)
    assert card is not None
    nested = raw_db.begin_nested()
    Hooked().publish(card)
    assert card.state.is_live
    nested.rollback()
    assert card.state.is_draft and card.label is None
    nested = raw_db.begin_nested()
    Logged().publish(card)
    nested.commit()
    raw_db.commit()
    assert raw_db.scalar(sa.select(Card.state).where(Card.id == 1)) is FState.is_live
    assert [h.transition for h in Logged().history(card)] == ["publish"]
    assert raw_db.scalars(sa.select(Note.text)).all() == ["mine"]


def test_after_rollback_and_close_the_session_finds_its_connection_again(raw_db: Session) -> None:
    card = raw_db.get(Card, 1)
    assert card is not None
    Logged().publish(card)
    raw_db.rollback()
    assert card.state.is_draft
    Logged().publish(card)
    raw_db.commit()
    raw_db.close()
    card = raw_db.get(Card, 3)
    assert card is not None
    Logged().publish(card)
    raw_db.commit()
    assert sorted(raw_db.scalars(sa.select(CardLog.object_id))) == ["1", "3"]


@pytest.mark.parametrize("mode", ["create_savepoint", "rollback_only"])
def test_a_session_joined_to_an_external_transaction(engine: sa.Engine, create_all: CreateAll, mode: str) -> None:
    if mode == "create_savepoint" and engine.dialect.name == "sqlite":
        # pysqlite's legacy transactions: a SAVEPOINT before any DML begins none, so the session's
        # RELEASE commits; a plain ORM change escapes the outer rollback the same way.
        pytest.skip("pysqlite SAVEPOINT without BEGIN (SQLAlchemy's documented limitation)")
    create_all(RawBase.metadata)
    with Session(engine) as setup:
        setup.add_all([Card(id=1), Card(id=2)])
        setup.commit()
    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode=mode)  # type: ignore[arg-type]
        card = session.get(Card, 1)
        assert card is not None
        Logged().publish(card)
        other = session.get(Card, 2)
        assert other is not None
        session.execute(sa.text("UPDATE bf_card SET state = 3 WHERE id = 2"))
        with pytest.raises(ConcurrentTransitionError):
            Logged().publish(other)
        session.commit()
        session.close()
        assert conn.execute(sa.select(Card.state).where(Card.id == 1)).scalar() is FState.is_live
        assert conn.execute(sa.select(sa.func.count()).select_from(CardLog)).scalar() == 1
        outer.rollback()
    with Session(engine) as check:
        assert check.scalar(sa.select(Card.state).where(Card.id == 1)) is FState.is_draft
        assert check.scalar(sa.select(sa.func.count()).select_from(CardLog)) == 0


# ====================================================================== async


ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
if importlib.util.find_spec("aiomysql") is not None:
    ASYNC_DRIVERS["mysql"] = "mysql+aiomysql"


def test_async_session_direct_path_history_conflict_and_rejected_statement(
    db_url: sa.URL, engine: sa.Engine, create_all: CreateAll
) -> None:
    driver = ASYNC_DRIVERS.get(engine.dialect.name)
    if driver is None:
        pytest.skip("no async driver")
    create_all(RawBase.metadata)
    with Session(engine) as setup:
        setup.add_all([Card(id=1), Card(id=2, title="forbidden"), Card(id=3)])
        setup.commit()

    async def scenario() -> tuple[list[str], list[str], dict[int, int], list[str]]:
        aengine = create_async_engine(db_url.set(drivername=driver))
        errors: list[str] = []
        try:
            async with AsyncSession(aengine) as session:
                session.add(Note(id=1, text="mine"))
                await session.flush()

                def work(sync: Session) -> None:
                    assert quiet(sync.connection())
                    card = sync.get(Card, 1)
                    assert card is not None
                    Hooked().publish(card)
                    bad = sync.get(Card, 2)
                    assert bad is not None
                    try:
                        Logged().publish(bad)
                    except sa.exc.DBAPIError as error:
                        errors.append(type(error).__name__)
                    assert bad.state.is_draft
                    third = sync.get(Card, 3)
                    assert third is not None
                    sync.execute(sa.text("UPDATE bf_card SET state = 3 WHERE id = 3"))
                    try:
                        Logged().publish(third)
                    except ConcurrentTransitionError:
                        errors.append("conflict")
                    assert third.state.is_draft

                await session.run_sync(work)
                await session.commit()
                notes = list((await session.scalars(sa.select(Note.text))).all())
                logged = list((await session.scalars(sa.select(CardLog.object_id))).all())
                states = {int(r[0]): int(r[1].value) for r in await session.execute(sa.select(Card.id, Card.state))}
                labels = list((await session.scalars(sa.select(Card.label).where(Card.id == 1))).all())
        finally:
            await aengine.dispose()
        assert errors[1:] == ["conflict"] and errors[0] in ("IntegrityError", "OperationalError")
        return notes, logged, states, [str(x) for x in labels]

    notes, logged, states, labels = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert notes == ["mine"] and logged == ["1"] and states == {1: 2, 2: 1, 3: 3} and labels == ["SHOUTED"]


# ====================================================================== available()


class AState(StateType[int]):
    is_new = State(1, "New")
    is_open = State(2, "Open")
    is_done = State(3, "Done", final=True)

    @is_open.conditional
    def is_big(self, item: Item) -> bool:
        return (item.size or 0) > 5

    @is_big.expression
    def _is_big_sql(self, item: type[Item]) -> sa.ColumnElement[bool]:
        return item.size > 5

    @is_new.conditional
    def is_unlogged(self, item: Item) -> bool:
        return True

    @is_unlogged.expression
    def _is_unlogged_sql(self, item: type[Item]) -> sa.ColumnElement[bool]:
        return ~sa.exists().where(
            sa.table("bf_item_log", sa.column("object_id")).c.object_id == sa.cast(item.id, sa.String(255))
        )


class AvailBase(DeclarativeBase):
    pass


class Item(AvailBase):
    __tablename__ = "bf_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(10), default="item")
    state: Mapped[AState] = mapped_column(AState(check=False), default=AState.is_new)
    size: Mapped[int] = mapped_column(default=0)
    created: Mapped[dt.datetime] = mapped_column(default=dt.datetime(2020, 1, 1))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "item"}




class BigItem(Item):
    __mapper_args__ = {"polymorphic_identity": "big"}


class ItemTx(Transitions[Item, str]):
    open = Transition(AState.is_new, AState.is_open)
    grow = Transition(AState.is_big, AState.is_done)
    reset = Transition(None, AState.is_new)
    either = Transition(AState.is_new | AState.is_open, AState.is_done)
    expire = Transition(AState.is_new, AState.is_done, after=dt.timedelta(days=1), since="created")
    chained = Transition(AState.is_new, AState.is_open)

    @open.guard
    def sized(self, item: Item) -> bool:
        return (item.size or 0) >= 0

    @either.permission
    def admin(self, item: Item) -> bool:
        return self.actor == "admin"

    @chained.chain
    def nothing(self, item: Item) -> list[Any]:
        return []


class BigTx(Transitions[BigItem, str]):
    open = Transition(AState.is_new, AState.is_open)


def _by_check(tx: Transitions[Any, Any], obj: Any) -> list[str]:
    return [t.name for t in type(tx).transitions() if t.after is None and getattr(tx, t.name).check(obj)]


def test_available_agrees_with_check_for_objects_in_every_condition(engine: sa.Engine, create_all: CreateAll) -> None:
    create_all(AvailBase.metadata)
    with Session(engine) as session:
        session.add_all([Item(id=1), Item(id=2, state=2, size=9), Item(id=3, state=2), BigItem(id=4)])
        session.commit()
        session.execute(sa.text("UPDATE bf_item SET state = 77 WHERE id = 3"))  # undeclared, by another program
        session.commit()
        checked = 0
        for actor in ("admin", None):
            tx = ItemTx(actor)
            for i in (1, 2, 3, 4):
                session.expunge_all()
                loaded = session.get(Item, i)
                assert loaded is not None
                assert [b.name for b in tx.available(loaded)] == _by_check(tx, loaded)
                session.expire(loaded)
                assert [b.name for b in tx.available(loaded)] == _by_check(tx, loaded)
                session.expunge_all()
                deferred = session.scalars(sa.select(Item).options(defer(Item.state)).where(Item.id == i)).one()
                assert [b.name for b in tx.available(deferred)] == _by_check(tx, deferred)
                checked += 3
            for transient in (Item(), Item(state=2, size=7), Item(state=AState.is_new), BigItem(state=1)):
                assert [b.name for b in tx.available(transient)] == _by_check(tx, transient)
            copied = copy.deepcopy(Item(state=AState.is_new))
            assert [b.name for b in tx.available(copied)] == _by_check(tx, copied)
            unpickled = pickle.loads(pickle.dumps(session.get(Item, 1)))
            assert [b.name for b in tx.available(unpickled)] == _by_check(tx, unpickled)
        big = session.get(BigItem, 4)
        assert big is not None
        assert [b.name for b in BigTx("admin").available(big)] == ["open"]
        with pytest.raises(TypeError):
            BigTx().available(session.get(Item, 1))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ItemTx().available(object())  # type: ignore[arg-type]
        assert checked == 24


def test_hooks_added_later_apply_to_available_from_the_next_call() -> None:
    class LateTx(Transitions[Item, str]):
        open = Transition(AState.is_new, AState.is_open)

    item = Item(state=AState.is_new)
    tx = LateTx("admin")
    assert [b.name for b in tx.available(item)] == ["open"]
    tx.open(Item(state=AState.is_new))  # a compiled plan exists now

    @LateTx.open.guard
    def never(self: LateTx, obj: Item) -> bool:
        """Never."""
        return False

    assert tx.available(item) == [] and not tx.open.check(item)


class ItemLog(TransitionLogMixin, AvailBase):
    __tablename__ = "bf_item_log"


class LoggedItemTx(Transitions[Item, str]):
    log = ItemLog
    settle = Transition(AState.is_new | AState.is_big, AState.is_done)
    first_settle = Transition(AState.is_unlogged, AState.is_done)


def test_bulk_from_conditional_and_group_sources_records_plain_from_values(
    engine: sa.Engine, create_all: CreateAll
) -> None:
    create_all(AvailBase.metadata)
    with Session(engine) as session:
        session.add_all([Item(id=1), Item(id=2, state=AState.is_open, size=9), Item(id=3, state=AState.is_open),
                         BigItem(id=4)])
        session.commit()
        result = LoggedItemTx("admin").settle.bulk(session)
        session.commit()
        assert sorted(result.ids) == [1, 2, 4]
        rows = sorted((r.object_id, r.from_value, r.to_value, r.actor) for r in session.scalars(sa.select(ItemLog)))
        assert rows == [("1", "1", "3", "admin"), ("2", "2", "3", "admin"), ("4", "1", "3", "admin")]


def test_bulk_from_a_conditional_source_whose_sql_reads_the_log_table(engine: sa.Engine, create_all: CreateAll) -> None:
    """The source's SQL is not among the criteria checked for the log table: the counts must catch it."""
    create_all(AvailBase.metadata)
    with Session(engine) as session:
        session.add_all([Item(id=1), Item(id=2), Item(id=3)])
        session.commit()
        session.add(ItemLog(table_name="bf_item", object_id="2", column_name="state", transition="x",
                            from_value=None, to_value="1", created_at=dt.datetime.now(dt.timezone.utc)))
        session.commit()
        result = LoggedItemTx().first_settle.bulk(session)
        session.commit()
        assert sorted(result.ids) == [1, 3]
        rows = sorted((r.object_id, r.transition) for r in session.scalars(sa.select(ItemLog)))
        assert rows == [("1", "first_settle"), ("2", "x"), ("3", "first_settle")]


def test_a_listener_on_an_option_engine_sees_the_update(engine: sa.Engine, create_all: CreateAll) -> None:
    create_all(RawBase.metadata)
    tenant = engine.execution_options(logging_token="tenant")
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(tenant, "after_cursor_execute", record)
    with Session(tenant) as session:
        session.add(Card(id=1))
        session.commit()
        card = session.get(Card, 1)
        assert card is not None
        Logged().publish(card)
        session.commit()
    assert any(s.startswith("UPDATE bf_card") for s in seen)


# ====================================================================== cached bound transitions


def test_a_copied_registry_with_a_new_actor_acts_as_the_new_actor() -> None:
    tx = ItemTx("alice")
    assert not tx.either.check(Item(state=AState.is_new))  # caches the bound transition
    clone = copy.copy(tx)
    clone.actor = "admin"
    assert clone.either.actor == "admin"
    assert clone.either.check(Item(state=AState.is_new))


def test_a_registry_pickles_after_use() -> None:
    assert pickle.loads(pickle.dumps(ItemTx("alice"))).actor == "alice"
    tx = ItemTx("alice")
    tx.open(Item(state=AState.is_new))
    restored = pickle.loads(pickle.dumps(tx))
    assert restored.actor == "alice"


def test_subclass_registries_bind_their_own_transitions() -> None:
    class Audited(ItemTx):
        pass

    base, sub = ItemTx("admin"), Audited("admin")
    assert base.open is not sub.open and sub.open.registry is sub
    assert base.open.transition is sub.open.transition
    item = Item(state=AState.is_new)
    sub.open(item)
    assert item.state.is_open and [b.name for b in base.available(item)] == _by_check(base, item)


# ====================================================================== in memory


class MemBase(DeclarativeBase):
    pass


class Board(MemBase):
    __tablename__ = "bf_board"
    id: Mapped[int] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class Task(MemBase):
    __tablename__ = "bf_task"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    note: Mapped[str | None] = mapped_column(sa.String(40))
    board_id: Mapped[int | None] = mapped_column(sa.ForeignKey("bf_board.id"))
    board: Mapped[Board | None] = relationship()


class TaskTx(Transitions[Task]):
    bare = Transition(FState.is_draft, FState.is_live)
    hooked = Transition(FState.is_draft, FState.is_closed)
    after_fails = Transition(FState.is_live, FState.is_closed)

    @hooked.execute
    def count_on_board(self, task: Task, data: Mapping[str, Any]) -> int:
        if task.board is not None:
            task.board.count += 1
        task.note = "counted"
        if isinstance(data, dict):
            data["seen"] = True
        if data.get("fail"):
            raise RuntimeError("hook failed")
        return 42

    def after(self, step: AppliedStep[Task]) -> None:
        if step.transition.name == "after_fails":
            step.obj.note = "after ran"
            raise LookupError("after failed")


def test_in_memory_bare_and_hooked_steps_and_results() -> None:
    task = Task(state=FState.is_draft)
    applied = TaskTx().bare(task, data={"x": 1})
    assert task.state.is_live and dict(applied.results) == {} and applied.steps[0].data == {"x": 1}
    task = Task(state=FState.is_draft)
    data: dict[str, Any] = {}
    applied = TaskTx().hooked(task, data=data)
    assert applied.results == {"count_on_board": 42} and task.state.is_closed and task.note == "counted"
    task = Task(state=FState.is_live, note="before")
    with pytest.raises(LookupError):
        TaskTx().after_fails(task)
    assert task.state.is_live and task.note == "before"


class TaskLog(TransitionLogMixin, MemBase):
    __tablename__ = "bf_task_log"


class LoggedTaskTx(Transitions[Task]):
    log = TaskLog
    bare = Transition(FState.is_draft, FState.is_live)


def test_deferred_history_records_the_data_the_step_received(engine: sa.Engine, create_all: CreateAll) -> None:
    create_all(MemBase.metadata)
    task = Task(id=1, state=FState.is_draft)
    data = {"reason": "first"}
    LoggedTaskTx().bare(task, data=data)
    data["reason"] = "changed by the caller afterwards"
    with Session(engine) as session:
        session.add(task)
        session.commit()
        assert [h.data for h in LoggedTaskTx().history(task)] == [{"reason": "first"}]


def test_in_memory_failing_hook_puts_back_the_object_itself() -> None:
    task = Task(state=FState.is_draft, note="before")
    with pytest.raises(RuntimeError):
        TaskTx().hooked(task, data={"fail": True})
    assert task.state.is_draft and task.note == "before"


@pytest.mark.xfail(
    strict=True,
    reason="DESIGN 4: a failure leaves 'every other object the hooks touched exactly as before'; the "
    "in-memory paths snapshot only the transitioned object, so a related object a hook changed "
    "keeps the change",
)
def test_in_memory_failing_hook_puts_back_other_objects_it_touched() -> None:
    board = Board(id=1, count=0)
    task = Task(state=FState.is_draft, board=board)
    with pytest.raises(RuntimeError):
        TaskTx().hooked(task, data={"fail": True})
    assert task.state.is_draft and task.note is None
    assert board.count == 0


def _task_on_board(session: Session) -> Task:
    """Task 1 on board 1 (count 0), committed and loaded with its board."""
    session.add(Task(id=1, board=Board(id=1, count=0)))
    session.commit()
    task = session.get(Task, 1)
    assert task is not None and task.board is not None
    return task


def test_persistent_failing_hook_puts_back_other_objects_it_touched(engine: sa.Engine, create_all: CreateAll) -> None:
    create_all(MemBase.metadata)
    with Session(engine) as session:
        task = _task_on_board(session)
        assert task.board is not None
        with pytest.raises(RuntimeError):
            TaskTx().hooked(task, data={"fail": True})
        assert task.state.is_draft and task.note is None and task.board.count == 0
        assert not session.dirty
        applied = TaskTx().hooked(task)
        assert applied.results == {"count_on_board": 42}
        session.commit()
        assert session.scalar(sa.select(Board.count)) == 1


class BoardTx(Transitions[Task]):
    """No after(): a step starts on the one-statement path and moves to a savepoint when its hook reaches the board."""

    hooked = Transition(FState.is_draft, FState.is_closed)

    @hooked.execute
    def count_on_board(self, task: Task, data: Mapping[str, Any]) -> None:
        assert task.board is not None
        task.board.count += 1
        task.note = "counted"


def test_a_conflict_after_hooks_reached_another_object_puts_both_back(engine: sa.Engine, create_all: CreateAll) -> None:
    """The step moves to a savepoint (its hook touched the board); the compare-and-set then loses to
    another transaction: the clean task, taken uncopied, is rebuilt as it was before the hook."""
    create_all(MemBase.metadata)
    with Session(engine) as session:
        _task_on_board(session)
        session.rollback()  # no transaction holds the database while the other writer commits
        task = session.get(Task, 1)
        assert task is not None and task.board is not None and task.note is None
        with Session(engine) as other:
            other.execute(sa.update(Task).where(Task.id == 1).values(state=FState.is_live))
            other.commit()
        with pytest.raises(ConcurrentTransitionError):
            BoardTx().hooked(task)
        assert task.state.is_draft and task.note is None and task.board.count == 0
        assert not session.dirty and not session.new
        session.rollback()
        assert task.state.is_live and session.scalar(sa.select(Board.count)) == 0
