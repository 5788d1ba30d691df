"""The projects example: forms, chains across three models, permissions per user, history, where(), bulk.

Every test runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from examples.projects import (
    Account,
    AccountState,
    Base,
    Comment,
    CommentState,
    Project,
    ProjectDesk,
    ProjectLog,
    ProjectState,
    ProjectTransitions,
    TalkSession,
    User,
)
from statetype import ProtectedStateError, TransitionDataInvalid, TransitionNotAllowed
from statetype.testing import assert_allowed, assert_refused, assert_transition

CreateAll = Callable[[sa.MetaData], None]
UTC = dt.timezone.utc


@pytest.fixture
def session(engine: sa.Engine, create_all: CreateAll) -> Session:
    create_all(Base.metadata)
    with Session(engine) as s:
        ann, bob, cy = User(name="ann"), User(name="bob"), User(name="cy")
        live = Account(name="Rivers", owner=ann, state=AccountState.is_published)
        hidden = Account(name="Lakes", owner=bob)
        rivers = Project(title="Rivers", account=live, editors=[ann])
        s.add_all([ann, bob, cy, live, hidden, rivers])
        s.add(Project(title="Lakes", account=hidden, editors=[ann, bob]))
        s.add(Project(title="Deltas", account=live, editors=[bob]))
        for n in (1, 2):
            talk = TalkSession(title=f"Talk {n}", project=rivers)
            talk.comments = [Comment(body="hello", author=cy), Comment(body="hi", author=bob)]
            s.add(talk)
        s.commit()
    s = Session(engine)
    yield s
    s.close()


def user(session: Session, name: str) -> User:
    return session.scalars(sa.select(User).where(User.name == name)).one()


def project(session: Session, title: str) -> Project:
    return session.scalars(sa.select(Project).where(Project.title == title)).one()


def states(engine: sa.Engine, model: type[Project] | type[TalkSession] | type[Comment]) -> list[str]:
    with engine.connect() as conn:
        return [s.name for s in conn.scalars(sa.select(model.state).order_by(model.id))]


def test_publish_with_a_form_validates_then_stamps(session: Session, engine: sa.Engine) -> None:
    desk = ProjectDesk(session, user(session, "ann"))
    rivers = project(session, "Rivers")
    assert desk.actions(rivers) == ["publish", "delete"]

    form = desk.publish_form(rivers)
    assert form.title.data == "Rivers"  # prefilled from the project
    with pytest.raises(TransitionDataInvalid) as error:
        desk.publish(rivers.id, MultiDict({"title": "Rivers", "start_at": "tomorrow"}))
    assert set(error.value.errors) == {"summary", "start_at"}
    session.rollback()
    assert states(engine, Project) == ["is_draft", "is_draft", "is_draft"]

    start = (dt.datetime.now(UTC) + dt.timedelta(days=30)).replace(tzinfo=None, second=0, microsecond=0)
    applied = desk.publish(
        rivers.id,
        MultiDict({"title": "Rivers of Europe", "summary": "A field guide", "start_at": start.strftime("%Y-%m-%dT%H:%M")}),
    )
    assert applied.results == {"stamp": True}
    session.commit()

    with engine.connect() as conn:
        row = conn.execute(sa.select(Project.title, Project.state, Project.start_at, Project.published_at).where(Project.id == rivers.id)).one()
    assert (row.title, row.state, row.start_at) == ("Rivers of Europe", ProjectState.is_published, start)
    assert row.published_at is not None
    # conditional state: published and not started yet, in Python and in SQL
    assert rivers.state.is_future and rivers.state.is_live
    assert [p.title for p in desk.upcoming()] == ["Rivers of Europe"]
    assert [(h.transition, h.from_state, h.to_state, h.actor) for h in desk.history(rivers)] == [
        ("publish", "1", "2", str(desk.user.id))  # type: ignore[union-attr]
    ]
    assert session.scalars(sa.select(ProjectLog.data)).one()["summary"] == "A field guide"


def test_refusals_name_every_reason_and_protect_the_column(session: Session) -> None:
    bob, cy = user(session, "bob"), user(session, "cy")
    lakes = project(session, "Lakes")  # bob edits it, but its account is a draft

    verdict = assert_refused(ProjectTransitions(actor=bob).publish, lakes, kind="guard")
    assert [(r.kind, r.message) for r in verdict.reasons] == [("guard", "The project's account must be published.")]
    verdict = assert_refused(ProjectTransitions(actor=cy).publish, lakes, kind="permission")
    assert [r.kind for r in verdict.reasons] == ["guard", "permission"]
    with pytest.raises(TransitionNotAllowed):
        ProjectDesk(session, cy).publish(lakes.id, title="Lakes", summary="Still water")
    assert ProjectDesk(session, cy).actions(lakes) == []

    with pytest.raises(ProtectedStateError):
        lakes.state = ProjectState.is_published
    assert lakes.state.is_draft


def test_where_lists_what_each_user_can_publish(session: Session) -> None:
    ann, bob, cy = (user(session, n) for n in ("ann", "bob", "cy"))
    # Lakes' account is a draft: the guard's SQL form leaves it out
    assert [p.title for p in ProjectDesk(session, ann).publishable()] == ["Rivers"]
    assert [p.title for p in ProjectDesk(session, bob).publishable()] == ["Deltas"]
    assert ProjectDesk(session, cy).publishable() == []

    lakes_account = session.scalars(sa.select(Account).where(Account.name == "Lakes")).one()
    ProjectDesk(session, bob).accounts.publish(lakes_account)  # bob owns the Lakes account
    session.commit()
    assert [p.title for p in ProjectDesk(session, bob).publishable()] == ["Lakes", "Deltas"]
    all_publishable = session.scalars(sa.select(Project.title).where(ProjectTransitions.publish.where(Project)).order_by(Project.id))
    assert list(all_publishable) == ["Rivers", "Lakes", "Deltas"]


def test_delete_chains_through_sessions_to_comments(session: Session, engine: sa.Engine) -> None:
    desk = ProjectDesk(session, user(session, "ann"))
    rivers = project(session, "Rivers")

    assert_allowed(desk.projects.delete, rivers)
    plan = desk.confirm_delete(rivers.id)
    assert [type(p.obj).__name__ for p in plan] == ["Project", "TalkSession", "Comment", "Comment", "TalkSession", "Comment", "Comment"]
    assert all(p.verdict for p in plan)

    applied = desk.delete(rivers.id)
    # children before their parent
    assert [type(s.obj).__name__ for s in applied.steps] == ["Comment", "Comment", "TalkSession", "Comment", "Comment", "TalkSession", "Project"]
    session.commit()

    assert states(engine, Project) == ["is_deleted", "is_draft", "is_draft"]
    assert states(engine, TalkSession) == ["is_deleted", "is_deleted"]
    assert states(engine, Comment) == ["is_deleted"] * 4
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ProjectLog.table_name, ProjectLog.transition, ProjectLog.actor).order_by(ProjectLog.id)).all()
    assert [r.table_name for r in rows] == ["projects_comment"] * 2 + ["projects_session"] + ["projects_comment"] * 2 + ["projects_session", "projects_project"]
    assert {(r.transition, r.actor) for r in rows} == {("delete", str(desk.user.id))}  # type: ignore[union-attr]
    assert [h.to_state for h in desk.history(rivers.sessions[0].comments[0])] == ["deleted"]


def test_a_refused_child_refuses_the_whole_chain(session: Session, engine: sa.Engine) -> None:
    desk = ProjectDesk(session, user(session, "ann"))
    rivers = project(session, "Rivers")
    pinned = rivers.sessions[1].comments[0]
    pinned.pinned = True
    session.commit()

    verdict = assert_refused(desk.projects.delete, rivers, kind="chain")
    assert [r.kind for r in verdict.reasons] == ["chain"]
    assert verdict.reasons[0].obj is rivers.sessions[1]
    assert "kept" in verdict.reasons[0].message  # the comment's guard, named through the session
    with pytest.raises(TransitionNotAllowed):
        desk.delete(rivers.id)
    session.commit()
    assert states(engine, Project) == ["is_draft"] * 3
    assert states(engine, TalkSession) == ["is_draft"] * 2
    assert states(engine, Comment) == ["is_visible"] * 4
    assert session.scalar(sa.select(sa.func.count()).select_from(ProjectLog)) == 0

    # a user who may not delete the sessions' comments is refused through the chain too
    bob = user(session, "bob")
    assert_refused(ProjectTransitions(actor=bob).delete, rivers, kind="permission")


def test_bulk_publishes_an_accounts_projects_for_their_editor(session: Session, engine: sa.Engine) -> None:
    ann, bob = user(session, "ann"), user(session, "bob")
    live = session.scalars(sa.select(Account).where(Account.name == "Rivers")).one()
    result = ProjectDesk(session, bob).publish_account(live)
    session.commit()
    deltas = project(session, "Deltas")
    assert (result.count, result.ids) == (1, [deltas.id])  # bob edits Deltas only
    assert states(engine, Project) == ["is_draft", "is_draft", "is_published"]
    assert deltas.published_at is not None

    with engine.connect() as conn:
        log = conn.execute(sa.select(ProjectLog.object_id, ProjectLog.from_value, ProjectLog.to_value, ProjectLog.actor)).all()
    assert [tuple(r) for r in log] == [(str(deltas.id), "1", "2", str(bob.id))]
    assert ProjectDesk(session, ann).publish_account(live).count == 1  # Rivers
    session.commit()
    assert states(engine, Project) == ["is_published", "is_draft", "is_published"]


def test_withdraw_needs_a_reason_and_expire_runs_on_old_drafts(session: Session, engine: sa.Engine) -> None:
    ann = user(session, "ann")
    desk = ProjectDesk(session, ann)
    rivers = project(session, "Rivers")
    desk.publish(rivers.id, title="Rivers", summary="Flowing water")
    with pytest.raises(TransitionDataInvalid) as error:
        desk.withdraw(rivers.id, reason="")
    assert error.value.errors == {"reason": ["This field is required."]}
    desk.withdraw(rivers.id, reason="postponed")
    session.commit()
    assert rivers.state.is_gone and rivers.state.is_live and not rivers.state.is_future

    # the timer: drafts are deleted 30 days after their creation, only by run_due
    lakes = project(session, "Lakes")
    with pytest.raises(TransitionNotAllowed) as refused:
        desk.projects.expire(lakes)
    assert [r.kind for r in refused.value.verdict.reasons] == ["timer"]
    created = max(session.scalars(sa.select(Project.created_at)))
    assert desk.expire_drafts(now=created.replace(tzinfo=UTC) + dt.timedelta(days=29)) == 0
    assert desk.expire_drafts(now=created.replace(tzinfo=UTC) + dt.timedelta(days=31)) == 2  # Lakes and Deltas
    session.commit()
    assert states(engine, Project) == ["is_withdrawn", "is_deleted", "is_deleted"]
    assert [h.transition for h in desk.history(rivers)] == ["publish", "withdraw"]
    assert [(h.transition, h.actor) for h in desk.history(lakes)] == [("expire", str(ann.id))]


def test_an_editor_takes_a_project_through_its_life(session: Session) -> None:
    # statetype.testing's helpers: each call checks the object and, with a fresh SELECT, its row
    tx = ProjectTransitions(actor=user(session, "ann"))
    rivers = project(session, "Rivers")
    assert_refused(tx.withdraw, rivers, kind="state")
    assert_transition(tx.publish, rivers, from_=ProjectState.is_draft, to=ProjectState.is_published,
                      data={"title": "Rivers", "summary": "Flowing water"})
    assert_transition(tx.withdraw, rivers, from_=ProjectState.is_live, to=ProjectState.is_gone, data={"reason": "late"})
    assert_transition(tx.publish, rivers, from_=ProjectState.is_withdrawn, to=ProjectState.is_published,
                      data={"title": "Rivers", "summary": "Back again"})
    applied = assert_transition(tx.delete, rivers, from_=ProjectState.is_live, to=ProjectState.is_deleted)
    assert [type(s.obj).__name__ for s in applied.steps][-3:] == ["Comment", "TalkSession", "Project"]
    session.commit()
    assert [h.transition for h in tx.history(rivers)] == ["publish", "withdraw", "publish", "delete"]
    assert_refused(tx.publish, rivers, kind="state")  # deleted is final
