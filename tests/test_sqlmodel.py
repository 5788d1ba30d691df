"""A StateType column on a SQLModel table model behaves as on a declarative model.

``state: TaskState = Field(sa_type=TaskState(), default=TaskState.is_todo)``:
instance values, SQL filters, the CHECK constraint, transitions, history and
the model's Pydantic side (validation, JSON, JSON Schema). Every test runs on
SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Optional, cast

import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Field, Session, SQLModel, select

from statetype import (
    ConcurrentTransitionError,
    InvalidStateValue,
    State,
    StateType,
    Transition,
    TransitionLogMixin,
    TransitionNotAllowed,
    Transitions,
)

CreateAll = Callable[[sa.MetaData], None]


class TaskState(StateType[int]):
    is_todo = State(1, "To do")
    is_doing = State(2, "Doing")
    is_done = State(3, "Done", final=True)

    is_open = is_todo | is_doing

    @is_doing.conditional
    def is_urgent(self, task: Task) -> bool:
        return task.priority > 5

    @is_urgent.expression
    def _is_urgent_sql(self, task: type[Task]) -> ColumnElement[bool]:
        return cast("ColumnElement[bool]", task.priority > 5)


class Task(SQLModel, table=True):
    __tablename__ = "sqm_task"

    id: Optional[int] = Field(default=None, primary_key=True)
    title: str = Field(default="", max_length=50)
    priority: int = 0
    state: TaskState = Field(sa_type=TaskState(protected=True), default=TaskState.is_todo)


class TaskRead(SQLModel):
    id: int
    title: str
    state: TaskState


class LogBase(DeclarativeBase):
    # SQLModel builds its columns from Pydantic fields; the history mixin is a
    # declarative mixin, so the log is a declarative class on the same metadata.
    metadata = SQLModel.metadata


class TaskLog(TransitionLogMixin, LogBase):
    __tablename__ = "sqm_task_log"


class TaskTransitions(Transitions[Task, str]):
    log = TaskLog

    start = Transition(TaskState.is_todo, TaskState.is_doing)
    finish = Transition(TaskState.is_open, TaskState.is_done)

    @finish.guard
    def has_title(self, task: Task) -> bool:
        """A task needs a title to be finished."""
        return bool(task.title)


@pytest.fixture
def db(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(SQLModel.metadata)
    with Session(engine) as session:
        session.add_all([Task(title="write"), Task(title="", state=TaskState.is_doing), Task(title="late")])
        session.commit()
    with Session(engine) as session:
        yield session


def test_instance_values_and_sql_filters(db: Session) -> None:
    write, untitled, late = db.exec(select(Task).order_by(Task.id)).all()  # type: ignore[arg-type]
    assert write.state.is_todo and write.state == TaskState.is_todo and write.state == 1
    assert untitled.state.is_open and not untitled.state.is_urgent
    assert write.state.title == "To do" and write.state.name == "is_todo"
    with pytest.raises(InvalidStateValue):
        Task(title="x", state=9)  # SQLModel's own __setattr__ is routed through statetype's checks
    with pytest.raises(InvalidStateValue):
        write.state = TaskState.is_open
    late.priority = 9
    db.commit()
    TaskTransitions().start(late)
    db.commit()
    assert late.state.is_urgent

    def ids(criterion: object) -> list[int | None]:
        return [t.id for t in db.exec(select(Task).where(criterion).order_by(Task.id))]  # type: ignore[arg-type, call-overload]

    assert ids(Task.state.is_open) == [1, 2, 3]  # type: ignore[attr-defined]
    assert ids(Task.state.is_todo) == [1]  # type: ignore[attr-defined]
    assert ids(Task.state.is_urgent) == [3]  # type: ignore[attr-defined]
    assert ids(~Task.state.is_urgent) == [1, 2]  # type: ignore[attr-defined, operator]
    assert ids(Task.state == TaskState.is_doing) == [2, 3]
    assert ids(Task.state.in_([TaskState.is_todo])) == [1]  # type: ignore[attr-defined]


def test_check_constraint_refuses_undeclared_values(db: Session, engine: sa.Engine) -> None:
    assert any(
        isinstance(c, sa.CheckConstraint) and c.name == "ck_sqm_task_state" for c in Task.__table__.constraints  # type: ignore[attr-defined]
    )
    with pytest.raises((IntegrityError, OperationalError)):
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO sqm_task (title, state) VALUES ('bad', 9)"))


def test_transitions_history_and_protection(db: Session) -> None:
    write = db.get_one(Task, 1)
    tx = TaskTransitions(actor="ann")
    with pytest.raises(Exception, match="protected"):
        write.state = TaskState.is_done
    assert [b.name for b in tx.available(write)] == ["start", "finish"]
    tx.start(write)
    tx.finish(write)
    db.commit()
    db.expire_all()
    assert db.get_one(Task, 1).state.is_done
    assert [(r.transition, r.from_value, r.to_value, r.actor) for r in tx.history(write)] == [
        ("start", "1", "2", "ann"),
        ("finish", "2", "3", "ann"),
    ]
    untitled = db.get_one(Task, 2)
    with pytest.raises(TransitionNotAllowed, match="A task needs a title"):
        tx.finish(untitled)


def test_compare_and_set_sees_a_concurrent_change(db: Session, engine: sa.Engine) -> None:
    write = db.get_one(Task, 1)
    with engine.begin() as conn:
        conn.execute(sa.update(Task).where(Task.id == 1).values(state=TaskState.is_doing))  # type: ignore[arg-type]
    with pytest.raises(ConcurrentTransitionError):
        TaskTransitions().start(write)
    db.rollback()
    assert db.get_one(Task, 1).state.is_doing


def test_pydantic_side_of_the_table_model(db: Session) -> None:
    write = db.get_one(Task, 1)
    assert write.model_dump(mode="json") == {"id": 1, "title": "write", "priority": 0, "state": 1}
    assert TaskRead.model_validate(write).state is TaskState.is_todo
    assert TaskRead.model_validate({"id": 1, "title": "t", "state": "is_doing"}).state is TaskState.is_doing
    created = Task.model_validate({"title": "new", "state": 2})
    assert created.state.is_doing
    db.add(created)
    db.commit()
    assert db.exec(select(Task.state).where(Task.id == created.id)).one() is TaskState.is_doing
    schema = Task.model_json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["state"] == {"$ref": "#/$defs/TaskState", "default": 1}
    assert schema["$defs"]["TaskState"]["oneOf"][0] == {"const": 1, "title": "To do"}
