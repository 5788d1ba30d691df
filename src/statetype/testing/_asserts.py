"""Assertions on transitions: allowed, refused (for a reason of a kind), applied end to end.

Each helper is an ``assert`` statement whose message says what to fix: the
transition, the object, its current state, the actor and every reason of
the verdict. Under pytest the statements are rewritten (the plugin registers
this module), so a failure also shows the compared values; without pytest,
or under ``python -O``, the same message is raised as a plain
``AssertionError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import InstanceState, Mapper

from ..exceptions import TransitionDataInvalid
from ..states import StateType
from ..transitions import Applied, BoundTransition, Verdict
from ._describe import (
    describe_current,
    describe_member,
    describe_object,
    describe_reasons,
    describe_value,
    label,
    situation,
)

__all__ = ["ReasonKind", "assert_allowed", "assert_refused", "assert_transition"]

M = TypeVar("M")
A = TypeVar("A")

ReasonKind = Literal["state", "guard", "permission", "chain", "timer", "unknown"]
_KINDS: tuple[str, ...] = ("state", "guard", "permission", "chain", "timer", "unknown")


def assert_allowed(bound: BoundTransition[M, A], obj: M) -> Verdict:
    """Assert that ``bound.check(obj)`` allows the transition; returns the verdict.

    Raises ``AssertionError`` listing the refusal's reasons (kind and
    message), the object, its state and the actor.
    """
    verdict = bound.check(obj)
    if not verdict:
        message = f"{label(bound)} is refused for {situation(bound, obj)}:\n{describe_reasons(verdict)}"
        assert verdict, message
        raise AssertionError(message)  # assert statements are off (python -O) and this module is not rewritten
    return verdict


def assert_refused(bound: BoundTransition[M, A], obj: M, kind: ReasonKind | None = None) -> Verdict:
    """Assert that ``bound.check(obj)`` refuses the transition; returns the verdict.

    With ``kind`` (state, guard, permission, chain, timer or unknown), one of
    the reasons must be of that kind. Raises ``AssertionError`` when the
    transition is allowed, or refused for other kinds of reason only (the
    message lists them); ``ValueError`` for a ``kind`` that is not a reason kind.
    """
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"assert_refused: kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    verdict = bound.check(obj)
    if verdict:
        message = f"{label(bound)} was expected to be refused for {situation(bound, obj)}, but check() allows it"
        assert not verdict, message
        raise AssertionError(message)
    if kind is not None:
        kinds = [reason.kind for reason in verdict.reasons]
        if kind not in kinds:
            message = (
                f"{label(bound)} is refused for {situation(bound, obj)}, but for no reason of kind {kind!r}; "
                f"its reasons:\n{describe_reasons(verdict)}"
            )
            assert kind in kinds, message
            raise AssertionError(message)
    return verdict


def assert_transition(
    bound: BoundTransition[M, A],
    obj: M,
    from_: StateType[Any],
    to: StateType[Any],
    data: Mapping[str, Any] | None = None,
    *,
    form: Any = None,
) -> Applied:
    """Apply ``bound`` to ``obj`` and assert both ends; returns what the call applied.

    Before: the object is in ``from_`` (a state, group or conditional state)
    and check() allows the transition. After: the object is in ``to``. When
    the object is persistent, its row is also read back with a fresh SELECT
    through its session's connection (same transaction, identity map
    bypassed): before, unless the state column has an unflushed change, and
    after, the stored state must be one of ``from_``'s and ``to``'s plain
    states. ``data`` and ``form`` are passed to the call.

    Raises ``AssertionError`` naming the transition, the object, the states
    expected and found, and the refusal's reasons or the form's errors.
    Other exceptions of the call propagate unchanged.
    """
    key = bound.transition.key
    name = label(bound)
    if not getattr(obj, key) == from_:
        message = f"before {name}: {describe_object(obj)} is {describe_current(obj, key)}, not {describe_member(from_)}"
        assert getattr(obj, key) == from_, message
        raise AssertionError(message)
    _check_stored(obj, key, from_, f"before {name}", skip_if_changed=True)
    verdict = bound.check(obj)
    if not verdict:
        message = f"{name} cannot apply to {situation(bound, obj)}:\n{describe_reasons(verdict)}"
        assert verdict, message
        raise AssertionError(message)
    try:
        applied = bound(obj, data=data, form=form)
    except TransitionDataInvalid as error:
        fields = "\n".join(f"  - {name}: {' '.join(messages)}" for name, messages in error.errors.items())
        message = f"{name} refused the data for {describe_object(obj)}: {dict(data or {})!r}\n{fields}"
        raise AssertionError(message) from error
    if not getattr(obj, key) == to:
        message = f"after {name}: {describe_object(obj)} is {describe_current(obj, key)}, expected {describe_member(to)}"
        assert getattr(obj, key) == to, message
        raise AssertionError(message)
    _check_stored(obj, key, to, f"after {name}", skip_if_changed=False)
    return applied


# ------------------------------------------------------------------ the database end


def _check_stored(obj: object, key: str, expected: StateType[Any], when: str, *, skip_if_changed: bool) -> None:
    """Compare the stored state of a persistent object with ``expected``'s plain states."""
    state: InstanceState[Any] | None = sa.inspect(obj, raiseerr=False)  # None: not a mapped object
    if state is None or not state.persistent:
        return
    if skip_if_changed and state.attrs[key].history.has_changes():
        return  # an unflushed assignment: the row is behind the object on purpose
    found, stored = _stored(state, key)
    allowed: tuple[StateType[Any], ...] = expected.states
    if found and stored in allowed:
        return
    held = f"holds {describe_value(stored)}" if found else "is gone"
    message = (
        f"{when}: the database row of {describe_object(obj)} {held}, expected {describe_member(expected)}; "
        f"the object says {describe_current(obj, key)}"
    )
    assert found and stored in allowed, message
    raise AssertionError(message)


def _stored(state: InstanceState[Any], key: str) -> tuple[bool, StateType[Any] | None]:
    """A fresh SELECT of the state column through the session's connection: (row found, member)."""
    session = state.session
    identity = state.identity
    if session is None or identity is None:
        return False, None
    mapper: Mapper[Any] = state.mapper
    keys = [mapper.get_property_by_column(column).class_attribute for column in mapper.primary_key]
    statement = sa.select(getattr(mapper.class_, key)).where(
        *(attribute == value for attribute, value in zip(keys, identity))
    )
    row = session.connection(bind_arguments={"mapper": mapper}).execute(statement).first()
    if row is None:
        return False, None
    member: StateType[Any] | None = row[0]
    return True, member
