"""Mistakes in StateType declarations and class-level access."""

# Each marked line tests one mistake; the Unknown types that follow from it
# are not what this file is about.
# pyright: reportUnknownVariableType=false, reportUnknownMemberType=false, reportUnknownArgumentType=false

from __future__ import annotations

from sqlalchemy.sql.elements import ColumnElement

from models import Project, ProjectState, ReviewState
from statetype import State, StateType


class BadPredicates(StateType[int]):
    is_open = State(1)
    is_closed = State(2)

    @is_open.conditional  # E: mypy: incompatible type "Callable[[BadPredicates], bool]"; expected "_Predicate" | pyright: Function accepts too few positional parameters; expected 2 but received 1
    def is_no_object(self) -> bool:
        return True

    @is_open.conditional  # E: mypy: incompatible type "Callable[[BadPredicates, Project, int], bool]"; expected "_Predicate" | pyright: Extra parameter "extra"
    def is_too_many(self, project: Project, extra: int) -> bool:
        return extra > 0

    @is_open.conditional  # E: mypy: incompatible type "Callable[[BadPredicates, Project], str]"; expected "_Predicate" | pyright: Function return type "str" is incompatible with type "bool"
    def is_titled(self, project: Project) -> str:
        return project.title

    @is_open.conditional
    def is_ok(self, project: Project) -> bool:
        return project.open

    @is_ok.expression  # E: mypy: incompatible type "Callable[[BadPredicates, type[Project]], bool]"; expected "_SQLExpression" | pyright: Function return type "bool" is incompatible with type "ColumnElement[bool]"
    def _is_ok_sql(self, project: type[Project]) -> bool:
        return True

    @is_ok.expression  # E: mypy: incompatible type "Callable[[BadPredicates], ColumnElement[bool]]"; expected "_SQLExpression" | pyright: Function accepts too few positional parameters; expected 2 but received 1
    def _is_ok_sql_no_model(self) -> ColumnElement[bool]:
        raise NotImplementedError

    is_mixed = is_open | 3  # E: mypy: Unsupported operand types for | ("State[int]" and "int") | pyright: Operator "|" not supported for types "State[int]" and "Literal[3]"


# An undefined state name on the class.
missing = ProjectState.is_nonexistent  # E: mypy: "type[ProjectState]" has no attribute "is_nonexistent" | pyright: Cannot access attribute "is_nonexistent" for class "type[ProjectState]"

# Groups of members of different StateTypes.
mixed = ProjectState.is_draft | ReviewState.is_pending  # E: mypy: Unsupported operand types for | ("ProjectState" and "ReviewState") | pyright: Operator "|" not supported for types "ProjectState" and "ReviewState"

# Member attributes are typed.
value: str = ProjectState.is_draft.value  # E: mypy: expression has type "int", variable has type "str" | pyright: "int" is not assignable to "str"
