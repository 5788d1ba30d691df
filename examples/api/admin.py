"""The admin: SQLAdmin views of accounts and projects, with statetype's transitions.

``mount_admin(app, engine)`` serves it under ``/admin``. Signing in is a demo:
any user of the ``projects_user`` table, with their name as password; the
signed-in user is ``request.state.user``, which ``StateAdminMixin.actor``
reads, so two users see different buttons (only a project's editors may
publish, withdraw or delete it; only an account's owner may publish or
suspend it).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqladmin import Admin, ModelView
from sqladmin.authentication import AuthenticationBackend
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request

from examples.projects import Account, AccountTransitions, Project, ProjectTransitions, User
from statetype.admin import StateAdminMixin

__all__ = ["AccountAdmin", "DemoLogin", "ProjectAdmin", "mount_admin"]


class DemoLogin(AuthenticationBackend):
    """Sign in as any user, with the user's name as password (a demo, not an authentication)."""

    def __init__(self, engine: sa.Engine, secret_key: str) -> None:
        super().__init__(secret_key=secret_key)
        self.engine = engine

    def _user(self, name: object) -> User | None:
        if not isinstance(name, str) or not name:
            return None
        with Session(self.engine) as session:
            user = session.scalars(sa.select(User).where(User.name == name)).one_or_none()
            if user is not None:
                session.expunge(user)
            return user

    async def login(self, request: Request) -> bool:
        form = await request.form()
        name, password = form.get("username"), form.get("password")
        if self._user(name) is None or password != name:
            return False
        request.session["user"] = name
        return True

    async def logout(self, request: Request) -> bool:
        request.session.clear()
        return True

    async def authenticate(self, request: Request) -> bool:
        user = self._user(request.session.get("user"))
        request.state.user = user
        return user is not None


class ProjectAdmin(StateAdminMixin, ModelView, model=Project):
    transitions = ProjectTransitions
    column_list = [Project.id, Project.title, Project.state, Project.start_at]
    column_details_list = [Project.id, Project.title, Project.summary, Project.state, Project.start_at, Project.published_at]
    form_columns = [Project.title, Project.summary, Project.state, Project.start_at]  # state is left out all the same
    column_searchable_list = [Project.title]
    can_delete = False  # deleting is the delete transition, with its chain and history

    def actor(self, request: Request) -> User | None:
        user: User | None = request.state.user
        return user


class AccountAdmin(StateAdminMixin, ModelView, model=Account):
    transitions = AccountTransitions
    column_list = [Account.id, Account.name, Account.state]
    form_columns = [Account.name]


def mount_admin(app: Starlette, engine: sa.Engine, secret_key: str = "statetype-example-not-secret") -> Admin:
    """Serve the admin under ``/admin`` of ``app``, on ``engine``'s database."""
    admin = Admin(app, engine, title="Projects admin", authentication_backend=DemoLogin(engine, secret_key))
    admin.add_view(ProjectAdmin)
    admin.add_view(AccountAdmin)
    return admin
