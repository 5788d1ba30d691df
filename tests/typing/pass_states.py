"""Class-level access: members are instances of their StateType class."""

from __future__ import annotations

from typing import reveal_type

from models import Colour, ColourState, ProjectState, ReviewState

# A member is the StateType subclass itself, whatever kind it is.
reveal_type(ProjectState.is_draft)  # R: ProjectState
reveal_type(ProjectState.is_gone)  # R: ProjectState
reveal_type(ProjectState.is_future)  # R: ProjectState
reveal_type(ReviewState.is_pending)  # R: ReviewState

# Member attributes.
reveal_type(ProjectState.is_draft.name)  # R: str
reveal_type(ProjectState.is_draft.value)  # R: int
reveal_type(ReviewState.is_pending.value)  # R: str
reveal_type(ColourState.is_red.value)  # R: Colour
reveal_type(ProjectState.is_deleted.final)  # R: bool
reveal_type(ProjectState.is_draft.initial)  # R: bool
title: object = ProjectState.is_draft.title
print(title)

# Tuples in declaration order, typed by the class.
reveal_type(ProjectState.states)  # R: tuple[ProjectState, ...]
reveal_type(ProjectState.groups)  # R: tuple[ProjectState, ...]
reveal_type(ProjectState.conditionals)  # R: tuple[ProjectState, ...]
reveal_type(ProjectState.is_gone.states)  # R: tuple[ProjectState, ...]
names: list[str] = [state.name for state in ProjectState.states]

# Lookup by raw value.
reveal_type(ProjectState.from_value(1))  # R: ProjectState
reveal_type(ColourState.from_value(Colour.RED))  # R: ColourState

# An anonymous group of members.
reveal_type(ProjectState.is_draft | ProjectState.is_withdrawn)  # R: ProjectState

# A member answers checks that do not depend on an object.
reveal_type(ProjectState.is_deleted.is_gone)  # R: bool

# The column type.
column_type = ProjectState(check=False, protected=True)
reveal_type(column_type)  # R: ProjectState


def describe(state: ProjectState) -> str:
    """Members are ordinary values: pass them around, store them in dicts."""
    labels: dict[ProjectState, str] = {ProjectState.is_draft: "work in progress"}
    return labels.get(state, str(state.title))


print(describe(ProjectState.is_draft), names)
