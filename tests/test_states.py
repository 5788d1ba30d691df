"""Declaring states (DESIGN section 2) and storing them (section 3, storage type)."""

from __future__ import annotations

import enum
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import InvalidStateValue, State, StateDefinitionError, StateType

# ---------------------------------------------------------------- declarations


class ReviewEnum(enum.Enum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    ACCEPTED = "accepted"


class LazyTitle:
    """Stands in for a lazy translation string: only ``__str__`` is known."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


DRAFT_TITLE = LazyTitle("Draft (lazy)")


class ProjectState(StateType[int]):
    is_draft = State(1, DRAFT_TITLE)
    is_published = State(2, "Published")
    is_withdrawn = State(3)
    is_deleted = State(4, final=True)
    in_review = State(5)

    is_gone = (is_withdrawn | is_deleted).titled("Gone for good")
    is_live = is_published | is_withdrawn

    @is_published.conditional
    def is_future(self, project: object) -> bool:
        return bool(getattr(project, "future", False))

    @is_future.expression
    def _is_future_sql(self, project: type[object]) -> ColumnElement[bool]:
        return sa.true()

    @is_live.conditional
    def is_featured(self, project: object) -> bool:
        return bool(getattr(project, "featured", False))

    # a group containing a conditional state and another (named) group
    is_openable = is_draft | is_future | is_gone


class ReviewState(StateType[ReviewEnum]):
    is_draft = State(ReviewEnum.DRAFT)
    in_review = State(ReviewEnum.IN_REVIEW, initial=True)
    is_accepted = State(ReviewEnum.ACCEPTED, "Accepted!")


def test_members_are_instances_with_attributes() -> None:
    draft = ProjectState.is_draft
    assert isinstance(draft, ProjectState)
    assert (draft.name, draft.value, draft.final, draft.initial) == ("is_draft", 1, False, True)
    deleted = ProjectState.is_deleted
    assert (deleted.name, deleted.value, deleted.final, deleted.initial) == ("is_deleted", 4, True, False)
    # class access returns the same singleton every time
    assert ProjectState.is_draft is ProjectState.is_draft


def test_initial_defaults_to_first_state_unless_marked() -> None:
    assert [s.name for s in ProjectState.states if s.initial] == ["is_draft"]
    assert [s.name for s in ReviewState.states if s.initial] == ["in_review"]


def test_titles_given_enum_and_humanized() -> None:
    assert ProjectState.is_published.title == "Published"
    assert ProjectState.is_withdrawn.title == "Withdrawn"
    assert ProjectState.in_review.title == "In review"
    assert ProjectState.is_gone.title == "Gone for good"
    assert ProjectState.is_live.title == "Live"
    assert ProjectState.is_future.title == "Future"
    # from the enum member's name, unless given
    assert ReviewState.is_draft.title == "Draft"
    assert ReviewState.in_review.title == "In review"
    assert ReviewState.is_accepted.title == "Accepted!"


def test_lazy_title_is_kept_as_given() -> None:
    assert ProjectState.is_draft.title is DRAFT_TITLE
    assert str(ProjectState.is_draft.title) == "Draft (lazy)"


def test_states_groups_conditionals_in_declaration_order() -> None:
    assert ProjectState.states == (
        ProjectState.is_draft,
        ProjectState.is_published,
        ProjectState.is_withdrawn,
        ProjectState.is_deleted,
        ProjectState.in_review,
    )
    assert isinstance(ProjectState.states, tuple)
    assert ProjectState.groups == (ProjectState.is_gone, ProjectState.is_live, ProjectState.is_openable)
    assert ProjectState.conditionals == (ProjectState.is_future, ProjectState.is_featured)


def test_member_states_lists_covered_plain_states() -> None:
    assert ProjectState.is_gone.states == (ProjectState.is_withdrawn, ProjectState.is_deleted)
    assert ProjectState.is_future.states == (ProjectState.is_published,)
    # a conditional based on a group covers the group's states
    assert ProjectState.is_featured.states == (ProjectState.is_published, ProjectState.is_withdrawn)
    # a group of a state, a conditional and a group
    assert set(ProjectState.is_openable.states) == {
        ProjectState.is_draft,
        ProjectState.is_published,
        ProjectState.is_withdrawn,
        ProjectState.is_deleted,
    }
    assert ProjectState.is_draft.states == (ProjectState.is_draft,)


def test_groups_and_conditionals_are_members() -> None:
    for member in (*ProjectState.groups, *ProjectState.conditionals):
        assert isinstance(member, ProjectState)
    assert ProjectState.is_gone.name == "is_gone"
    assert ProjectState.is_featured.name == "is_featured"


def test_static_checks_on_members() -> None:
    assert ProjectState.is_withdrawn.is_gone is True
    assert ProjectState.is_withdrawn.is_live is True
    assert ProjectState.is_draft.is_gone is False
    assert ProjectState.is_draft.is_openable is True
    assert ProjectState.is_deleted.is_openable is True
    assert ProjectState.in_review.is_openable is False
    # not decidable without an object
    with pytest.raises(TypeError, match="is_future"):
        ProjectState.is_published.is_future
    # but decidable when the base does not hold
    assert ProjectState.is_draft.is_future is False


def test_from_value() -> None:
    assert ProjectState.from_value(2) is ProjectState.is_published
    assert ReviewState.from_value("in_review") is ReviewState.in_review
    assert ReviewState.from_value(ReviewEnum.ACCEPTED) is ReviewState.is_accepted
    for bad in (9, "2", None, 2.0, True):
        with pytest.raises(InvalidStateValue, match="ProjectState"):
            ProjectState.from_value(bad)
    with pytest.raises(InvalidStateValue):
        ReviewState.from_value("nope")


def test_enum_member_value() -> None:
    assert ReviewState.in_review.value is ReviewEnum.IN_REVIEW


def test_anonymous_group_of_members() -> None:
    group = ProjectState.is_draft | ProjectState.is_deleted
    assert isinstance(group, ProjectState)
    assert group.states == (ProjectState.is_draft, ProjectState.is_deleted)
    assert ProjectState.is_deleted.is_draft is False


# ---------------------------------------------------------------- definition errors


def _define(body: str) -> None:
    namespace = {"StateType": StateType, "State": State, "ReviewEnum": ReviewEnum}
    exec(body, namespace)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("class Bad(StateType[int]):\n    is_x = State('1')\n", r"Bad\.is_x.*'1'"),
        ("class Bad(StateType[int]):\n    is_ok = State(1)\n    is_x = State(True)\n", r"Bad\.is_x.*True"),
        ("class Bad(StateType[str]):\n    is_x = State(1)\n", r"Bad\.is_x"),
        ("class Bad(StateType[int]):\n    is_a = State(1)\n    is_b = State(1)\n", r"Bad\.is_b.*1.*is_a"),
        ("class Bad(StateType[str]):\n    is_a = State('a')\n    is_b = State('a')\n", r"Bad\.is_b"),
        (
            "class Bad(StateType[ReviewEnum]):\n    is_a = State(ReviewEnum.DRAFT)\n    is_b = State(ReviewEnum.IN_REVIEW)\n",
            r"Bad.*ACCEPTED",
        ),
        (
            "class Bad(StateType[ReviewEnum]):\n"
            "    is_a = State(ReviewEnum.DRAFT)\n"
            "    is_b = State(ReviewEnum.IN_REVIEW)\n"
            "    is_c = State(ReviewEnum.ACCEPTED)\n"
            "    is_d = State(ReviewEnum.DRAFT)\n",
            r"Bad\.is_d.*DRAFT",
        ),
        (
            "class Bad(StateType[ReviewEnum]):\n"
            "    is_a = State(ReviewEnum.DRAFT)\n"
            "    is_b = State(ReviewEnum.IN_REVIEW)\n"
            "    is_c = State('accepted')\n",
            r"Bad\.is_c.*ReviewEnum",
        ),
        ("class Bad(StateType[int]):\n    pass\n", r"Bad"),
        ("class Bad(StateType[int]):\n    is_x = 1\n", r"Bad"),
        ("class Bad(StateType[int]):\n    is_x = State(1)\n    is_x = State(2)\n", r"Bad\.is_x"),
        ("class Bad(StateType[int]):\n    is_x = State(1)\n    def is_x(self): pass\n", r"Bad\.is_x"),
        (
            "class Bad(StateType[int]):\n    is_a = State(1)\n    is_b = State(2)\n    is_g = is_a | is_b\n    is_g = is_a | is_b\n",
            r"Bad\.is_g",
        ),
        ("class Bad(StateType[float]):\n    is_x = State(1.0)\n", r"Bad"),
        ("class Bad(StateType):\n    is_x = State(1)\n", r"Bad"),
    ],
    ids=[
        "str-for-int",
        "bool-for-int",
        "int-for-str",
        "duplicate-int",
        "duplicate-str",
        "enum-member-missing",
        "enum-member-twice",
        "raw-value-for-enum",
        "zero-states",
        "no-state-objects",
        "state-declared-twice",
        "state-redefined-as-method",
        "group-declared-twice",
        "unsupported-value-type",
        "no-value-type",
    ],
)
def test_definition_errors(body: str, pattern: str) -> None:
    with pytest.raises(StateDefinitionError, match=pattern):
        _define(body)


def test_group_with_non_state_is_an_error() -> None:
    with pytest.raises(TypeError):
        _define("class Bad(StateType[int]):\n    is_a = State(1)\n    is_g = is_a | 2\n")
    with pytest.raises(TypeError):
        _define("class Bad(StateType[int]):\n    is_a = State(1)\n    is_g = is_a | 'x'\n")


def test_group_with_state_of_another_class_is_an_error() -> None:
    with pytest.raises(StateDefinitionError, match=r"Other\.is_g"):
        _define(
            "class Bad(StateType[int]):\n    is_a = State(1)\n"
            "class Other(StateType[int]):\n    is_b = State(2)\n    is_g = is_b | Bad.__dict__['is_a']\n"
        )
    with pytest.raises(TypeError):
        _define(
            "class Bad(StateType[int]):\n    is_a = State(1)\n"
            "class Other(StateType[int]):\n    is_b = State(2)\n    is_g = is_b | Bad.is_a\n"
        )


def test_definition_error_is_a_type_error() -> None:
    # StateDefinitionError subclasses TypeError, so "TypeError is fine" holds either way.
    assert issubclass(StateDefinitionError, TypeError)


def test_bare_statetype_is_not_a_column_type() -> None:
    with pytest.raises(StateDefinitionError):
        StateType()


# ---------------------------------------------------------------- storage type


class WordState(StateType[str]):
    is_new = State("new")
    is_archived = State("archived")
    is_ok = State("ok")


class SmallState(StateType[int]):
    is_low = State(1)
    is_high = State(30000)


def test_storage_type_is_inferred() -> None:
    assert isinstance(ProjectState().impl_instance, sa.Integer)
    word = WordState().impl_instance
    assert isinstance(word, sa.String) and word.length == len("archived")
    review = ReviewState().impl_instance
    assert isinstance(review, sa.String) and review.length == len("in_review")


def test_impl_override() -> None:
    assert isinstance(SmallState(impl=sa.SmallInteger).impl_instance, sa.SmallInteger)
    assert isinstance(SmallState(impl=sa.SmallInteger()).impl_instance, sa.SmallInteger)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "states_project"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[ProjectState] = mapped_column(ProjectState(), default=ProjectState.is_draft)


class Word(Base):
    __tablename__ = "states_word"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[WordState] = mapped_column(WordState(), default=WordState.is_new)


class Review(Base):
    __tablename__ = "states_review"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[ReviewState] = mapped_column(ReviewState(), default=ReviewState.is_draft)


class Small(Base):
    __tablename__ = "states_small"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[SmallState] = mapped_column(SmallState(impl=sa.SmallInteger), default=SmallState.is_low)


def _raw(engine: sa.Engine, table: str) -> list[tuple[int, object]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT id, state FROM {table} ORDER BY id"))]


def test_round_trip_int(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add_all(
            [Project(), Project(state=ProjectState.is_published), Project(state=4), Project(state=5)]
        )
        session.commit()
    assert _raw(engine, "states_project") == [(1, 1), (2, 2), (3, 4), (4, 5)]
    with Session(engine) as session:
        loaded = session.scalars(sa.select(Project).order_by(Project.id)).all()
        assert [p.state.name for p in loaded] == ["is_draft", "is_published", "is_deleted", "in_review"]
        assert [p.state.value for p in loaded] == [1, 2, 4, 5]
        assert session.scalars(sa.select(Project.state).order_by(Project.id)).all() == [
            ProjectState.is_draft,
            ProjectState.is_published,
            ProjectState.is_deleted,
            ProjectState.in_review,
        ]


def test_round_trip_str(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add_all([Word(), Word(state=WordState.is_archived), Word(state="ok")])
        session.commit()
    assert _raw(engine, "states_word") == [(1, "new"), (2, "archived"), (3, "ok")]
    with Session(engine) as session:
        loaded = session.scalars(sa.select(Word).order_by(Word.id)).all()
        assert [w.state.name for w in loaded] == ["is_new", "is_archived", "is_ok"]
        assert loaded[1].state.is_archived


def test_round_trip_enum(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add_all(
            [Review(), Review(state=ReviewEnum.IN_REVIEW), Review(state="accepted"), Review(state=ReviewState.in_review)]
        )
        session.commit()
    # stored as the enum member's .value
    assert _raw(engine, "states_review") == [(1, "draft"), (2, "in_review"), (3, "accepted"), (4, "in_review")]
    with Session(engine) as session:
        loaded = session.scalars(sa.select(Review).order_by(Review.id)).all()
        assert [r.state.value for r in loaded] == [
            ReviewEnum.DRAFT,
            ReviewEnum.IN_REVIEW,
            ReviewEnum.ACCEPTED,
            ReviewEnum.IN_REVIEW,
        ]
        assert loaded[1].state == ReviewEnum.IN_REVIEW
        assert loaded[1].state.in_review
        in_review = session.scalars(sa.select(Review.id).where(Review.state.in_review).order_by(Review.id)).all()
        assert in_review == [2, 4]
        by_enum = session.scalars(
            sa.select(Review.id).where(Review.state == ReviewEnum.ACCEPTED).order_by(Review.id)
        ).all()
        assert by_enum == [3]


def test_round_trip_small_integer_override(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    create_all(Base.metadata)
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("states_small")}
    assert isinstance(columns["state"]["type"], sa.SmallInteger)
    with Session(engine) as session:
        session.add_all([Small(), Small(state=SmallState.is_high)])
        session.commit()
    assert _raw(engine, "states_small") == [(1, 1), (2, 30000)]
    with Session(engine) as session:
        assert [s.state.name for s in session.scalars(sa.select(Small).order_by(Small.id))] == ["is_low", "is_high"]


def test_string_column_length_in_database(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    create_all(Base.metadata)
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("states_word")}
    assert isinstance(columns["state"]["type"], sa.String)
    assert columns["state"]["type"].length == len("archived")


class OtherIntState(StateType[int]):
    is_one = State(1)
    is_two = State(2)


def test_plain_members_equal_their_stored_value() -> None:
    # The ORM compares members with raw values (UPDATE synchronisation, history).
    assert ProjectState.is_draft == 1
    assert ProjectState.is_draft != 2
    assert 1 == ProjectState.is_draft
    assert ProjectState.is_draft != True  # noqa: E712  (a bool is not a declared int value)
    assert ProjectState.is_draft != "1"
    assert hash(ProjectState.is_draft) == hash(1)
    assert ProjectState.is_draft != OtherIntState.is_one
    assert ProjectState.is_draft in [3, 1]
    assert ReviewState.is_draft == "draft"
    assert ReviewState.is_draft == ReviewEnum.DRAFT
    assert ReviewState.is_draft != ReviewEnum.IN_REVIEW
    # groups, conditionals and column types compare by identity
    assert ProjectState.is_gone != 3
    assert ProjectState.is_future != 2
    assert ProjectState() != ProjectState()
    column_type = ProjectState()
    assert column_type == column_type
    assert len({ProjectState(), ProjectState()}) == 2
