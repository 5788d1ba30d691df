"""statetype.testing as a user's test suite calls it: typed by the registry's model."""

from __future__ import annotations

from typing import reveal_type

from hypothesis import given
from hypothesis import strategies as st

from models import Project, ProjectState
from statetype.testing import assert_allowed, assert_refused, assert_transition
from statetype.testing.strategies import form_data, members, walks
from transition_models import ProjectTransitions, User

tx = ProjectTransitions(actor=User("ada", editor=True))


def checks(project: Project) -> None:  # checked, not run: the asserts would need a publishable project
    reveal_type(assert_allowed(tx.publish, project))  # R: Verdict
    reveal_type(assert_refused(tx.publish, project, kind="permission"))  # R: Verdict
    reveal_type(assert_transition(tx.publish, project, from_=ProjectState.is_draft, to=ProjectState.is_published))  # R: Applied


reveal_type(members(ProjectState))  # R: SearchStrategy[ProjectState]
reveal_type(walks(tx, Project(title="Typing"), max_steps=5))  # R: SearchStrategy[Walk[Project]]
print(form_data)


@given(data=st.data())
def test_walk(data: st.DataObject) -> None:
    fresh = Project(title="Walked")
    for step in data.draw(walks(tx, fresh)):
        reveal_type(step)  # R: AppliedStep[Project]
        reveal_type(step.obj)  # R: Project
