"""``StateFilter``: a list-view filter by state, group or conditional state, through their SQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.sql import Select
from starlette.requests import Request

from ..states import StateType

__all__ = ["StateFilter"]


class StateFilter:
    """A SQLAdmin filter (the lookup-list kind) on one state column.

    Its choices are the StateType's states, then its groups, then its
    conditional states, each by title; choosing one filters with
    ``Model.column == member``: an equality, an ``IN`` for a group, the
    conditional state's SQL twin for a conditional state.

    Args:
        column: The state column's attribute name.
        statetype: Its StateType class.
        title: The filter's heading; default the column's label.
        parameter_name: The query parameter; default the column's name.
    """

    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"

    def __init__(
        self, column: str, statetype: type[StateType[Any]], title: str | None = None, parameter_name: str | None = None
    ) -> None:
        self.column = column
        self.statetype = statetype
        self.title = title or column.replace("_", " ").capitalize()
        self.parameter_name = parameter_name or column
        self._members: dict[str, StateType[Any]] = {
            m.name: m for m in (*statetype.states, *statetype.groups, *statetype.conditionals)
        }

    async def lookups(
        self, request: Request, model: object, run_query: Callable[..., object] | None = None
    ) -> list[tuple[str, str]]:
        """``(parameter value, label)`` pairs: every state, group and conditional state."""
        return [(name, str(member.title)) for name, member in self._members.items()]

    async def get_filtered_query(self, query: Select[Any], value: object, model: object = None) -> Select[Any]:
        """``query`` narrowed to the member named ``value``; unchanged for an unknown or empty value."""
        member = self._members.get(str(value)) if value else None
        if member is None:
            return query
        entity: object = model if model is not None else query.column_descriptions[0]["entity"]
        return query.where(getattr(entity, self.column) == member)
