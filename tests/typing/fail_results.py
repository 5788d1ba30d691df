"""Public results are typed, so misuse of them is an error (none of them is Any)."""

# Each marked line tests one mistake; the Unknown types that follow from it
# are not what this file is about.
# pyright: reportUnknownVariableType=false, reportUnknownMemberType=false, reportUnknownArgumentType=false

from __future__ import annotations

from models import Project, ProjectLog, ProjectState
from statetype import AppliedStep
from transition_models import ProjectTransitions, User

project = Project(title="Typing")
tx = ProjectTransitions(actor=User("ada"))

# A title is a str, not Any.
size: int = ProjectState.is_draft.title  # E: mypy: expression has type "str", variable has type "int" | pyright: "str" is not assignable to "int"
project.state.title.decode()  # E: mypy: "str" has no attribute "decode" | pyright: Cannot access attribute "decode" for class "str"
label: bytes = tx.publish.title  # E: mypy: expression has type "str", variable has type "bytes" | pyright: "str" is not assignable to "bytes"

# The form may be None.
tx.publish.form(project).validate()  # E: mypy: Item "None" of "Form | None" has no attribute "validate" | pyright: "validate" is not a known attribute of "None"
# ... and is a WTForms form, not a mapping.
tx.publish(project, form={"note": "x"})  # E: mypy: Argument "form" to "__call__" of "BoundTransition" has incompatible type "dict[str, str]"; expected "Form | None" | pyright: cannot be assigned to parameter "form" of type "Form | None"

# History rows are the registry's log class.
users: list[User] = tx.history(project)  # E: mypy: expression has type "list[ProjectLog]", variable has type "list[User]" | pyright: "list[ProjectLog]" is not assignable to "list[User]"
tx.history(project)[0].nonexistent  # E: mypy: "ProjectLog" has no attribute "nonexistent" | pyright: Cannot access attribute "nonexistent" for class "ProjectLog"


def notify(step: AppliedStep[Project]) -> ProjectLog:
    return step.obj  # E: mypy: Incompatible return value type (got "Project", expected "ProjectLog") | pyright: "Project" is not assignable to "ProjectLog"
