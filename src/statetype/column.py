"""SQL side of a StateType column: the comparator, member conditions, the CHECK constraint."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.naming import conv
from sqlalchemy.sql.type_api import TypeDecorator

from .bound import CONDITIONAL, GROUP, STATE, UNKNOWN, BoundState
from .exceptions import InvalidStateValue, StateDefinitionError, StateTypeError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from .states import StateType

__all__ = ["StateComparator", "attach_check_constraint", "member_sql"]


def _plain_and_conditionals(
    member: StateType[Any], plain: list[object], conditionals: list[StateType[Any]]
) -> None:
    d = member.__dict__
    kind = d["_kind"]
    if kind == STATE:
        if d["_storage"] not in plain:
            plain.append(d["_storage"])
    elif kind == GROUP:
        for element in d["_elements"]:
            _plain_and_conditionals(element, plain, conditionals)
    elif kind == CONDITIONAL and member not in conditionals:
        conditionals.append(member)


def member_sql(member: StateType[Any], expr: ColumnElement[Any], entity: object) -> ColumnElement[bool]:
    """The condition "``expr`` is in ``member``": ``=`` for a state, ``IN`` for a group
    (OR'ed with its conditional states), ``AND <expression>`` for a conditional state."""
    d = member.__dict__
    kind = d["_kind"]
    if kind == STATE:
        condition: ColumnElement[bool] = expr == d["_storage"]
        return condition
    if kind == GROUP:
        plain: list[object] = []
        conditionals: list[StateType[Any]] = []
        _plain_and_conditionals(member, plain, conditionals)
        parts: list[ColumnElement[bool]] = []
        if len(plain) == 1:
            parts.append(expr == plain[0])
        elif plain:
            parts.append(expr.in_(plain))
        parts.extend(member_sql(c, expr, entity) for c in conditionals)
        return parts[0] if len(parts) == 1 else sa.or_(*parts)
    if kind == CONDITIONAL:
        label = f"{type(member).__name__}.{member.name}"
        expression = d["_expression"]
        if expression is None:
            raise StateDefinitionError(
                f"{label} is a conditional state without an SQL expression; "
                f"declare one with @{member.name}.expression to use it in SQL"
            )
        if entity is None:
            raise StateTypeError(
                f"{label} needs the mapped class for its SQL expression; use Model.column.{member.name}"
            )
        # ``IS TRUE`` keeps the check two-valued, as it is in Python: an
        # expression that is NULL (a NULL column in a comparison) means "does
        # not hold", so ``~Model.state.is_x`` selects exactly the rows where it
        # does not. The ORM can still evaluate it (synchronize_session).
        condition = expression(member, entity).is_(sa.true())
        return sa.and_(member_sql(d["_base"], expr, entity), condition)
    raise InvalidStateValue(f"{member!r} is not a declared state and has no SQL form")


def _in_values(statetype: type[StateType[Any]], values: Iterable[object]) -> list[object]:
    """Raw values for ``in_()``: members and groups expand to their stored values."""
    raw: list[object] = []
    for value in values:
        if isinstance(value, BoundState):
            value = value._member
        d = getattr(value, "__dict__", None)
        if d is not None and "_kind" in d and isinstance(value, sa.types.TypeEngine):
            if type(value) is not statetype:  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
                raise InvalidStateValue(f"{value!r} is not a member of {statetype.__name__}")
            plain: list[object] = []
            conditionals: list[StateType[Any]] = []
            if d["_kind"] == UNKNOWN:
                plain.append(d["_storage"])
            else:
                _plain_and_conditionals(value, plain, conditionals)
            if conditionals:
                raise InvalidStateValue(
                    f"{value!r} contains conditional states; use {statetype.__name__}'s SQL "
                    "attributes (Model.column.name) instead of in_()"
                )
            raw.extend(v for v in plain if v not in raw)
        else:
            raw.append(value)
    return raw


class StateComparator(TypeDecorator.Comparator[Any]):
    """Column-level SQL: ``table.c.state.is_draft``, ``== member``, ``in_([members])``."""

    __slots__ = ()

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key in ("expr", "type"):
            raise AttributeError(key)
        statetype = cast("type[StateType[Any]]", type(self.type))
        member = statetype.__dict__.get("_members", {}).get(key)
        if member is None:
            raise AttributeError(
                f"{statetype.__name__} has no state {key!r}; declared: {', '.join(statetype.__dict__.get('_members', {}))}"
            )
        return member_sql(member, self.expr, None)

    def operate(self, op: Any, *other: Any, **kwargs: Any) -> ColumnElement[Any]:
        statetype = cast("type[StateType[Any]]", type(self.type))
        if op in (operators.eq, operators.ne) and len(other) == 1:
            target = other[0]
            if isinstance(target, BoundState):
                target = target._member
            if type(target) is statetype and "_kind" in target.__dict__:
                if target.__dict__["_kind"] in (STATE, UNKNOWN):
                    other = (target.__dict__["_storage"],)
                else:
                    condition = member_sql(target, self.expr, None)
                    return condition if op is operators.eq else ~condition
        elif op in (operators.in_op, operators.not_in_op) and len(other) == 1:
            values = other[0]
            if isinstance(values, (list, tuple, set, frozenset)):
                other = (_in_values(statetype, cast("Iterable[object]", values)),)
        return super().operate(op, *other, **kwargs)


def attach_check_constraint(type_: StateType[Any], column: sa.Column[Any], table: sa.Table) -> None:
    """Add the CHECK constraint limiting ``column`` to the declared values.

    The name follows the metadata's "ck" naming convention when there is one
    (``constraint_name`` is the column name), else ``ck_<table>_<column>``.
    """
    statetype = type(type_)
    values = [m.__dict__["_storage"] for m in statetype._all_states]
    conventions = cast("Mapping[object, object]", table.metadata.naming_convention)
    convention = conventions.get("ck") or conventions.get(sa.CheckConstraint)
    name: Any
    if convention is None:
        name = conv(f"ck_{table.name}_{column.name}")
    elif "%(constraint_name)s" in str(convention):
        name = column.name
    else:
        # None, not _NONE_NAME: SQLAlchemy then applies the convention when the
        # constraint attaches (the table is known here), so ``constraint.name``
        # is the real name rather than a placeholder resolved only in DDL.
        name = None
    impl = type_.impl_instance
    sa.CheckConstraint(
        sa.type_coerce(column, impl).in_(values),
        name=name,
        _type_bound=True,
    )
