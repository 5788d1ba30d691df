"""The api example: a FastAPI application over the projects model, through FastAPI's test client.

Every test runs on SQLite, PostgreSQL and MariaDB; the race of two requests
runs on PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from fastapi import Depends
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from sqlalchemy.orm import Session

from examples.api import create_app, get_session, load_project
from examples.projects import (
    Account,
    AccountState,
    Base,
    Comment,
    Project,
    ProjectState,
    TalkSession,
    User,
)

CreateAll = Callable[[sa.MetaData], None]
ANN = {"X-User": "ann"}
BOB = {"X-User": "bob"}


@pytest.fixture
def client(engine: sa.Engine, create_all: CreateAll) -> Iterator[TestClient]:
    create_all(Base.metadata)
    with Session(engine) as s:
        ann, bob, cy = User(name="ann"), User(name="bob"), User(name="cy")
        live = Account(name="Rivers", owner=ann, state=AccountState.is_published)
        rivers = Project(title="Rivers", account=live, editors=[ann])
        s.add_all([ann, bob, cy, live, rivers])
        s.add(Project(title="Deltas", account=live, editors=[bob]))
        talk = TalkSession(title="Talk 1", project=rivers)
        talk.comments = [Comment(body="hello", author=cy)]
        s.add(talk)
        s.commit()
    with TestClient(create_app(engine)) as test_client:
        yield test_client


PUBLISH = {"title": "Rivers of Europe", "summary": "A tour", "start_at": "2999-05-01T10:00"}


def test_transitions_of_a_project_for_the_signed_in_user(client: TestClient) -> None:
    assert client.get("/projects/1/transitions").status_code == 401
    listed = client.get("/projects/1/transitions", headers=ANN)
    assert listed.status_code == 200
    entries = listed.json()
    assert [e["name"] for e in entries] == ["publish", "withdraw", "delete", "expire"]
    publish, withdraw, delete, expire = entries
    assert (publish["title"], publish["allowed"], publish["reasons"]) == ("Publish", True, [])
    assert publish["schema"]["required"] == ["title", "summary"]
    assert publish["schema"]["properties"]["title"]["maxLength"] == 100
    assert withdraw["allowed"] is False and [r["kind"] for r in withdraw["reasons"]] == ["state"]
    assert delete["allowed"] is True and delete["schema"]["properties"] == {}
    assert [r["kind"] for r in expire["reasons"]] == ["timer"]
    for entry in entries:
        Draft202012Validator.check_schema(entry["schema"])
    assert Draft202012Validator(publish["schema"]).is_valid(PUBLISH)

    bob = client.get("/projects/1/transitions", headers=BOB).json()
    assert bob[0]["allowed"] is False
    assert bob[0]["reasons"] == [{"kind": "permission", "message": "Only the project's editors may do this."}]


def test_apply_refuse_invalid_and_history(client: TestClient) -> None:
    refused = client.post("/projects/1/transitions/publish", json=PUBLISH, headers=BOB)
    assert refused.status_code == 403
    assert refused.json()["detail"]["reasons"] == [
        {"kind": "permission", "message": "Only the project's editors may do this."}
    ]
    invalid = client.post("/projects/1/transitions/publish", json={"title": "x" * 101}, headers=ANN)
    assert invalid.status_code == 422
    assert set(invalid.json()["detail"]["errors"]) == {"title", "summary"}
    assert client.get("/projects/1", headers=ANN).json()["state"] == 1
    assert client.post("/projects/1/transitions/nothing", json={}, headers=ANN).status_code == 404
    assert client.post("/projects/99/transitions/publish", json=PUBLISH, headers=ANN).status_code == 404

    done = client.post("/projects/1/transitions/publish", json=PUBLISH, headers=ANN)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["project"]["state"] == 2 and body["project"]["title"] == "Rivers of Europe"
    assert body["project"]["start_at"].startswith("2999-05-01T10:00")
    assert body["steps"] == ["publish Project 1"]
    again = client.post("/projects/1/transitions/publish", json=PUBLISH, headers=ANN)
    assert again.status_code == 403 and again.json()["detail"]["reasons"][0]["kind"] == "state"

    withdrawn = client.post("/projects/1/transitions/withdraw", json={"reason": "rain"}, headers=ANN)
    assert withdrawn.status_code == 200 and withdrawn.json()["project"]["state"] == 3
    deleted = client.post("/projects/1/transitions/delete", headers=ANN)
    assert deleted.status_code == 200
    assert deleted.json()["steps"] == ["delete Comment 1", "delete TalkSession 1", "delete Project 1"]

    history = client.get("/projects/1/history").json()
    assert [(h["transition"], h["from_value"], h["to_value"], h["actor"]) for h in history] == [
        ("publish", "1", "2", "1"),
        ("withdraw", "2", "3", "1"),
        ("delete", "3", "4", "1"),
    ]
    assert history[0]["data"]["title"] == "Rivers of Europe"
    assert history[1]["data"] == {"reason": "rain"}
    assert dt.datetime.fromisoformat(history[0]["created_at"]).tzinfo is not None


def test_lists_by_state_group_and_conditional_state(client: TestClient) -> None:
    def titles(state: str | None) -> list[str]:
        response = client.get("/projects", params={"state": state} if state else {})
        assert response.status_code == 200, response.text
        return [p["title"] for p in response.json()]

    assert titles(None) == ["Rivers", "Deltas"]
    assert titles("is_draft") == ["Rivers", "Deltas"]
    client.post("/projects/1/transitions/publish", json=PUBLISH, headers=ANN)
    client.post(
        "/projects/2/transitions/publish", json={"title": "Deltas", "summary": "Past", "start_at": "2001-01-01T00:00"},
        headers=BOB,
    )
    assert titles("is_published") == ["Rivers of Europe", "Deltas"]
    assert titles("is_future") == ["Rivers of Europe"]  # a conditional state, filtered in SQL
    assert titles("is_live") == ["Rivers of Europe", "Deltas"]  # a group
    client.post("/projects/2/transitions/withdraw", json={"reason": "late"}, headers=BOB)
    assert titles("is_gone") == ["Deltas"]
    assert client.get("/projects", params={"state": "is_nothing"}).status_code == 422
    sessions = client.get("/sessions", params={"state": "is_draft"}).json()
    assert sessions == [{"id": 1, "project_id": 1, "title": "Talk 1", "state": 1}]


def test_openapi_shows_the_state_enums_with_titles(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    state = document["components"]["schemas"]["ProjectState"]
    assert state["enum"] == [1, 2, 3, 4]
    assert state["oneOf"] == [
        {"const": 1, "title": "Draft"},
        {"const": 2, "title": "Published"},
        {"const": 3, "title": "Withdrawn"},
        {"const": 4, "title": "Deleted"},
    ]
    assert document["components"]["schemas"]["ProjectOut"]["properties"]["state"] == {
        "$ref": "#/components/schemas/ProjectState"
    }
    (param,) = [p for p in document["paths"]["/projects"]["get"]["parameters"] if p["name"] == "state"]
    assert "is_gone" in param["schema"]["enum"] and "is_future" in param["schema"]["enum"]


def test_a_race_of_two_requests_gives_one_200_and_one_409(client: TestClient, db_url: sa.URL) -> None:
    if db_url.get_backend_name() == "sqlite":
        pytest.skip("SQLite serializes writers: the race needs row locks")
    barrier = threading.Barrier(2, timeout=30)

    def racing_load(project_id: int, session: Annotated[Session, Depends(get_session)]) -> Project:
        project = load_project(project_id, session)
        assert project.state == ProjectState.is_draft
        barrier.wait()  # both requests have read the draft before either applies
        return project

    app: Any = client.app
    app.dependency_overrides[load_project] = racing_load
    with ThreadPoolExecutor(2) as pool:
        responses = list(
            pool.map(lambda _: client.post("/projects/1/transitions/publish", json=PUBLISH, headers=ANN), range(2))
        )
    app.dependency_overrides.clear()
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    assert [h["transition"] for h in client.get("/projects/1/history").json()] == ["publish"]
