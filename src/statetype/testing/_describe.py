"""Readable descriptions for failure messages: transitions, objects, states, members and reasons."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import InstanceState

from ..states import StateType
from ..transitions import BoundTransition, Verdict

__all__ = [
    "describe_current",
    "describe_member",
    "describe_object",
    "describe_reasons",
    "describe_value",
    "label",
    "situation",
]


def label(bound: BoundTransition[Any, Any]) -> str:
    return f"{type(bound.registry).__name__}.{bound.name}"


def situation(bound: BoundTransition[Any, Any], obj: object) -> str:
    return f"{describe_object(obj)}, {describe_current(obj, bound.transition.key)}, actor {bound.actor!r}"


def describe_object(obj: object) -> str:
    """``Project 1``, ``Project (new)``; with the object's own repr when its class defines one."""
    name = type(obj).__name__
    state = sa.inspect(obj, raiseerr=False)
    identity = state.identity if isinstance(state, InstanceState) else None
    if identity is None:
        text = f"{name} (new)"
    else:
        text = f"{name} {identity[0] if len(identity) == 1 else list(identity)}"
    if type(obj).__repr__ is not object.__repr__:
        text += f" {obj!r}"
    return text


def describe_current(obj: object, key: str) -> str:
    value = getattr(obj, key)
    if value is None:
        return "in no state"
    member: StateType[Any] = value._member
    return f"in state {describe_value(member)}"


def describe_value(member: StateType[Any] | None) -> str:
    """``Draft (is_draft = 1)``, or the undeclared raw value."""
    if member is None:
        return "no state"
    if not member.known:
        return f"an undeclared value {member.value!r}"
    return f"{member.title} ({member.name} = {member.value!r})"


def describe_member(member: StateType[Any]) -> str:
    """What an expected member means: a state, one of a group's states, or a conditional state."""
    states: tuple[StateType[Any], ...] = member.states
    if len(states) == 1 and states[0] is member:
        return f"{member.title} ({member.name})"
    kind = type(member).groups
    names = " or ".join(s.name for s in states)
    if member in kind:
        return f"{member.title} ({member.name}: {names})"
    return f"{member.title} ({member.name}, a condition on {names})"


def describe_reasons(verdict: Verdict) -> str:
    return "\n".join(f"  - {reason.kind}: {reason.message}" for reason in verdict.reasons)
