"""The section 2-4 model: accounts, projects, their sessions and the sessions' comments.

Every table is prefixed ``projects_``. States are declared once and shared:
``AccountState`` for accounts, ``ProjectState`` for projects and sessions,
``CommentState`` for comments.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from statetype import State, StateType, TransitionLogMixin

__all__ = [
    "Account",
    "AccountState",
    "Base",
    "Comment",
    "CommentState",
    "Project",
    "ProjectLog",
    "ProjectState",
    "TalkSession",
    "User",
    "utcnow",
]


def utcnow() -> dt.datetime:
    """The current time as naive UTC, as the ``*_at`` columns store it."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class AccountState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_suspended = State(3, "Suspended")


class ProjectState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_withdrawn = State(3, "Withdrawn")
    is_deleted = State(4, "Deleted", final=True)

    is_gone = (is_withdrawn | is_deleted).titled("Gone")
    is_live = is_published | is_withdrawn

    # Published, but it has not started yet: a conditional state with an SQL twin.
    @is_published.conditional
    def is_future(self, project: Project) -> bool:
        return project.start_at is not None and project.start_at > utcnow()

    @is_future.expression
    def _is_future_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return project.start_at > sa.func.now()


class CommentState(StateType[str]):
    is_visible = State("visible", "Visible")
    is_hidden = State("hidden", "Hidden")
    is_deleted = State("deleted", "Deleted", final=True)


class Base(DeclarativeBase):
    pass


editors = sa.Table(
    "projects_editor",
    Base.metadata,
    sa.Column("project_id", sa.ForeignKey("projects_project.id"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("projects_user.id"), primary_key=True),
)


class User(Base):
    __tablename__ = "projects_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)

    def __repr__(self) -> str:
        return f"<User {self.name}>"


class Account(Base):
    __tablename__ = "projects_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("projects_user.id"))
    state: Mapped[AccountState] = mapped_column(AccountState(), default=AccountState.is_draft)

    owner: Mapped[User] = relationship()
    projects: Mapped[list[Project]] = relationship(back_populates="account", order_by="Project.id")


class Project(Base):
    __tablename__ = "projects_project"
    # run_due (expire) filters on (state, created_at)
    __table_args__ = (sa.Index("ix_projects_project_state_created_at", "state", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("projects_account.id"))
    title: Mapped[str] = mapped_column(sa.String(100))
    summary: Mapped[Optional[str]] = mapped_column(sa.String(500))
    state: Mapped[ProjectState] = mapped_column(ProjectState(protected=True), default=ProjectState.is_draft)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    start_at: Mapped[Optional[dt.datetime]]
    published_at: Mapped[Optional[dt.datetime]]

    account: Mapped[Account] = relationship(back_populates="projects")
    editors: Mapped[list[User]] = relationship(secondary=editors)
    sessions: Mapped[list[TalkSession]] = relationship(back_populates="project", order_by="TalkSession.id")


class TalkSession(Base):
    __tablename__ = "projects_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects_project.id"))
    title: Mapped[str] = mapped_column(sa.String(100))
    state: Mapped[ProjectState] = mapped_column(ProjectState(protected=True), default=ProjectState.is_draft)

    project: Mapped[Project] = relationship(back_populates="sessions")
    comments: Mapped[list[Comment]] = relationship(back_populates="session", order_by="Comment.id")


class Comment(Base):
    __tablename__ = "projects_comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("projects_session.id"))
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("projects_user.id"))
    body: Mapped[str] = mapped_column(sa.Text)
    # A pinned comment is kept: deleting it (and so its session or project) is refused.
    pinned: Mapped[bool] = mapped_column(default=False)
    state: Mapped[CommentState] = mapped_column(CommentState(), default=CommentState.is_visible)

    session: Mapped[TalkSession] = relationship(back_populates="comments")
    author: Mapped[User] = relationship()


class ProjectLog(TransitionLogMixin, Base):
    """History of accounts, projects, sessions and comments (``table_name`` tells them apart)."""

    __tablename__ = "projects_log"
