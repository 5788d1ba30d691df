"""A demo database for the api example: ``uvicorn --factory examples.api.demo:app``.

``seed(engine)`` creates the projects tables and two users: ann edits the
project Rivers and owns the Rivers account, bob edits Deltas. Sign in to
``/admin`` as either, with the user's name as password. The database is the
SQLite file named by ``STATETYPE_DEMO_DB`` (default ``statetype-demo.db`` in
the system's temporary directory), seeded when it has no users yet.
"""

from __future__ import annotations

import os
import tempfile

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.orm import Session

from examples.projects import Account, AccountState, Base, Project, User

from .app import create_app

__all__ = ["app", "seed"]


def seed(engine: sa.Engine) -> None:
    """Create the tables and, when there is no user yet, ann, bob, an account and two draft projects."""
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        if session.scalar(sa.select(sa.func.count()).select_from(User)):
            return
        ann, bob = User(name="ann"), User(name="bob")
        rivers = Account(name="Rivers", owner=ann, state=AccountState.is_published)
        session.add_all([ann, bob, rivers])
        session.add(Project(title="Rivers", account=rivers, editors=[ann]))
        session.add(Project(title="Deltas", account=rivers, editors=[bob]))
        session.commit()


def app() -> FastAPI:
    """The application on the demo database (uvicorn's ``--factory``)."""
    path = os.environ.get("STATETYPE_DEMO_DB", os.path.join(tempfile.gettempdir(), "statetype-demo.db"))
    engine = sa.create_engine(f"sqlite:///{path}")
    seed(engine)
    return create_app(engine)
