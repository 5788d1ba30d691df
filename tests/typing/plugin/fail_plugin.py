"""With ``plugins = statetype.mypy``: undeclared names on the mapped column are errors."""

from __future__ import annotations

from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from models import Project

missing = Project.state.is_nonexistent  # E: ProjectState has no state "is_nonexistent"; declared: is_draft, is_published, is_withdrawn, is_deleted, is_gone, is_live, is_future, is_live_and_open
typo = Project.review.is_pendng  # E: ReviewState has no state "is_pendng"; declared: is_pending, is_approved, is_rejected, is_decided
aliased_typo = aliased(Project).state.is_drafted  # E: ProjectState has no state "is_drafted"
nullable = Project.colour.is_blue  # E: ColourState has no state "is_blue"; declared: is_red, is_green

# A state check on the class is SQL, not a bool.
flag: bool = Project.state.is_draft  # E: expression has type "ColumnElement[bool]", variable has type "bool"

condition: ColumnElement[bool] = Project.state.is_draft
