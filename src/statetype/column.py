"""SQL side of a StateType column: the comparator, member conditions, the CHECK constraint."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.naming import conv
from sqlalchemy.sql.type_api import TypeDecorator, TypeEngine

from .bound import CONDITIONAL, GROUP, STATE, UNKNOWN, BoundState, is_sql_expression
from .exceptions import InvalidStateValue, StateDefinitionError, StateTypeError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from .states import StateType

__all__ = ["StateComparator", "attach_check_constraint", "describe_values", "member_sql", "sql_value"]

# Comparisons whose other side is a value of the column.
_VALUE_OPERATORS = frozenset(
    {
        operators.eq,
        operators.ne,
        operators.lt,
        operators.le,
        operators.gt,
        operators.ge,
        operators.is_distinct_from,
        operators.is_not_distinct_from,
    }
)


def describe_values(statetype: type[StateType[Any]]) -> str:
    """``declared: 1 (is_draft), 2 (is_published)``, for error messages."""
    return "declared: " + ", ".join(f"{m.__dict__['_storage']!r} ({m.name})" for m in statetype._all_states)


def sql_value(statetype: type[StateType[Any]], value: object, where: object) -> object:
    """The stored value for ``value`` compared with a column of ``statetype``.

    Members (plain or unknown), bound values, declared raw and enum values give
    the stored value; None and SQL expressions pass unchanged. Anything else
    (another StateType's member, a column type, an undeclared raw value) raises
    ``InvalidStateValue`` naming the class, the column ``where`` and the value.
    """
    if value is None or is_sql_expression(value):
        return value
    member: object = value._member if isinstance(value, BoundState) else value
    if isinstance(member, TypeEngine):
        d: dict[str, Any] = vars(member)
        kind = d.get("_kind")
        same = type(member) is statetype  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
        if same and kind in (STATE, UNKNOWN):
            return d["_storage"]
        shown = repr(cast(object, member))
        if same and kind is None:
            reason = f"{statetype.__name__}() is a column type, not a state"
        elif same:
            reason = f"{shown} is not a single state; use Model.column.{d['name']}"
        else:
            reason = f"{shown} is a member of {type(cast(object, member)).__name__}, not of {statetype.__name__}"
        raise InvalidStateValue(f"{where}: {reason}")
    if type(value) in statetype._raw_types:
        found = statetype._by_value.get(value)
        if found is not None:
            return found.__dict__["_storage"]
    raise InvalidStateValue(
        f"{where}: {value!r} is not a value of {statetype.__name__} ({describe_values(statetype)})"
    )


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


def _in_values(statetype: type[StateType[Any]], values: Iterable[object], where: object) -> list[object]:
    """Raw values for ``in_()``: members and groups expand to their stored values."""
    raw: list[object] = []
    for value in values:
        if isinstance(value, BoundState):
            value = value._member
        d = getattr(value, "__dict__", None)
        if d is not None and "_kind" in d and isinstance(value, sa.types.TypeEngine):
            if type(value) is not statetype:  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
                other = cast(object, value)
                raise InvalidStateValue(
                    f"{where}: {other!r} is a member of {type(other).__name__}, not of {statetype.__name__}"
                )
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
            raw.append(sql_value(statetype, value, where))
    return raw


class _Where:
    """What an error names, rendered only when one is raised: ``ColState (column_item.state)``."""

    __slots__ = ("_comparator",)

    def __init__(self, comparator: StateComparator) -> None:
        self._comparator = comparator

    def __str__(self) -> str:
        return f"{type(self._comparator.type).__name__} ({self._comparator.expr})"


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
        # Every value compared with the column is validated here, when the
        # expression is built: never a silent comparison with a foreign raw value.
        statetype = cast("type[StateType[Any]]", type(self.type))
        if op in _VALUE_OPERATORS and len(other) == 1:
            target = other[0]
            if isinstance(target, BoundState):
                target = target._member
            kind = target.__dict__.get("_kind") if type(target) is statetype else None
            if op in (operators.eq, operators.ne) and kind in (GROUP, CONDITIONAL):
                condition = member_sql(target, self.expr, None)
                return condition if op is operators.eq else ~condition
            other = (sql_value(statetype, target, _Where(self)),)
        elif op in (operators.in_op, operators.not_in_op) and len(other) == 1:
            values = other[0]
            if isinstance(values, (list, tuple, set, frozenset)):
                other = (_in_values(statetype, cast("Iterable[object]", values), _Where(self)),)
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
