"""bulk() with history: one history row per row moved, whatever the criteria read.

Criteria that read the log table itself (as an SQL expression or as
``text()``) see only history written before the call; a transition whose
target is also a source (a self-loop) moves and records each row once. Every
case runs on SQLite, PostgreSQL and MariaDB and checks the rows moved, the
history written and the caller's own work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from statetype import State, StateType, Transition, TransitionLogMixin, Transitions


class BState(StateType[int]):
    is_draft = State(1, "Draft")
    is_live = State(2, "Live")
    is_gone = State(3, "Gone")


class Base(DeclarativeBase):
    pass


class Page(Base):
    __tablename__ = "bh_page"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[BState] = mapped_column(BState(), default=BState.is_draft)


class Note(Base):
    __tablename__ = "bh_note"
    id: Mapped[int] = mapped_column(primary_key=True)


class PageLog(TransitionLogMixin, Base):
    __tablename__ = "bh_log"


class PageTx(Transitions[Page]):
    log = PageLog
    publish = Transition(BState.is_draft | BState.is_live, BState.is_live)
    remove = Transition(BState.is_draft | BState.is_live, BState.is_gone)


@pytest.fixture
def db(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add_all([Page(id=i, state=BState.is_draft if i % 2 else BState.is_live) for i in range(1, 9)])
        session.commit()
        yield session


def _history(db: Session) -> list[tuple[str, str | None, str, str]]:
    rows = db.scalars(sa.select(PageLog).order_by(PageLog.id))
    return sorted((r.object_id, r.from_value, r.to_value, r.transition) for r in rows)


def test_history_rows_match_the_rows_moved_with_their_source_states(db: Session) -> None:
    db.add(Note(id=1))
    db.flush()
    result = PageTx().remove.bulk(db, Page.id <= 4)
    db.commit()
    assert sorted(result.ids) == [1, 2, 3, 4] and result.count == 4
    assert _history(db) == [("1", "1", "3", "remove"), ("2", "2", "3", "remove"), ("3", "1", "3", "remove"),
                            ("4", "2", "3", "remove")]
    assert db.scalars(sa.select(Note.id)).all() == [1]
    assert [p.state.value for p in db.scalars(sa.select(Page).order_by(Page.id))] == [3, 3, 3, 3, 1, 2, 1, 2]


def test_a_criterion_reading_the_log_table_sees_only_earlier_history(db: Session) -> None:
    tx = PageTx()
    tx.publish.bulk(db, Page.id.in_([1, 2]))
    logged = sa.exists(sa.select(PageLog.id).where(PageLog.object_id == sa.cast(Page.id, sa.String(255))))
    result = tx.remove.bulk(db, ~logged)
    db.commit()
    assert sorted(result.ids) == [3, 4, 5, 6, 7, 8]
    assert len(_history(db)) == 2 + 6


def test_a_text_criterion_reading_the_log_table_is_applied_the_general_way(db: Session) -> None:
    tx = PageTx()
    tx.publish.bulk(db, Page.id.in_([1, 2]))
    unlogged = sa.text("NOT EXISTS (SELECT 1 FROM bh_log WHERE bh_log.object_id = CAST(bh_page.id AS CHAR(255)))")
    if db.get_bind().dialect.name == "postgresql":
        unlogged = sa.text("NOT EXISTS (SELECT 1 FROM bh_log WHERE bh_log.object_id = CAST(bh_page.id AS VARCHAR(255)))")
    result = tx.remove.bulk(db, unlogged)
    db.commit()
    assert sorted(result.ids) == [3, 4, 5, 6, 7, 8]
    removed = [h for h in _history(db) if h[3] == "remove"]
    assert sorted(int(h[0]) for h in removed) == [3, 4, 5, 6, 7, 8]


def test_a_self_loop_moves_and_records_each_row_once(db: Session) -> None:
    """Rows moved into the target by one source state's UPDATE are not picked again by the target's own."""
    result = PageTx().publish.bulk(db)
    db.commit()
    assert sorted(result.ids) == list(range(1, 9))
    assert _history(db) == sorted(
        (str(i), "1" if i % 2 else "2", "2", "publish") for i in range(1, 9)
    )
