"""The transition registry on every database: checks, chains, atomicity, history, after_commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session as DBSession

from statetype import (
    Applied,
    AppliedStep,
    TransitionLogMixin,
    ConcurrentTransitionError,
    InvalidStateValue,
    StateDefinitionError,
    Step,
    Transition,
    TransitionNotAllowed,
    Transitions,
)
from transition_models import (
    Account,
    Base,
    Comment,
    CommentTransitions,
    ItemState,
    Project,
    ProjectLog,
    ProjectTransitions,
    ReviewState,
    Session,
    SessionTransitions,
    User,
)

CreateAll = Callable[[sa.MetaData], None]


@pytest.fixture
def db(engine: sa.Engine, create_all: CreateAll) -> Iterable[DBSession]:
    create_all(Base.metadata)
    with DBSession(engine) as session:
        yield session


def _world(db: DBSession) -> tuple[User, Project, Session, Session, Comment]:
    """A published account, a draft project edited by ann, two sessions, one comment."""
    ann = User(id=1, name="ann")
    bob = User(id=2, name="bob")
    account = Account(state=ItemState.is_published)
    project = Project(account=account, editor_id=1)
    db.add_all([ann, bob, account, project])
    db.flush()
    s1 = Session(project=project, editor_id=1)
    s2 = Session(project=project, editor_id=1)
    db.add_all([s1, s2])
    db.flush()
    comment = Comment(session=s1)
    db.add(comment)
    db.commit()
    return ann, project, s1, s2, comment


def _states(db: DBSession, model: type[Any]) -> list[tuple[int, str]]:
    """(id, state name) of every row, read straight from the database."""
    db.expire_all()
    return [(o.id, o.state.name) for o in db.scalars(sa.select(model).order_by(model.id))]


# ------------------------------------------------------------------ class creation


def test_target_must_be_a_plain_state() -> None:
    with pytest.raises(StateDefinitionError, match=r"Bad\.go: the target must be one plain state"):

        class Bad(Transitions[Project, User]):
            go = Transition(ItemState.is_draft, ItemState.is_gone)


def test_no_transition_out_of_a_final_state() -> None:
    with pytest.raises(StateDefinitionError, match=r"Bad\.revive: .*is_deleted is final"):

        class Bad(Transitions[Project, User]):
            revive = Transition(ItemState.is_deleted, ItemState.is_draft)


def test_from_state_of_another_statetype() -> None:
    with pytest.raises(StateDefinitionError, match=r"Bad\.mix: from_ state ReviewState\.is_pending belongs to ReviewState"):

        class Bad(Transitions[Project, User]):
            mix = Transition(ReviewState.is_pending, ItemState.is_published)


def test_unknown_and_ambiguous_columns() -> None:
    with pytest.raises(StateDefinitionError, match=r"Bad\.go: Project has no StateType column 'nope'"):

        class Bad(Transitions[Project, User]):
            go = Transition(ItemState.is_draft, ItemState.is_published, column="nope")

    class TwoColumns(Base):
        __tablename__ = "tx_two_columns"
        id: sa.orm.Mapped[int] = sa.orm.mapped_column(primary_key=True)
        a: sa.orm.Mapped[ItemState] = sa.orm.mapped_column(ItemState())
        b: sa.orm.Mapped[ItemState] = sa.orm.mapped_column(ItemState())

    try:
        with pytest.raises(StateDefinitionError, match=r"several ItemState columns \(a, b\); name one with column="):

            class Ambiguous(Transitions[TwoColumns]):
                go = Transition(ItemState.is_draft, ItemState.is_published)

        class Named(Transitions[TwoColumns]):
            go = Transition(ItemState.is_draft, ItemState.is_published, column="b")

        assert Named.go.key == "b"
    finally:
        Base.metadata.remove(TwoColumns.__table__)  # type: ignore[arg-type]


def test_from_none_means_every_non_final_state_and_titles() -> None:
    assert {s for source in ProjectTransitions.delete.sources for s in source.states} == {
        ItemState.is_draft,
        ItemState.is_published,
        ItemState.is_withdrawn,
    }
    assert set(SessionTransitions.delete.sources) == {
        ItemState.is_draft,
        ItemState.is_published,
        ItemState.is_withdrawn,
    }
    assert ProjectTransitions.publish.title == "Publish"
    assert ProjectTransitions.withdraw.title == "Withdraw"
    tx = ProjectTransitions(actor=None)
    assert tx.publish.name == "publish" and tx.publish.transition is ProjectTransitions.publish
    assert tx.publish is tx.publish  # bound once per registry instance


# ------------------------------------------------------------------ checks


def test_check_reports_every_reason(db: DBSession) -> None:
    ann, project, *_ = _world(db)
    bob = db.get(User, 2)
    assert project.account is not None
    project.account.state = ItemState.is_draft
    project.state = ItemState.is_published
    db.commit()
    verdict = ProjectTransitions(actor=bob).publish.check(project)
    assert not verdict
    kinds = [r.kind for r in verdict.reasons]
    assert kinds == ["state", "guard", "permission"]
    assert verdict.reasons[1].message == "The account must be published."
    assert verdict.reasons[2].message == "Is editor"  # humanized function name
    assert all(r.obj is project for r in verdict.reasons)
    with pytest.raises(TransitionNotAllowed) as raised:
        ProjectTransitions(actor=bob).publish(project)
    assert raised.value.verdict.reasons == verdict.reasons
    assert "ProjectTransitions.publish refused for Project 1" in str(raised.value)


def test_available_in_declaration_order(db: DBSession) -> None:
    ann, project, *_ = _world(db)
    tx = ProjectTransitions(actor=ann)
    assert [b.name for b in tx.available(project)] == ["publish", "delete", "approve", "reject"]
    # Without an actor, publish fails its permission and delete its chain (sessions have an editor).
    assert [b.name for b in ProjectTransitions(actor=None).available(project)] == ["approve", "reject"]


def test_wrong_model_is_a_type_error(db: DBSession) -> None:
    ann, project, s1, *_ = _world(db)
    with pytest.raises(TypeError, match="applies to Project objects, not Session"):
        ProjectTransitions(actor=ann).publish.check(s1)  # type: ignore[arg-type]


def test_guard_reads_a_related_objects_state(db: DBSession) -> None:
    ann, project, *_ = _world(db)
    tx = ProjectTransitions(actor=ann)
    assert tx.publish.check(project)
    assert project.account is not None
    project.account.state = ItemState.is_withdrawn
    assert [r.kind for r in tx.publish.check(project).reasons] == ["guard"]


def test_where_matches_check(db: DBSession) -> None:
    ann, project, *_ = _world(db)
    other = Project(account=Account(state=ItemState.is_draft))
    free = Project()
    done = Project(state=ItemState.is_published)
    db.add_all([other, free, done])
    db.commit()
    ids = db.scalars(sa.select(Project.id).where(ProjectTransitions.publish.where(Project)).order_by(Project.id)).all()
    assert ids == [project.id, free.id]
    alias = sa.orm.aliased(Project)
    ids = db.scalars(sa.select(alias.id).where(ProjectTransitions.publish.where(alias)).order_by(alias.id)).all()
    assert ids == [project.id, free.id]


# ------------------------------------------------------------------ applying


def test_publish_runs_execute_with_old_state_and_writes_history(db: DBSession) -> None:
    ann, project, *_ = _world(db)
    seen: list[str] = []

    class Watching(ProjectTransitions):
        def before(self, step: AppliedStep[Project]) -> None:
            seen.append(f"before {step.obj.state.name}")

        def after(self, step: AppliedStep[Project]) -> None:
            seen.append(f"after {step.obj.state.name}")

    tx = Watching(actor=ann)
    applied = tx.publish(project, data={"published_at": dt.datetime(2026, 3, 1)})
    assert applied.results == {"stamp": True}
    assert [(s.from_state, s.to_state) for s in applied.steps] == [(ItemState.is_draft, ItemState.is_published)]
    assert applied.steps[0].actor is ann and applied.steps[0].at.tzinfo is not None
    assert seen == ["before is_draft", "after is_published"]
    assert project.state.is_published
    db.commit()
    assert _states(db, Project) == [(project.id, "is_published")]
    assert db.get(Project, project.id).published_at == dt.datetime(2026, 3, 1)  # type: ignore[union-attr]
    history = tx.history(project)
    assert [(h.transition, h.from_value, h.to_value, h.actor, h.column_name) for h in history] == [
        ("publish", "1", "2", "1", "state")
    ]
    assert history[0].created_at.tzinfo is not None
    assert history[0].data == {"published_at": "2026-03-01T00:00:00"}
    # A second publication reports that it was not the first.
    tx.withdraw(project)
    assert tx.publish(project).results == {"stamp": False}
    db.commit()
    assert [h.transition for h in tx.history(project)] == ["publish", "withdraw", "publish"]


def test_fast_path_is_one_update(db: DBSession, engine: sa.Engine) -> None:
    ann, project, *_ = _world(db)

    class Plain(Transitions[Project, User]):
        withdraw = Transition(ItemState.is_published, ItemState.is_withdrawn)

    project.state = ItemState.is_published
    db.commit()
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split()[0].upper())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        Plain().withdraw(project)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    written = [s for s in statements if s != "SELECT"]
    if engine.dialect.name == "postgresql":
        # Any failed statement aborts a PostgreSQL transaction: the one UPDATE runs in a savepoint.
        assert written == ["SAVEPOINT", "UPDATE", "RELEASE"]
    else:
        assert written == ["UPDATE"]
    assert project.state.is_withdrawn
    assert project not in db.dirty
    db.commit()
    assert _states(db, Project) == [(project.id, "is_withdrawn")]


def test_self_loop_is_a_normal_step(db: DBSession) -> None:
    ann, project, *_ = _world(db)

    class Again(Transitions[Project, User]):
        log = ProjectLog
        touch = Transition(ItemState.is_draft, ItemState.is_draft)

    applied = Again(actor=ann).touch(project)
    assert applied.steps[0].from_state is applied.steps[0].to_state is ItemState.is_draft
    db.commit()
    assert [(h.from_value, h.to_value) for h in Again(actor=ann).history(project)] == [("1", "1")]


def test_two_state_columns_with_transitions_on_each(db: DBSession) -> None:
    ann, project, *_ = _world(db)
    tx = ProjectTransitions(actor=ann)
    tx.approve(project)
    tx.publish(project)
    db.commit()
    db.expire_all()
    assert project.review.is_approved and project.state.is_published
    assert [(h.column_name, h.transition) for h in tx.history(project)] == [("review", "approve"), ("state", "publish")]
    assert [r.kind for r in tx.approve.check(project).reasons] == ["state"]
    assert tx.reject.check(project)


def test_transient_object_changes_in_memory() -> None:
    calls: list[str] = []

    class Local(Transitions[Project, User]):
        publish = Transition(ItemState.is_draft, ItemState.is_published)

        @publish.execute
        def stamp(self, project: Project, data: Mapping[str, Any]) -> None:
            project.note = "stamped"

        @publish.after_commit
        def notify(self, step: AppliedStep[Project]) -> None:
            calls.append(step.obj.state.name)

    project = Project()
    applied = Local().publish(project)
    assert project.state.is_published and project.note == "stamped"
    assert calls == []  # nothing was committed: after_commit hooks wait for the first flush's commit
    assert applied.steps[0].from_state is ItemState.is_draft


def test_in_memory_step_without_hooks_reports_what_it_did() -> None:
    """A step that ran no hook builds its AppliedStep only when read: the same object each time, timed at the call."""

    class Local(Transitions[Project, User]):
        publish = Transition(ItemState.is_draft, ItemState.is_published)

    actor = User(name="ann")
    project = Project()
    before = dt.datetime.now(dt.timezone.utc)
    applied = Local(actor=actor).publish(project, data={"why": "ready"})
    after = dt.datetime.now(dt.timezone.utc)
    project.state = ItemState.is_draft  # later changes do not rewrite what the call did
    (step,) = applied.steps
    assert applied.steps[0] is step and isinstance(applied, Applied) and dict(applied.results) == {}
    assert step.obj is project and step.transition.name == "publish" and step.actor is actor
    assert step.from_state is ItemState.is_draft and step.to_state is ItemState.is_published
    assert step.data == {"why": "ready"}
    assert before - dt.timedelta(milliseconds=1) <= step.at <= after + dt.timedelta(milliseconds=1)
    assert step.at.tzinfo is not None and step.at.utcoffset() == dt.timedelta(0)
    assert repr(applied) == "<Applied 1 step(s)>"


def test_in_memory_step_with_execute_hooks_only_reports_results_and_data() -> None:
    seen: list[Mapping[str, Any]] = []

    class Local(Transitions[Project, User]):
        publish = Transition(ItemState.is_draft, ItemState.is_published)

        @publish.execute
        def stamp(self, project: Project, data: Mapping[str, Any]) -> str:
            seen.append(data)
            project.note = "stamped"
            return "ok"

    project = Project()
    applied = Local().publish(project)
    (step,) = applied.steps
    assert dict(applied.results) == {"stamp": "ok"} and project.note == "stamped"
    assert step.data is seen[0] and dict(step.data) == {} and type(seen[0]) is dict  # a dict of the call's own
    assert step.from_state is ItemState.is_draft and step.to_state is ItemState.is_published
    project = Project()
    applied = Local().publish(project, data={"why": "ready"})
    assert applied.steps[0].data == {"why": "ready"} and seen[-1] == {"why": "ready"}


def test_concurrent_change_is_detected(db: DBSession, engine: sa.Engine) -> None:
    ann, project, *_ = _world(db)
    with DBSession(engine) as other:
        other_project = other.get(Project, project.id)
        assert other_project is not None
        other_project.state = ItemState.is_deleted
        other.commit()
    with pytest.raises(ConcurrentTransitionError, match="another transaction changed it first"):
        ProjectTransitions(actor=ann).publish(project)
    # The object is as it was, and the session can carry on.
    assert project.state.is_draft and project.published_at is None
    db.rollback()
    assert project.state.is_deleted


# ------------------------------------------------------------------ chains


def test_chain_applies_children_first_and_skips_those_already_there(db: DBSession) -> None:
    ann, project, s1, s2, comment = _world(db)
    s2.state = ItemState.is_deleted
    db.commit()
    tx = ProjectTransitions(actor=ann)
    plan = tx.delete.plan(project)
    assert [(p.transition.name, type(p.obj).__name__) for p in plan] == [
        ("delete", "Project"),
        ("delete", "Session"),
        ("delete", "Comment"),
    ]
    assert all(p.verdict for p in plan)
    applied = tx.delete(project)
    assert [type(s.obj).__name__ for s in applied.steps] == ["Comment", "Session", "Project"]
    db.commit()
    assert _states(db, Session) == [(s1.id, "is_deleted"), (s2.id, "is_deleted")]
    assert _states(db, Comment) == [(comment.id, "is_deleted")]
    logged = db.scalars(sa.select(ProjectLog).order_by(ProjectLog.id)).all()
    assert [(h.table_name, h.transition) for h in logged] == [
        ("tx_comment", "delete"),
        ("tx_session", "delete"),
        ("tx_project", "delete"),
    ]


def test_chain_child_refused_refuses_everything(db: DBSession) -> None:
    ann, project, s1, s2, comment = _world(db)
    s2.editor_id = 2
    db.commit()
    tx = ProjectTransitions(actor=ann)
    verdict = tx.delete.check(project)
    assert [r.kind for r in verdict.reasons] == ["chain"]
    assert verdict.reasons[0].obj is s2
    assert "delete on Session" in verdict.reasons[0].message and "You must edit this session." in verdict.reasons[0].message
    with pytest.raises(TransitionNotAllowed):
        tx.delete(project)
    db.commit()
    assert _states(db, Project) == [(project.id, "is_draft")]
    assert _states(db, Session) == [(s1.id, "is_draft"), (s2.id, "is_draft")]
    assert _states(db, Comment) == [(comment.id, "is_draft")]
    assert db.scalar(sa.select(sa.func.count()).select_from(ProjectLog)) == 0


# ------------------------------------------------------------------ fault injection


class Boom(Exception):
    pass


class RejectingLog(TransitionLogMixin, Base):
    """A history table whose rows the database rejects: a NOT NULL column statetype does not fill."""

    __tablename__ = "tx_rejecting_log"
    required: sa.orm.Mapped[str] = sa.orm.mapped_column(sa.String(10))


def _faulty(point: str) -> type[Transitions[Project, User]]:
    """Registries whose delete (a chain over three models) and publish fail at ``point``."""

    class CommentTx(Transitions[Comment, User]):
        log = ProjectLog
        delete = Transition(None, ItemState.is_deleted)

    class SessionTx(Transitions[Session, User]):
        log = ProjectLog
        delete = Transition(None, ItemState.is_deleted)

        @delete.execute
        def last_one_explodes(self, session: Session, data: Mapping[str, Any]) -> None:
            session.editor_id = 99
            if point == "chain" and session.id == max(s.id for s in session.project.sessions):
                raise Boom(point)

        @delete.chain
        def comments(self, session: Session) -> Iterable[Step]:
            tx = CommentTx(actor=self.actor)
            return [(tx.delete, c) for c in session.comments]

    class ProjectTx(Transitions[Project, User]):
        log = ProjectLog
        delete = Transition(ItemState.is_draft | ItemState.is_live, ItemState.is_deleted)
        publish = Transition(ItemState.is_draft, ItemState.is_published)

        def before(self, step: AppliedStep[Project]) -> None:
            if isinstance(step.obj, Project):
                step.obj.note = "before ran"
            if point == "before":
                raise Boom(point)

        def after(self, step: AppliedStep[Project]) -> None:
            if point == "after":
                raise Boom(point)

        @delete.guard
        @publish.guard
        def guard_may_explode(self, project: Project) -> bool:
            if point == "guard":
                raise Boom(point)
            return True

        @delete.execute
        @publish.execute
        def execute_may_explode(self, project: Project, data: Mapping[str, Any]) -> None:
            project.note = "executed"
            project.published_at = dt.datetime(2026, 5, 5)
            if point == "execute":
                raise Boom(point)

        @delete.chain
        def sessions(self, project: Project) -> Iterable[Step]:
            tx = SessionTx(actor=self.actor)
            return [(tx.delete, s) for s in project.sessions]

    if point == "history":
        ProjectTx.log = RejectingLog
    return ProjectTx


@pytest.mark.parametrize("point", ["guard", "before", "execute", "chain", "after", "history"])
def test_fault_in_a_chain_leaves_database_and_objects_unchanged(db: DBSession, point: str) -> None:
    ann, project, s1, s2, comment = _world(db)
    tx = _faulty(point)(actor=ann)
    project.note = "unsaved edit"
    before = [(o, dict(o.__dict__)) for o in (project, s1, s2, comment)]
    with pytest.raises((Boom, sa.exc.DBAPIError)):
        tx.delete(project)  # type: ignore[attr-defined]
    for obj, values in before:
        assert {k: v for k, v in obj.__dict__.items() if k in values} == values
    assert project.note == "unsaved edit"
    db.commit()
    assert _states(db, Project) == [(project.id, "is_draft")]
    assert _states(db, Session) == [(s1.id, "is_draft"), (s2.id, "is_draft")]
    assert _states(db, Comment) == [(comment.id, "is_draft")]
    assert [s.editor_id for s in db.scalars(sa.select(Session).order_by(Session.id))] == [1, 1]
    assert db.get(Project, project.id).note == "unsaved edit"  # type: ignore[union-attr]
    assert db.scalar(sa.select(sa.func.count()).select_from(ProjectLog)) == 0


@pytest.mark.parametrize("point", ["guard", "before", "execute", "after"])
def test_fault_in_a_single_step_leaves_database_and_objects_unchanged(db: DBSession, point: str) -> None:
    ann, project, *_ = _world(db)
    tx = _faulty(point)(actor=ann)
    with pytest.raises(Boom):
        tx.publish(project)  # type: ignore[attr-defined]
    assert (project.state, project.note, project.published_at) == (ItemState.is_draft, None, None)
    assert project not in db.dirty
    db.commit()
    db.expire_all()
    assert (project.state, project.note, project.published_at) == (ItemState.is_draft, None, None)
    assert db.scalar(sa.select(sa.func.count()).select_from(ProjectLog)) == 0


def test_failing_history_in_a_single_step_is_raised_by_the_call(db: DBSession) -> None:
    ann, project, *_ = _world(db)
    tx = _faulty("history")(actor=ann)
    with pytest.raises(sa.exc.DBAPIError):
        tx.publish(project)  # type: ignore[attr-defined]
    assert project.state.is_draft and project not in db.dirty
    db.commit()  # the caller's transaction is intact
    assert _states(db, Project) == [(project.id, "is_draft")]


# ------------------------------------------------------------------ after_commit


def test_after_commit_runs_on_commit_only(db: DBSession) -> None:
    ann, project, *_ = _world(db)
    calls: list[tuple[str, str]] = []

    class Notifying(Transitions[Project, User]):
        publish = Transition(ItemState.is_draft, ItemState.is_published)
        withdraw = Transition(ItemState.is_published, ItemState.is_withdrawn)

        @publish.after_commit
        @withdraw.after_commit
        def notify(self, step: AppliedStep[Project]) -> None:
            calls.append((step.transition.name, step.obj.state.name))

    tx = Notifying(actor=ann)
    tx.publish(project)
    assert calls == []
    db.rollback()
    assert calls == []
    db.commit()
    assert calls == []
    project = db.get(Project, project.id)  # type: ignore[assignment]
    tx.publish(project)
    db.commit()
    assert calls == [("publish", "is_published")]
    # A savepoint of the caller's that rolls back drops the hooks registered inside it.
    with db.begin_nested() as nested:
        tx.withdraw(project)
        nested.rollback()
    db.commit()
    assert calls == [("publish", "is_published")]


def test_rollback_after_a_chain_undoes_it(db: DBSession) -> None:
    """pysqlite's default transaction handling must not let the chain's savepoint commit the caller's work."""
    ann, project, s1, s2, comment = _world(db)
    ProjectTransitions(actor=ann).delete(project)
    db.rollback()
    assert _states(db, Project) == [(project.id, "is_draft")]
    assert _states(db, Session) == [(s1.id, "is_draft"), (s2.id, "is_draft")]
    assert _states(db, Comment) == [(comment.id, "is_draft")]
    assert db.scalar(sa.select(sa.func.count()).select_from(ProjectLog)) == 0


class Pair(Base):
    __tablename__ = "tx_pair"
    a: sa.orm.Mapped[int] = sa.orm.mapped_column(primary_key=True, autoincrement=False)
    b: sa.orm.Mapped[str] = sa.orm.mapped_column(sa.String(10), primary_key=True)
    state: sa.orm.Mapped[ItemState] = sa.orm.mapped_column(ItemState(), default=ItemState.is_draft)


class PairTransitions(Transitions[Pair]):
    log = ProjectLog
    publish = Transition(ItemState.is_draft, ItemState.is_published)


def test_history_of_a_composite_key_is_a_json_array(db: DBSession) -> None:
    pair = Pair(a=7, b="x")
    db.add(pair)
    db.commit()
    PairTransitions().publish(pair)
    db.commit()
    assert [h.object_id for h in PairTransitions().history(pair)] == ['[7, "x"]']
    assert db.get(Pair, (7, "x")).state.is_published  # type: ignore[union-attr]


@pytest.mark.parametrize("point", ["execute", "after"])
def test_objects_added_or_deleted_by_failing_hooks_are_put_back(db: DBSession, point: str) -> None:
    ann, project, s1, s2, comment = _world(db)

    class Meddling(Transitions[Project, User]):
        publish = Transition(ItemState.is_draft, ItemState.is_published)

        @publish.execute
        def meddle(self, project: Project, data: Mapping[str, Any]) -> None:
            db.add(Account())
            db.delete(comment)
            if point == "execute":
                raise Boom(point)

        def after(self, step: AppliedStep[Project]) -> None:
            raise Boom(point)

    with pytest.raises(Boom):
        Meddling(actor=ann).publish(project)
    assert not db.new and not db.deleted
    db.commit()
    assert db.scalar(sa.select(sa.func.count()).select_from(Account)) == 1
    assert _states(db, Comment) == [(comment.id, "is_draft")]
    assert _states(db, Project) == [(project.id, "is_draft")]


def test_registry_without_a_model_is_refused() -> None:
    with pytest.raises(StateDefinitionError, match=r"Loose\.go: the registry has no model"):

        class Loose(Transitions["Project"]):  # type: ignore[type-arg]
            go = Transition(ItemState.is_draft, ItemState.is_published)


def test_from_value_accepts_members_and_bound_values(db: DBSession) -> None:
    ann, project, *_ = _world(db)
    assert ItemState.from_value(ItemState.is_draft) is ItemState.is_draft
    assert ItemState.from_value(project.state) is ItemState.is_draft
    assert ItemState.from_value(2) is ItemState.is_published
    with pytest.raises(InvalidStateValue):
        ItemState.from_value(ItemState.is_gone)
    with pytest.raises(InvalidStateValue):
        ItemState.from_value(ReviewState.is_pending)
