"""With ``plugins = statetype.mypy``: what plain typing cannot reject.

A mapped column compared with another StateType's members, and registry
hooks whose object parameter does not accept the registry's model (reported
on the decorator line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from wtforms import Form

from models import Base, Project, ProjectState, ReviewState
from statetype import AppliedStep, Step, Transition, Transitions
from transition_models import User

# Another StateType's member at class level: never true in SQL.
wrong = Project.state == ReviewState.is_pending  # E: A ProjectState column compared with a member of ReviewState; use members of ProjectState  [operator]
not_wrong = Project.state != ReviewState.is_approved  # E: A ProjectState column compared with a member of ReviewState
listed = Project.state.in_([ProjectState.is_draft, ReviewState.is_pending])  # E: A ProjectState column compared with a member of ReviewState
tupled = Project.review.in_((ReviewState.is_pending, ProjectState.is_draft))  # E: A ReviewState column compared with a member of ProjectState
on_alias = aliased(Project).review == ProjectState.is_gone  # E: A ReviewState column compared with a member of ProjectState
query = sa.select(Project.id).where(Project.colour == ProjectState.is_draft)  # E: A ColourState column compared with a member of ProjectState


class Account:
    open: bool = True


class WrongHooks(Transitions[Project, User]):
    publish = Transition(ProjectState.is_draft, ProjectState.is_published)

    @publish.guard  # E: @guard on "is_user_open" of WrongHooks: parameter "user" is "User", but the hook receives "Project" (the registry's model is Project)  [arg-type]
    def is_user_open(self, user: User) -> bool:
        return user.editor

    @publish.permission  # E: @permission on "may" of WrongHooks: parameter "account" is "Account", but the hook receives "Project"
    def may(self, account: Account) -> bool:
        return account.open

    @publish.execute  # E: @execute on "stamp" of WrongHooks: parameter "user" is "User", but the hook receives "Project"
    def stamp(self, user: User, data: Mapping[str, Any]) -> None:
        user.name = "stamped"

    @publish.chain  # E: @chain on "children" of WrongHooks: parameter "state" is "ProjectState", but the hook receives "Project"
    def children(self, state: ProjectState) -> Iterable[Step]:
        return []

    @publish.form  # E: @form on "choose" of WrongHooks: parameter "user" is "User", but the hook receives "Project"
    def choose(self, user: User) -> type[Form] | None:
        return None

    @publish.after_commit  # E: @after_commit on "notify" of WrongHooks: parameter "step" is "AppliedStep[User]", but the hook receives "AppliedStep[Project]"
    def notify(self, step: AppliedStep[User]) -> None:
        print(step.obj.name)

    @publish.guard
    def is_open(self, project: Project) -> bool:
        return project.open

    @is_open.expression  # E: @expression on "_is_open_sql" of WrongHooks: parameter "model" is "type[Account]", but the hook receives "type[Project]"
    def _is_open_sql(self, model: type[Account]) -> ColumnElement[bool]:
        return sa.true()


class RightHooks(Transitions[Project, User]):
    """A supertype of the model (its declarative base, object) is accepted."""

    publish = Transition(ProjectState.is_draft, ProjectState.is_published)

    @publish.guard
    def any_base(self, obj: Base) -> bool:
        return obj is not None

    @publish.permission
    def anything(self, obj: object) -> bool:
        return self.actor is not None

    @publish.after_commit
    def notify(self, step: AppliedStep[Base]) -> None:
        print(step.obj)

    @publish.guard
    def is_open(self, project: Project) -> bool:
        return project.open

    @is_open.expression
    def _is_open_sql(self, model: type[Project]) -> ColumnElement[bool]:
        return model.open.is_(True)


right: ColumnElement[bool] = Project.state == ProjectState.is_gone
print(wrong, not_wrong, listed, tupled, on_alias, query, right)
