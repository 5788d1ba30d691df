"""The pytest plugin of statetype, registered through the ``pytest11`` entry point as ``statetype``.

Loading it imports ``statetype.testing``, whose import registers the
helpers for pytest's assertion rewriting before any test module imports
them. It adds one hook, ``pytest_assertrepr_compare``: ``assert
project.state == ProjectState.is_published`` in a test explains, on failure,
which state the object is in and what the expected member covers. It
defines no fixture: engines and sessions stay the application's own.
Disable it with ``-p no:statetype``.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypeGuard

import pytest

from ..bound import BoundState
from ..states import StateType
from ._describe import describe_member, describe_object, describe_value

__all__ = ["pytest_assertrepr_compare"]


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    """Explain a failed ``==``/``!=`` between an object's state and a member."""
    if op not in ("==", "!="):
        return None
    bound, member = (left, right) if isinstance(left, BoundState) else (right, left)
    if not isinstance(bound, BoundState) or not _is_member(member):
        return None
    current: StateType[Any] = bound._member  # pyright: ignore[reportPrivateUsage]
    expected = f"{describe_member(member)} of {type(member).__name__}" if type(member) is not type(current) else describe_member(member)
    obj: object = getattr(bound, "_obj", None)  # a shared bound value (no conditional state) keeps no object
    owner = "the object" if obj is None else describe_object(obj)
    if op == "==":
        return [f"{left!r} == {right!r}", f"{owner} is in state {describe_value(current)}, not in {expected}"]
    return [f"{left!r} != {right!r}", f"{owner} is in state {describe_value(current)}, which is {expected}"]


def _is_member(value: object) -> TypeGuard[StateType[Any]]:
    return isinstance(value, StateType) and "_kind" in value.__dict__
