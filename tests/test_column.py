"""The column in SQL (DESIGN section 3): filters, the CHECK constraint, undeclared values."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import InvalidStateValue, State, StateDefinitionError, StateType, StateTypeError


class ColState(StateType[int]):
    is_draft = State(1)
    is_published = State(2)
    is_withdrawn = State(3)
    is_deleted = State(4, final=True)

    is_gone = is_withdrawn | is_deleted
    is_live = is_published | is_withdrawn

    @is_published.conditional
    def is_future(self, item: Item) -> bool:
        return item.future

    @is_future.expression
    def _is_future_sql(self, item: type[Item]) -> ColumnElement[bool]:
        return item.future == sa.true()

    @is_live.conditional
    def is_featured(self, item: Item) -> bool:
        return item.featured

    @is_featured.expression
    def _is_featured_sql(self, item: type[Item]) -> ColumnElement[bool]:
        return item.featured == sa.true()

    @is_draft.conditional
    def is_python_only(self, item: Item) -> bool:
        return True

    is_openable = is_draft | is_future | is_gone
    is_with_python_only = is_deleted | is_python_only


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "column_item"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    future: Mapped[bool] = mapped_column(default=False)
    featured: Mapped[bool] = mapped_column(default=False)
    state: Mapped[ColState] = mapped_column(ColState(), default=ColState.is_draft)


# id: (state, future, featured)
ROWS = {
    1: (ColState.is_draft, False, False),
    2: (ColState.is_published, False, False),
    3: (ColState.is_published, True, False),
    4: (ColState.is_published, False, True),
    5: (ColState.is_withdrawn, False, True),
    6: (ColState.is_withdrawn, True, False),
    7: (ColState.is_deleted, False, False),
    8: (ColState.is_draft, True, True),
}


@pytest.fixture
def session(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as s:
        s.add_all(Item(id=i, state=st, future=fu, featured=fe) for i, (st, fu, fe) in ROWS.items())
        s.commit()
    with Session(engine) as s:
        yield s


def ids(session: Session, *criteria: ColumnElement[bool]) -> list[int]:
    return list(session.scalars(sa.select(Item.id).where(*criteria).order_by(Item.id)))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("is_draft", [1, 8]),
        ("is_published", [2, 3, 4]),
        ("is_withdrawn", [5, 6]),
        ("is_deleted", [7]),
        ("is_gone", [5, 6, 7]),
        ("is_live", [2, 3, 4, 5, 6]),
        ("is_future", [3]),
        ("is_featured", [4, 5]),
        ("is_openable", [1, 3, 5, 6, 7, 8]),
    ],
)
def test_member_filters(session: Session, name: str, expected: list[int]) -> None:
    assert ids(session, getattr(Item.state, name)) == expected
    # negation returns exactly the complement
    assert ids(session, ~getattr(Item.state, name)) == [i for i in ROWS if i not in expected]
    # == member means membership, != its complement
    member = getattr(ColState, name)
    assert ids(session, Item.state == member) == expected
    assert ids(session, Item.state != member) == [i for i in ROWS if i not in expected]


def test_filters_render_expected_sql() -> None:
    group = str(sa.select(Item.id).where(Item.state.is_openable).compile())
    assert "column_item.state IN" in group and " OR " in group and "column_item.future" in group
    conditional = str(Item.state.is_future.compile())
    assert "column_item.state = " in conditional and " AND " in conditional
    based_on_group = str(Item.state.is_featured.compile())
    assert "column_item.state IN" in based_on_group and "column_item.featured" in based_on_group


def test_filter_with_raw_values(session: Session) -> None:
    assert ids(session, Item.state == 2) == [2, 3, 4]
    assert ids(session, Item.state != 1) == [2, 3, 4, 5, 6, 7]


def test_filter_combined_with_other_criteria(session: Session) -> None:
    assert ids(session, Item.state.is_live, ~Item.state.is_featured) == [2, 3, 6]
    assert ids(session, sa.or_(Item.state.is_deleted, Item.state.is_future)) == [3, 7]


def test_in_accepts_members_groups_and_raw_values(session: Session) -> None:
    assert ids(session, Item.state.in_([ColState.is_draft, ColState.is_deleted])) == [1, 7, 8]
    assert ids(session, Item.state.in_([ColState.is_gone, 1])) == [1, 5, 6, 7, 8]
    assert ids(session, Item.state.not_in([ColState.is_draft, ColState.is_published])) == [5, 6, 7]
    assert ids(session, Item.state.in_((2,))) == [2, 3, 4]


def test_in_refuses_conditionals_and_foreign_members() -> None:
    class Other(StateType[int]):
        is_one = State(1)

    with pytest.raises(InvalidStateValue, match="is_future"):
        Item.state.in_([ColState.is_future])
    with pytest.raises(InvalidStateValue, match="Other"):
        Item.state.in_([Other.is_one])


def test_core_table_column_filters(session: Session) -> None:
    table = Item.__table__
    found = session.scalars(sa.select(table.c.id).where(table.c.state.is_gone).order_by(table.c.id)).all()
    assert found == [5, 6, 7]
    found = session.scalars(sa.select(table.c.id).where(table.c.state == ColState.is_live).order_by(table.c.id)).all()
    assert found == [2, 3, 4, 5, 6]
    # a conditional state needs the mapped class for its expression
    with pytest.raises(StateTypeError, match="is_future"):
        table.c.state.is_future


def test_aliased_self_join(session: Session) -> None:
    other = aliased(Item)
    query = (
        sa.select(Item.id, other.id)
        .join(other, other.id > Item.id)
        .where(Item.state.is_draft, other.state.is_future)
        .order_by(Item.id, other.id)
    )
    assert [tuple(r) for r in session.execute(query)] == [(1, 3)]
    query = (
        sa.select(Item.id, other.id)
        .join(other, other.id == Item.id + 1)
        .where(Item.state.is_live, other.state == ColState.is_gone, ~other.state.is_featured)
        .order_by(Item.id)
    )
    assert [tuple(r) for r in session.execute(query)] == [(5, 6), (6, 7)]
    query = (
        sa.select(Item.id, other.id)
        .join(other, other.id == Item.id + 1)
        .where(other.state.is_openable, Item.state.in_([ColState.is_published]))
        .order_by(Item.id)
    )
    assert [tuple(r) for r in session.execute(query)] == [(2, 3), (4, 5)]


def test_aliased_renders_against_alias() -> None:
    other = aliased(Item, name="other")
    sql = str(sa.select(other.id).where(other.state.is_featured).compile())
    assert "other.state IN" in sql and "other.featured" in sql
    assert "column_item.featured" not in sql.split("FROM")[1].replace("column_item AS other", "")


def test_update_with_member_values(session: Session) -> None:
    session.execute(sa.update(Item).where(Item.state.is_future).values(state=ColState.is_deleted))
    session.execute(sa.update(Item.__table__).where(Item.__table__.c.id == 1).values(state=ColState.is_withdrawn))
    session.commit()
    assert ids(session, Item.state.is_deleted) == [3, 7]
    assert ids(session, Item.state.is_withdrawn) == [1, 5, 6]


def test_conditional_without_expression_in_sql_is_a_clear_error() -> None:
    with pytest.raises(StateDefinitionError, match=r"ColState\.is_python_only.*expression"):
        Item.state.is_python_only
    with pytest.raises(StateDefinitionError, match=r"is_python_only"):
        Item.state.is_with_python_only
    with pytest.raises(StateDefinitionError, match=r"is_python_only"):
        sa.select(Item.id).where(Item.state == ColState.is_python_only)


def test_unknown_name_in_sql_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="is_nonexistent"):
        Item.state.is_nonexistent  # noqa: B018


# ---------------------------------------------------------------- CHECK constraint


def _check_violation(error: BaseException, engine: sa.Engine) -> None:
    if engine.dialect.name in ("mysql", "mariadb") and isinstance(error, sa.exc.OperationalError):
        assert error.orig.args[0] == 4025
    else:
        assert isinstance(error, sa.exc.IntegrityError)


def test_check_rejects_undeclared_value_raw_sql(engine: sa.Engine, session: Session) -> None:
    with pytest.raises((sa.exc.IntegrityError, sa.exc.OperationalError)) as info:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO column_item (id, future, featured, state) VALUES (99, :f, :f, 9)"), {"f": False})
    _check_violation(info.value, engine)
    with pytest.raises((sa.exc.IntegrityError, sa.exc.OperationalError)) as info:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE column_item SET state = 0 WHERE id = 1"))
    _check_violation(info.value, engine)
    assert ids(session, Item.id >= 0) == list(ROWS)
    assert ids(session, Item.state.is_draft) == [1, 8]


def test_check_rejects_undeclared_value_core_insert(engine: sa.Engine, session: Session) -> None:
    # Through the column's type an undeclared value never leaves Python ...
    with pytest.raises(InvalidStateValue, match=r"ColState: 9 is not a declared value"):
        with engine.begin() as conn:
            conn.execute(sa.insert(Item.__table__).values(id=99, future=False, featured=False, state=9))
    # ... typed as the storage type it reaches the database, whose CHECK refuses it.
    with pytest.raises((sa.exc.IntegrityError, sa.exc.OperationalError)) as info:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(Item.__table__).values(id=99, future=False, featured=False, state=sa.literal(9, sa.Integer))
            )
    _check_violation(info.value, engine)
    # declared values pass
    with engine.begin() as conn:
        conn.execute(sa.insert(Item.__table__).values(id=99, future=False, featured=False, state=4))
    assert ids(session, Item.state.is_deleted) == [7, 99]


def _check_names(table: sa.Table) -> list[str | None]:
    return sorted(str(c.name) for c in table.constraints if isinstance(c, sa.CheckConstraint))


def test_check_constraint_default_name(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    assert _check_names(Item.__table__) == ["ck_column_item_state"]
    create_all(Base.metadata)
    reflected = sa.inspect(engine).get_check_constraints("column_item")
    names = [c["name"] for c in reflected]
    assert "ck_column_item_state" in names


def _table(metadata: sa.MetaData, name: str, **type_kw: bool) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", ColState(**type_kw), nullable=False),
    )


def test_check_constraint_honours_constraint_name_convention(
    engine: sa.Engine, create_all: Callable[[sa.MetaData], None]
) -> None:
    metadata = sa.MetaData(naming_convention={"ck": "ck_%(table_name)s_%(constraint_name)s"})
    table = _table(metadata, "column_conv_a")
    assert _check_names(table) == ["ck_column_conv_a_state"]
    create_all(metadata)
    assert [c["name"] for c in sa.inspect(engine).get_check_constraints("column_conv_a")] == [
        "ck_column_conv_a_state"
    ]


def test_check_constraint_honours_column_name_convention(
    engine: sa.Engine, create_all: Callable[[sa.MetaData], None]
) -> None:
    metadata = sa.MetaData(naming_convention={"ck": "chk_%(table_name)s_%(column_0_name)s"})
    table = _table(metadata, "column_conv_b")
    assert _check_names(table) == ["chk_column_conv_b_state"]
    create_all(metadata)
    assert [c["name"] for c in sa.inspect(engine).get_check_constraints("column_conv_b")] == [
        "chk_column_conv_b_state"
    ]
    with pytest.raises((sa.exc.IntegrityError, sa.exc.OperationalError)) as info:
        with engine.begin() as conn:
            conn.execute(table.insert().values(id=1, state=sa.literal(7, sa.Integer)))
    _check_violation(info.value, engine)


def test_check_false_omits_constraint(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    metadata = sa.MetaData()
    table = _table(metadata, "column_nocheck", check=False)
    assert _check_names(table) == []
    create_all(metadata)
    assert sa.inspect(engine).get_check_constraints("column_nocheck") == []
    with engine.begin() as conn:
        # another program's write, as the storage type: nothing in the database refuses it
        conn.execute(table.insert().values(id=1, state=sa.literal(7, sa.Integer)))
        assert conn.execute(sa.text("SELECT state FROM column_nocheck")).scalar_one() == 7


def test_check_constraint_lists_declared_values() -> None:
    metadata = sa.MetaData()
    table = _table(metadata, "column_ddl")
    ddl = str(sa.schema.CreateTable(table).compile(dialect=sa.dialects.postgresql.dialect()))
    assert "CONSTRAINT ck_column_ddl_state CHECK (state IN (1, 2, 3, 4))" in ddl


def test_each_table_gets_its_own_constraint() -> None:
    metadata = sa.MetaData()
    first = _table(metadata, "column_twice_a")
    second = _table(metadata, "column_twice_b")
    assert _check_names(first) == ["ck_column_twice_a_state"]
    assert _check_names(second) == ["ck_column_twice_b_state"]


def test_table_to_metadata_copies_constraint_once() -> None:
    table = _table(sa.MetaData(), "column_copy")
    copy = table.to_metadata(sa.MetaData())
    assert _check_names(copy) == ["ck_column_copy_state"]


# ---------------------------------------------------------------- undeclared values


class UncheckedBase(DeclarativeBase):
    pass


class Unchecked(UncheckedBase):
    __tablename__ = "column_unchecked"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    future: Mapped[bool] = mapped_column(default=False)
    featured: Mapped[bool] = mapped_column(default=False)
    state: Mapped[ColState] = mapped_column(ColState(check=False), default=ColState.is_draft)


def test_undeclared_value_loads_as_unknown(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    create_all(UncheckedBase.metadata)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO column_unchecked (id, future, featured, state) VALUES (1, :t, :t, 42), (2, :t, :t, 2)"),
            {"t": True},
        )
    with Session(engine) as session:
        unknown, known = session.scalars(sa.select(Unchecked).order_by(Unchecked.id)).all()
        assert unknown.state.known is False
        assert known.state.known is True
        assert unknown.state.value == 42
        for name in ColState._members:
            assert getattr(unknown.state, name) is False, name
        assert unknown.state != ColState.is_draft
        assert unknown.state == 42
        # filters see it nowhere
        found: Sequence[int] = session.scalars(
            sa.select(Unchecked.id).where(sa.or_(*(getattr(Unchecked.state, n) for n in ("is_openable", "is_live"))))
        ).all()
        assert list(found) == [2]
        # pickling keeps members singletons, unknown values included
        copies = pickle.loads(pickle.dumps([unknown, known]))
        assert copies[0].__dict__["state"] is unknown.__dict__["state"]
        assert copies[1].__dict__["state"] is ColState.is_published
        assert copies[0].state.known is False and copies[0].state == 42
        # and it can be moved to a declared state
        unknown.state = ColState.is_deleted
        session.commit()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT state FROM column_unchecked WHERE id = 1")).scalar_one() == 4


# ---------------------------------------------------------------- ORM-enabled UPDATE


@pytest.mark.parametrize("sync", ["auto", "evaluate", "fetch"])
def test_orm_update_synchronizes_loaded_objects(session: Session, sync: str) -> None:
    items = {item.id: item for item in session.scalars(sa.select(Item))}
    assert items[1].state.is_draft  # loaded before the UPDATE
    for criterion, value in [
        (Item.state.is_draft, ColState.is_published),  # 1, 8 -> published
        (Item.state == 4, 3),  # 7 -> withdrawn
        (Item.state.is_future, ColState.is_deleted),  # 3 -> deleted
        (Item.state.in_([ColState.is_gone]), ColState.is_deleted),  # 5, 6, 7 -> deleted
    ]:
        session.execute(
            sa.update(Item).where(criterion).values(state=value).execution_options(synchronize_session=sync)
        )
    expected = {1: "is_published", 2: "is_published", 3: "is_deleted", 4: "is_published"}
    expected.update({5: "is_deleted", 6: "is_deleted", 7: "is_deleted", 8: "is_deleted"})
    assert {i: item.state.name for i, item in items.items()} == expected
    session.commit()
    session.expire_all()
    assert {i: item.state.name for i, item in items.items()} == expected


# ---------------------------------------------------------------- NULL in conditional expressions


class ScoreState(StateType[str]):
    is_open = State("open")
    is_closed = State("closed")

    @is_open.conditional
    def is_high(self, entry: Scored) -> bool:
        return entry.score is not None and entry.score > 5

    @is_high.expression
    def _is_high_sql(self, entry: type[Scored]) -> ColumnElement[bool]:
        return entry.score > 5  # NULL when score is NULL

    is_notable = is_closed | is_high


class Scored(UncheckedBase):
    __tablename__ = "column_scored"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    score: Mapped[int | None]
    state: Mapped[ScoreState] = mapped_column(ScoreState(), default=ScoreState.is_open)


def test_conditional_is_two_valued_when_its_expression_is_null(
    engine: sa.Engine, create_all: Callable[[sa.MetaData], None]
) -> None:
    create_all(UncheckedBase.metadata)
    rows = [(1, None, "open"), (2, 9, "open"), (3, 1, "open"), (4, None, "closed"), (5, 9, "closed")]
    with Session(engine) as session:
        entries = [Scored(id=i, score=score, state=state) for i, score, state in rows]
        session.add_all(entries)
        session.commit()
        for name in ("is_high", "is_notable"):
            python = [e.id for e in entries if getattr(e.state, name)]
            in_sql = session.scalars(sa.select(Scored.id).where(getattr(Scored.state, name)).order_by(Scored.id)).all()
            negated = session.scalars(
                sa.select(Scored.id).where(~getattr(Scored.state, name)).order_by(Scored.id)
            ).all()
            assert in_sql == python
            # a check is true or false, never unknown: NOT gives exactly the others
            assert negated == [e.id for e in entries if e.id not in python], name
        assert session.scalars(sa.select(Scored.id).where(Scored.state != ScoreState.is_high)).all() == [1, 3, 4, 5]
