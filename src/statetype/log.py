"""Transition history: ``class ProjectLog(TransitionLogMixin, Base)``.

One row per applied step, written in the same transaction as the step.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Mapping
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.orm import Mapped, mapped_column, object_session
from sqlalchemy.types import TypeDecorator

__all__ = ["TransitionLogMixin", "UTCDateTime", "actor_text", "history_of", "jsonable", "object_id_text"]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as naive UTC and loaded as timezone-aware UTC on every database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=dt.timezone.utc)


class TransitionLogMixin:
    """Columns of a history table; declare ``__tablename__`` on the concrete class.

    ``class ProjectLog(TransitionLogMixin, Base)``, then
    ``ProjectTransitions(log=ProjectLog)`` or a ``log = ProjectLog`` class
    attribute on the registry. One row per applied step, in the same
    transaction as the step.

    Attributes:
        id: Autoincrement primary key; history is ordered by it.
        table_name: The transitioned object's table.
        object_id: Its primary key as text: ``str()`` of a single-column key,
            a JSON array in key order for a composite key.
        column_name: The state column's name.
        transition: The transition's name.
        from_value: The raw value left, as text (nullable).
        to_value: The raw value entered, as text.
        actor: The actor's primary key (or ``str()``) as text; None without actor.
        created_at: When, timezone-aware UTC on every database.
        data: The step's input data as JSON; None without any.
    """

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(sa.String(255), index=True)
    object_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    column_name: Mapped[str] = mapped_column(sa.String(255))
    transition: Mapped[str] = mapped_column(sa.String(255))
    from_value: Mapped[Optional[str]] = mapped_column(sa.String(255), nullable=True)
    to_value: Mapped[str] = mapped_column(sa.String(255))
    actor: Mapped[Optional[str]] = mapped_column(sa.String(255), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    data: Mapped[Optional[Any]] = mapped_column(sa.JSON(none_as_null=True), nullable=True)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.table_name}:{self.object_id} {self.transition} "
            f"{self.from_value}->{self.to_value}>"
        )


def object_id_text(identity: tuple[Any, ...]) -> str:
    """``str()`` of a single-column key, a JSON array in key order for a composite key."""
    if len(identity) == 1:
        return str(identity[0])
    return json.dumps([jsonable(v) for v in identity])


def actor_text(actor: object) -> str | None:
    """The actor's primary key when it is a mapped object, else ``str(actor)``."""
    if actor is None:
        return None
    try:
        state = sa.inspect(actor)
        identity = getattr(state, "identity", None)
    except NoInspectionAvailable:
        identity = None
    if identity:
        return object_id_text(tuple(identity))
    return str(actor)


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of step data (dates as ISO strings, members as raw values...)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]  # pyright: ignore[reportUnknownVariableType]  (isinstance narrowing leaves type arguments Unknown)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    storage = getattr(value, "__dict__", {}).get("_storage", None)
    if storage is not None:
        return storage
    member = getattr(value, "_member", None)
    if member is not None:
        return member.__dict__.get("_storage")
    return str(value)


def history_of(log: type[Any], obj: object) -> list[Any]:
    """History rows of ``obj``, oldest first (by id)."""
    state = sa.inspect(obj, raiseerr=True)  # SQLAlchemy 2.0 types the default as Optional
    session = object_session(obj)
    if session is None or state.identity is None:
        return []
    # Inheritance: a row is written under the table of the state column it moved, which may be
    # any table of the object's mapper (the base's or a subclass's), whichever registry wrote it.
    table_names = sorted({table.name for table in state.mapper.tables if isinstance(table, sa.Table)})
    query = (
        sa.select(log)
        .where(log.table_name.in_(table_names), log.object_id == object_id_text(tuple(state.identity)))
        .order_by(log.id)
    )
    return list(session.scalars(query))
