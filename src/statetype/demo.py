"""``statetype demo``: the project model of the docs on a temporary SQLite file.

Accounts, projects and their sessions; a transition registry with a form,
a guard, a permission, an execute hook, a chain and a timer; then each
feature in turn, printed as it runs. WTForms (the ``forms`` extra) is used
when installed; without it the demo says so and runs the same transition
without a form. Everything is deterministic except the database file's name.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from . import (
    State,
    StateType,
    Step,
    Transition,
    TransitionDataInvalid,
    TransitionLogMixin,
    TransitionNotAllowed,
    Transitions,
)
from .diagram import mermaid

__all__ = ["run"]

NOW = dt.datetime(2026, 6, 1)


def _publish_form() -> type[Any] | None:
    """The publish form, or None when WTForms is not installed."""
    try:
        import wtforms
    except ImportError:
        return None

    class PublishForm(wtforms.Form):
        note = wtforms.StringField("Release note", validators=[wtforms.validators.DataRequired()])

    return PublishForm


PublishForm = _publish_form()


class AccountState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")


class ProjectState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_withdrawn = State(3, "Withdrawn")
    is_deleted = State(4, "Deleted", final=True)

    is_gone = (is_withdrawn | is_deleted).titled("Gone")
    is_live = is_published | is_withdrawn

    @is_published.conditional
    def is_future(self, project: Project) -> bool:
        return project.start_at is not None and project.start_at > NOW

    @is_future.expression
    def _is_future_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return project.start_at > NOW


class SessionState(StateType[int]):
    is_scheduled = State(1, "Scheduled")
    is_cancelled = State(2, "Cancelled")
    is_deleted = State(3, "Deleted", final=True)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))

    def __str__(self) -> str:
        return self.name


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    state: Mapped[AccountState] = mapped_column(AccountState(), default=AccountState.is_draft)


class Project(Base):
    __tablename__ = "project"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id"))
    editor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"))
    state: Mapped[ProjectState] = mapped_column(ProjectState(), default=ProjectState.is_draft)
    start_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=NOW)
    published_at: Mapped[dt.datetime | None]
    note: Mapped[str | None] = mapped_column(sa.String(200))
    account: Mapped[Account] = relationship()
    sessions: Mapped[list[ProjectSession]] = relationship(back_populates="project", order_by="ProjectSession.id")


class ProjectSession(Base):
    __tablename__ = "project_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("project.id"))
    title: Mapped[str] = mapped_column(sa.String(100))
    state: Mapped[SessionState] = mapped_column(SessionState(), default=SessionState.is_scheduled)
    project: Mapped[Project] = relationship(back_populates="sessions")


class TransitionLog(TransitionLogMixin, Base):
    __tablename__ = "transition_log"


class SessionTransitions(Transitions[ProjectSession, User]):
    log = TransitionLog
    cancel = Transition(SessionState.is_scheduled, SessionState.is_cancelled)
    delete = Transition(None, SessionState.is_deleted)


class ProjectTransitions(Transitions[Project, User]):
    log = TransitionLog

    publish = Transition(
        ProjectState.is_draft | ProjectState.is_withdrawn, ProjectState.is_published, title="Publish", form=PublishForm
    )
    withdraw = Transition(ProjectState.is_published, ProjectState.is_withdrawn)
    delete = Transition(ProjectState.is_draft | ProjectState.is_live, ProjectState.is_deleted)
    expire = Transition(
        ProjectState.is_draft, ProjectState.is_deleted, after=dt.timedelta(days=30), since="created_at"
    )

    @publish.guard
    def account_published(self, project: Project) -> bool:
        """The account must be published."""
        return bool(project.account.state.is_published)

    @account_published.expression
    def _account_published_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return sa.exists().where(Account.id == project.account_id, Account.state == AccountState.is_published)

    @publish.permission
    def is_editor(self, project: Project) -> bool:
        """Only the project's editor may publish it."""
        return self.actor is not None and project.editor_id == self.actor.id

    @is_editor.expression
    def _is_editor_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return project.editor_id == self.actor.id if self.actor is not None else sa.false()

    @publish.execute
    def stamp(self, project: Project, data: Mapping[str, Any]) -> None:
        project.published_at = NOW
        project.note = data.get("note")

    @stamp.expression
    def _stamp_sql(self, project: type[Project], now: dt.datetime) -> Mapping[str, object]:
        return {"published_at": NOW}

    @delete.chain
    def sessions(self, project: Project) -> Iterable[Step]:
        tx = SessionTransitions(actor=self.actor)
        return [(tx.delete, s) for s in project.sessions]


# ------------------------------------------------------------------ the run


def _section(title: str) -> None:
    print(f"\n== {title} ==")


def _sql(engine: sa.Engine, statement: sa.ClauseElement) -> str:
    return " ".join(str(statement.compile(engine, compile_kwargs={"literal_binds": True})).split())


def _states(session: Session) -> str:
    rows = session.execute(sa.select(Project.title, Project.state).order_by(Project.id))
    return ", ".join(f"{title}: {state.title}" for title, state in rows)


def _declarations() -> None:
    _section("States")
    for statetype in (ProjectState, SessionState, AccountState):
        states = ", ".join(f"{s.name}={s.value} ({s.title}{', final' if s.final else ''})" for s in statetype.states)
        print(f"{statetype.__name__}: {states}")
    for group in ProjectState.groups:
        print(f"group {group.name} ({group.title}): {', '.join(s.name for s in group.states)}")
    for conditional in ProjectState.conditionals:
        print(f"conditional {conditional.name}: {', '.join(s.name for s in conditional.states)} and start_at > now")
    _section("Transitions")
    for transition in ProjectTransitions.transitions():
        sources = " | ".join(s.name for s in transition.sources)
        extra = f" (after {transition.after.days} days since {transition.since})" if transition.after else ""
        print(f"{transition.name}: {sources} -> {transition.to.name}{extra}")


def _filters(engine: sa.Engine, session: Session) -> None:
    _section("SQL filters")
    for label, condition in [
        ("Project.state.is_draft", Project.state.is_draft),
        ("Project.state.is_gone", Project.state.is_gone),
        ("Project.state.is_live", Project.state.is_live),
        ("Project.state.is_future", Project.state.is_future),
        ("~Project.state.is_gone", ~Project.state.is_gone),
        ("ProjectTransitions.publish.where(Project)", ProjectTransitions.publish.where(Project)),
    ]:
        query = sa.select(Project.title).where(condition).order_by(Project.id)
        print(f"\n{label}\n  SQL:  {_sql(engine, query)}\n  rows: {list(session.scalars(query))}")
    conference = session.scalars(sa.select(Project).where(Project.title == "Conference")).one()
    print(
        f"\nconference.state: {conference.state}; is_future={conference.state.is_future}, "
        f"is_live={conference.state.is_live}, is_draft={conference.state.is_draft}"
    )


def _form(session: Session, ada: User) -> None:
    _section("A transition with a form")
    launch = session.scalars(sa.select(Project).where(Project.title == "Launch")).one()
    tx = ProjectTransitions(actor=ada)
    print(f"available to {ada} on Launch: {[t.name for t in tx.available(launch)]}")
    if PublishForm is None:
        print("note: WTForms is not installed (pip install 'statetype[forms]'); publish runs without a form")
    else:
        form = tx.publish.form(launch)
        assert form is not None
        print(f"tx.publish.form(launch): {type(form).__name__} with fields {[field.name for field in form]}")
        try:
            tx.publish(launch, data={"note": ""})
        except TransitionDataInvalid as error:
            print(f"tx.publish(launch, data={{'note': ''}}) -> TransitionDataInvalid {error.errors}")
    applied = tx.publish(launch, data={"note": "Going live"})
    session.commit()
    step = applied.steps[0]
    print(f"tx.publish(launch, data={{'note': 'Going live'}}) -> {step.from_state.title if step.from_state else '?'}"
          f" -> {step.to_state.title}; note={launch.note!r}, published_at={launch.published_at}")


def _refused(session: Session, bob: User) -> None:
    _section("A refused transition")
    side = session.scalars(sa.select(Project).where(Project.title == "Side project")).one()
    verdict = ProjectTransitions(actor=bob).publish.check(side)
    print(f"{bob} publishes Side project: allowed={bool(verdict)}")
    for reason in verdict.reasons:
        print(f"  - {reason.kind}: {reason.message}")
    try:
        ProjectTransitions(actor=bob).publish(side, data={"note": "Sneaky"})
    except TransitionNotAllowed as error:
        print(f"calling it anyway raises TransitionNotAllowed: {error}")


def _chain(session: Session, ada: User) -> None:
    _section("A chain: deleting a project deletes its sessions")
    conference = session.scalars(sa.select(Project).where(Project.title == "Conference")).one()
    tx = ProjectTransitions(actor=ada)
    print("plan:")
    for planned in tx.delete.plan(conference):
        obj = planned.obj
        label = obj.title if isinstance(obj, (Project, ProjectSession)) else repr(obj)
        print(f"  {planned.transition.name} {type(obj).__name__} {label!r}: {planned.verdict}")
    applied = tx.delete(conference)
    session.commit()
    print("applied, children first:")
    for step in applied.steps:
        obj = step.obj
        label = obj.title if isinstance(obj, (Project, ProjectSession)) else repr(obj)
        print(f"  {type(obj).__name__} {label!r}: {step.from_state.title if step.from_state else '?'} -> {step.to_state.title}")


def _timed(session: Session) -> None:
    _section("Timed transitions")
    print(f"run_due(session, now={NOW:%Y-%m-%d}): expire drafts created more than 30 days before")
    count = ProjectTransitions().run_due(session, now=NOW)
    session.commit()
    print(f"  {count} row(s) expired; projects now: {_states(session)}")


def _bulk(engine: sa.Engine, session: Session, ada: User) -> None:
    _section("A bulk transition")
    acme = session.scalars(sa.select(Account).where(Account.name == "Acme")).one()
    tx = ProjectTransitions(actor=ada)
    result = tx.publish.bulk(session, Project.account_id == acme.id)
    session.commit()
    print(f"tx.publish.bulk(session, Project.account_id == {acme.id}) -> {result.count} row(s), ids {result.ids}")
    print("  set-based: UPDATE ... WHERE <source states> AND <guard SQL> AND <permission SQL> AND <criteria>")
    print(f"  projects now: {_states(session)}")


def _history(session: Session) -> None:
    _section("History")
    tx = ProjectTransitions()
    for title in ("Launch", "Conference", "Old draft"):
        project = session.scalars(sa.select(Project).where(Project.title == title)).one()
        print(f"{title}:")
        for row in tx.history(project):
            actor = f"user {row.actor}" if row.actor else "the system"
            print(f"  {row.transition}: {row.from_value} -> {row.to_value} by {actor}"
                  f"{' data ' + str(row.data) if row.data else ''}")
    conference = session.scalars(sa.select(Project).where(Project.title == "Conference")).one()
    session_tx = SessionTransitions()
    for child in conference.sessions:
        for row in session_tx.history(child):
            print(f"session {child.title!r}: {row.transition}: {row.from_value} -> {row.to_value} by user {row.actor}")


def _seed(session: Session) -> tuple[User, User]:
    ada, bob = User(name="ada"), User(name="bob")
    acme = Account(name="Acme", state=AccountState.is_published)
    startup = Account(name="Startup")
    session.add_all([ada, bob, acme, startup])
    session.flush()
    days = dt.timedelta(days=1)
    conference = Project(
        title="Conference", account=acme, editor_id=ada.id, state=ProjectState.is_published,
        start_at=dt.datetime(2027, 3, 1), created_at=NOW - 90 * days,
    )
    conference.sessions = [ProjectSession(title="Keynote"), ProjectSession(title="Workshop")]
    session.add_all(
        [
            Project(title="Launch", account=acme, editor_id=ada.id, created_at=NOW - 2 * days),
            Project(title="Side project", account=startup, editor_id=ada.id, created_at=NOW - 5 * days),
            conference,
            Project(title="Old draft", account=acme, editor_id=ada.id, created_at=NOW - 45 * days),
            Project(title="Beta", account=acme, editor_id=ada.id, created_at=NOW - 1 * days),
            Project(title="Retracted", account=acme, editor_id=ada.id, state=ProjectState.is_withdrawn),
            Project(title="Archived", account=acme, state=ProjectState.is_deleted),
        ]
    )
    session.commit()
    return ada, bob


def run() -> int:
    """Declare, insert, filter, transition and draw; returns the exit code."""
    print("statetype demo: a temporary SQLite database with accounts, projects and sessions")
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'demo.db'}")
        Base.metadata.create_all(engine)
        try:
            with Session(engine) as session:
                ada, bob = _seed(session)
                _declarations()
                _filters(engine, session)
                _form(session, ada)
                _refused(session, bob)
                _chain(session, ada)
                _timed(session)
                _bulk(engine, session, ada)
                _history(session)
            _section("Diagram (mermaid)")
            print(mermaid(ProjectTransitions), end="")
        finally:
            engine.dispose()
    return 0
