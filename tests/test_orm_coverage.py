"""ORM corners: inheritance, a chain moving another column of the same object, bulk criteria, version_id_col.

Every case runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from statetype import (
    BulkNotSupported,
    ConcurrentTransitionError,
    State,
    StateType,
    Step,
    Transition,
    TransitionLogMixin,
    Transitions,
)

EPOCH = dt.datetime(2020, 1, 1)


class JobState(StateType[int]):
    is_queued = State(1, "Queued")
    is_running = State(2, "Running")
    is_done = State(3, "Done")


class ReviewState(StateType[str]):
    is_none = State("none", "Not reviewed")
    is_reviewing = State("reviewing", "In review")


class Base(DeclarativeBase):
    pass


class Log(TransitionLogMixin, Base):
    __tablename__ = "oc_log"


# Joined-table inheritance: the state column lives on the base table.
class Job(Base):
    __tablename__ = "oc_job"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    state: Mapped[JobState] = mapped_column(JobState(), default=JobState.is_queued)
    created_at: Mapped[dt.datetime] = mapped_column(default=EPOCH)
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "job"}


class PrintJob(Job):
    __tablename__ = "oc_print_job"
    id: Mapped[int] = mapped_column(sa.ForeignKey("oc_job.id"), primary_key=True)
    pages: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"polymorphic_identity": "print"}


# Single-table inheritance.
class Task(Base):
    __tablename__ = "oc_task"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    state: Mapped[JobState] = mapped_column(JobState(), default=JobState.is_queued)
    created_at: Mapped[dt.datetime] = mapped_column(default=EPOCH)
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "task"}


class Chore(Task):
    __mapper_args__ = {"polymorphic_identity": "chore"}


class PrintTx(Transitions[PrintJob, str]):
    log = Log
    start = Transition(JobState.is_queued, JobState.is_running)
    expire = Transition(JobState.is_queued, JobState.is_done, after=dt.timedelta(days=1), since="created_at")


class JobTx(Transitions[Job, str]):
    log = Log
    start = Transition(JobState.is_queued, JobState.is_running)


class ChoreTx(Transitions[Chore, str]):
    log = Log
    start = Transition(JobState.is_queued, JobState.is_running)
    expire = Transition(JobState.is_queued, JobState.is_done, after=dt.timedelta(days=1), since="created_at")


# Two state columns on one model, and a version counter.
class Post(Base):
    __tablename__ = "oc_post"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[JobState] = mapped_column(JobState(), default=JobState.is_queued)
    review: Mapped[ReviewState] = mapped_column(ReviewState(), default=ReviewState.is_none)
    counter: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(default=1)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("oc_job.id"), nullable=True)
    __mapper_args__ = {"version_id_col": version}


class ReviewTx(Transitions[Post, str]):
    log = Log
    mark_reviewing = Transition(ReviewState.is_none, ReviewState.is_reviewing, column="review")


class PostTx(Transitions[Post, str]):
    log = Log
    publish = Transition(JobState.is_queued, JobState.is_running, column="state")
    finish = Transition(JobState.is_running, JobState.is_done, column="state")

    @publish.chain
    def review_too(self, post: Post) -> Iterable[Step]:
        return [(ReviewTx(actor=self.actor).mark_reviewing, post)]

    @finish.execute
    def count(self, post: Post, data: Mapping[str, Any]) -> None:
        post.counter += 1

    @count.expression
    def _count_sql(self, model: type[Post], now: dt.datetime) -> Mapping[Any, object]:
        return {"counter": model.counter + 1}


@pytest.fixture
def db(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add_all([Job(), Job(), PrintJob(), Job(), PrintJob()])
        session.add_all([Task(), Chore(), Task(), Chore()])
        session.add_all([Post(), Post()])
        session.commit()
        yield session


def _states(db: Session, model: type[Any]) -> dict[int, str]:
    return {i: s.name for i, s in db.execute(sa.select(model.id, model.state).order_by(model.id))}


def test_bulk_of_a_joined_subclass_moves_only_its_rows(db: Session) -> None:
    result = PrintTx(actor="ann").start.bulk(db)
    db.commit()
    assert sorted(result.ids) == [3, 5]
    assert _states(db, Job) == {1: "is_queued", 2: "is_queued", 3: "is_running", 4: "is_queued", 5: "is_running"}


def test_bulk_of_a_single_table_subclass_moves_only_its_rows(db: Session) -> None:
    result = ChoreTx(actor="ann").start.bulk(db)
    db.commit()
    assert sorted(result.ids) == [2, 4]
    assert _states(db, Task) == {1: "is_queued", 2: "is_running", 3: "is_queued", 4: "is_running"}


def test_run_due_and_where_of_subclasses_touch_only_their_rows(db: Session) -> None:
    later = EPOCH + dt.timedelta(days=2)
    assert PrintTx().run_due(db, now=later) == 2
    assert ChoreTx().run_due(db, now=later) == 2
    db.commit()
    assert _states(db, Job) == {1: "is_queued", 2: "is_queued", 3: "is_done", 4: "is_queued", 5: "is_done"}
    assert _states(db, Task) == {1: "is_queued", 2: "is_done", 3: "is_queued", 4: "is_done"}
    assert sorted(db.scalars(sa.select(Job.id).where(JobTx.start.where(Job)))) == [1, 2, 4]
    assert list(db.scalars(sa.select(Task.id).where(ChoreTx.start.where(Chore)))) == []


def test_history_of_a_subclass_object_is_found_whichever_registry_wrote_it(db: Session) -> None:
    job = db.get(PrintJob, 3)
    assert job is not None
    JobTx(actor="ann").start(job)
    db.commit()
    assert [h.transition for h in PrintTx().history(job)] == ["start"]
    assert [h.transition for h in JobTx().history(job)] == ["start"]
    other = db.get(PrintJob, 5)
    assert other is not None
    PrintTx(actor="bob").start(other)
    db.commit()
    assert [(h.transition, h.actor) for h in JobTx().history(other)] == [("start", "bob")]


def test_a_chain_step_may_move_another_column_of_the_same_object(db: Session) -> None:
    post = db.get(Post, 1)
    assert post is not None
    applied = PostTx(actor="ann").publish(post)
    assert [s.transition.name for s in applied.steps] == ["mark_reviewing", "publish"]
    db.commit()
    assert post.state.is_running and post.review.is_reviewing
    assert [(h.column_name, h.transition) for h in PostTx().history(post)] == [
        ("review", "mark_reviewing"),
        ("state", "publish"),
    ]


def test_bulk_criteria_on_another_table_are_refused(db: Session) -> None:
    with pytest.raises(BulkNotSupported, match="oc_task.*cannot correlate"):
        JobTx().start.bulk(db, Task.id == 1)
    assert _states(db, Job)[1] == "is_queued"
    correlated = JobTx().start.bulk(db, Job.id.in_(sa.select(Task.id).where(Task.kind == "chore")))
    assert sorted(correlated.ids) == [2, 4]


def test_a_transition_checks_and_bumps_the_version_counter(db: Session, engine: sa.Engine) -> None:
    post = db.get(Post, 1)
    assert post is not None and post.version == 1
    PostTx().publish(post)
    assert post.version == 3  # one for the chain's review step, one for publish
    db.commit()
    assert db.scalar(sa.select(Post.version).where(Post.id == 1)) == 3
    # A stale ORM write after the transition: StaleDataError, as with any version_id_col write.
    with Session(engine) as other:
        stale = other.get(Post, 2)
        assert stale is not None
        PostTx().publish(db.get(Post, 2))  # type: ignore[arg-type]
        db.commit()
        stale.counter = 99
        with pytest.raises(StaleDataError):
            other.commit()


def test_a_stale_transition_after_an_orm_write_is_a_conflict(db: Session, engine: sa.Engine) -> None:
    post = db.get(Post, 1)
    assert post is not None
    PostTx().publish(post)
    db.commit()
    assert post.counter == 0  # loaded at version 3
    with Session(engine) as writer:
        moved = writer.get(Post, 1)
        assert moved is not None
        moved.counter = 11  # another column: the state still matches, the version does not
        writer.commit()
    with pytest.raises(ConcurrentTransitionError, match="version"):
        PostTx().finish(post)
    assert post.state.is_running and post.counter == 0 and post not in db.dirty
    db.rollback()
    assert (post.state.name, post.counter, post.version) == ("is_running", 11, 4)


def test_bulk_bumps_the_version_counter(db: Session) -> None:
    for post_id in (1, 2):
        post = db.get(Post, post_id)
        assert post is not None
        PostTx().publish(post)
    db.commit()
    assert PostTx().finish.bulk(db).count == 2
    db.commit()
    rows = db.execute(sa.select(Post.version, Post.counter).order_by(Post.id)).all()
    assert [tuple(r) for r in rows] == [(4, 1), (4, 1)]
