"""A downstream application's models, as in DESIGN sections 2 and 3.

Checked like every pass file (no errors under mypy --strict and pyright
strict), and imported by the other files in this directory.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import State, StateType, TransitionLogMixin

NOW = dt.datetime(2026, 6, 1)


class ProjectState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_withdrawn = State(3, "Withdrawn")
    is_deleted = State(4, "Deleted", final=True)

    is_gone = (is_withdrawn | is_deleted).titled("Gone")
    is_live = is_published | is_withdrawn

    @is_published.conditional
    def is_future(self, project: Project) -> bool:
        return project.start_at is not None and project.start_at > NOW

    @is_future.expression
    def _is_future_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return project.start_at > NOW

    @is_live.conditional
    def is_live_and_open(self, project: Project) -> bool:
        return project.open

    @is_live_and_open.expression
    def _is_live_and_open_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return project.open.is_(True)


class ReviewState(StateType[str]):
    is_pending = State("pending")
    is_approved = State("approved")
    is_rejected = State("rejected", final=True)

    is_decided = is_approved | is_rejected


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class ColourState(StateType[Colour]):
    is_red = State(Colour.RED)
    is_green = State(Colour.GREEN)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    open: Mapped[bool] = mapped_column(default=True)
    start_at: Mapped[dt.datetime | None]
    state: Mapped[ProjectState] = mapped_column(ProjectState(), default=ProjectState.is_draft)
    review: Mapped[ReviewState] = mapped_column(ReviewState(), default=ReviewState.is_pending)
    colour: Mapped[ColourState | None] = mapped_column(ColourState())


class ProjectLog(TransitionLogMixin, Base):
    """The history table of ProjectTransitions (DESIGN section 4)."""

    __tablename__ = "project_log"
