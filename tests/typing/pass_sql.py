"""SQL without the mypy plugin: comparisons are typed, state names are Any."""

from __future__ import annotations

from typing import Any, reveal_type

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from models import Project, ProjectState

# Comparing the column with a member (a state, group or conditional) is fully typed.
reveal_type(Project.state == ProjectState.is_gone)  # R: ColumnElement[bool]
reveal_type(Project.state.in_([ProjectState.is_draft, ProjectState.is_deleted]))  # R: BinaryExpression[bool]

gone: ColumnElement[bool] = Project.state == ProjectState.is_gone
drafts = sa.select(Project).where(Project.state == ProjectState.is_draft)

# Class-level state names go through SQLAlchemy's __getattr__: Any without the plugin.
reveal_type(Project.state.is_draft)  # R: Any
future: Any = Project.state.is_future
live_and_open = sa.select(Project.id).where(Project.state.is_live_and_open)
reveal_type(live_and_open)  # R: Select[int]

print(gone, drafts, future, live_and_open)
