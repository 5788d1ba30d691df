"""statetype.testing mistakes the checkers catch."""

from __future__ import annotations

from models import Project, ProjectState
from statetype.testing import assert_allowed, assert_refused
from statetype.testing.strategies import members, walks
from transition_models import ProjectTransitions, User

tx = ProjectTransitions(actor=User("ada", editor=True))

assert_allowed(tx.publish, User("bob"))  # E: mypy: Cannot infer value of type parameter "M" of "assert_allowed" | pyright: "User" is not assignable to "Project"
assert_refused(tx.publish, Project(title="x"), kind="guards")  # E: mypy: Argument "kind" to "assert_refused" has incompatible type | pyright: "Literal['guards']" is not assignable to type "ReasonKind | None"
members(ProjectState, kind="every")  # E: mypy: Argument "kind" to "members" has incompatible type | pyright: "Literal['every']" is not assignable to type "MemberKind"
walks(tx, User("bob"))  # E: mypy: Cannot infer value of type parameter "M" of "walks" | pyright: "User" is not assignable to "Project"
