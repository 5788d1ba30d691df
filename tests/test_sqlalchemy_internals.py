"""Private SQLAlchemy and alembic attributes statetype relies on, each pinned.

Where SQLAlchemy offers no public API for what statetype needs, the code
reaches into a private attribute; docs/contributing.md lists them. Each test
here checks the exact shape the code uses, so that a release that changes one
fails here, with the attribute's name, rather than somewhere deep in a
transition. When a use goes away, remove its test and its line in the docs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import instance_state

from statetype import State, StateType


class DocState(StateType[int]):
    is_draft = State(1)
    is_published = State(2)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "internals_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(20), default="")
    state: Mapped[DocState] = mapped_column(DocState(), default=DocState.is_draft)


@pytest.fixture
def session(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add(Doc(id=1))
        session.commit()
        yield session


def test_compiled_bind_processors() -> None:
    """execution.py: ``SQLCompiler._bind_processors``, bind name -> processor, for exec_driver_sql."""
    table = Doc.__table__
    statement = sa.update(table).where(table.c.state == sa.bindparam("old")).values(state=sa.bindparam("new"))
    compiled = statement.compile(dialect=sa.create_engine("sqlite://").dialect)
    processors: Any = compiled._bind_processors
    assert {"old", "new"} <= set(processors)
    assert processors["new"](DocState.is_published) == 2
    assert processors["old"](DocState.is_draft) == 1


def test_instance_state_instance_dict_and_modified(session: Session) -> None:
    """execution.py: ``InstanceState._instance_dict()`` is the identity map; ``IdentityMap._modified`` its dirty set."""
    doc = session.get(Doc, 1)
    assert doc is not None
    state = instance_state(doc)
    identity_map: Any = state._instance_dict()
    assert identity_map is session.identity_map
    doc.title = "changed"
    assert state in identity_map._modified
    identity_map._modified.discard(state)
    state.modified = False
    assert not session.identity_map.check_modified()


def test_instance_state_commit(session: Session) -> None:
    """execution.py: ``InstanceState._commit(dict_, keys)`` marks keys as loaded from the database."""
    doc = session.get(Doc, 1)
    assert doc is not None
    state = instance_state(doc)
    doc.title = "stored"
    assert "title" in state.committed_state
    state._commit(state.dict, ["title"])
    assert "title" not in state.committed_state
    assert doc.title == "stored"


def test_session_deleted_undo(session: Session) -> None:
    """execution.py: ``Session._deleted`` (state -> object) undoes ``session.delete()`` before a flush."""
    doc = session.get(Doc, 1)
    assert doc is not None
    session.delete(doc)
    assert doc in session.deleted
    deleted: Any = session._deleted
    deleted.pop(instance_state(doc), None)
    assert doc not in session.deleted
    session.flush()
    assert session.get(Doc, 1) is doc


def test_check_constraint_type_bound() -> None:
    """alembic.py: ``CheckConstraint._type_bound`` tells the type's own CHECK from the user's."""
    table = sa.Table(
        "internals_t",
        sa.MetaData(),
        sa.Column("state", DocState()),
        sa.CheckConstraint("1 = 1", name="ck_user"),
    )
    checks = {c.name: c for c in table.constraints if isinstance(c, sa.CheckConstraint)}
    assert checks["ck_internals_t_state"]._type_bound is True
    assert checks["ck_user"]._type_bound is False


def test_type_set_parent_hook() -> None:
    """states.py: a TypeDecorator's ``_set_parent(column)`` runs when the type is given to a Column."""
    seen: list[object] = []

    class Spy(sa.types.TypeDecorator[int]):
        impl = sa.Integer
        cache_ok = True

        def _set_parent(self, parent: Any, outer: bool = False, **kw: Any) -> None:
            seen.append(parent)
            super()._set_parent(parent, outer=outer, **kw)  # type: ignore[misc]

    spied = sa.Column("spied", Spy())
    assert seen == [spied]
    # statetype's override attaches the CHECK once the column is in a table.
    column = sa.Column("state", DocState())
    table = sa.Table("internals_spy", sa.MetaData(), column)
    assert [c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)] == ["ck_internals_spy_state"]


def test_alembic_render_helpers() -> None:
    """alembic.py: alembic's private render helpers keep their names and call shapes."""
    from alembic.autogenerate import render
    from alembic.autogenerate.api import AutogenContext
    from alembic.migration import MigrationContext

    context = AutogenContext(
        MigrationContext.configure(dialect_name="sqlite", opts={"sqlalchemy_module_prefix": "sa."})
    )
    assert render._sqlalchemy_autogenerate_prefix(context) == "sa."
    assert render._render_gen_name(context, "ck_doc_state") == "ck_doc_state"
    assert render._repr_type(sa.Integer(), context) == "sa.Integer()"


def test_connection_echo_and_has_events(engine: sa.Engine) -> None:
    """_raw.py: ``Connection._echo`` and ``Connection._has_events`` (set by a listener on the connection)."""
    with engine.connect() as connection:
        assert connection._echo is False and connection._has_events is False

        def listener(*args: Any) -> None:
            pass

        sa.event.listen(connection, "after_cursor_execute", listener)
        assert connection._has_events is True


def test_engine_listener_collections(engine: sa.Engine) -> None:
    """_raw.py: the engine's listener collections expose ``parent_listeners`` (class level) and ``listeners``."""
    dispatch: Any = engine.dispatch
    for name in ("before_execute", "after_execute", "before_cursor_execute", "after_cursor_execute"):
        collection = getattr(dispatch, name)
        assert len(collection.parent_listeners) >= 0 and len(collection.listeners) >= 0

    def listener(*args: Any) -> None:
        pass

    sa.event.listen(engine, "after_execute", listener)
    try:
        assert list(engine.dispatch.after_execute.listeners) == [listener]  # type: ignore[attr-defined]
    finally:
        sa.event.remove(engine, "after_execute", listener)


def test_connection_handle_dbapi_exception(engine: sa.Engine) -> None:
    """_raw.py: ``Connection._handle_dbapi_exception(error, statement, params, cursor, context)`` wraps and raises."""
    with engine.connect() as connection:
        cursor = connection.connection.cursor()
        try:
            cursor.execute("SELECT * FROM no_such_table_here")
        except Exception as error:  # the driver's own error
            with pytest.raises(sa.exc.DBAPIError) as raised:
                connection._handle_dbapi_exception(error, "SELECT * FROM no_such_table_here", (), cursor, None)
            assert raised.value.orig is error
        else:
            raise AssertionError("the statement should fail")


def test_session_transaction_state_and_connections(session: Session) -> None:
    """execution.py: ``Session._transaction._state`` and its ``_connections`` map (bind -> (connection, ...))."""
    from sqlalchemy.orm.session import SessionTransactionState, _sessions

    connection = session.connection()
    transaction: Any = session._transaction
    assert transaction._state is SessionTransactionState.ACTIVE
    assert transaction._connections[session.bind][0] is connection
    assert _sessions[session.hash_key] is session
    # Per-mapper binds, in the session's __dict__ under execution._BINDS: ``binds`` on SQLAlchemy 2.1,
    # the private ``__binds`` on 2.0; empty without them.
    from statetype.execution import _BINDS

    assert _BINDS in session.__dict__ and not session.__dict__[_BINDS]
    with Session(session.get_bind(), binds={Doc: session.get_bind()}) as routed:
        assert routed.__dict__[_BINDS]
