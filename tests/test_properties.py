"""Property: what ``obj.state.is_x`` says in Python, the database says for ``Model.state.is_x``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import InvalidStateValue, State, StateType


class PropState(StateType[int]):
    is_new = State(1)
    is_active = State(2)
    is_paused = State(3)
    is_closed = State(4, final=True)
    is_archived = State(5, final=True)

    is_running = is_active | is_paused
    is_over = is_closed | is_archived

    @is_active.conditional
    def is_hot(self, item: PropItem) -> bool:
        return item.hot

    @is_hot.expression
    def _is_hot_sql(self, item: type[PropItem]) -> ColumnElement[bool]:
        return item.hot == sa.true()

    @is_running.conditional
    def is_flagged(self, item: PropItem) -> bool:
        return item.flagged

    @is_flagged.expression
    def _is_flagged_sql(self, item: type[PropItem]) -> ColumnElement[bool]:
        return item.flagged == sa.true()

    @is_paused.conditional
    def is_high(self, item: PropItem) -> bool:
        return item.score is not None and item.score > 5

    @is_high.expression
    def _is_high_sql(self, item: type[PropItem]) -> ColumnElement[bool]:
        return item.score > 5  # NULL when score is NULL

    is_attention = is_new | is_hot | is_over
    is_watch = is_attention | is_flagged | is_high


NAMES = tuple(PropState._members)
VALUES = [m.value for m in PropState.states]


class Base(DeclarativeBase):
    pass


class PropItem(Base):
    __tablename__ = "props_item"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    hot: Mapped[bool] = mapped_column(default=False)
    flagged: Mapped[bool] = mapped_column(default=False)
    score: Mapped[int | None]
    # check=False so that the property also covers rows other programs wrote
    state: Mapped[PropState] = mapped_column(PropState(check=False), default=PropState.is_new)


OBJECTS = 3
index = st.integers(0, OBJECTS - 1)
assignable = st.one_of(
    st.sampled_from(PropState.states),
    st.sampled_from(VALUES),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("assign"), index, assignable),
        st.tuples(st.just("copy"), index, index),
        st.tuples(st.just("hot"), index, st.booleans()),
        st.tuples(st.just("flagged"), index, st.booleans()),
        st.tuples(st.just("score"), index, st.one_of(st.none(), st.integers(0, 10))),
        st.tuples(st.just("raw"), index, st.sampled_from([*VALUES, 0, 99])),
        st.tuples(st.just("flush")),
        st.tuples(st.just("commit")),
        st.tuples(st.just("expire")),
    ),
    max_size=12,
)

ROW_QUERY = sa.select(
    PropItem.id,
    *(sa.case((getattr(PropItem.state, name), 1), else_=0).label(name) for name in NAMES),
    *(sa.case((PropItem.state == getattr(PropState, name), 1), else_=0).label(f"eq_{name}") for name in NAMES),
    *(sa.case((~getattr(PropItem.state, name), 1), else_=0).label(f"not_{name}") for name in NAMES),
).order_by(PropItem.id)


def _agree(session: Session, items: list[PropItem]) -> None:
    rows = session.execute(ROW_QUERY).mappings().all()
    assert [r["id"] for r in rows] == [item.id for item in items]
    for item, row in zip(items, rows):
        state = item.state
        for name in NAMES:
            python = getattr(state, name)
            assert isinstance(python, bool)
            assert python == bool(row[name]), (item.id, state, name)
            assert (state == getattr(PropState, name)) == python
            assert bool(row[f"eq_{name}"]) == python
            # NOT holds in SQL exactly when the check fails, NULL scores included
            assert bool(row[f"not_{name}"]) == (not python)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, initial=st.lists(st.sampled_from(PropState.states), min_size=OBJECTS, max_size=OBJECTS))
def test_python_checks_agree_with_sql(
    engine: sa.Engine, create_all: Callable[[sa.MetaData], None], ops: list[tuple[Any, ...]], initial: list[PropState]
) -> None:
    if sa.inspect(engine).has_table("props_item"):
        with engine.begin() as conn:
            conn.execute(sa.delete(PropItem))
    else:
        create_all(Base.metadata)
    with Session(engine) as session:
        items = [PropItem(id=i + 1, state=state) for i, state in enumerate(initial)]
        session.add_all(items)
        session.flush()
        _agree(session, items)
        for op in ops:
            kind = op[0]
            if kind == "assign":
                items[op[1]].state = op[2]
            elif kind == "copy":
                source = items[op[2]].state
                if source.known:
                    items[op[1]].state = source
                else:  # an undeclared value read from the database is not assignable
                    with pytest.raises(InvalidStateValue, match="unknown value"):
                        items[op[1]].state = source
            elif kind in ("hot", "flagged", "score"):
                setattr(items[op[1]], kind, op[2])
            elif kind == "raw":
                item = items[op[1]]
                session.flush()
                session.execute(
                    sa.text("UPDATE props_item SET state = :v WHERE id = :id"), {"v": op[2], "id": item.id}
                )
                session.expire(item, ["state"])
            elif kind == "flush":
                session.flush()
            elif kind == "commit":
                session.commit()
            else:
                session.expire_all()
            if kind in ("flush", "commit", "expire", "raw"):
                _agree(session, items)
        session.flush()
        _agree(session, items)
        session.commit()
        session.expire_all()
        _agree(session, items)
