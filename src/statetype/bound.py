"""The state as seen on an instance: ``project.state``.

Each plain state gets one small class at StateType creation whose class
attributes answer every check (``is_draft``, ``is_gone``...) as constants;
only conditional checks evaluate a predicate with the object. A state whose
checks are all constants is served by one shared instance, so reading
``obj.state`` allocates nothing. The bound value holds the object, never the
other way round: no reference cycle, and SQLAlchemy's history is untouched.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from sqlalchemy.orm import ColumnProperty, InstrumentedAttribute
from sqlalchemy.orm.attributes import QueryableAttribute, instance_dict, instance_state
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.type_api import TypeEngine

from .exceptions import ProtectedStateError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from .states import StateType

__all__ = ["BoundState", "StateAttribute", "covers", "covers_static", "is_sql_expression", "set_state"]

STATE = "state"
GROUP = "group"
CONDITIONAL = "conditional"
UNKNOWN = "unknown"


def covers_static(target: StateType[Any], current: StateType[Any]) -> bool | None:
    """Whether ``target`` holds for an object in ``current``; None when a predicate decides."""
    d = target.__dict__
    kind = d["_kind"]
    if current.__dict__["_kind"] != STATE:
        return False
    if kind == STATE:
        return target is current
    if kind == GROUP:
        undecided = False
        for element in d["_elements"]:
            result = covers_static(element, current)
            if result:
                return True
            if result is None:
                undecided = True
        return None if undecided else False
    if kind == CONDITIONAL:
        return None if covers_static(d["_base"], current) is not False else False
    return False


def covers(target: StateType[Any], current: StateType[Any], obj: object) -> bool:
    """Whether ``target`` (state, group or conditional) holds for ``obj`` in state ``current``."""
    d = target.__dict__
    kind = d["_kind"]
    if kind == STATE:
        return target is current
    if current.__dict__["_kind"] != STATE:
        return False
    if kind == GROUP:
        return any(covers(element, current, obj) for element in d["_elements"])
    if kind == CONDITIONAL:
        return covers(d["_base"], current, obj) and bool(d["_predicate"](target, obj))
    return False


class BoundState:
    """A state bound to its object; typed as the StateType class itself."""

    __slots__ = ("_obj",)
    _member: ClassVar[StateType[Any]]

    def __init__(self, obj: object) -> None:
        self._obj = obj

    def __eq__(self, other: object) -> bool:
        member = self._member
        if other is member:
            return True
        if isinstance(other, BoundState):
            return other._member is member
        other_dict = getattr(other, "__dict__", None)
        if other_dict is not None and "_kind" in other_dict and type(other) is type(member):
            if other_dict["_kind"] in (GROUP, CONDITIONAL):
                static = covers_static(other, member)
                if static is not None:
                    return static
                return covers(other, member, self._obj)
            return False
        d = member.__dict__
        if type(other) not in type(member)._raw_types:
            return False  # as for members and assignment: True is not 1, "1" is not 1
        return bool(d["_storage"] == other or d["value"] == other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self._member)

    def __repr__(self) -> str:
        return f"<bound {self._member!r}>"

    def __str__(self) -> str:
        return str(self._member.title)

    def __clause_element__(self) -> ColumnElement[Any]:
        return self._member.__clause_element__()

    def __reduce__(self) -> tuple[Any, ...]:
        # The bound class is built at runtime: pickle the member and the object instead.
        return (_rebind, (self._member, getattr(self, "_obj", None)))

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        member = self._member
        statetype = type(member)
        if hasattr(statetype, key) and key not in ("impl", "impl_instance"):
            return getattr(member, key)
        raise AttributeError(
            f"{statetype.__name__} has no state {key!r}; declared: {', '.join(statetype._members)}"
        )


def _rebind(member: StateType[Any], obj: object) -> BoundState:
    """Unpickle a bound value: the member's shared instance, or one bound to ``obj``."""
    d = vars(member)
    shared: BoundState | None = d["_shared"]
    return shared if shared is not None else cast("type[BoundState]", d["_bound_cls"])(obj)


class _Dynamic:
    """A check on a bound class that needs the object (a conditional state decides)."""

    __slots__ = ("_target",)

    def __init__(self, target: StateType[Any]) -> None:
        self._target = target

    def __get__(self, bound: BoundState | None, owner: type[BoundState]) -> Any:
        if bound is None:
            return self
        return covers(self._target, bound._member, bound._obj)


def build_bound_class(member: StateType[Any]) -> None:
    """Create the bound class of a plain (or unknown) member; share one instance when possible."""
    statetype = type(member)
    d = vars(member)  # not member.__dict__: pyright >= 1.1.408 types it as the metaclass's mappingproxy
    attrs: dict[str, Any] = {
        "__slots__": (),
        "_member": member,
        "name": d["name"],
        "value": d["value"],
        "title": d["title"],
        "final": d["final"],
        "initial": d["initial"],
        "known": d["known"],
    }
    dynamic = False
    for name, target in statetype._members.items():
        result = covers_static(target, member)
        if result is None:
            attrs[name] = _Dynamic(target)
            dynamic = True
        else:
            attrs[name] = result
    bound_cls = type(f"Bound{statetype.__name__}", (BoundState,), attrs)
    d["_bound_cls"] = bound_cls
    d["_shared"] = None if dynamic else object.__new__(bound_cls)


def set_state(obj: object, key: str, member: StateType[Any]) -> None:
    """Set a state attribute, bypassing protection: the path transitions take."""
    attr = cast("InstrumentedAttribute[Any]", getattr(type(obj), key))
    attr.impl.set(instance_state(obj), instance_dict(obj), member, None)


_base_get = cast("type[InstrumentedAttribute[Any]]", InstrumentedAttribute).__get__


# SQLAlchemy declares InstrumentedAttribute.__doc__ as a hybrid property, which
# pyright reports for every subclass.
class StateAttribute(InstrumentedAttribute[Any]):  # pyright: ignore[reportIncompatibleVariableOverride]
    """The mapped attribute of a StateType column.

    Instance access returns the bound state; assignment validates before any
    SQL; class access gives SQL for every declared name, against the entity
    (so ``aliased()`` works).
    """

    __slots__ = ()
    _statetype: ClassVar[type[StateType[Any]]]
    _protected: ClassVar[bool]
    _label: ClassVar[str]
    _default: ClassVar[StateType[Any] | None]

    def __get__(self, instance: object | None, owner: Any) -> Any:
        if instance is None:
            return self
        try:
            value = instance.__dict__[self.key]
        except KeyError:
            value = _base_get(self, instance, owner)
        try:
            shared = value._shared
        except AttributeError:
            return self._slow_get(value, instance)
        if shared is not None:
            return shared
        return value._bound_cls(instance)

    def _slow_get(self, value: object, instance: object) -> Any:
        if value is None:
            default = self._default
            if default is None or instance_state(instance).key is not None:
                return None
            value = default
        statetype = self._statetype
        member = value if type(value) is statetype else statetype._load_map[value]
        if member is None:
            return None
        shared = member.__dict__["_shared"]
        return shared if shared is not None else member.__dict__["_bound_cls"](instance)

    def __set__(self, instance: object, value: Any) -> None:
        member = self._checked(instance, value)
        self.impl.set(instance_state(instance), instance_dict(instance), member, None)

    def _checked(self, instance: object, value: Any) -> StateType[Any] | None:
        """Assignment's member for ``value``: InvalidStateValue, or ProtectedStateError on a persistent object."""
        member = self._statetype._coerce(value, self._label)
        if self._protected and instance_state(instance).key is not None:
            raise ProtectedStateError(
                f"{self._label} is protected: {instance!r} can only change state through a transition"
            )
        return member

    def __getattr__(self, key: str) -> Any:
        member = self._statetype._members.get(key) if not key.startswith("_") else None
        if member is not None:
            return member._sql(self.__clause_element__(), self.parent.entity)
        return cast("type[QueryableAttribute[Any]]", QueryableAttribute).__getattr__(self, key)

    def _bulk_update_tuples(self, value: Any) -> Sequence[tuple[Any, Any]]:
        # update(Model).values(state=...) and insert(Model).values(...): validated
        # as an assignment is, when the statement is built. SQL expressions pass.
        if value is not None and not is_sql_expression(value):
            value = self._statetype._coerce(value, self._label)
        return super()._bulk_update_tuples(value)

    def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
        # Groups and conditional states compared with == need the entity for
        # their expressions, which the column-level comparator cannot see.
        if op in (operators.eq, operators.ne) and len(other) == 1:
            target = other[0]
            kind = getattr(target, "__dict__", {}).get("_kind") if type(target) is self._statetype else None
            if kind in (GROUP, CONDITIONAL):
                condition = target._sql(self.__clause_element__(), self.parent.entity)
                return condition if op is operators.eq else ~condition
        return super().operate(op, *other, **kwargs)


def guard_setattr(class_: type[Any]) -> None:
    """Route assignments through StateAttribute's checks on a class whose own ``__setattr__``
    bypasses descriptors (SQLModel table models set SQLAlchemy's attribute and
    Pydantic's ``__dict__`` directly), so validation and ``protected=`` still hold."""
    original: Callable[[object, str, Any], None] = getattr(class_, "__setattr__")  # noqa: B009  (typed as unbound)
    if original is object.__setattr__ or getattr(original, "_statetype_guard", False):
        return

    def __setattr__(self: object, name: str, value: Any) -> None:
        attr = getattr(type(self), name, None)
        if isinstance(attr, StateAttribute):
            value = attr._checked(self, value)
        original(self, name, value)

    __setattr__._statetype_guard = True  # type: ignore[attr-defined]
    type.__setattr__(class_, "__setattr__", __setattr__)


class ProtectedColumnProperty(ColumnProperty[Any]):
    """The property of a ``protected=True`` column: ``session.merge()`` cannot change it either."""

    __slots__ = ()
    inherit_cache = True

    def merge(
        self,
        session: Any,
        source_state: InstanceState[Any],
        source_dict: dict[str, Any],
        dest_state: InstanceState[Any],
        dest_dict: dict[str, Any],
        load: bool,
        _recursive: dict[Any, object],
        _resolve_conflict_map: dict[Any, object],
    ) -> None:
        key = self.key
        if load and key in source_dict and dest_state.key is not None:
            new = source_dict[key]
            current = dest_dict[key] if key in dest_dict else dest_state.get_impl(key).get(dest_state, dest_dict)
            if new is not current and new != current:
                raise ProtectedStateError(
                    f"{self.parent.class_.__name__}.{key} is protected: session.merge() cannot change "
                    f"{dest_state.obj()!r} from {current!r} to {new!r}; use a transition"
                )
        super().merge(
            session, source_state, source_dict, dest_state, dest_dict, load, _recursive, _resolve_conflict_map
        )


_PLAIN_VALUES = frozenset({
    type(None), bool, int, float, str, bytes, decimal.Decimal, uuid.UUID, dt.datetime, dt.date, dt.time, dt.timedelta,
})


def is_sql_expression(value: object) -> bool:
    """An SQL expression (a column, a bind parameter, an ORM attribute), not a value."""
    if type(value) in _PLAIN_VALUES:
        return False
    if isinstance(value, ClauseElement):
        return True
    return hasattr(value, "__clause_element__") and not isinstance(value, (TypeEngine, BoundState))
