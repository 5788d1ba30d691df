"""Values in motion (DESIGN section 3): pickling ("Values travel"), values reaching SQL
through the column ("In SQL"), and a state column that is also a foreign key to a
table of states (a member never reaches a driver).
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload, subqueryload
from sqlalchemy.sql.elements import ColumnElement
from wtforms import Form, IntegerField
from wtforms.validators import InputRequired

from statetype import (
    AfterCommitError,
    BulkNotSupported,
    ConcurrentTransitionError,
    InvalidStateValue,
    ProtectedStateError,
    State,
    StateDefinitionError,
    StateType,
    StateTypeError,
    Transition,
    TransitionDataInvalid,
    TransitionNotAllowed,
    Transitions,
)


class DocState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_archived = State(3, "Archived", final=True)
    is_visible = is_published | is_archived

    @is_published.conditional
    def is_featured(self, doc: Doc) -> bool:
        return doc.featured

    @is_featured.expression
    def _is_featured_sql(self, doc: type[Doc]) -> ColumnElement[bool]:
        return doc.featured == sa.true()


class OtherState(StateType[int]):
    is_on = State(1)
    is_off = State(9)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "values_doc"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    featured: Mapped[bool] = mapped_column(default=False)
    state: Mapped[DocState] = mapped_column(DocState(), default=DocState.is_draft)


class CountForm(Form):
    count = IntegerField(validators=[InputRequired()])


class DocTransitions(Transitions[Doc, None]):
    publish = Transition(DocState.is_draft, DocState.is_published)
    archive = Transition(DocState.is_published, DocState.is_archived, form=CountForm)


# ---------------------------------------------------------------- pickling


def _roundtrip(value: object) -> object:
    return pickle.loads(pickle.dumps(value))


def test_members_pickle_to_themselves() -> None:
    for member in (*DocState.states, *DocState.groups, *DocState.conditionals):
        assert _roundtrip(member) is member
    anonymous = DocState.is_draft | DocState.is_archived
    copy = _roundtrip(anonymous)
    assert isinstance(copy, DocState)
    assert copy.states == anonymous.states


def test_loaded_values_pickle() -> None:
    plain = Doc(id=1, state=DocState.is_draft)
    featured = Doc(id=2, state=DocState.is_published, featured=True)
    copy = _roundtrip(plain.state)
    assert copy == plain.state and copy == DocState.is_draft and copy == 1
    assert copy.is_draft and copy.title == "Draft"
    # a value whose checks depend on the object travels with a copy of the object
    value = featured.state
    copy = _roundtrip(value)
    assert copy == value
    assert copy.is_featured is True and copy.is_published is True and copy.is_visible is True
    assert copy.name == "is_published" and copy.value == 2
    # a list of objects with their states, as a cache would hold it
    docs = _roundtrip([plain, featured])
    assert isinstance(docs, list)
    assert [d.state.name for d in docs] == ["is_draft", "is_published"]  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]


def _errors() -> list[StateTypeError]:
    doc = Doc(id=1, state=DocState.is_archived)
    verdict = DocTransitions().publish.check(doc)
    return [
        StateTypeError("base"),
        StateDefinitionError("DocState.x is declared twice"),
        InvalidStateValue("DocState: 9 is not a value"),
        ProtectedStateError("Doc.state is protected"),
        ConcurrentTransitionError("changed meanwhile"),
        BulkNotSupported("hook"),
        TransitionNotAllowed("DocTransitions.publish refused", verdict),
        TransitionDataInvalid("invalid data: count", {"count": ["This field is required."]}),
        AfterCommitError("the transaction was committed, but 1 after_commit hook(s) raised", [ValueError("x")]),
    ]


def test_every_error_pickles_with_its_attributes() -> None:
    errors = _errors()
    for error in errors:
        copy = _roundtrip(error)
        assert type(copy) is type(error)
        assert str(copy) == str(error) and repr(copy.args) == repr(error.args)
        assert copy.__dict__.keys() == error.__dict__.keys()
    refused = _roundtrip(errors[-3])
    assert isinstance(refused, TransitionNotAllowed)
    assert not refused.verdict
    assert [(r.kind, r.message) for r in refused.verdict.reasons] == [
        ("state", r.message) for r in errors[-3].verdict.reasons  # type: ignore[attr-defined]
    ]
    assert isinstance(refused.verdict.reasons[0].obj, Doc)
    invalid = _roundtrip(errors[-2])
    assert isinstance(invalid, TransitionDataInvalid)
    assert invalid.errors == {"count": ["This field is required."]}
    group = _roundtrip(errors[-1])
    assert isinstance(group, AfterCommitError) and [str(e) for e in group.exceptions] == ["x"]


def _publish_in_worker(state: int) -> object:
    doc = Doc(id=7, state=DocState.from_value(state), featured=True)
    DocTransitions().publish(doc)
    return doc.state


def _archive_in_worker(count: str) -> object:
    doc = Doc(id=8, state=DocState.is_published)
    DocTransitions().archive(doc, data={"count": count})
    return doc.state


def test_errors_and_values_cross_a_process_pool() -> None:
    # spawn: the worker is a fresh interpreter that rebuilds the classes by import
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        value = pool.submit(_publish_in_worker, 1).result(timeout=120)
        assert value == DocState.is_published
        assert getattr(value, "is_featured") is True  # the worker's object came along
        with pytest.raises(TransitionNotAllowed) as refused:
            pool.submit(_publish_in_worker, 3).result(timeout=120)
        assert [r.kind for r in refused.value.verdict.reasons] == ["state"]
        assert "Archived" in refused.value.verdict.reasons[0].message
        with pytest.raises(TransitionDataInvalid) as invalid:
            pool.submit(_archive_in_worker, "many").result(timeout=120)
        assert list(invalid.value.errors) == ["count"]
        # the pool is still usable: no BrokenProcessPool
        assert pool.submit(_archive_in_worker, "3").result(timeout=120) == DocState.is_archived


# ---------------------------------------------------------------- values in SQL


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: Doc.state == OtherState.is_on, id="eq-other-member"),
        pytest.param(lambda: Doc.state == 9, id="eq-undeclared"),
        pytest.param(lambda: Doc.state != 9, id="ne-undeclared"),
        pytest.param(lambda: Doc.state != OtherState.is_off, id="ne-other-member"),
        pytest.param(lambda: Doc.state == "1", id="eq-wrong-type"),
        pytest.param(lambda: Doc.state == True, id="eq-bool"),  # noqa: E712
        pytest.param(lambda: Doc.state > 9, id="gt-undeclared"),
        pytest.param(lambda: Doc.state.in_([DocState.is_draft, 9]), id="in-undeclared"),
        pytest.param(lambda: Doc.state.in_([OtherState.is_on]), id="in-other-member"),
        pytest.param(lambda: Doc.state.not_in([9]), id="not-in-undeclared"),
        pytest.param(lambda: Doc.__table__.c.state == 9, id="core-column-eq"),
        pytest.param(lambda: sa.update(Doc).values(state=OtherState.is_on), id="update-other-member"),
        pytest.param(lambda: sa.update(Doc).values(state=9), id="update-undeclared"),
        pytest.param(lambda: sa.update(Doc).values({Doc.state: 9}), id="update-attribute-key"),
        pytest.param(lambda: sa.update(Doc).values(state=DocState.is_visible), id="update-group"),
        pytest.param(lambda: sa.insert(Doc).values(id=1, state=OtherState.is_off), id="insert-other-member"),
        pytest.param(lambda: sa.insert(Doc).values([{"id": 1, "state": 9}]), id="insert-many-undeclared"),
        pytest.param(lambda: sa.update(Doc).values(state=DocState()), id="update-column-type"),
    ],
)
def test_invalid_values_refused_when_the_expression_is_built(build: Callable[[], object]) -> None:
    with pytest.raises(InvalidStateValue, match=r"DocState|Doc\.state"):
        build()


def test_valid_values_compile_to_stored_values() -> None:
    def params(clause: sa.ClauseElement) -> list[object]:
        return list(clause.compile().params.values())

    assert params(Doc.state == DocState.is_published) == [2]
    assert params(Doc.state == 2) == [2]
    assert params(Doc.state != Doc(state=DocState.is_archived).state) == [3]
    assert params(Doc.state.in_([1, DocState.is_archived])) == [[1, 3]]
    assert str(Doc.state == None) == "values_doc.state IS NULL"  # noqa: E711
    assert "values_doc.featured" in str(Doc.state == DocState.is_featured)
    # SQL on the other side passes unchanged
    assert str(Doc.state == sa.bindparam("s")) == "values_doc.state = :s"
    assert "values_doc.id" in str(sa.update(Doc).values(state=sa.case((Doc.id > 1, 2), else_=1)))


@pytest.fixture
def session(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as s:
        s.add_all([Doc(id=1, state=DocState.is_draft), Doc(id=2, state=DocState.is_published)])
        s.commit()
        yield s


def test_core_dml_values_checked_before_the_database(engine: sa.Engine, session: Session) -> None:
    table = Doc.__table__
    with engine.connect() as conn:
        with pytest.raises(InvalidStateValue, match="DocState: 9 is not a declared value"):
            conn.execute(sa.update(table).where(table.c.id == 1).values(state=9))
        conn.rollback()
        with pytest.raises(InvalidStateValue, match="OtherState.is_on is not a value of DocState"):
            conn.execute(table.insert(), [{"id": 5, "state": 1}, {"id": 6, "state": OtherState.is_on}])
        conn.rollback()
        # declared values, members and bound values go through as their stored values
        conn.execute(table.insert(), [{"id": 5, "state": 3}, {"id": 6, "state": DocState.is_published}])
        conn.execute(sa.update(table).where(table.c.id == 1).values(state=Doc(state=DocState.is_archived).state))
        conn.commit()
        rows = conn.execute(sa.select(table.c.id, sa.type_coerce(table.c.state, sa.Integer)).order_by(table.c.id))
        assert [tuple(r) for r in rows] == [(1, 3), (2, 2), (5, 3), (6, 2)]


def test_orm_dml_with_members(session: Session) -> None:
    session.execute(sa.update(Doc).where(Doc.id == 1).values(state=DocState.is_published))
    session.execute(sa.insert(Doc).values(id=3, state=DocState.is_archived))
    session.execute(sa.insert(Doc), [{"id": 4, "state": DocState.is_draft}, {"id": 5, "state": 2}])
    session.commit()
    found = session.scalars(sa.select(Doc.id).where(Doc.state.in_([DocState.is_published])).order_by(Doc.id)).all()
    assert list(found) == [1, 2, 5]
    with pytest.raises(InvalidStateValue):
        session.execute(sa.insert(Doc), [{"id": 6, "state": 9}])
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Doc)) == 5


# ---------------------------------------------------------------- small ones


def test_column_type_instance_is_not_a_state() -> None:
    doc = Doc(id=1)
    with pytest.raises(InvalidStateValue, match=r"Doc\.state: DocState\(\) is a column type, not a state"):
        doc.state = DocState()
    with pytest.raises(InvalidStateValue, match=r"OtherState\(\) is a column type"):
        doc.state = OtherState()  # type: ignore[assignment]


def test_conditional_without_predicate_is_a_definition_error() -> None:
    with pytest.raises(StateDefinitionError, match=r"Broken\.is_odd: a conditional state needs a predicate"):

        class Broken(StateType[int]):
            is_a = State(1)
            is_odd = is_a.conditional(None)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# ---------------------------------------------------------------- a foreign key to a table of states


class KeyState(StateType[int]):
    is_draft = State(1, "Draft")
    is_live = State(2, "Live")


class TitleState(StateType[str]):
    is_new = State("new", "Brand new")
    is_old = State("old", "Old one")


class KeyBase(DeclarativeBase):
    pass


class DbState(KeyBase):
    __tablename__ = "values_db_state"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(sa.String(20))


class DbTitle(KeyBase):
    __tablename__ = "values_db_title"
    code: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(20))


class Post(KeyBase):
    __tablename__ = "values_post"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    state: Mapped[KeyState] = mapped_column(KeyState(), sa.ForeignKey("values_db_state.id"), default=KeyState.is_draft)
    title: Mapped[TitleState] = mapped_column(TitleState(), sa.ForeignKey("values_db_title.code"), default=TitleState.is_new)
    db_state: Mapped[DbState] = relationship()
    db_title: Mapped[DbTitle] = relationship()


@pytest.fixture
def keyed(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> sa.Engine:
    create_all(KeyBase.metadata)
    with Session(engine) as s:
        s.add_all([DbState(id=1, label="draft row"), DbState(id=2, label="live row")])
        s.add_all([DbTitle(code="new", label="new row"), DbTitle(code="old", label="old row")])
        s.flush()
        s.add_all([Post(id=1, state=KeyState.is_live, title=TitleState.is_old), Post(id=2)])
        s.commit()
    return engine


def test_foreign_key_state_lazy_load(keyed: sa.Engine) -> None:
    with Session(keyed) as s:
        post = s.get_one(Post, 1)
        assert post.db_state.label == "live row"
        assert post.db_title.label == "old row"


def test_foreign_key_state_session_get(keyed: sa.Engine) -> None:
    with Session(keyed) as s:
        post = s.get_one(Post, 1)
        by_value = s.get(DbState, post.state)
        by_member = s.get(DbTitle, TitleState.is_old)
        assert by_value is not None and by_value.label == "live row"
        assert by_member is not None and by_member.label == "old row"
        s.expunge_all()
        # not from the identity map: the database is asked, with the raw value
        assert s.get_one(DbState, KeyState.is_draft).label == "draft row"


@pytest.mark.parametrize("loader", [selectinload, subqueryload])
def test_foreign_key_state_eager_loads(keyed: sa.Engine, loader: Callable[..., sa.orm.Load]) -> None:
    with Session(keyed) as s:
        posts = s.scalars(
            sa.select(Post).options(loader(Post.db_state), loader(Post.db_title)).order_by(Post.id)
        ).all()
        assert [(p.db_state.label, p.db_title.label) for p in posts] == [("live row", "old row"), ("draft row", "new row")]


def test_foreign_key_state_text_parameters(keyed: sa.Engine) -> None:
    with Session(keyed) as s:
        post = s.get_one(Post, 1)
        query = sa.text("SELECT label FROM values_db_state WHERE id = :state")
        assert s.execute(query, {"state": post.state}).scalar_one() == "live row"
        assert s.execute(query, {"state": KeyState.is_draft}).scalar_one() == "draft row"
        titles = sa.text("SELECT label FROM values_db_title WHERE code = :a OR code = :b ORDER BY label")
        assert list(s.execute(titles, {"a": TitleState.is_new, "b": post.title}).scalars()) == ["new row", "old row"]
        with pytest.raises(InvalidStateValue, match="not a single state"):
            s.execute(query, {"state": KeyState.is_draft | KeyState.is_live})
