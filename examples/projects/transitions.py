"""Transition registries: accounts, projects, sessions and comments.

Deleting a project deletes its sessions, and deleting a session deletes its
comments: two chains across three models, applied children first in one
savepoint, and refused as a whole when any step is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from statetype import Step, Transition, Transitions

from .forms import PublishForm, WithdrawForm
from .models import (
    Account,
    AccountState,
    Comment,
    CommentState,
    Project,
    ProjectLog,
    ProjectState,
    TalkSession,
    User,
    utcnow,
)

__all__ = ["AccountTransitions", "CommentTransitions", "ProjectTransitions", "SessionTransitions"]


def _actor_id(actor: User | None) -> int | None:
    return actor.id if actor is not None else None


class AccountTransitions(Transitions[Account, User]):
    log = ProjectLog

    publish = Transition(AccountState.is_draft | AccountState.is_suspended, AccountState.is_published)
    suspend = Transition(AccountState.is_published, AccountState.is_suspended)

    @publish.permission
    @suspend.permission
    def is_owner(self, account: Account) -> bool:
        """Only the account's owner may do this."""
        return self.actor is not None and self.actor.id == account.owner_id

    @is_owner.expression
    def _is_owner_sql(self, account: type[Account]) -> ColumnElement[bool]:
        # The SQL twin lets bulk() publish or suspend many accounts in one UPDATE.
        return account.owner_id == _actor_id(self.actor)


class CommentTransitions(Transitions[Comment, User]):
    log = ProjectLog

    hide = Transition(CommentState.is_visible, CommentState.is_hidden)
    delete = Transition(None, CommentState.is_deleted)

    @delete.guard
    def not_pinned(self, comment: Comment) -> bool:
        """Pinned comments are kept."""
        return not comment.pinned

    @hide.permission
    @delete.permission
    def is_author_or_editor(self, comment: Comment) -> bool:
        """Only the comment's author or an editor of its project may do this."""
        actor = self.actor
        return actor is not None and (actor.id == comment.author_id or actor in comment.session.project.editors)


class SessionTransitions(Transitions[TalkSession, User]):
    log = ProjectLog

    publish = Transition(ProjectState.is_draft, ProjectState.is_published)
    delete = Transition(None, ProjectState.is_deleted)

    @publish.permission
    @delete.permission
    def is_editor(self, talk: TalkSession) -> bool:
        """Only an editor of the session's project may do this."""
        return self.actor is not None and self.actor in talk.project.editors

    @delete.chain
    def comments(self, talk: TalkSession) -> Iterable[Step]:
        tx = CommentTransitions(actor=self.actor)
        return [(tx.delete, c) for c in talk.comments]


class ProjectTransitions(Transitions[Project, User]):
    log = ProjectLog

    publish = Transition(
        ProjectState.is_draft | ProjectState.is_withdrawn, ProjectState.is_published, title="Publish", form=PublishForm
    )
    withdraw = Transition(ProjectState.is_published, ProjectState.is_withdrawn, form=WithdrawForm)
    delete = Transition(ProjectState.is_draft | ProjectState.is_live, ProjectState.is_deleted, title="Delete")
    # A draft nobody published within 30 days is deleted by run_due().
    expire = Transition(ProjectState.is_draft, ProjectState.is_deleted, after=dt.timedelta(days=30), since="created_at")

    @publish.guard
    def parent_published(self, project: Project) -> bool:
        """The project's account must be published."""
        return bool(project.account.state.is_published)

    @parent_published.expression
    def _parent_published_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return (
            sa.select(Account.id)
            .where(Account.id == project.account_id, Account.state.is_published)
            .exists()
        )

    @publish.permission
    @withdraw.permission
    @delete.permission
    def is_editor(self, project: Project) -> bool:
        """Only the project's editors may do this."""
        return self.actor is not None and self.actor in project.editors

    @is_editor.expression
    def _is_editor_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return project.editors.any(User.id == _actor_id(self.actor))

    @publish.execute
    def stamp(self, project: Project, data: Mapping[str, Any]) -> bool:
        """Copy the form's fields; returns whether this is the first publication."""
        first = project.published_at is None
        if data.get("title"):
            project.title = data["title"]
        if data.get("summary"):
            project.summary = data["summary"]
        if data.get("start_at"):
            project.start_at = data["start_at"]
        project.published_at = utcnow()
        return first

    @stamp.expression
    def _stamp_sql(self, project: type[Project], now: dt.datetime) -> Mapping[Any, object]:
        # The set-based form, for bulk(): keep the first publication time.
        return {project.published_at: sa.func.coalesce(project.published_at, now.replace(tzinfo=None))}

    @delete.chain
    def sessions(self, project: Project) -> Iterable[Step]:
        tx = SessionTransitions(actor=self.actor)
        return [(tx.delete, s) for s in project.sessions]

