"""With ``plugins = statetype.mypy``: state names on the mapped column are SQL."""

from __future__ import annotations

from typing import reveal_type

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from models import ColourState, Project, ProjectState, ReviewState

reveal_type(Project.state.is_draft)  # R: ColumnElement[bool]
reveal_type(Project.state.is_gone)  # R: ColumnElement[bool]
reveal_type(Project.state.is_future)  # R: ColumnElement[bool]
reveal_type(Project.state.is_live_and_open)  # R: ColumnElement[bool]
reveal_type(Project.review.is_decided)  # R: ColumnElement[bool]
reveal_type(Project.colour.is_red)  # R: ColumnElement[bool]
reveal_type(~Project.state.is_gone)  # R: ColumnElement[bool]

# An alias is typed as the model class, so it gets the same treatment.
Other = aliased(Project)
reveal_type(Other.state.is_draft)  # R: ColumnElement[bool]

visible: ColumnElement[bool] = sa.and_(Project.state.is_live, ~Project.state.is_future)
query = sa.select(Project.id).where(visible, Project.review.is_pending)
reveal_type(query)  # R: Select[int]

# Instance and class access to the StateType are unchanged.
reveal_type(ProjectState.is_draft)  # R: ProjectState
reveal_type(Project(title="x").state.is_draft)  # R: bool

# Ordinary column attributes still come from SQLAlchemy.
reveal_type(Project.state.key)  # R: str
reveal_type(Project.state == ProjectState.is_gone)  # R: ColumnElement[bool]

# Comparisons with the column's own members, raw values and columns are unchanged.
same_type = sa.select(Project.id).where(
    Project.state == ProjectState.is_gone,
    Project.state != ProjectState.is_draft,
    Project.state.in_([ProjectState.is_draft, ProjectState.is_deleted]),
    Project.state.in_(ProjectState.states),
    Project.colour == ColourState.is_red,
    Project.review.not_in((ReviewState.is_pending,)),
    Project.state == Other.state,
    Project.state == 2,
)

print(query, same_type)
