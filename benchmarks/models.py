"""Tables shared by the benchmark groups: the same shape with a StateType
column and with a plain Integer column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

try:
    # sqlalchemy-fsm (a peer in bench_peers.py) adds events to InstanceEvents,
    # which only reach classes mapped after its import: import it first.
    import sqlalchemy_fsm  # noqa: F401
except ImportError:
    pass
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import State, StateType

NOW = dt.datetime(2026, 6, 1)


class BenchState(StateType[int]):
    """No conditional state: every check on an instance is a constant."""

    is_draft = State(1)
    is_published = State(2)
    is_withdrawn = State(3)
    is_deleted = State(4, final=True)
    is_gone = is_withdrawn | is_deleted


class CondState(StateType[int]):
    """The same states plus a conditional state based on ``is_published``."""

    is_draft = State(1)
    is_published = State(2)
    is_withdrawn = State(3)
    is_deleted = State(4, final=True)
    is_gone = is_withdrawn | is_deleted

    @is_published.conditional
    def is_future(self, row: CondRow) -> bool:
        return row.start_at is not None and row.start_at > NOW

    @is_future.expression
    def _is_future_sql(self, row: type[CondRow]) -> ColumnElement[bool]:
        return row.start_at > NOW


class Base(DeclarativeBase):
    pass


class PlainRow(Base):
    __tablename__ = "plain_row"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(50))
    state: Mapped[int] = mapped_column(sa.Integer, default=1)
    start_at: Mapped[dt.datetime | None]


class StatedRow(Base):
    __tablename__ = "stated_row"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(50))
    state: Mapped[BenchState] = mapped_column(BenchState(), default=BenchState.is_draft)
    start_at: Mapped[dt.datetime | None]


class CondRow(Base):
    __tablename__ = "cond_row"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(50))
    state: Mapped[CondState] = mapped_column(CondState(), default=CondState.is_draft)
    start_at: Mapped[dt.datetime | None]


def sqlite_engine(tmpdir: Path, rows: int) -> sa.Engine:
    """A SQLite file holding ``rows`` identical rows in each table (states cycle 1..4)."""
    engine = sa.create_engine(f"sqlite:///{tmpdir / 'bench.db'}")
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    data = [
        {"id": i, "title": f"row {i}", "state": i % 4 + 1, "start_at": NOW + dt.timedelta(days=i % 7 - 3)}
        for i in range(1, rows + 1)
    ]
    with engine.begin() as conn:
        for model in (PlainRow, StatedRow, CondRow):
            conn.execute(sa.insert(model), data)
    return engine
