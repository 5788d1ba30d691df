"""Models shared by the transition tests: accounts, projects, sessions, comments, users."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from statetype import State, StateType, Step, Transition, TransitionLogMixin, Transitions


class Base(DeclarativeBase):
    pass


class ItemState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_withdrawn = State(3, "Withdrawn")
    is_deleted = State(4, "Deleted", final=True)
    is_gone = (is_withdrawn | is_deleted).titled("Gone")
    is_live = is_published | is_withdrawn


class ReviewState(StateType[str]):
    is_pending = State("pending")
    is_approved = State("approved")
    is_rejected = State("rejected")


class User(Base):
    __tablename__ = "tx_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))


class Account(Base):
    __tablename__ = "tx_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[ItemState] = mapped_column(ItemState(), default=ItemState.is_draft)


class Project(Base):
    __tablename__ = "tx_project"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tx_account.id"))
    editor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tx_user.id"))
    state: Mapped[ItemState] = mapped_column(ItemState(), default=ItemState.is_draft)
    review: Mapped[ReviewState] = mapped_column(ReviewState(), default=ReviewState.is_pending)
    published_at: Mapped[dt.datetime | None]
    note: Mapped[str | None] = mapped_column(sa.String(200))
    account: Mapped[Account | None] = relationship()
    sessions: Mapped[list[Session]] = relationship(back_populates="project", order_by="Session.id")


class Session(Base):
    __tablename__ = "tx_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("tx_project.id"))
    editor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tx_user.id"))
    state: Mapped[ItemState] = mapped_column(ItemState(), default=ItemState.is_draft)
    project: Mapped[Project] = relationship(back_populates="sessions")
    comments: Mapped[list[Comment]] = relationship(back_populates="session", order_by="Comment.id")


class Comment(Base):
    __tablename__ = "tx_comment"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("tx_session.id"))
    state: Mapped[ItemState] = mapped_column(ItemState(), default=ItemState.is_draft)
    session: Mapped[Session] = relationship(back_populates="comments")


class ProjectLog(TransitionLogMixin, Base):
    __tablename__ = "tx_project_log"


class CommentTransitions(Transitions[Comment, User]):
    log = ProjectLog
    delete = Transition(None, ItemState.is_deleted)


class SessionTransitions(Transitions[Session, User]):
    log = ProjectLog
    delete = Transition(None, ItemState.is_deleted)

    @delete.permission
    def is_session_editor(self, session: Session) -> bool:
        """You must edit this session."""
        return session.editor_id is None or (self.actor is not None and self.actor.id == session.editor_id)

    @delete.chain
    def comments(self, session: Session) -> Iterable[Step]:
        tx = CommentTransitions(actor=self.actor)
        return [(tx.delete, c) for c in session.comments]


class ProjectTransitions(Transitions[Project, User]):
    log = ProjectLog

    publish = Transition(ItemState.is_draft | ItemState.is_withdrawn, ItemState.is_published, title="Publish")
    withdraw = Transition(ItemState.is_published, ItemState.is_withdrawn)
    delete = Transition(ItemState.is_draft | ItemState.is_live, ItemState.is_deleted)
    approve = Transition(ReviewState.is_pending, ReviewState.is_approved)
    reject = Transition([ReviewState.is_pending, ReviewState.is_approved], ReviewState.is_rejected)

    @publish.guard
    def account_published(self, project: Project) -> bool:
        """The account must be published."""
        return project.account is None or bool(project.account.state.is_published)

    @account_published.expression
    def _account_published_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return sa.or_(
            project.account_id.is_(None),
            sa.exists().where(Account.id == project.account_id, Account.state == ItemState.is_published),
        )

    @publish.permission
    def is_editor(self, project: Project) -> bool:
        return self.actor is not None and project.editor_id in (None, self.actor.id)

    @publish.execute
    def stamp(self, project: Project, data: Mapping[str, Any]) -> bool:
        first = project.published_at is None
        project.published_at = data.get("published_at") or dt.datetime(2026, 1, 1)
        return first

    @delete.chain
    def sessions(self, project: Project) -> Iterable[Step]:
        tx = SessionTransitions(actor=self.actor)
        return [(tx.delete, s) for s in project.sessions]
