"""statetype.testing: the assertion helpers, the hypothesis strategies and the pytest plugin.

Database tests run on SQLite, PostgreSQL and MariaDB (the ``engine`` fixture);
the plugin is tested by running pytest in a subprocess on a small test file.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    DecimalField,
    FileField,
    Form,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from examples.projects import (
    Account,
    AccountState,
    Base as ProjectsBase,
    Comment,
    CommentState,
    Project,
    ProjectLog,
    ProjectState,
    ProjectTransitions,
    TalkSession,
    User,
)
from statetype import AppliedStep, State, StateType, Transition, Transitions
from statetype.forms import StateSelectField
from statetype.testing import assert_allowed, assert_refused, assert_transition
from statetype.testing.strategies import FormNotSupported, Walk, form_data, members, walks

CreateAll = Callable[[sa.MetaData], None]
FEW = settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------ a small model


class DoorState(StateType[int]):
    is_open = State(1, "Open")
    is_closed = State(2, "Closed")
    is_locked = State(3, "Locked")
    is_broken = State(4, "Broken", final=True)

    is_shut = (is_closed | is_locked).titled("Shut")

    @is_closed.conditional
    def is_ajar(self, door: Door) -> bool:
        return bool(door.gap)


class Base(DeclarativeBase):
    pass


class Door(Base):
    __tablename__ = "testing_door"
    id: Mapped[int] = mapped_column(primary_key=True)
    gap: Mapped[int] = mapped_column(default=0)
    code: Mapped[str | None] = mapped_column(sa.String(20))
    state: Mapped[DoorState] = mapped_column(DoorState(), default=DoorState.is_open)


class LockForm(Form):
    code = StringField("Code", validators=[InputRequired(), Length(min=4, max=8)])


class DoorTransitions(Transitions[Door, str]):
    close = Transition(DoorState.is_open, DoorState.is_closed)
    open = Transition(DoorState.is_closed, DoorState.is_open)
    lock = Transition(DoorState.is_closed, DoorState.is_locked, form=LockForm)
    unlock = Transition(DoorState.is_locked, DoorState.is_closed)
    kick = Transition(DoorState.is_shut, DoorState.is_broken)

    @lock.guard
    def shut_tight(self, door: Door) -> bool:
        """The door must be shut tight."""
        return not door.gap

    @unlock.permission
    @kick.permission
    def is_keeper(self, door: Door) -> bool:
        """Only the keeper may do this."""
        return self.actor == "keeper"

    @lock.execute
    def set_code(self, door: Door, data: Any) -> None:
        door.code = data["code"]


class SneakyTransitions(Transitions[Door, str]):
    """A registry whose after() hook writes another state behind the ORM's back (as a trigger might)."""

    close = Transition(DoorState.is_open, DoorState.is_closed)

    def after(self, step: AppliedStep[Door]) -> None:
        session = sa.inspect(step.obj).session
        assert session is not None
        session.connection().execute(sa.update(Door.__table__).values(state=3).where(Door.__table__.c.id == step.obj.id))


def message(failure: pytest.ExceptionInfo[AssertionError]) -> str:
    """The helper's message, whether or not pytest rewrote its assert statement.

    Rewriting indents the message's continuation lines and appends the
    introspection of the failed expression (``assert <Verdict refused: ...>``).
    """
    lines = [line.strip() for line in str(failure.value).splitlines()]
    end = next((i for i, line in enumerate(lines) if line.startswith("assert ")), len(lines))
    return "\n".join(lines[:end])


@pytest.fixture
def doors(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as session:
        yield session


# ------------------------------------------------------------------ assert_allowed / assert_refused


def test_assert_allowed_passes_and_returns_the_verdict() -> None:
    verdict = assert_allowed(DoorTransitions(actor="ann").close, Door(state=DoorState.is_open))
    assert verdict and verdict.reasons == ()


def test_assert_allowed_lists_every_reason_object_state_and_actor() -> None:
    door = Door(state=DoorState.is_closed, gap=3)
    with pytest.raises(AssertionError) as failure:
        assert_allowed(DoorTransitions(actor="ann").kick, Door(state=DoorState.is_open))
    text = message(failure)
    assert text.startswith(
        "DoorTransitions.kick is refused for Door (new), in state Open (is_open = 1), actor 'ann':\n"
        "- state: Door (new, id "
    )
    assert "is Open; kick needs Shut\n- permission: Only the keeper may do this." in text

    with pytest.raises(AssertionError) as failure:
        assert_allowed(DoorTransitions(actor="ann").lock, door)
    assert "\n- guard: The door must be shut tight." in message(failure)


def test_assert_refused_with_and_without_kind() -> None:
    tx = DoorTransitions(actor="ann")
    locked = Door(state=DoorState.is_locked)
    verdict = assert_refused(tx.unlock, locked, kind="permission")
    assert [r.kind for r in verdict.reasons] == ["permission"]
    assert_refused(tx.close, locked)
    assert_refused(tx.close, locked, kind="state")

    with pytest.raises(AssertionError) as failure:
        assert_refused(tx.close, Door(state=DoorState.is_open))
    assert message(failure) == (
        "DoorTransitions.close was expected to be refused for Door (new), in state Open (is_open = 1), "
        "actor 'ann', but check() allows it"
    )
    with pytest.raises(AssertionError) as failure:
        assert_refused(tx.unlock, locked, kind="guard")
    assert message(failure) == (
        "DoorTransitions.unlock is refused for Door (new), in state Locked (is_locked = 3), actor 'ann', "
        "but for no reason of kind 'guard'; its reasons:\n- permission: Only the keeper may do this."
    )
    with pytest.raises(ValueError, match="kind must be one of state, guard"):
        assert_refused(tx.unlock, locked, kind="guards")  # type: ignore[arg-type]


def test_assert_refused_timer_and_chain_on_the_projects_model() -> None:
    ann = User(id=1, name="ann")
    account = Account(name="Rivers", owner=ann, state=AccountState.is_published)
    rivers = Project(title="Rivers", account=account, editors=[ann])
    talk = TalkSession(title="Talk", project=rivers)
    talk.comments = [Comment(body="hi", author=ann, pinned=True)]
    tx = ProjectTransitions(actor=ann)
    assert_refused(tx.expire, rivers, kind="timer")
    verdict = assert_refused(tx.delete, rivers, kind="chain")
    assert "Pinned comments are kept." in verdict.reasons[0].message


# ------------------------------------------------------------------ assert_transition


def test_assert_transition_in_memory() -> None:
    tx = DoorTransitions(actor="keeper")
    door = Door(state=DoorState.is_closed)
    applied = assert_transition(tx.lock, door, from_=DoorState.is_shut, to=DoorState.is_locked, data={"code": "1234"})
    assert [s.transition.name for s in applied.steps] == ["lock"] and door.code == "1234"
    assert_transition(tx.unlock, door, DoorState.is_locked, DoorState.is_closed)

    with pytest.raises(AssertionError) as failure:
        assert_transition(tx.open, door, from_=DoorState.is_open, to=DoorState.is_open)
    assert message(failure) == "before DoorTransitions.open: Door (new) is in state Closed (is_closed = 2), not Open (is_open)"
    with pytest.raises(AssertionError) as failure:
        assert_transition(tx.close, door, from_=DoorState.is_shut, to=DoorState.is_closed)
    assert message(failure).startswith(
        "DoorTransitions.close cannot apply to Door (new), in state Closed (is_closed = 2), actor 'keeper':\n- state: "
    )
    with pytest.raises(AssertionError) as failure:
        assert_transition(tx.open, door, from_=DoorState.is_closed, to=DoorState.is_shut)
    assert message(failure) == (
        "after DoorTransitions.open: Door (new) is in state Open (is_open = 1), expected Shut (is_shut: is_closed or is_locked)"
    )


def test_assert_transition_reports_refused_data() -> None:
    door = Door(state=DoorState.is_closed)
    with pytest.raises(AssertionError) as failure:
        assert_transition(DoorTransitions().lock, door, DoorState.is_closed, DoorState.is_locked, data={"code": "12"})
    assert message(failure) == (
        "DoorTransitions.lock refused the data for Door (new): {'code': '12'}\n"
        "- code: Field must be between 4 and 8 characters long."
    )
    assert door.state.is_closed and door.code is None


def test_assert_transition_reads_the_row_back(doors: Session) -> None:
    door = Door(state=DoorState.is_closed)
    doors.add(door)
    doors.commit()
    tx = DoorTransitions(actor="keeper")
    assert_transition(tx.lock, door, from_=DoorState.is_closed, to=DoorState.is_locked, data={"code": "abcd"})
    doors.commit()
    assert doors.connection().scalar(sa.select(Door.state)) is DoorState.is_locked

    # the row changed behind the object's back: the "before" end is checked in the database
    assert door.state.is_locked  # loaded after the commit: the next UPDATE leaves it stale
    doors.execute(sa.update(Door.__table__).values(state=1))
    with pytest.raises(AssertionError) as failure:
        assert_transition(tx.unlock, door, from_=DoorState.is_locked, to=DoorState.is_closed)
    assert message(failure) == (
        f"before DoorTransitions.unlock: the database row of Door {door.id} holds Open (is_open = 1), "
        "expected Locked (is_locked); the object says in state Locked (is_locked = 3)"
    )
    doors.rollback()

    # a hook (or trigger) stores another state than the object shows: the "after" end catches it
    other = Door(state=DoorState.is_open)
    doors.add(other)
    doors.flush()
    with pytest.raises(AssertionError) as failure:
        assert_transition(SneakyTransitions().close, other, from_=DoorState.is_open, to=DoorState.is_closed)
    assert message(failure) == (
        f"after SneakyTransitions.close: the database row of Door {other.id} holds Locked (is_locked = 3), "
        "expected Closed (is_closed); the object says in state Closed (is_closed = 2)"
    )
    doors.rollback()


def test_assert_transition_follows_a_chain_in_the_database(engine: sa.Engine, create_all: CreateAll) -> None:
    create_all(ProjectsBase.metadata)
    with Session(engine) as session:
        ann = User(name="ann")
        account = Account(name="Rivers", owner=ann, state=AccountState.is_published)
        rivers = Project(title="Rivers", account=account, editors=[ann])
        talk = TalkSession(title="Talk", project=rivers)
        talk.comments = [Comment(body="hi", author=ann)]
        session.add_all([ann, account, rivers, talk])
        session.commit()
        applied = assert_transition(ProjectTransitions(actor=ann).delete, rivers, ProjectState.is_draft, ProjectState.is_deleted)
        assert [type(s.obj).__name__ for s in applied.steps] == ["Comment", "TalkSession", "Project"]
        session.commit()
        assert talk.comments[0].state == CommentState.is_deleted


# ------------------------------------------------------------------ members


@settings(max_examples=30, database=None)
@given(
    state=members(DoorState),
    group=members(DoorState, kind="group"),
    conditional=members(DoorState, kind="conditional"),
    anything=members(DoorState, kind="any"),
)
def test_members_by_kind(state: DoorState, group: DoorState, conditional: DoorState, anything: DoorState) -> None:
    assert state in DoorState.states
    assert group is DoorState.is_shut and conditional is DoorState.is_ajar
    assert anything in (*DoorState.states, DoorState.is_shut, DoorState.is_ajar)


def test_members_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"members\(_NoGroups, kind='group'\): _NoGroups declares no group"):
        members(_NoGroups, kind="group")
    with pytest.raises(ValueError, match="kind must be state, group, conditional or any"):
        members(DoorState, kind="every")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a StateType class"):
        members(Door)  # type: ignore[type-var]


class _NoGroups(StateType[str]):
    is_a = State("a")


@settings(max_examples=20, database=None)
@given(member=members(DoorState, kind="any"))
def test_members_agree_with_the_bound_state(member: DoorState) -> None:
    door = Door(state=DoorState.is_closed, gap=1)
    assert (door.state == member) == (member in (DoorState.is_closed, DoorState.is_shut, DoorState.is_ajar))


# ------------------------------------------------------------------ form_data


class EveryField(Form):
    name = StringField(validators=[DataRequired(), Length(max=12)])
    level = IntegerField(validators=[InputRequired(), NumberRange(min=-3, max=7)])
    price = DecimalField(places=2, validators=[InputRequired(), NumberRange(min=0, max=100)])
    agreed = BooleanField(validators=[DataRequired()])
    newsletter = BooleanField()
    colour = SelectField(choices=["red", "green"])
    sizes = SelectMultipleField(choices=["1", "2"], coerce=int)
    door = StateSelectField(DoorState)
    starts = DateTimeLocalField(format="%Y-%m-%dT%H:%M", validators=[InputRequired()])
    day = DateField(validators=[Optional()])
    kind = StringField(validators=[InputRequired(), AnyOf(["x", "y"])])
    ref = StringField(validators=[InputRequired(), Regexp(r"[A-Z]{2}-\d{3}")])
    attachment = FileField(validators=[Optional()])


class Dossier(Base):
    __tablename__ = "testing_dossier"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[DoorState] = mapped_column(DoorState(), default=DoorState.is_open)


class DossierTransitions(Transitions[Dossier, None]):
    file = Transition(DoorState.is_open, DoorState.is_closed, form=EveryField)


@settings(max_examples=60, database=None)
@given(data=form_data(EveryField))
def test_form_data_is_accepted_by_its_form(data: dict[str, object]) -> None:
    assert {"name", "level", "price", "agreed", "colour", "door", "starts", "kind", "ref"} <= set(data)  # the others may be left out
    assert "attachment" not in data
    DossierTransitions().file(Dossier(), data=data)  # raises TransitionDataInvalid if the form refuses it


def test_form_data_refuses_a_field_it_cannot_fill() -> None:
    class Upload(Form):
        attachment = FileField(validators=[InputRequired()])

    with pytest.raises(FormNotSupported, match=r"Upload\.attachment \(FileField\): no data strategy for FileField"):
        form_data(Upload)


# ------------------------------------------------------------------ walks


def test_walks_argument_errors() -> None:
    with pytest.raises(TypeError, match=r"a registry instance with its actor, as DoorTransitions\(actor=user\)"):
        walks(DoorTransitions, Door())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_steps must be 0 or more"):
        walks(DoorTransitions(), Door(), max_steps=-1)
    with pytest.raises(ValueError, match=r"slam is not a transition of DoorTransitions \(transitions: close, kick"):
        walks(DoorTransitions(), Door(), data={"slam": st.just({})})


@settings(max_examples=40, database=None)
@given(data=st.data(), actor=st.sampled_from(["ann", "keeper"]))
def test_walks_take_only_available_transitions(data: st.DataObject, actor: str) -> None:
    door = Door(state=DoorState.is_open)
    tx = DoorTransitions(actor=actor)
    walk: Walk[Door] = data.draw(walks(tx, door, max_steps=8))
    for step in walk:
        assert step.obj is door and door.state == step.to_state
        assert step.transition.name != "kick" or actor == "keeper"
        if step.transition.name == "lock":
            assert door.code is not None and 4 <= len(door.code) <= 8  # data drawn from LockForm
    assert len(walk.steps) <= walk.length <= 8
    assert walk.run() == walk.steps  # exhausted: nothing more is applied


def test_walks_skip_a_form_they_cannot_fill_and_say_so() -> None:
    class Upload(Form):
        attachment = FileField(validators=[InputRequired()])

    class UploadTransitions(Transitions[Door, str]):
        close = Transition(DoorState.is_open, DoorState.is_closed, form=Upload)
        open = Transition(DoorState.is_closed, DoorState.is_open)

    skipped: list[tuple[str, str]] = []

    @settings(max_examples=10, database=None)
    @given(data=st.data())
    def walk_once(data: st.DataObject) -> None:
        walk = data.draw(walks(UploadTransitions(), Door(state=DoorState.is_open), max_steps=3))
        assert walk.run() == []
        skipped.extend(walk.skipped)

    walk_once()
    assert ("close", "Upload.attachment (FileField): no data strategy for FileField; pass one with walks(data=...)") in skipped

    # the same transition with data given for it
    @settings(max_examples=10, database=None)
    @given(data=st.data())
    def walk_with_data(data: st.DataObject) -> None:
        door = Door(state=DoorState.is_open)
        walk = data.draw(walks(UploadTransitions(), door, max_steps=2, data={"close": st.just({})}))
        for step in walk:
            assert step.transition.name in ("close", "open")

    with pytest.raises(AssertionError):  # FileField with InputRequired refuses {}: the step is skipped, not applied
        @settings(max_examples=10, database=None)
        @given(data=st.data())
        def must_close(data: st.DataObject) -> None:
            walk = data.draw(walks(UploadTransitions(), Door(state=DoorState.is_open), max_steps=1, data={"close": st.just({})}))
            walk.run()
            assert walk.skipped == [] or walk.length == 0

        must_close()


def test_a_failing_walk_shrinks_to_a_minimal_one() -> None:
    runs: list[list[str]] = []

    @settings(max_examples=100, database=None)
    @given(data=st.data())
    def never_locked(data: st.DataObject) -> None:
        door = Door(state=DoorState.is_open)
        names: list[str] = []
        runs.append(names)
        for step in data.draw(walks(DoorTransitions(actor="keeper"), door, max_steps=10)):
            names.append(step.transition.name)
            assert not door.state.is_locked

    with pytest.raises(AssertionError):
        never_locked()
    assert runs[-1] == ["close", "lock"]  # the last run replays the shrunk example


@FEW
@given(data=st.data())
def test_walks_on_the_projects_model_agree_with_the_database(
    engine: sa.Engine, projects_tables: None, data: st.DataObject
) -> None:
    with Session(engine) as session:
        ann = session.scalars(sa.select(User).where(User.name == "ann")).one()
        rivers = Project(title="Rivers", account=session.get(Account, 1), editors=[ann])
        talk = TalkSession(title="Talk", project=rivers, comments=[Comment(body="hi", author=ann)])
        session.add_all([rivers, talk])
        session.flush()
        tx = ProjectTransitions(actor=ann)
        walk = data.draw(walks(tx, rivers, max_steps=5))
        for count, step in enumerate(walk, start=1):
            stored = session.connection().scalar(sa.select(Project.state).where(Project.id == rivers.id))
            assert stored is step.to_state and rivers.state == stored
            assert len(tx.history(rivers)) == count
            if rivers.state.is_deleted:  # the chain deleted the session and its comment too
                assert talk.state.is_deleted and talk.comments[0].state == CommentState.is_deleted
        session.rollback()


@pytest.fixture
def projects_tables(engine: sa.Engine, create_all: CreateAll) -> None:
    create_all(ProjectsBase.metadata)
    with Session(engine) as session:
        ann = User(name="ann")
        session.add(Account(id=1, name="Rivers", owner=ann, state=AccountState.is_published))
        session.commit()


def test_projects_log_is_the_history_class() -> None:
    assert ProjectTransitions.log is ProjectLog


# ------------------------------------------------------------------ the pytest plugin


TINY = '''
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from statetype import State, StateType, Transition, Transitions
from statetype.testing import assert_allowed


class GateState(StateType[int]):
    is_open = State(1, "Open")
    is_shut = State(2, "Shut")


class Base(DeclarativeBase):
    pass


class Gate(Base):
    __tablename__ = "gate"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[GateState] = mapped_column(GateState(), default=GateState.is_open)


class GateTransitions(Transitions[Gate, str]):
    shut = Transition(GateState.is_open, GateState.is_shut)

    @shut.guard
    def clear(self, gate: Gate) -> bool:
        """Something blocks the gate."""
        return False


def test_helper():
    assert_allowed(GateTransitions(actor="ann").shut, Gate(state=GateState.is_open))


def test_comparison():
    assert Gate(state=GateState.is_open).state == GateState.is_shut
'''


def _pytest(tmp_path: Path, *args: str, **env: str) -> str:
    (tmp_path / "test_tiny.py").write_text(textwrap.dedent(TINY))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "error::pytest.PytestAssertRewriteWarning", *args, "test_tiny.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={k: v for k, v in dict(os.environ, **env).items() if not k.startswith("PYTEST_XDIST")},
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # both tests fail, as written
    return done.stdout


def test_plugin_rewrites_the_helpers_and_explains_state_comparisons(tmp_path: Path) -> None:
    out = _pytest(tmp_path)
    # the helper's own message, then the rewritten assert statement's introspection
    assert (
        "E           AssertionError: GateTransitions.shut is refused for Gate (new), in state Open (is_open = 1), actor 'ann':\n"
        "E               - guard: Something blocks the gate.\n"
        "E           assert <Verdict refused: Something blocks the gate.>"
    ) in out
    assert (
        "E       assert <bound GateState.is_open> == GateState.is_shut\n"
        "E         the object is in state Open (is_open = 1), not in Shut (is_shut)"
    ) in out
    assert "2 failed" in out


def test_plugin_is_registered_and_can_be_disabled(tmp_path: Path) -> None:
    out = _pytest(tmp_path, "--trace-config")
    assert "statetype.testing._plugin" in out
    plain = _pytest(tmp_path, "-p", "no:statetype")
    assert "not in Shut (is_shut)" not in plain  # pytest's own explanation instead
    assert "E       assert <bound GateState.is_open> == GateState.is_shut" in plain


def test_the_core_imports_neither_pytest_nor_hypothesis() -> None:
    code = (
        "import sys, statetype, statetype.forms, statetype.bulk, statetype.log, statetype.diagram, statetype.cli\n"
        "assert 'pytest' not in sys.modules and 'hypothesis' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_helpers_fail_with_assertions_disabled(tmp_path: Path) -> None:
    """Under ``python -O`` (no pytest, so no rewriting) a failing helper still raises its message."""
    (tmp_path / "tiny.py").write_text(textwrap.dedent(TINY).replace("def test_helper", "def helper"))
    code = "import tiny\ntry:\n    tiny.helper()\nexcept AssertionError as e:\n    print('raised:', e)\n"
    done = subprocess.run([sys.executable, "-O", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("raised: GateTransitions.shut is refused for Gate (new), in state Open (is_open = 1), actor 'ann':\n"), done.stderr
