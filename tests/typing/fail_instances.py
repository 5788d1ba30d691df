"""Mistakes on instances that both checkers must reject."""

# Each marked line tests one mistake; the Unknown types that follow from it
# are not what this file is about.
# pyright: reportUnknownVariableType=false, reportUnknownMemberType=false, reportUnknownArgumentType=false

from __future__ import annotations

from models import Project, ProjectState, ReviewState

project = Project(title="Typing")

# An undefined state name.
flag: bool = project.state.is_nonexistent  # E: mypy: "ProjectState" has no attribute "is_nonexistent" | pyright: Cannot access attribute "is_nonexistent" for class "ProjectState"
typo: bool = project.review.is_pendng  # E: mypy: "ReviewState" has no attribute "is_pendng" | pyright: Cannot access attribute "is_pendng" for class "ReviewState"

# A member of another StateType.
project.state = ReviewState.is_pending  # E: mypy: Incompatible types in assignment (expression has type "ReviewState", variable has type "SQLCoreOperations[ProjectState] | ProjectState") | pyright: "ReviewState" is not assignable to "ProjectState"
project.review = ProjectState.is_draft  # E: mypy: expression has type "ProjectState", variable has type "SQLCoreOperations[ReviewState] | ReviewState" | pyright: "ProjectState" is not assignable to "ReviewState"
project.state = project.review  # E: mypy: expression has type "ReviewState", variable has type "SQLCoreOperations[ProjectState] | ProjectState" | pyright: "ReviewState" is not assignable to "ProjectState"

# A raw value of the wrong type.
project.state = "draft"  # E: mypy: expression has type "str", variable has type "SQLCoreOperations[ProjectState] | ProjectState" | pyright: "Literal['draft']" is not assignable to "ProjectState"
project.review = 1  # E: mypy: expression has type "int", variable has type "SQLCoreOperations[ReviewState] | ReviewState" | pyright: "Literal[1]" is not assignable to "ReviewState"

# A raw value of the right type is accepted at runtime but not statically:
# Mapped[ProjectState] only accepts members. Use ProjectState.from_value(1).
project.state = 1  # E: mypy: expression has type "int", variable has type "SQLCoreOperations[ProjectState] | ProjectState" | pyright: "Literal[1]" is not assignable to "ProjectState"

# A state check is a bool, not a member.
member: ProjectState = project.state.is_draft  # E: mypy: expression has type "bool", variable has type "ProjectState" | pyright: "bool" is not assignable to "ProjectState"

# Comparing with a member of another StateType is always False at runtime.
if project.state == ReviewState.is_pending:  # E: mypy: Unsupported operand types for == ("ProjectState" and "ReviewState") | pyright: Operator "==" not supported for types "ProjectState" and "ReviewState"
    pass
changed: bool = project.state != ReviewState.is_approved  # E: mypy: Unsupported operand types for != ("ProjectState" and "ReviewState") | pyright: Operator "!=" not supported for types "ProjectState" and "ReviewState"
crossed: bool = project.state == project.review  # E: mypy: Unsupported operand types for == ("ProjectState" and "ReviewState") | pyright: Operator "==" not supported for types "ProjectState" and "ReviewState"
reversed_: bool = ReviewState.is_decided == project.state  # E: mypy: Unsupported operand types for == ("ReviewState" and "ProjectState") | pyright: Operator "==" not supported for types "ReviewState" and "ProjectState"
