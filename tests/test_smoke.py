"""A first end-to-end check of the core on every database."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from statetype import State, StateType


class DocState(StateType[int]):
    is_draft = State(1)
    is_published = State(2)
    is_deleted = State(3, final=True)
    is_visible = is_draft | is_published


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "smoke_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[DocState] = mapped_column(DocState(), default=DocState.is_draft)


def test_round_trip_and_filter(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add_all([Doc(), Doc(state=DocState.is_published), Doc(state=3)])
        session.commit()
    with Session(engine) as session:
        docs = session.scalars(sa.select(Doc).order_by(Doc.id)).all()
        assert [d.state.name for d in docs] == ["is_draft", "is_published", "is_deleted"]
        visible = session.scalars(sa.select(Doc.id).where(Doc.state.is_visible).order_by(Doc.id)).all()
        assert visible == [1, 2]
