"""Public results are typed, never Any (DESIGN section 7): titles, forms, history, applied steps."""

from __future__ import annotations

from typing import reveal_type

from wtforms import Form

from models import Project, ProjectLog, ProjectState
from statetype import Applied, AppliedStep, TransitionLogMixin
from transition_models import ProjectTransitions, PublishForm, ReviewTransitions, User

project = Project(title="Typing", open=True)
tx = ProjectTransitions(actor=User("ada", editor=True))

# A title is a str to the checkers, whatever kind of member holds it (a
# lazy, translated title is one too): str methods are available.
reveal_type(ProjectState.is_draft.title)  # R: str
reveal_type(ProjectState.is_gone.title)  # R: str
reveal_type(ProjectState.is_future.title)  # R: str
reveal_type(project.state.title)  # R: str
heading: str = ProjectState.is_draft.title.upper()
reveal_type(tx.publish.title)  # R: str
reveal_type(ProjectTransitions.publish.title)  # R: str

# The transition's form: a WTForms Form, or None when it needs none.
form = tx.publish.form(project)
reveal_type(form)  # R: Form | None
reveal_type(tx.withdraw.form(project, formdata=None))  # R: Form | None
if isinstance(form, PublishForm):
    reveal_type(form.note.data)  # R: str | None
if form is not None and form.validate():
    applied = tx.publish(project, form=form)
    reveal_type(applied)  # R: Applied

# Meta is a mapping of plain objects.
reveal_type(tx.publish.meta)  # R: Mapping[str, object]

# History: a list of the registry's log class (``log = ProjectLog``)...
reveal_type(tx.history(project))  # R: list[ProjectLog]
rows: list[ProjectLog] = tx.history(project)
# ... and of TransitionLogMixin for a registry without a log class attribute.
reveal_type(ReviewTransitions(log=ProjectLog).history(project))  # R: list[TransitionLogMixin]
generic_rows: list[TransitionLogMixin] = list(tx.history(project))


def notify(step: AppliedStep[Project]) -> str:
    """An after_commit hook's step: the object is the model, the states are members."""
    reveal_type(step.obj)  # R: Project
    reveal_type(step.to_state.title)  # R: str
    reveal_type(step.data)  # R: Mapping[str, object]
    return step.obj.title


def results(applied: Applied) -> list[str]:
    return [step.transition.name for step in applied.steps]


print(heading, rows, generic_rows, isinstance(form, Form), notify, results)
