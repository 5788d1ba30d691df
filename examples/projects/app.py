"""The application layer: what the project pages of the site do, for one signed-in user.

``ProjectDesk(session, user)`` is built per request. Views call it; it calls
the registries, never assigns a state itself (the columns are protected).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from statetype import Applied, BulkResult, PlannedStep, TransitionLogMixin

from .forms import PublishForm
from .models import Account, Comment, Project, ProjectLog, TalkSession, User
from .transitions import AccountTransitions, ProjectTransitions, SessionTransitions

__all__ = ["HistoryEntry", "ProjectDesk"]


@dataclass(frozen=True)
class HistoryEntry:
    transition: str
    from_state: str | None
    to_state: str
    actor: str | None
    at: dt.datetime


class ProjectDesk:
    """The project pages for ``user``; the caller commits."""

    def __init__(self, session: Session, user: User | None) -> None:
        self.session = session
        self.user = user
        self.accounts = AccountTransitions(actor=user)
        self.projects = ProjectTransitions(actor=user)
        self.sessions = SessionTransitions(actor=user)

    # ----------------------------------------------------------- pages

    def project(self, project_id: int) -> Project:
        project = self.session.get(Project, project_id)
        if project is None:
            raise LookupError(f"no project {project_id}")
        return project

    def actions(self, project: Project) -> list[str]:
        """The buttons shown on a project's page."""
        return [t.name for t in self.projects.available(project)]

    def publish_form(self, project: Project, formdata: Any = None) -> PublishForm:
        form = self.projects.publish.form(project, formdata)
        assert isinstance(form, PublishForm)
        return form

    def publish(self, project_id: int, formdata: Any = None, **data: Any) -> Applied:
        """Publish from a submitted form (``formdata``) or from keyword data (an API call)."""
        project = self.project(project_id)
        if formdata is not None:
            return self.projects.publish(project, form=self.publish_form(project, formdata))
        return self.projects.publish(project, data=data)

    def withdraw(self, project_id: int, reason: str) -> Applied:
        return self.projects.withdraw(self.project(project_id), data={"reason": reason})

    def confirm_delete(self, project_id: int) -> list[PlannedStep]:
        """What deleting a project would delete too, with each step's verdict."""
        return self.projects.delete.plan(self.project(project_id))

    def delete(self, project_id: int) -> Applied:
        return self.projects.delete(self.project(project_id))

    def publishable(self) -> Sequence[Project]:
        """Every project this user could publish now, found in SQL."""
        if self.user is None:
            return []
        query = (
            sa.select(Project)
            .where(ProjectTransitions.publish.where(Project), Project.editors.any(User.id == self.user.id))
            .order_by(Project.id)
        )
        return self.session.scalars(query).all()

    def upcoming(self) -> Sequence[Project]:
        """Published projects that have not started yet (the conditional state, in SQL)."""
        return self.session.scalars(sa.select(Project).where(Project.state.is_future).order_by(Project.id)).all()

    def publish_account(self, account: Account) -> BulkResult:
        """Publish every project of an account this user edits, with one UPDATE."""
        return self.projects.publish.bulk(self.session, Project.account_id == account.id)

    def expire_drafts(self, now: dt.datetime | None = None) -> int:
        """The nightly job: delete drafts older than 30 days."""
        return self.projects.run_due(self.session, now=now)

    def history(self, obj: Project | TalkSession | Comment | Account) -> list[HistoryEntry]:
        rows: list[TransitionLogMixin]
        if isinstance(obj, Project):
            rows = self.projects.history(obj)
        elif isinstance(obj, Account):
            rows = self.accounts.history(obj)
        else:
            rows = _log_rows(self.session, obj)
        return [HistoryEntry(r.transition, r.from_value, r.to_value, r.actor, r.created_at) for r in rows]


def _log_rows(session: Session, obj: TalkSession | Comment) -> list[TransitionLogMixin]:
    query = (
        sa.select(ProjectLog)
        .where(ProjectLog.table_name == type(obj).__tablename__, ProjectLog.object_id == str(obj.id))
        .order_by(ProjectLog.id)
    )
    return list(session.scalars(query))

