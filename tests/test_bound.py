"""The state on instances (DESIGN section 3, "On instances"): assignment, bound values, mapping shapes."""

from __future__ import annotations

import enum
import gc
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import InvalidStateValue, ProtectedStateError, State, StateType
from statetype.bound import set_state


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class TaskState(StateType[int]):
    is_todo = State(1, "To do")
    is_doing = State(2)
    is_done = State(3, final=True)

    is_open = is_todo | is_doing

    @is_doing.conditional
    def is_urgent(self, task: Task) -> bool:
        return task.urgent

    @is_urgent.expression
    def _is_urgent_sql(self, task: type[Task]) -> ColumnElement[bool]:
        return task.urgent == sa.true()

    is_attention = is_todo | is_urgent


class ReviewState(StateType[str]):
    is_pending = State("pending")
    is_approved = State("approved")


class ColorState(StateType[Color]):
    is_red = State(Color.RED)
    is_green = State(Color.GREEN)


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "bound_task"
    id: Mapped[int] = mapped_column(primary_key=True)
    urgent: Mapped[bool] = mapped_column(default=False)
    state: Mapped[TaskState] = mapped_column(TaskState(), default=TaskState.is_todo)
    review: Mapped[ReviewState] = mapped_column(ReviewState(), default=ReviewState.is_pending)
    color: Mapped[ColorState | None] = mapped_column(ColorState())


class Chore(Base):
    """Same StateType as Task.state, different model and default."""

    __tablename__ = "bound_chore"
    id: Mapped[int] = mapped_column(primary_key=True)
    urgent: Mapped[bool] = mapped_column(default=False)
    state: Mapped[TaskState] = mapped_column(TaskState(), default=TaskState.is_doing)


class Locked(Base):
    __tablename__ = "bound_locked"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[TaskState] = mapped_column(TaskState(protected=True), default=TaskState.is_todo)


class Vehicle(Base):
    __tablename__ = "bound_vehicle"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(10))
    urgent: Mapped[bool] = mapped_column(default=False)
    state: Mapped[TaskState] = mapped_column(TaskState(), default=TaskState.is_todo)
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "vehicle"}


class Car(Vehicle):
    __mapper_args__ = {"polymorphic_identity": "car"}


class Truck(Vehicle):
    __mapper_args__ = {"polymorphic_identity": "truck"}
    review: Mapped[ReviewState | None] = mapped_column(ReviewState())


@pytest.fixture
def session(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as s:
        yield s


# ---------------------------------------------------------------- assignment


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (7, r"Task\.state: 7 is not a value of TaskState"),
        ("1", r"Task\.state: '1' is not a value of TaskState"),
        (True, r"Task\.state: True is not a value of TaskState"),
        (1.0, r"Task\.state: 1.0 is not a value of TaskState"),
        (TaskState.is_open, r"Task\.state: TaskState\.is_open is a group; assign one of is_todo, is_doing"),
        (TaskState.is_urgent, r"Task\.state: TaskState\.is_urgent is a conditional state; assign its base state"),
        (ReviewState.is_pending, r"Task\.state: ReviewState\.is_pending is a member of ReviewState, not of TaskState"),
        (Color.RED, r"Task\.state: .*Color\.RED.* is not a value of TaskState"),
    ],
    ids=["unknown-int", "str-for-int", "bool", "float", "group", "conditional", "foreign-member", "foreign-enum"],
)
def test_invalid_assignment_raises_before_any_sql(value: object, pattern: str, session: Session) -> None:
    task = Task(state=TaskState.is_doing)
    session.add(task)
    session.commit()
    statements: list[str] = []
    sa.event.listen(session.get_bind(), "before_cursor_execute", lambda *a: statements.append(a[2]))
    with pytest.raises(InvalidStateValue, match=pattern):
        task.state = value  # type: ignore[assignment]
    assert statements == []
    assert task.state.is_doing
    assert not sa.inspect(task).attrs.state.history.has_changes()
    assert task not in session.dirty


def test_invalid_assignment_in_constructor() -> None:
    with pytest.raises(InvalidStateValue, match=r"Task\.state: 9"):
        Task(state=9)


def test_invalid_assignment_to_other_columns() -> None:
    task = Task()
    with pytest.raises(InvalidStateValue, match=r"Task\.review: 'nope' is not a value of ReviewState"):
        task.review = "nope"  # type: ignore[assignment]
    with pytest.raises(InvalidStateValue, match=r"Task\.color: 'blue'"):
        task.color = "blue"  # type: ignore[assignment]
    with pytest.raises(InvalidStateValue, match=r"Task\.color"):
        task.color = TaskState.is_todo  # type: ignore[assignment]


def test_assignment_accepts_member_raw_enum_and_bound(session: Session) -> None:
    first, second, third = Task(), Task(), Task()
    first.state = TaskState.is_doing
    second.state = 3  # type: ignore[assignment]
    first.color = Color.GREEN  # type: ignore[assignment]
    second.color = "red"  # type: ignore[assignment]
    third.color = ColorState.is_red
    third.state = first.state  # another object's bound value
    third.review = ReviewState.is_approved
    session.add_all([first, second, third])
    session.commit()
    with session.get_bind().connect() as conn:
        rows = conn.execute(sa.text("SELECT id, state, review, color FROM bound_task ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        (first.id, 2, "pending", "green"),
        (second.id, 3, "pending", "red"),
        (third.id, 2, "approved", "red"),
    ]
    # a bound value of another object's other column of the same type
    first.state = second.state
    session.commit()
    session.expire_all()
    assert first.state.is_done
    assert third.state.is_doing


def test_assigning_own_bound_value_is_not_a_change(session: Session) -> None:
    task = Task(state=TaskState.is_doing)
    session.add(task)
    session.commit()
    task.state = task.state
    assert not sa.inspect(task).attrs.state.history.has_changes()


def test_assigned_value_is_stored_as_member() -> None:
    task = Task()
    task.state = 2  # type: ignore[assignment]
    assert task.__dict__["state"] is TaskState.is_doing
    task.color = Color.RED  # type: ignore[assignment]
    assert task.__dict__["color"] is ColorState.is_red


def test_protected_on_persistent_object(session: Session) -> None:
    locked = Locked(state=TaskState.is_doing)  # transient: allowed
    locked.state = TaskState.is_done
    locked.state = TaskState.is_doing
    session.add(locked)
    locked.state = TaskState.is_todo  # pending: not yet in the database, allowed
    session.commit()
    with pytest.raises(ProtectedStateError, match=r"Locked\.state is protected"):
        locked.state = TaskState.is_done
    assert locked.state.is_todo
    assert not sa.inspect(locked).attrs.state.history.has_changes()
    # invalid values are still reported as invalid
    with pytest.raises(InvalidStateValue):
        locked.state = 42  # type: ignore[assignment]
    # the transition path bypasses protection
    set_state(locked, "state", TaskState.is_done)
    session.commit()
    session.expire_all()
    assert locked.state.is_done
    # still protected after reload
    with pytest.raises(ProtectedStateError):
        locked.state = TaskState.is_todo


def test_protected_holds_against_merge(engine: sa.Engine, session: Session) -> None:
    session.add(Locked(id=1, state=TaskState.is_todo))
    session.commit()
    session.close()
    # merge of a changed object, the row not yet loaded: refused, nothing written
    with Session(engine) as other:
        with pytest.raises(ProtectedStateError, match=r"Locked\.state is protected: session\.merge\(\)"):
            other.merge(Locked(id=1, state=TaskState.is_done))
        other.rollback()
        # the row already in the session, even expired: refused too
        loaded = other.get(Locked, 1)
        assert loaded is not None
        other.expire(loaded)
        with pytest.raises(ProtectedStateError, match=r"TaskState\.is_todo to TaskState\.is_done"):
            other.merge(Locked(id=1, state=TaskState.is_done))
        other.rollback()
        # merging the same state, or a new object, is allowed
        merged = other.merge(Locked(id=1, state=TaskState.is_todo))
        assert merged.state.is_todo
        fresh = other.merge(Locked(id=2, state=TaskState.is_doing))
        assert sa.inspect(fresh).pending
        other.commit()
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, state FROM bound_locked ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(1, 1), (2, 2)]


def test_protected_does_not_stop_bulk_update_mappings(engine: sa.Engine, session: Session) -> None:
    """Documented: set-based writes that skip the attributes (bulk_update_mappings, ORM or raw UPDATE)
    are not stopped, though the value is still validated on its way to the database."""
    session.add(Locked(id=1, state=TaskState.is_todo))
    session.commit()
    session.bulk_update_mappings(Locked, [{"id": 1, "state": TaskState.is_done}])  # type: ignore[arg-type]
    session.commit()
    session.expire_all()
    assert session.get_one(Locked, 1).state.is_done
    with pytest.raises(InvalidStateValue, match="42 is not a declared value"):
        session.bulk_update_mappings(Locked, [{"id": 1, "state": 42}])  # type: ignore[arg-type]
    session.rollback()


# ---------------------------------------------------------------- bound value


def test_bound_value_checks_and_attributes(session: Session) -> None:
    task = Task(state=TaskState.is_doing, urgent=True, color=Color.RED)
    session.add(task)
    session.commit()
    session.expire_all()
    state = task.state
    assert (state.is_todo, state.is_doing, state.is_done) == (False, True, False)
    assert state.is_open is True
    assert state.is_urgent is True
    assert state.is_attention is True
    assert state.name == "is_doing"
    assert state.value == 2
    assert state.title == "Doing"
    assert state.known is True
    assert state.final is False
    assert str(state) == "Doing"
    assert state == TaskState.is_doing
    assert state == 2
    assert state != 1
    assert Task(state=TaskState.is_todo).state != True  # noqa: E712  (1 is declared, True is not)
    assert Task(state=TaskState.is_todo).state == 1
    assert state != 2.0
    assert state != "2"
    assert state != TaskState.is_todo
    assert state == TaskState.is_open
    assert state == TaskState.is_urgent
    assert state == task.state
    assert task.color == Color.RED
    assert task.color == "red"
    assert task.color == ColorState.is_red
    assert task.color != Color.GREEN
    assert task.color.value is Color.RED
    task.urgent = False
    assert task.state.is_urgent is False
    assert task.state.is_attention is False
    assert task.state != TaskState.is_urgent
    with pytest.raises(AttributeError, match="is_nonexistent"):
        task.state.is_nonexistent  # type: ignore[attr-defined]  # noqa: B018


def test_bound_values_are_hashable_like_members() -> None:
    task = Task(state=TaskState.is_done)
    assert {task.state: "x"}[TaskState.is_done] == "x"
    assert hash(task.state) == hash(TaskState.is_done)


def test_transient_object_sees_column_default() -> None:
    task = Task()
    assert task.state.is_todo
    assert task.state == TaskState.is_todo
    assert task.review.is_pending
    assert task.color is None
    chore = Chore()
    assert chore.state.is_doing
    assert "state" not in task.__dict__
    assert not sa.inspect(task).attrs.state.history.has_changes()


def test_default_is_what_gets_stored(session: Session) -> None:
    task, chore = Task(), Chore()
    session.add_all([task, chore])
    session.commit()
    with session.get_bind().connect() as conn:
        assert conn.execute(sa.text("SELECT state, review, color FROM bound_task")).one() == (1, "pending", None)
        assert conn.execute(sa.text("SELECT state FROM bound_chore")).scalar_one() == 2


def test_two_state_columns_on_one_model(session: Session) -> None:
    task = Task(state=TaskState.is_done, review=ReviewState.is_approved)
    other = Task()
    session.add_all([task, other])
    session.commit()
    session.expire_all()
    assert task.state.is_done and task.review.is_approved
    assert other.state.is_todo and other.review.is_pending
    task.review = ReviewState.is_pending
    assert task.state.is_done
    history = sa.inspect(task).attrs
    assert not history.state.history.has_changes()
    assert history.review.history.added == [ReviewState.is_pending]
    session.commit()
    found = session.scalars(sa.select(Task.id).where(Task.state.is_done, Task.review.is_pending)).all()
    assert found == [task.id]


def test_one_statetype_on_two_models_is_not_linked(session: Session) -> None:
    task, chore = Task(urgent=True), Chore(urgent=False)
    assert task.state.is_todo and chore.state.is_doing
    session.add_all([task, chore])
    session.commit()
    task.state = TaskState.is_doing
    assert chore.state.is_doing and not chore.state.is_urgent
    assert task.state.is_urgent
    session.commit()
    assert session.scalars(sa.select(Task.id).where(Task.state.is_urgent)).all() == [task.id]
    assert session.scalars(sa.select(Chore.id).where(Chore.state.is_urgent)).all() == []
    assert session.scalars(sa.select(Chore.id).where(Chore.state.is_doing)).all() == [chore.id]
    assert "bound_chore" in str(Chore.state.is_urgent.compile())
    assert "bound_task" not in str(Chore.state.is_urgent.compile())
    # the attribute classes are separate: labels name their own model
    with pytest.raises(InvalidStateValue, match=r"Chore\.state"):
        chore.state = 0  # type: ignore[assignment]


def test_single_table_inheritance(session: Session) -> None:
    car = Car(state=TaskState.is_doing, urgent=True)
    truck = Truck(state=TaskState.is_done, review=ReviewState.is_approved)
    vehicle = Vehicle()
    session.add_all([car, truck, vehicle])
    session.commit()
    car_id, truck_id, vehicle_id = car.id, truck.id, vehicle.id
    session.expunge_all()
    loaded = {type(v).__name__: v for v in session.scalars(sa.select(Vehicle))}
    assert set(loaded) == {"Car", "Truck", "Vehicle"}
    assert loaded["Car"].state.is_urgent
    assert loaded["Truck"].state.is_done
    assert loaded["Truck"].review.is_approved  # type: ignore[attr-defined]
    assert loaded["Vehicle"].state.is_todo
    assert session.scalars(sa.select(Car.id).where(Car.state.is_doing)).all() == [car_id]
    assert session.scalars(sa.select(Vehicle.id).where(Vehicle.state.is_open).order_by(Vehicle.id)).all() == sorted(
        [car_id, vehicle_id]
    )
    assert session.scalars(sa.select(Truck.id).where(Truck.state.is_urgent)).all() == []
    assert session.scalars(sa.select(Car.id).where(Car.state.is_urgent)).all() == [car_id]
    assert session.scalars(sa.select(Truck.id).where(Truck.review.is_approved)).all() == [truck_id]
    with pytest.raises(InvalidStateValue, match=r"Car\.state|Vehicle\.state"):
        loaded["Car"].state = 8
    loaded["Car"].state = TaskState.is_done
    session.commit()
    assert session.scalars(sa.select(Vehicle.id).where(Vehicle.state.is_done).order_by(Vehicle.id)).all() == sorted(
        [car_id, truck_id]
    )


# ---------------------------------------------------------------- no cycles, no history change


def _read_everything(obj: Any) -> None:
    state = obj.state
    for name in TaskState._members:
        getattr(state, name)
    _ = (state.name, state.value, state.title, state.known, state == 1, str(state))


@pytest.mark.parametrize("target", [TaskState.is_todo, TaskState.is_doing], ids=["static", "conditional"])
def test_reading_creates_no_reference_cycle(target: TaskState) -> None:
    task = Task(state=target, urgent=True)
    task.state  # noqa: B018  (warm up whatever caches there are)
    before = sys.getrefcount(task)
    referrers_before = len(gc.get_referrers(task))
    held = task.state
    for _ in range(100):
        _read_everything(task)
    del held
    assert sys.getrefcount(task) == before
    assert len(gc.get_referrers(task)) == referrers_before
    # freed by reference counting alone once the last reference goes
    ref = weakref.ref(task)
    gc.disable()
    try:
        held = task.state
        del task, held
        assert ref() is None
    finally:
        gc.enable()


def test_reading_loaded_objects_leaves_no_garbage(session: Session) -> None:
    session.add_all([Task(state=TaskState.is_doing, urgent=True), Task(), Chore()])
    session.commit()
    session.expunge_all()
    tasks = session.scalars(sa.select(Task)).all()
    refs = [weakref.ref(t) for t in tasks]
    # Loading may leave SQLAlchemy's own garbage (first compilations); collect it
    # first, so that only what reading creates is measured.
    gc.collect()
    gc.disable()
    try:
        for task in tasks:
            _read_everything(task)
        # reading left nothing for the cycle collector
        assert gc.collect() == 0
        session.expunge_all()
        del tasks, task
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()


def test_reading_does_not_change_history(session: Session) -> None:
    task = Task()
    attrs = sa.inspect(task).attrs
    before = attrs.state.history
    _read_everything(task)
    assert attrs.state.history == before
    assert "state" not in task.__dict__
    session.add(task)
    _read_everything(task)
    assert attrs.state.history == before
    session.commit()
    _read_everything(task)  # expired after commit: reading loads it
    assert attrs.state.history == ((), [TaskState.is_todo], ())
    assert task not in session.dirty
    task.state = TaskState.is_doing
    changed = attrs.state.history
    _read_everything(task)
    assert attrs.state.history == changed == ([TaskState.is_doing], (), [TaskState.is_todo])
