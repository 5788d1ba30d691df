"""statetype.admin through Starlette's test client: the examples/api admin on SQLite, PostgreSQL and MariaDB.

Two users sign in (ann edits Rivers and Lakes and owns the Rivers account;
bob edits Deltas and owns the Brooks account) and see different buttons.
Every assertion on a page is backed by one on what the database holds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqladmin import Admin, ModelView
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

from examples.api import create_app
from examples.projects import (
    Account,
    AccountState,
    Base,
    Comment,
    CommentState,
    Project,
    ProjectLog,
    ProjectState,
    ProjectTransitions,
    TalkSession,
    User,
)
from statetype import AppliedStep, StateDefinitionError
from statetype.admin import StateAdminMixin

CreateAll = Callable[[sa.MetaData], None]
STATE = "statetype_state"


@pytest.fixture
def app(engine: sa.Engine, create_all: CreateAll) -> Starlette:
    create_all(Base.metadata)
    with Session(engine) as s:
        ann, bob = User(name="ann"), User(name="bob")
        live = Account(name="Rivers", owner=ann, state=AccountState.is_published)
        brooks = Account(name="Brooks", owner=bob, state=AccountState.is_published)
        rivers = Project(title="Rivers", account=live, editors=[ann])
        deltas = Project(title="Deltas", account=live, editors=[bob])
        lakes = Project(
            title="Lakes", account=live, editors=[ann], state=ProjectState.is_published, start_at=dt.datetime(2999, 1, 1)
        )
        ponds = Project(title="Ponds", account=brooks, editors=[bob], state=ProjectState.is_deleted)
        s.add_all([ann, bob, live, brooks, rivers, deltas, lakes, ponds])
        talk = TalkSession(title="Talk 1", project=rivers)
        talk.comments = [Comment(body="hello", author=bob)]
        s.add(talk)
        s.commit()
    return create_app(engine)


def _client(app: Starlette, name: str) -> TestClient:
    client = TestClient(app)
    signed_in = client.post("/admin/login", data={"username": name, "password": name}, follow_redirects=False)
    assert signed_in.status_code == 302 and signed_in.headers["location"].endswith("/admin/")
    return client


@pytest.fixture
def ann(app: Starlette) -> Iterator[TestClient]:
    with _client(app, "ann") as client:
        yield client


@pytest.fixture
def bob(app: Starlette) -> Iterator[TestClient]:
    with _client(app, "bob") as client:
        yield client


def _state(engine: sa.Engine, project_id: int) -> ProjectState:
    with Session(engine) as s:
        project = s.get(Project, project_id)
        assert project is not None
        return project.state._member  # pyright: ignore[reportAttributeAccessIssue]


def _buttons(html: str) -> list[str]:
    return re.findall(r'class="btn btn-primary statetype-transition" data-transition="(\w+)"', html)


def _refused(html: str) -> dict[str, str]:
    found = re.findall(r'<li data-transition="(\w+)"><span class="text-muted">[^<]*</span>\s*([^<]*)</li>', html)
    return {name: text.strip() for name, text in found}


def _rows(html: str) -> set[str]:
    table = html[html.index("<tbody>") : html.index("</tbody>")]
    return {t for t in ("Rivers", "Deltas", "Lakes", "Ponds") if f">{t}<" in table or f"{t}\n" in table}


# ------------------------------------------------------------------ list view


def test_list_shows_titles_and_filters_by_state_group_and_conditional(ann: TestClient) -> None:
    page = ann.get("/admin/project/list")
    assert page.status_code == 200
    table = page.text[page.text.index("<tbody>") : page.text.index("</tbody>")]
    assert "Draft" in table and "Published" in table and "Deleted" in table
    assert "ProjectState" not in table and "is_draft" not in table
    # The filter sidebar offers states, groups and conditional states by title.
    for title, name in [("Draft", "is_draft"), ("Gone", "is_gone"), ("Live", "is_live"), ("Future", "is_future")]:
        assert f"state={name}" in page.text and title in page.text

    def listed(name: str) -> set[str]:
        html = ann.get("/admin/project/list", params={"state": name}).text
        return {t for t in ("Rivers", "Deltas", "Lakes", "Ponds") if t in html[html.index("<tbody>") : html.index("</tbody>")]}

    assert listed("is_draft") == {"Rivers", "Deltas"}
    assert listed("is_gone") == {"Ponds"}  # a group: IN
    assert listed("is_future") == {"Lakes"}  # a conditional state: its SQL twin
    assert listed("is_live") == {"Lakes"}
    assert listed("__all") == {"Rivers", "Deltas", "Lakes", "Ponds"}


# ------------------------------------------------------------------ detail view


def test_two_users_see_different_buttons_and_the_reasons(ann: TestClient, bob: TestClient) -> None:
    as_ann = ann.get("/admin/project/details/1")
    assert as_ann.status_code == 200
    assert 'class="badge bg-blue-lt statetype-state">Draft<' in as_ann.text
    assert _buttons(as_ann.text) == ["publish", "delete"]
    assert '>Publish</a>' in as_ann.text  # labelled with the transition's title
    assert _refused(as_ann.text) == {"withdraw": "Project 1 is Draft; withdraw needs Published"}

    as_bob = bob.get("/admin/project/details/1")
    assert _buttons(as_bob.text) == []
    refused = _refused(as_bob.text)
    assert list(refused) == ["publish", "withdraw", "delete"]
    assert refused["publish"] == "Only the project&#39;s editors may do this."
    assert "Project 1 is Draft; withdraw needs Published; Only the project&#39;s editors may do this." == refused["withdraw"]
    assert _buttons(bob.get("/admin/project/details/2").text) == ["publish", "delete"]
    # A conditional state the object is in is shown beside its state.
    lakes = ann.get("/admin/project/details/3").text
    assert 'statetype-also">Future<' in lakes and _buttons(lakes) == ["withdraw", "delete"]


def test_a_form_transition_validates_applies_and_returns_with_history(ann: TestClient, engine: sa.Engine) -> None:
    page = ann.get("/admin/project/transition/publish/1")
    assert page.status_code == 200
    assert '<label class="form-label required" for="title">Title</label>' in page.text
    assert 'for="start_at">Starts at</label>' in page.text
    assert f'name="{STATE}" value="1"' in page.text

    bad = ann.post("/admin/project/transition/publish/1", data={STATE: "1", "title": "", "summary": "A tour"})
    assert bad.status_code == 400
    assert re.search(r'data-field="title">This field is required.<', bad.text)
    assert "A tour</textarea>" in bad.text  # what was typed is kept
    assert _state(engine, 1) is ProjectState.is_draft

    good = ann.post(
        "/admin/project/transition/publish/1",
        data={STATE: "1", "title": "Rivers of Europe", "summary": "A tour", "start_at": ""},
        follow_redirects=False,
    )
    assert good.status_code == 303 and good.headers["location"].endswith("/admin/project/details/1")
    details = ann.get(good.headers["location"])
    assert "Publish: Project 1 is now Published" in details.text
    assert 'statetype-state">Published<' in details.text
    history = details.text[details.text.index("statetype-history") :]
    assert re.search(r"<td>Publish</td>\s*<td>Draft</td>\s*<td>Published</td>\s*<td>1</td>", history)
    assert "title: Rivers of Europe, summary: A tour" in history
    assert "Publish: Project 1 is now" not in ann.get("/admin/project/details/1").text  # shown once
    with Session(engine) as s:
        project = s.get(Project, 1)
        assert project is not None and project.state.is_published and project.title == "Rivers of Europe"
        logs = s.scalars(sa.select(ProjectLog).where(ProjectLog.table_name == "projects_project")).all()
        assert [(log.object_id, log.transition, log.actor) for log in logs] == [("1", "publish", "1")]


def test_a_chain_is_confirmed_with_its_plan_then_applied(ann: TestClient, engine: sa.Engine) -> None:
    page = ann.get("/admin/project/transition/delete/1")
    assert page.status_code == 200
    assert "Apply <strong>Delete</strong> to Project 1?" in page.text
    plan = page.text[page.text.index("statetype-plan") : page.text.index("</ol>")]
    steps = re.findall(r"<li>(.*?) (\w+ \d+): (\w+) &rarr; (\w+)", plan)
    assert steps == [
        ("Delete", "Project 1", "Draft", "Deleted"),
        ("Delete", "TalkSession 1", "Draft", "Deleted"),
        ("Delete", "Comment 1", "Visible", "Deleted"),
    ]
    done = ann.post("/admin/project/transition/delete/1", data={STATE: "1"})
    assert done.status_code == 200 and "Delete: Project 1 is now Deleted (3 steps)" in done.text
    with Session(engine) as s:
        assert s.get_one(Project, 1).state.is_deleted
        assert s.get_one(TalkSession, 1).state.is_deleted
        assert s.get_one(Comment, 1).state == CommentState.is_deleted


def test_a_refusal_shows_every_reason(bob: TestClient, engine: sa.Engine) -> None:
    with Session(engine) as s:
        s.get_one(Account, 1).state = AccountState.is_suspended  # Rivers' account: not published any more
        s.commit()
    page = bob.get("/admin/project/transition/publish/1")
    assert page.status_code == 403
    reasons = re.findall(r"<li>([^<]*)</li>", page.text[page.text.index("statetype-reasons") :])
    assert reasons[:2] == ["The project&#39;s account must be published.", "Only the project&#39;s editors may do this."]
    posted = bob.post("/admin/project/transition/publish/1", data={STATE: "1", "title": "x", "summary": "y"})
    assert posted.status_code == 403 and "Only the project&#39;s editors may do this." in posted.text
    assert _state(engine, 1) is ProjectState.is_draft
    assert bob.get("/admin/project/transition/nope/1").status_code == 404
    assert bob.get("/admin/project/transition/expire/1").status_code == 404  # timed: only run_due applies it


def test_a_page_submitted_after_someone_else_changed_the_object_says_so(ann: TestClient, engine: sa.Engine) -> None:
    page = ann.get("/admin/project/transition/delete/3")
    assert f'name="{STATE}" value="2"' in page.text
    with Session(engine) as s:
        ProjectTransitions(actor=s.get_one(User, 1)).withdraw(s.get_one(Project, 3), data={"reason": "moved"})
        s.commit()
    stale = ann.post("/admin/project/transition/delete/3", data={STATE: "2"})
    assert stale.status_code == 409
    assert "Project 3 was changed by someone else meanwhile: reload the page" in stale.text
    assert _state(engine, 3) is ProjectState.is_withdrawn


class _RacyTransitions(ProjectTransitions):
    """Another transaction withdraws the project between the check and the compare-and-set."""

    engine: sa.Engine | None = None

    def before(self, step: AppliedStep[Project]) -> None:
        assert self.engine is not None
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(Project).where(Project.id == step.obj.id).values(state=ProjectState.is_withdrawn)
            )


def test_a_concurrent_transition_error_says_changed_by_someone_else(engine: sa.Engine, app: Starlette) -> None:
    class RacyAdmin(StateAdminMixin, ModelView, model=Project):
        transitions = _RacyTransitions

        def actor(self, request: Any) -> User:
            with Session(engine) as s:
                user = s.get_one(User, 1)
                s.expunge(user)
                return user

    racy = Starlette()
    Admin(racy, engine).add_view(RacyAdmin)
    _RacyTransitions.engine = engine
    with TestClient(racy) as client:
        page = client.post("/admin/project/transition/delete/3", data={STATE: "2"})
    assert page.status_code == 409
    assert "changed by someone else meanwhile: reload the page" in page.text
    assert _state(engine, 3) is ProjectState.is_withdrawn  # the other transaction's change, not ours


# ------------------------------------------------------------------ edit forms and list actions


def test_edit_forms_never_offer_a_state_column(ann: TestClient, engine: sa.Engine) -> None:
    edit = ann.get("/admin/project/edit/1")
    assert edit.status_code == 200 and 'name="title"' in edit.text
    assert 'name="state"' not in edit.text
    saved = ann.post("/admin/project/edit/1", data={"title": "Renamed", "summary": "", "state": "4", "save": "Save"})
    assert saved.status_code == 200
    with Session(engine) as s:
        project = s.get_one(Project, 1)
        assert project.title == "Renamed" and project.state.is_draft
    assert 'name="state"' not in ann.get("/admin/project/create").text
    assert 'name="state"' not in ann.get("/admin/account/edit/1").text


def test_list_action_applies_set_based_when_it_can(ann: TestClient, engine: sa.Engine) -> None:
    choose = ann.get("/admin/account/action/apply-transition", params={"pks": "1,2"})
    assert choose.status_code == 200
    assert "Suspend\n" in choose.text or "Suspend (" in choose.text
    assert re.search(r"Suspend\s*\(1 of 2 can\)", choose.text)
    done = ann.post("/admin/account/transition-selected", data={"pks": "1,2", "transition": "suspend"})
    assert done.status_code == 200
    assert "Suspend: 1 of 2 moved (one UPDATE)." in done.text
    assert "Account 2: Only the account&#39;s owner may do this." in done.text
    with Session(engine) as s:
        assert s.get_one(Account, 1).state.is_suspended and s.get_one(Account, 2).state.is_published
        assert s.scalar(sa.select(sa.func.count()).where(ProjectLog.table_name == "projects_account")) == 1


def test_list_action_applies_row_by_row_otherwise(ann: TestClient, engine: sa.Engine) -> None:
    choose = ann.get("/admin/project/action/apply-transition", params={"pks": "1,2,4"})
    assert re.search(r"Delete\s*\(1 of 3 can\)", choose.text)
    assert re.search(r'value="publish"\s*disabled', choose.text)  # a form transition: from each row's page
    done = ann.post("/admin/project/transition-selected", data={"pks": "1,2,4", "transition": "delete"})
    assert "Delete: 1 of 3 moved." in done.text  # a chain: per row
    assert "Project 2: Only the project&#39;s editors may do this." in done.text
    assert (
        "Project 4: Project 4 is Deleted; delete needs Draft or Live; Only the project&#39;s editors may do this."
        in done.text
    )  # every reason
    assert [_state(engine, i) for i in (1, 2, 4)] == [ProjectState.is_deleted, ProjectState.is_draft, ProjectState.is_deleted]
    refused = ann.post("/admin/project/transition-selected", data={"pks": "2", "transition": "publish"})
    assert refused.status_code == 400 and _state(engine, 2) is ProjectState.is_draft


def test_without_sign_in_the_admin_asks_for_it(app: Starlette) -> None:
    with TestClient(app) as client:
        page = client.get("/admin/project/transition/publish/1", follow_redirects=False)
        assert page.status_code == 302 and page.headers["location"].endswith("/admin/login")
        assert client.post("/admin/login", data={"username": "ann", "password": "bob"}).status_code == 400


def test_a_view_needs_the_registry_of_its_model(engine: sa.Engine) -> None:
    class Wrong(StateAdminMixin, ModelView, model=Account):
        transitions = ProjectTransitions

    with pytest.raises(StateDefinitionError, match="Wrong.transitions is ProjectTransitions, a registry of Project"):
        Admin(Starlette(), engine).add_view(Wrong)

    class Missing(StateAdminMixin, ModelView, model=Account):
        pass

    with pytest.raises(StateDefinitionError, match="Missing.transitions must be a Transitions subclass"):
        Admin(Starlette(), engine).add_view(Missing)


def test_an_async_session_maker_works_the_same(tmp_path: Any) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    url = f"sqlite:///{tmp_path / 'async.db'}"
    sync_engine = sa.create_engine(url)
    Base.metadata.create_all(sync_engine)
    with Session(sync_engine) as s:
        ann = User(name="ann")
        live = Account(name="Rivers", owner=ann, state=AccountState.is_published)
        s.add_all([ann, live, Project(title="Rivers", account=live, editors=[ann])])
        s.commit()
        s.expunge(ann)

    class AsyncProjectAdmin(StateAdminMixin, ModelView, model=Project):
        transitions = ProjectTransitions

        def actor(self, request: Any) -> User:
            return ann

    app = Starlette()
    async_engine = create_async_engine(url.replace("sqlite://", "sqlite+aiosqlite://"))
    Admin(app, async_engine).add_view(AsyncProjectAdmin)
    with TestClient(app) as client:
        assert _buttons(client.get("/admin/project/details/1").text) == ["publish", "delete"]
        done = client.post("/admin/project/transition/publish/1", data={STATE: "1", "title": "R", "summary": "S"})
        assert "Publish: Project 1 is now Published" in done.text
        assert re.search(r"<td>Publish</td>\s*<td>Draft</td>\s*<td>Published</td>", done.text)
    assert _state(sync_engine, 1) is ProjectState.is_published
    asyncio.run(async_engine.dispose())
    sync_engine.dispose()
