"""The per-row fast path: statements sent straight to the DBAPI cursor when nothing listens.

Every case runs on SQLite, PostgreSQL and MariaDB with a default engine (no
event listener, no echo), which is the configuration that takes the fast
path; each test first checks that it does. Faults come from the database
itself (a CHECK constraint, a NOT NULL history column, a row changed or
deleted behind the session's back), since a cursor listener would switch the
path off. Afterwards: the error reaching the caller, the objects, the
caller's own earlier work, and what the database holds after commit.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

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

NOW = dt.datetime(2026, 6, 1)


class RState(StateType[int]):
    is_draft = State(1, "Draft")
    is_live = State(2, "Live")
    is_closed = State(3, "Closed")


class Base(DeclarativeBase):
    pass


class Card(Base):
    __tablename__ = "rp_card"
    # The database refuses a live card titled "forbidden": a fault statetype cannot foresee.
    __table_args__ = (sa.CheckConstraint("state <> 2 OR title <> 'forbidden'", name="ck_rp_card_live_title"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(40))
    state: Mapped[RState] = mapped_column(RState(), default=RState.is_draft)
    stamped_at: Mapped[dt.datetime | None]


class Note(Base):
    """The caller's own work in the same transaction."""

    __tablename__ = "rp_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(40))


class CardLog(TransitionLogMixin, Base):
    __tablename__ = "rp_log"


class RejectingLog(TransitionLogMixin, Base):
    """History rows the database rejects: a NOT NULL column statetype does not fill."""

    __tablename__ = "rp_rejecting_log"
    required: Mapped[str] = mapped_column(sa.String(10))


class Plain(Transitions[Card]):
    publish = Transition(RState.is_draft, RState.is_live)
    close = Transition(RState.is_draft | RState.is_live, RState.is_closed)


class Stamped(Transitions[Card]):
    publish = Transition(RState.is_draft, RState.is_live)

    @publish.guard
    def has_title(self, card: Card) -> bool:
        """The card needs a title."""
        return bool(card.title)

    @publish.execute
    def stamp(self, card: Card, data: Mapping[str, Any]) -> None:
        card.stamped_at = NOW


class Logged(Transitions[Card]):
    log = CardLog
    publish = Transition(RState.is_draft, RState.is_live)


class Rejected(Transitions[Card]):
    log = RejectingLog
    publish = Transition(RState.is_draft, RState.is_live)


@pytest.fixture
def db(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add_all([Card(id=1, title="ok"), Card(id=2, title="forbidden"), Card(id=3, title="other")])
        session.commit()
        yield session


def _caller_work(db: Session) -> Note:
    """Earlier work of the caller in the same transaction: one flushed row, then the fast path is checked."""
    note = Note(text="mine")
    db.add(note)
    db.flush()
    assert quiet(db.connection()), "a default engine takes the direct-cursor path"
    return note


def _committed(db: Session) -> tuple[list[tuple[int, int, dt.datetime | None]], list[str], int]:
    db.commit()
    with db.bind.connect() as conn:  # type: ignore[union-attr]
        cards = [tuple(r) for r in conn.execute(sa.text("SELECT id, state, stamped_at FROM rp_card ORDER BY id"))]
        notes = [r[0] for r in conn.execute(sa.text("SELECT text FROM rp_note"))]
        logged = conn.execute(sa.text("SELECT count(*) FROM rp_log")).scalar_one()
    return cards, notes, logged  # type: ignore[return-value]


def test_a_statement_the_database_rejects_is_raised_wrapped_and_leaves_the_caller_able_to_commit(db: Session) -> None:
    note = _caller_work(db)
    card = db.get(Card, 2)
    assert card is not None
    with pytest.raises(sa.exc.DBAPIError) as raised:
        Plain().publish(card)
    assert "rp_card" in str(raised.value.statement)  # SQLAlchemy's own wrapping, with the statement
    assert card.state.is_draft and card not in db.dirty
    cards, notes, logged = _committed(db)
    assert cards == [(1, 1, None), (2, 1, None), (3, 1, None)] and notes == [note.text] and logged == 0


def test_a_hooked_step_the_database_rejects_puts_the_hooks_columns_back(db: Session) -> None:
    _caller_work(db)
    card = db.get(Card, 2)
    assert card is not None
    with pytest.raises(sa.exc.DBAPIError):
        Stamped().publish(card)
    assert card.state.is_draft and card.stamped_at is None and card not in db.dirty
    cards, notes, _ = _committed(db)
    assert cards[1] == (2, 1, None) and notes == ["mine"]


def test_handle_error_listeners_see_a_failure_on_the_fast_path(db: Session) -> None:
    _caller_work(db)
    seen: list[str] = []

    def record(context: Any) -> None:
        seen.append(context.statement)

    engine = db.get_bind()
    assert isinstance(engine, sa.Engine)
    event.listen(engine, "handle_error", record)
    try:
        card = db.get(Card, 2)
        assert card is not None
        with pytest.raises(sa.exc.DBAPIError):
            Plain().publish(card)
    finally:
        event.remove(engine, "handle_error", record)
    assert len(seen) == 1 and seen[0].startswith("UPDATE rp_card")


def test_a_row_changed_behind_the_session_is_a_conflict_and_its_history_row_is_taken_back(db: Session) -> None:
    note = _caller_work(db)
    card = db.get(Card, 1)
    assert card is not None
    db.execute(sa.text("UPDATE rp_card SET state = 3 WHERE id = 1"))  # another writer, as far as the object knows
    with pytest.raises(ConcurrentTransitionError):
        Logged().publish(card)
    assert card.state.is_draft and card not in db.dirty
    cards, notes, logged = _committed(db)
    assert cards[0] == (1, 3, None) and notes == [note.text] and logged == 0


def test_a_deleted_row_is_a_conflict_naming_the_deletion(db: Session) -> None:
    _caller_work(db)
    card = db.get(Card, 3)
    assert card is not None
    db.execute(sa.text("DELETE FROM rp_card WHERE id = 3"))
    with pytest.raises(ConcurrentTransitionError, match="deleted"):
        Logged().publish(card)
    cards, notes, logged = _committed(db)
    assert [c[0] for c in cards] == [1, 2] and notes == ["mine"] and logged == 0


def test_a_history_row_the_database_rejects_leaves_the_state_unchanged(db: Session) -> None:
    _caller_work(db)
    card = db.get(Card, 1)
    assert card is not None
    with pytest.raises(sa.exc.DBAPIError):
        Rejected().publish(card)
    assert card.state.is_draft and card not in db.dirty
    cards, notes, _ = _committed(db)
    assert cards[0] == (1, 1, None) and notes == ["mine"]
    with db.bind.connect() as conn:  # type: ignore[union-attr]
        assert conn.execute(sa.text("SELECT count(*) FROM rp_rejecting_log")).scalar_one() == 0


def test_history_rows_follow_the_steps_in_order(db: Session) -> None:
    _caller_work(db)
    tx = Logged()
    cards = [db.get(Card, i) for i in (1, 3)]
    for card in cards:
        assert card is not None
        tx.publish(card)
    db.commit()
    rows = [(r.object_id, r.from_value, r.to_value, r.transition) for c in cards for r in tx.history(c)]
    assert rows == [("1", "1", "2", "publish"), ("3", "1", "2", "publish")]
    assert _committed(db)[0] == [(1, 2, None), (2, 1, None), (3, 2, None)]


@pytest.mark.parametrize("where", ["connection", "engine", "Engine class", "echo"])
def test_a_listener_or_echo_switches_the_fast_path_off_and_sees_the_statements(
    db: Session, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = db.get_bind()
    assert isinstance(engine, sa.Engine)
    statements: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    connection = db.connection()
    assert quiet(connection)
    targets: dict[str, Any] = {"connection": connection, "engine": engine, "Engine class": sa.Engine}
    if where == "echo":
        db.commit()  # a connection reads echo when it opens
        engine.echo = True
        caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
        connection = db.connection()
    else:
        event.listen(targets[where], "after_cursor_execute", listener)
    try:
        assert not quiet(connection)
        card = db.get(Card, 1)
        assert card is not None
        Plain().publish(card)
    finally:
        if where == "echo":
            engine.echo = False
        else:
            event.remove(targets[where], "after_cursor_execute", listener)
    if where == "echo":
        assert any(r.getMessage().startswith("UPDATE rp_card") for r in caplog.records)
    else:
        assert any(s.startswith("UPDATE rp_card") for s in statements)
    db.commit()
    assert _committed(db)[0][0] == (1, 2, None)


def test_per_row_steps_keep_nothing_alive_once_committed(db: Session) -> None:
    tx = Stamped()
    cards = list(db.scalars(sa.select(Card).where(Card.title != "forbidden")))
    for card in cards:
        tx.publish(card)
    db.commit()
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, AppliedStep)] == []


def test_a_do_execute_listener_switches_the_fast_path_off(db: Session) -> None:
    engine = db.get_bind()
    assert isinstance(engine, sa.Engine)
    seen: list[str] = []

    def record(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        seen.append(statement)

    event.listen(engine, "do_execute", record)
    try:
        assert not quiet(db.connection())
        card = db.get(Card, 1)
        assert card is not None
        Plain().publish(card)
    finally:
        event.remove(engine, "do_execute", record)
    assert any(s.startswith("UPDATE rp_card") for s in seen)


class VBase(DeclarativeBase):
    pass


class VirtualCard(VBase):
    """Mapped in a schema that exists only through the connection's schema_translate_map."""

    __tablename__ = "rp_vcard"
    __table_args__ = {"schema": "st_virtual"}
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[RState] = mapped_column(RState(), default=RState.is_draft)


class VirtualLog(TransitionLogMixin, VBase):
    __tablename__ = "rp_vlog"
    __table_args__ = {"schema": "st_virtual"}


class VirtualTx(Transitions[VirtualCard]):
    log = VirtualLog
    publish = Transition(RState.is_draft, RState.is_live)


def test_a_schema_translate_map_is_applied_to_statetypes_statements(engine: sa.Engine) -> None:
    translated = engine.execution_options(schema_translate_map={"st_virtual": None})
    VBase.metadata.drop_all(translated)
    VBase.metadata.create_all(translated)
    try:
        with Session(translated) as session:
            session.add(VirtualCard(id=1))
            session.commit()
            card = session.get(VirtualCard, 1)
            assert card is not None
            VirtualTx().publish(card)
            session.commit()
            assert [(r.from_value, r.to_value) for r in VirtualTx().history(card)] == [("1", "2")]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT state FROM rp_vcard")).scalar_one() == 2
    finally:
        VBase.metadata.drop_all(translated)


def test_a_plain_conflict_and_a_rejected_update_leave_the_transaction_usable(db: Session) -> None:
    """Without history (on PostgreSQL: SAVEPOINT, UPDATE and RELEASE sent in one round trip)."""
    note = _caller_work(db)
    first, second = db.get(Card, 1), db.get(Card, 2)
    assert first is not None and second is not None
    db.execute(sa.text("UPDATE rp_card SET state = 3 WHERE id = 1"))
    with pytest.raises(ConcurrentTransitionError):
        Plain().publish(first)
    with pytest.raises(sa.exc.DBAPIError):
        Plain().publish(second)  # the CHECK refuses it
    third = db.get(Card, 3)
    assert third is not None
    Plain().publish(third)  # the transaction still works
    assert first.state.is_draft and second.state.is_draft and third.state.is_live
    cards, notes, _ = _committed(db)
    assert cards == [(1, 3, None), (2, 1, None), (3, 2, None)] and notes == [note.text]
