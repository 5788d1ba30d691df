"""Mistakes with transitions."""

# Each marked line tests one mistake; the Unknown types that follow from it
# are not what this file is about.
# pyright: reportUnknownVariableType=false, reportUnknownMemberType=false, reportUnknownArgumentType=false

from __future__ import annotations

from models import Project, ProjectState
from statetype import Transition, Transitions
from transition_models import ProjectTransitions, User

tx = ProjectTransitions(actor=User("ada"))

# An object of another model.
tx.publish.check(User("bob"))  # E: mypy: Argument 1 to "check" of "BoundTransition" has incompatible type "User"; expected "Project" | pyright: "User" is not assignable to "Project"
tx.publish(ProjectState.is_draft)  # E: mypy: Argument 1 to "__call__" of "BoundTransition" has incompatible type "ProjectState"; expected "Project" | pyright: "ProjectState" is not assignable to "Project"

# An actor of the wrong type.
ProjectTransitions(actor="ada")  # E: mypy: Argument "actor" to "ProjectTransitions" has incompatible type "str"; expected "User | None" | pyright: Argument of type "Literal['ada']" cannot be assigned to parameter "actor" of type "User | None"

# An undefined transition.
tx.unpublish  # E: mypy: "ProjectTransitions" has no attribute "unpublish" | pyright: Cannot access attribute "unpublish" for class "ProjectTransitions"


class BadTransitions(Transitions[Project, User]):
    # Sources and target from two StateTypes are not a static error (the type
    # variable is solved to their common base); class creation rejects them.
    # A transition of another registry as a source:
    reuse = Transition(ProjectTransitions.publish, ProjectState.is_deleted)  # E: mypy: Argument 1 to "Transition" has incompatible type "Transition[ProjectState]"; expected "ProjectState | Iterable[ProjectState] | None" | pyright: "Transition[ProjectState]" is not assignable to "ProjectState"

    @reuse.guard  # E: mypy: incompatible type "Callable[[BadTransitions], bool]"; expected "_GuardFunc | Guard" | pyright: Function accepts too few positional parameters; expected 2 but received 1
    def no_object(self) -> bool:
        return True

    @reuse.guard  # E: mypy: incompatible type "Callable[[BadTransitions, Project], str]"; expected "_GuardFunc | Guard" | pyright: Function return type "str" is incompatible with type "bool"
    def titled(self, project: Project) -> str:
        return project.title

    good = Transition(ProjectState.is_draft, ProjectState.is_published)

    # An execute hook without the data argument.
    @good.execute  # E: mypy: Argument 1 to "execute" of "Transition" has incompatible type "Callable[[BadTransitions, Project], None]"; expected "_ExecuteFunc | Execute" | pyright: cannot be assigned to parameter "func" of type "_ExecuteFunc | Execute" in function "execute"
    def stamp_without_data(self, project: Project) -> None:
        project.title = "stamped"

    # A chain returning objects instead of (bound transition, object) pairs.
    @good.chain  # E: mypy: Argument 1 to "chain" of "Transition" has incompatible type "Callable[[BadTransitions, Project], list[Project]]"; expected "_ChainFunc | Chain" | pyright: cannot be assigned to parameter "func" of type "_ChainFunc | Chain" in function "chain"
    def children(self, project: Project) -> list[Project]:
        return [project]
