"""The state as seen on an instance: ``project.state``.

Each plain state gets one small class at StateType creation whose class
attributes answer every check (``is_draft``, ``is_gone``...) as constants;
only conditional checks evaluate a predicate with the object. A state whose
checks are all constants is served by one shared instance, so reading
``obj.state`` allocates nothing. The bound value holds the object, never the
other way round: no reference cycle, and SQLAlchemy's history is untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from sqlalchemy import event
from sqlalchemy.orm import InstrumentedAttribute, Mapper
from sqlalchemy.orm.attributes import QueryableAttribute, instance_dict, instance_state
from sqlalchemy.sql import operators

from .exceptions import ProtectedStateError

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from .states import StateType

__all__ = ["BoundState", "StateAttribute", "covers", "covers_static", "set_state"]

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
        member = self._statetype._coerce(value, self._label)
        state = instance_state(instance)
        if self._protected and state.key is not None:
            raise ProtectedStateError(
                f"{self._label} is protected: {instance!r} can only change state through a transition"
            )
        self.impl.set(state, instance_dict(instance), member, None)

    def __getattr__(self, key: str) -> Any:
        member = self._statetype._members.get(key) if not key.startswith("_") else None
        if member is not None:
            return member._sql(self.__clause_element__(), self.parent.entity)
        return cast("type[QueryableAttribute[Any]]", QueryableAttribute).__getattr__(self, key)

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


def _instrument(mapper: Mapper[Any], class_: type[Any]) -> None:
    from .states import StateType

    manager = mapper.class_manager
    # Mapper.columns (attribute key -> column of every column property) is
    # set during construction; Mapper.attrs would configure every mapper.
    for key, column in list(mapper.columns.items()):
        column_type: StateType[Any] | None = getattr(column, "type", None)  # checked on the next line
        if not isinstance(column_type, StateType):
            continue
        attr = manager.get(key)
        if attr is None or isinstance(attr, StateAttribute):
            continue
        statetype = type(column_type)
        default = None
        column_default = getattr(column, "default", None)
        if column_default is not None and getattr(column_default, "is_scalar", False):
            default = statetype._coerce(column_default.arg, f"{class_.__name__}.{key}")
        attr.__class__ = type(
            "StateAttribute",
            (StateAttribute,),
            {
                "__slots__": (),
                "_statetype": statetype,
                "_protected": bool(column_type.__dict__.get("protected")),
                "_label": f"{attr.class_.__name__}.{key}",
                "_default": default,
            },
        )


event.listen(Mapper, "after_mapper_constructed", _instrument)
event.listen(Mapper, "mapper_configured", _instrument)
