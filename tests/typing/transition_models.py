"""Transition registries for the models in models.py (DESIGN section 4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.sql.elements import ColumnElement
from wtforms import Form, StringField

from models import Project, ProjectLog, ProjectState, ReviewState
from statetype import AppliedStep, Step, Transition, Transitions


class User:
    def __init__(self, name: str, editor: bool = False) -> None:
        self.name = name
        self.editor = editor


class PublishForm(Form):
    note = StringField("Note")


class ProjectTransitions(Transitions[Project, User]):
    log = ProjectLog

    publish = Transition(
        ProjectState.is_draft | ProjectState.is_withdrawn, ProjectState.is_published, title="Publish", form=PublishForm
    )
    withdraw = Transition(ProjectState.is_published, ProjectState.is_withdrawn)
    delete = Transition([ProjectState.is_draft, ProjectState.is_live], ProjectState.is_deleted)

    @publish.guard
    def is_open(self, project: Project) -> bool:
        return project.open

    @is_open.expression
    def _is_open_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return project.open.is_(True)

    @publish.permission
    def is_editor(self, project: Project) -> bool:
        return self.actor is not None and self.actor.editor

    @publish.execute
    def stamp(self, project: Project, data: Mapping[str, Any]) -> bool:
        return project.start_at is None

    @delete.chain
    def nothing_else(self, project: Project) -> Iterable[Step]:
        return []

    @publish.after_commit
    def notify(self, step: AppliedStep[Project]) -> None:
        print(step.obj.title)


class ReviewTransitions(Transitions[Project, User]):
    approve = Transition(ReviewState.is_pending, ReviewState.is_approved)
