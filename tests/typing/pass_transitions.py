"""Transitions as a user calls them: typed by model and actor."""

from __future__ import annotations

from typing import reveal_type

from models import Project
from statetype import TransitionNotAllowed, Verdict
from transition_models import ProjectTransitions, User

tx = ProjectTransitions(actor=User("ada", editor=True))
project = Project(title="Typing")

reveal_type(tx.publish)  # R: BoundTransition[Project, User]
reveal_type(ProjectTransitions.publish)  # R: Transition[ProjectState]
reveal_type(tx.actor)  # R: User | None

verdict: Verdict = tx.publish.check(project)
if verdict:
    applied = tx.publish(project)
    print(applied.steps, applied.results)
for bound in tx.available(project):
    reveal_type(bound)  # R: BoundTransition[Project, User]
print(ProjectTransitions.publish.where(Project), [reason.message for reason in verdict.reasons])

try:
    tx.publish(project)
except TransitionNotAllowed as error:
    reveal_type(error.verdict)  # R: Verdict
    print([reason.kind for reason in error.verdict.reasons])
