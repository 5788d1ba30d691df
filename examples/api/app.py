"""The FastAPI application: ``create_app(engine)``.

A user signs in with the ``X-User`` header (a user name; a real application
would check a token). Every request gets its own ``Session``; a transition
is applied and committed in the request that asks for it:

* 200 with the new state;
* 403 with every reason when the transition is refused for this user;
* 409 when another request changed the project first (``ConcurrentTransitionError``);
* 422 with field -> messages when the JSON body does not fit the transition's schema.

The same application serves the SQLAdmin admin under ``/admin`` (``examples.api.admin``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Any, Optional

import sqlalchemy as sa
from fastapi import Body, Depends, FastAPI, Header, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from examples.projects import Project, ProjectLog, ProjectState, ProjectTransitions, TalkSession, User
from statetype import (
    BoundTransition,
    ConcurrentTransitionError,
    TransitionDataInvalid,
    TransitionNotAllowed,
)
from statetype.schema import TransitionDescription

from .admin import mount_admin

__all__ = [
    "ApplyOut",
    "HistoryOut",
    "ProjectOut",
    "SessionOut",
    "create_app",
    "current_user",
    "get_session",
    "load_project",
]

# Every name a list can be filtered by: states, groups and conditional states.
FILTERS: tuple[str, ...] = tuple(
    m.name for m in (*ProjectState.states, *ProjectState.groups, *ProjectState.conditionals)
)


# ------------------------------------------------------------------ response models


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    title: str
    summary: Optional[str]
    start_at: Optional[dt.datetime]
    state: ProjectState


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    title: str
    state: ProjectState


class ApplyOut(BaseModel):
    """The project after a transition, and the transitions applied (the chain included)."""

    project: ProjectOut
    steps: list[str]


class HistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    transition: str
    from_value: Optional[str]
    to_value: str
    actor: Optional[str]
    created_at: dt.datetime
    data: Optional[dict[str, Any]]


# ------------------------------------------------------------------ dependencies


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, on the application's engine."""
    engine: sa.Engine = request.app.state.engine
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def current_user(session: SessionDep, x_user: Annotated[Optional[str], Header()] = None) -> User:
    """The signed-in user, named by the ``X-User`` header; 401 without one."""
    user = session.scalars(sa.select(User).where(User.name == x_user)).one_or_none() if x_user else None
    if user is None:
        raise HTTPException(status_code=401, detail="sign in with the X-User header")
    return user


UserDep = Annotated[User, Depends(current_user)]


def load_project(project_id: int, session: SessionDep) -> Project:
    """The project of the path; 404 when there is none."""
    project = session.get(Project, project_id)
    if project is None:
        raise HTTPException(status_code=404, detail=f"no project {project_id}")
    return project


ProjectDep = Annotated[Project, Depends(load_project)]

StateFilter = Annotated[
    Optional[str],
    Query(description="A state, group or conditional state of ProjectState", json_schema_extra={"enum": list(FILTERS)}),
]


def _criterion(model: type[Project] | type[TalkSession], name: str | None) -> sa.ColumnElement[bool]:
    if name is None:
        return sa.true()
    if name not in FILTERS:
        raise HTTPException(status_code=422, detail=f"state must be one of {', '.join(FILTERS)}; got {name!r}")
    # Project.state == a member: a state, a group (IN) or a conditional state (its SQL).
    member: ProjectState = getattr(ProjectState, name)
    return model.state == member


# ------------------------------------------------------------------ application


def create_app(engine: sa.Engine) -> FastAPI:
    """The application, serving the projects model stored in ``engine``'s database."""
    app = FastAPI(title="Projects", version="1.0")
    app.state.engine = engine

    @app.get("/projects", response_model=list[ProjectOut])
    def list_projects(session: SessionDep, state: StateFilter = None) -> list[Project]:
        """Projects in a state, a group (``is_gone``) or a conditional state (``is_future``)."""
        return list(session.scalars(sa.select(Project).where(_criterion(Project, state)).order_by(Project.id)))

    @app.get("/sessions", response_model=list[SessionOut])
    def list_sessions(session: SessionDep, state: StateFilter = None) -> list[TalkSession]:
        """Talk sessions in a state or group."""
        query = sa.select(TalkSession).where(_criterion(TalkSession, state)).order_by(TalkSession.id)
        return list(session.scalars(query))

    @app.get("/projects/{project_id}", response_model=ProjectOut)
    def get_project(project: ProjectDep) -> Project:
        return project

    @app.get("/projects/{project_id}/transitions")
    def list_transitions(project: ProjectDep, user: UserDep) -> list[TransitionDescription]:
        """Every transition for this user: allowed or why not, and the JSON Schema of its data."""
        return ProjectTransitions(actor=user).describe(project)

    @app.post(
        "/projects/{project_id}/transitions/{name}",
        response_model=ApplyOut,
        responses={403: {"description": "Refused, with reasons"}, 409: {"description": "Changed meanwhile"}},
    )
    def apply_transition(
        name: str,
        project: ProjectDep,
        user: UserDep,
        session: SessionDep,
        data: Annotated[Optional[dict[str, Any]], Body()] = None,
    ) -> ApplyOut:
        """Apply a transition with the JSON body as its data (see its schema in the transitions list)."""
        tx = ProjectTransitions(actor=user)
        if name not in {t.name for t in tx.transitions()}:
            raise HTTPException(status_code=404, detail=f"no transition {name!r}")
        bound: BoundTransition[Project, User] = getattr(tx, name)
        try:
            applied = bound(project, data=data or {})
            session.commit()
        except TransitionNotAllowed as error:
            session.rollback()
            reasons = [{"kind": r.kind, "message": r.message} for r in error.verdict.reasons]
            raise HTTPException(status_code=403, detail={"message": str(error), "reasons": reasons}) from error
        except TransitionDataInvalid as error:
            session.rollback()
            raise HTTPException(status_code=422, detail={"message": str(error), "errors": error.errors}) from error
        except ConcurrentTransitionError as error:
            session.rollback()
            raise HTTPException(status_code=409, detail=str(error)) from error
        return ApplyOut(
            project=ProjectOut.model_validate(project),
            steps=[f"{step.transition.name} {type(step.obj).__name__} {step.obj.id}" for step in applied.steps],
        )

    @app.get("/projects/{project_id}/history", response_model=list[HistoryOut])
    def project_history(project: ProjectDep) -> list[ProjectLog]:
        """The project's transitions, oldest first."""
        return [row for row in ProjectTransitions().history(project) if isinstance(row, ProjectLog)]

    mount_admin(app, engine)
    return app
