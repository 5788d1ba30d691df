"""Instance access: ``project.state`` is the current state, checks are bools."""

from __future__ import annotations

from typing import reveal_type

from models import Colour, ColourState, Project, ProjectState, ReviewState

project = Project(title="Typing", state=2)
other = Project(title="Other")

reveal_type(project.state)  # R: ProjectState
reveal_type(project.state.is_draft)  # R: bool
reveal_type(project.state.is_gone)  # R: bool
reveal_type(project.state.is_future)  # R: bool
reveal_type(project.state.name)  # R: str
reveal_type(project.state.value)  # R: int
reveal_type(project.state.known)  # R: bool
reveal_type(project.review.is_decided)  # R: bool
reveal_type(project.colour)  # R: ColourState | None

if project.state.is_published and not project.state.is_gone:
    print("published")

# Comparisons are plain bools: with a member of the same StateType, a raw
# value, another object's state.
same: bool = project.state == ProjectState.is_published
raw_equal: bool = project.state == 2
in_group: bool = project.state == ProjectState.is_live
reveal_type(project.state != ProjectState.is_draft)  # R: bool
reveal_type(project.state == other.state)  # R: bool
reveal_type(ProjectState.is_draft == project.state)  # R: bool
reveal_type(2 == project.state)  # R: bool
reveal_type(project.colour == ColourState.is_red)  # R: bool
reveal_type(project.colour == Colour.RED)  # R: bool

# Assignment: members, and another object's bound value.
project.state = ProjectState.is_withdrawn
project.review = ReviewState.is_approved
other.state = project.state
project.colour = ColourState.is_green
project.colour = None

# Raw values from outside (forms, JSON): look the member up first.
project.state = ProjectState.from_value(4)


def is_visible(project: Project) -> bool:
    """Functions over models read like the docs."""
    return project.state.is_live and not project.state.is_future


print(same, raw_equal, in_group, is_visible(project), project.state.is_gone)
