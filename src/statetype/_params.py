"""A member never reaches a database driver.

Values bound through a StateType column are converted by the column's bind
processor. Some paths bind a state through another column's type, which
knows nothing of members: a StateType column that is also a foreign key to a
table of states, whose relationship's lazy load, ``session.get(DbState,
post.state)`` and ``selectinload`` bind the member through the states
table's ``Integer`` primary key; or ``text()`` with a member as a parameter.
Drivers then refuse the object (sqlite3, psycopg) or send its ``str()``, the
title (pymysql), silently finding nothing.

One ``before_cursor_execute`` listener on every Engine replaces members and
bound values left in a statement's parameters by their stored values, just
before the cursor sees them. It scans the parameters with one ``isinstance``
per value and copies them only when it finds one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import ExecutionContext
from sqlalchemy.sql.type_api import TypeEngine

from .bound import BoundState
from .exceptions import InvalidStateValue

__all__ = ["install"]

_STATE_VALUES = (TypeEngine, BoundState)


def _raw(value: object) -> object:
    """The stored value of a member or bound value; other values unchanged."""
    if isinstance(value, BoundState):
        value = value._member
    if not isinstance(value, TypeEngine):
        return value
    d: dict[str, Any] = vars(value)
    if "_storage" in d:
        return d["_storage"]
    if "_kind" in d:
        raise InvalidStateValue(f"{d['name']} is not a single state and cannot be sent to the database")
    return cast(object, value)  # a column type passed as a value: the driver's error is the right one


def _one(params: object) -> object:
    """One parameter set (a mapping or a positional sequence), converted when it holds a state."""
    if type(params) is dict or isinstance(params, Mapping):
        mapping = cast("Mapping[str, object]", params)
        for value in mapping.values():
            if isinstance(value, _STATE_VALUES):
                converted: dict[str, object] = {k: _raw(v) for k, v in mapping.items()}
                return converted
        return mapping
    if isinstance(params, (tuple, list)):
        sequence = cast("Sequence[object]", params)
        for value in sequence:
            if isinstance(value, _STATE_VALUES):
                values = [_raw(v) for v in sequence]
                return tuple(values) if isinstance(sequence, tuple) else values
        return sequence
    return params


def _before_cursor_execute(
    conn: Connection,
    cursor: object,
    statement: str,
    parameters: object,
    context: ExecutionContext | None,
    executemany: bool,
) -> tuple[str, object]:
    if not parameters:
        return statement, parameters
    # insertmanyvalues batches arrive flattened into one parameter set (flag True);
    # a real executemany gives a list of sets.
    if executemany and isinstance(parameters, list):
        sets = cast("list[object]", parameters)
        if sets and isinstance(sets[0], (Mapping, tuple, list)):
            converted = [_one(p) for p in sets]
            if any(c is not p for c, p in zip(converted, sets)):
                return statement, converted
            return statement, sets
        return statement, _one(sets)
    return statement, _one(parameters)


guard = _before_cursor_execute  # statetype._raw knows it: statements without members need not pass it


def install() -> None:
    """Listen on every Engine (once)."""
    if not event.contains(Engine, "before_cursor_execute", _before_cursor_execute):
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute, retval=True)
