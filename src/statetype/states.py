"""StateType: a state machine declared as a class that is also its column type.

The metaclass turns the class body's declarations into members (instances of
the class), validates them, and precomputes everything the hot paths need:
lookup dictionaries for loading, binding and assignment, and one small bound
class per state for instance access.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast, overload

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.type_api import TypeDecorator, TypeEngine, to_instance
from typing_extensions import Self

from . import bound as _bound
from .bound import CONDITIONAL as _CONDITIONAL
from .bound import GROUP as _GROUP
from .bound import STATE as _STATE
from .bound import UNKNOWN as _UNKNOWN
from .bound import covers_static as _covers_static
from ._declarations import ConditionalState, State, StateGroup, _Declaration
from ._params import install as _install_parameter_guard
from .column import StateComparator, attach_check_constraint, member_sql
from .column import describe_values as _describe_values
from .exceptions import InvalidStateValue, StateDefinitionError

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import Dialect
    from sqlalchemy.sql.elements import BindParameter, ColumnElement
    from sqlalchemy.sql.schema import SchemaEventTarget
    from sqlalchemy.sql.type_api import _BindProcessorType, _ResultProcessorType
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

    _Base = TypeEngine[object]
else:
    _Base = TypeDecorator

T = TypeVar("T")
_S = TypeVar("_S", bound="StateType[Any]")

__all__ = ["StateType", "humanize"]

_generic_class_getitem = Generic.__dict__["__class_getitem__"].__func__

_install_parameter_guard()


def humanize(name: str) -> str:
    """Title from an attribute or enum member name: ``is_gone`` -> "Gone", ``IN_REVIEW`` -> "In review"."""
    if name.isupper():
        name = name.lower()
    if name.startswith("is_"):
        name = name[3:]
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


class _Namespace(dict[str, Any]):
    """Class-body namespace that refuses a state name declared twice, as Enum does."""

    def __init__(self, class_name: str) -> None:
        super().__init__()
        self._class_name = class_name

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self and not (key.startswith("__") and key.endswith("__")):
            old = self[key]
            if old is not value and (isinstance(old, _Declaration) or isinstance(value, _Declaration)):
                raise StateDefinitionError(f"{self._class_name}.{key} is declared twice")
        super().__setitem__(key, value)


class _ClassTuple:
    """Descriptor for ``states``/``groups``/``conditionals``: the class's tuple on
    class access, the member's own on instance access (for ``states``: the plain
    states a group or conditional covers)."""

    def __init__(self, class_attr: str, member_attr: str) -> None:
        self._class_attr = class_attr
        self._member_attr = member_attr

    @overload
    def __get__(self, instance: None, owner: type[_S]) -> tuple[_S, ...]: ...

    @overload
    def __get__(self, instance: _S, owner: type[_S]) -> tuple[_S, ...]: ...

    def __get__(self, instance: object, owner: type[object]) -> tuple[Any, ...]:
        if instance is not None:
            found = instance.__dict__.get(self._member_attr)
            if found is not None:
                return cast("tuple[Any, ...]", found)
        return cast("tuple[Any, ...]", getattr(owner, self._class_attr, ()))


class _StateTypeMeta(type):
    """Builds the members of a StateType subclass at class creation."""

    @classmethod
    def __prepare__(mcls, name: str, bases: tuple[type, ...], /, **kwds: Any) -> _Namespace:
        return _Namespace(name)

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], /, **kwds: Any) -> _StateTypeMeta:
        cls = super().__new__(mcls, name, bases, dict(namespace), **kwds)
        if any(isinstance(b, _StateTypeMeta) for b in bases):
            _build(cast("type[StateType[Any]]", cls), namespace)
        return cls


if TYPE_CHECKING:
    # Type checkers see no custom metaclass: pyright >= 1.1.408 resolves instance
    # attributes such as __dict__ through a custom metaclass (pyright #11548).
    _Meta = type
else:
    _Meta = _StateTypeMeta


class StateType(_Base, Generic[T], metaclass=_Meta):
    """A state machine that is also a SQLAlchemy column type.

    Subclass as ``class ProjectState(StateType[int])`` (``int``, ``str`` or an
    ``enum.Enum`` subclass) with ``State`` members; use ``ProjectState()`` as
    the column type. Class access to a declared name gives its member, an
    instance of the class; instance access on a model (``project.state``)
    gives the current state bound to its object.

    Args:
        impl: The storage type; default inferred (``Integer`` for int,
            ``String`` sized to the longest value for str, the type of the
            values for an enum).
        check: Create a CHECK constraint restricting the column to the
            declared values (named ``ck_<table>_<column>`` unless the
            metadata's naming convention says otherwise); default True.
        protected: Refuse direct assignment on persistent objects, so that
            only transitions change the state; default False.

    Attributes:
        name: The member's attribute name (``"is_draft"``).
        value: The raw value (for an Enum-backed type, the enum member).
        title: The title: given, else from the enum member, else humanized
            from the name (``is_gone`` -> "Gone").
        final: No transition may leave this state.
        initial: Objects start here (the first declared state when none is marked).
        known: False for a value loaded from a row that holds an undeclared value.
        states: On the class, the plain states in declaration order; on a
            group or conditional member, the plain states it covers.
        groups: The groups, in declaration order.
        conditionals: The conditional states, in declaration order.

    Raises:
        StateDefinitionError: At class creation: a value of the wrong type,
            duplicate values, an enum not mapped 1:1, zero states, a name
            declared twice; and when a class without states is instantiated.
        InvalidStateValue: When a value that is not a declared plain state
            is assigned to the column or compared with it in SQL.
        ProtectedStateError: On assignment to a protected column of a
            persistent object.
    """

    cache_ok = True

    # Member attributes (meaningful on members, not on column-type instances).
    name: str
    value: T
    title: str  # may hold a lazy (translated) string at runtime: str() it for a plain str
    final: bool
    initial: bool
    known: bool

    states = _ClassTuple("_all_states", "_covered")
    groups = _ClassTuple("_all_groups", "_no_such_attr")
    conditionals = _ClassTuple("_all_conditionals", "_no_such_attr")

    # Precomputed by the metaclass.
    _value_type: ClassVar[type]
    _declarations: ClassVar[dict[str, _Declaration[Any]]]
    _members: ClassVar[dict[str, StateType[Any]]]
    _all_states: ClassVar[tuple[StateType[Any], ...]]
    _all_groups: ClassVar[tuple[StateType[Any], ...]]
    _all_conditionals: ClassVar[tuple[StateType[Any], ...]]
    _by_value: ClassVar[dict[object, StateType[Any]]]
    _raw_types: ClassVar[frozenset[type]]
    _load_map: ClassVar[_LoadMap]
    _bind_map: ClassVar[_BindMap]
    _sql_type: ClassVar[StateType[Any]]
    comparator_factory = StateComparator

    check: bool
    protected: bool

    if not TYPE_CHECKING:
        # SQLAlchemy's Visitable.__class_getitem__ drops the parameter; keep it
        # so that the metaclass can read T from __orig_bases__.
        def __class_getitem__(cls, params):
            return _generic_class_getitem(cls, params)

    if TYPE_CHECKING:
        # ``project.state`` (typed as the StateType) equals its members, another
        # object's state and its raw value (``project.state == 1``); a member
        # of another StateType is an error under both checkers. Checkers only:
        # runtime equality is below, unchanged.
        def __eq__(self, other: Self | T) -> bool: ...  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]
        def __ne__(self, other: Self | T) -> bool: ...  # type: ignore[override]  # pyright: ignore[reportIncompatibleMethodOverride]
        def __hash__(self) -> int: ...
    else:
        # A plain (or unknown) member equals its stored value (and its enum
        # member), as the raw value is what SQLAlchemy compares it with: the
        # ORM's "evaluate" synchronisation of UPDATE ... WHERE state = 1, and
        # attribute history after a raw value was loaded or synchronised.
        # Groups, conditionals and column types keep identity.
        def __eq__(self, other):
            if other is self:
                return True
            d = self.__dict__
            if "_storage" not in d or isinstance(other, (StateType, _bound.BoundState)):
                return NotImplemented
            if type(other) in type(self)._raw_types:
                return bool(other == d["_storage"] or other == d["value"])
            return NotImplemented

        def __ne__(self, other):
            result = self.__eq__(other)
            return result if result is NotImplemented else not result

        def __hash__(self):
            d = self.__dict__
            return hash(d["_storage"]) if "_storage" in d else object.__hash__(self)

        # Members of one StateType sort by their stored values: SQLAlchemy 2.0's
        # selectinload sorts the keys it loads by, which may be members of a
        # StateType column that is a foreign key.
        def __lt__(self, other):
            d = self.__dict__
            if "_storage" not in d or type(other) is not type(self) or "_storage" not in other.__dict__:
                return NotImplemented
            return d["_storage"] < other.__dict__["_storage"]

        def __gt__(self, other):
            d = self.__dict__
            if "_storage" not in d or type(other) is not type(self) or "_storage" not in other.__dict__:
                return NotImplemented
            return d["_storage"] > other.__dict__["_storage"]

    def __init__(
        self,
        impl: TypeEngine[Any] | type[TypeEngine[Any]] | None = None,
        *,
        check: bool = True,
        protected: bool = False,
    ) -> None:
        if "_members" not in type(self).__dict__:
            raise StateDefinitionError(
                f"{type(self).__name__} declares no states; subclass it as StateType[int] with State members"
            )
        TypeDecorator.__init__(self)  # type: ignore[arg-type]
        if impl is not None:
            self.impl = to_instance(impl)
            self.impl_instance = self.impl
        self.check = check
        self.protected = protected

    # ------------------------------------------------------------------ members

    def _is(self, target: StateType[Any]) -> bool:
        """``member.is_x`` without an object: decidable unless a predicate is involved."""
        if "_kind" not in self.__dict__:
            raise TypeError(f"{type(self).__name__}() is a column type, not a state")
        result = _covers_static(target, self)
        if result is None:
            raise TypeError(
                f"{target!r} depends on the object; ask the object's state instead (obj.state.{target.name})"
            )
        return result

    def __or__(self, other: Self) -> Self:
        """An anonymous group of members: ``ProjectState.is_draft | ProjectState.is_withdrawn``."""
        cls = type(self)
        if type(other) is not cls or "_kind" not in other.__dict__ or "_kind" not in self.__dict__:
            return NotImplemented
        elements = tuple(dict.fromkeys((*_group_parts(self), *_group_parts(other))))
        group = _new_member(cls, _GROUP, " | ".join(m.name for m in elements), None)
        group.__dict__["title"] = " or ".join(str(m.title) for m in elements)
        _finish_group(group, elements, anonymous=True)
        return cast("Self", group)

    def __clause_element__(self) -> BindParameter[Any]:
        """Members bind as their stored value: ``update().values(state=member)``, ``in_([member])``."""
        if self.__dict__.get("_kind") not in (_STATE, _UNKNOWN):
            raise InvalidStateValue(f"{self!r} is not a single state and cannot be used as an SQL value")
        return sa.bindparam(None, self.__dict__["_storage"], type_=type(self)._sql_type, unique=True)

    def __repr__(self) -> str:
        kind = self.__dict__.get("_kind")
        if kind is None:
            return f"{type(self).__name__}()"
        if kind == _UNKNOWN:
            return f"<{type(self).__name__} unknown value {self.__dict__['_storage']!r}>"
        return f"{type(self).__name__}.{self.name}"

    def __str__(self) -> str:
        if "_kind" in self.__dict__:
            return str(self.title)
        return super().__str__()

    def __reduce__(self) -> str | tuple[Any, ...]:
        kind = self.__dict__.get("_kind")
        if kind in (_STATE, _GROUP, _CONDITIONAL) and self.name in type(self)._members:
            return (getattr, (type(self), self.name))
        if kind == _UNKNOWN:
            return (_unknown_member, (type(self), self.__dict__["_storage"]))
        return super().__reduce__()

    def __copy__(self) -> Self:
        if "_kind" in self.__dict__:
            return self
        return self.copy()

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self.__copy__()

    @classmethod
    def from_value(cls, raw: object) -> Self:
        """The state for a raw value, enum member, member or bound value.

        Raises:
            InvalidStateValue: The value is not one of the declared plain states.
        """
        if type(raw) is cls and raw.__dict__.get("_kind") == _STATE:
            return raw
        if isinstance(raw, _bound.BoundState) and type(raw._member) is cls and raw._member.known:
            return raw._member
        if type(raw) in cls._raw_types:
            member = cls._by_value.get(raw)
            if member is not None:
                return cast("Self", member)
        raise InvalidStateValue(f"{cls.__name__}: {raw!r} is not a declared value ({_describe_values(cls)})")

    @classmethod
    def _coerce(cls, value: object, label: str) -> Self | None:
        """Assignment: a member, raw value, enum member or bound value -> member."""
        if type(value) is cls:
            member = value
            kind = member.__dict__.get("_kind")
            if kind == _STATE:
                return member
            if kind is None:
                raise InvalidStateValue(
                    f"{label}: {cls.__name__}() is a column type, not a state; "
                    f"assign one of {', '.join(m.name for m in cls._all_states)}"
                )
            raise InvalidStateValue(f"{label}: {_why_not_assignable(member)}")
        if value is None:
            return None
        if isinstance(value, _bound.BoundState):
            return cls._coerce(value._member, label)
        if type(value) in cls._raw_types:
            found = cls._by_value.get(value)
            if found is not None:
                return cast("Self", found)
        if isinstance(value, StateType):
            if "_kind" not in value.__dict__:
                raise InvalidStateValue(f"{label}: {value!r} is a column type, not a state of {cls.__name__}")
            raise InvalidStateValue(
                f"{label}: {value!r} is a member of {type(value).__name__}, not of {cls.__name__}"  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
            )
        raise InvalidStateValue(f"{label}: {value!r} is not a value of {cls.__name__} ({_describe_values(cls)})")

    # ------------------------------------------------------------------ pydantic

    @classmethod
    def __get_pydantic_core_schema__(cls, source: object, handler: GetCoreSchemaHandler) -> CoreSchema:
        """A StateType class as a Pydantic v2 field type; see ``statetype.pydantic``."""
        from .pydantic import state_core_schema  # the optional extra, imported when Pydantic asks

        return state_core_schema(cls, handler)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The raw values as ``enum``, with titles as ``oneOf`` of ``const`` + ``title``."""
        from .pydantic import json_schema

        return json_schema(cls, schema, handler)

    # --------------------------------------------------------------- column type

    @property
    def python_type(self) -> type[Any]:
        return type(self)

    def bind_processor(self, dialect: Dialect) -> _BindProcessorType[Any] | None:
        convert: Callable[[Any], Any] = type(self)._bind_map.__getitem__
        impl_processor = self.impl_instance.bind_processor(dialect)
        if impl_processor is None:
            return cast("_BindProcessorType[Any]", convert)

        def process(value: Any) -> Any:
            return impl_processor(convert(value))

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> _ResultProcessorType[Any] | None:
        load: Callable[[Any], Any] = type(self)._load_map.__getitem__
        impl_processor = self.impl_instance.result_processor(dialect, coltype)
        if impl_processor is None:
            return cast("_ResultProcessorType[Any]", load)

        def process(value: Any) -> Any:
            return load(impl_processor(value))

        return process

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return type(self)._bind_map[value]

    def process_literal_param(self, value: Any, dialect: Dialect) -> Any:
        return type(self)._bind_map[value]

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return type(self)._load_map[value]

    def _set_parent(self, parent: SchemaEventTarget, outer: bool = False, **kw: Any) -> None:
        super()._set_parent(parent, outer=outer, **kw)  # type: ignore[misc]
        if self.__dict__.get("check") and isinstance(parent, sa.Column):

            def attach(col: sa.Column[Any], table: sa.Table) -> None:
                attach_check_constraint(self, col, table)

            # Column._on_table_attach, written with public API: now if the
            # column is in a table, else on the after_parent_attach event.
            column: sa.Column[Any] = cast(Any, parent)  # isinstance leaves the type argument Unknown
            table: sa.Table | None = getattr(column, "table", None)
            if table is not None:
                attach(column, table)
            else:
                event.listen(column, "after_parent_attach", attach)

    def _sql(self, expr: ColumnElement[Any], entity: object) -> ColumnElement[bool]:
        """This member's SQL condition on ``expr`` (a state column of ``entity``)."""
        return member_sql(self, expr, entity)


# ------------------------------------------------------------------ helpers


class _LoadMap(dict[object, Any]):
    """Stored value -> member; an undeclared value becomes an unknown member."""

    def __init__(self, statetype: type[StateType[Any]]) -> None:
        super().__init__()
        self._statetype = statetype

    def __missing__(self, raw: object) -> StateType[Any]:
        member = _new_member(self._statetype, _UNKNOWN, repr(raw), str(raw), raw)
        member.__dict__.update(known=False, _storage=raw)
        _bound.build_bound_class(member)
        self[raw] = member
        return member


class _BindMap(dict[object, Any]):
    """Member, declared raw value, enum member or bound value -> stored value.

    Declared values are keys (a member hashes and compares as its raw value);
    anything else reaching a statement's parameters through the column (an
    undeclared raw value, another StateType's member) raises InvalidStateValue
    before the statement is sent, unwrapped by SQLAlchemy.
    """

    def __init__(self, statetype: type[StateType[Any]], values: dict[object, object]) -> None:
        super().__init__(values)
        self._statetype = statetype

    def __missing__(self, value: object) -> object:
        member = value._member if isinstance(value, _bound.BoundState) else value
        if type(member) is self._statetype and "_storage" in member.__dict__:
            return member.__dict__["_storage"]  # an unknown value loaded from the database
        cls = self._statetype
        if isinstance(member, StateType):
            raise InvalidStateValue(
                f"{cls.__name__}: {member!r} is not a value of {cls.__name__} and cannot be sent to the database"
            )
        raise InvalidStateValue(
            f"{cls.__name__}: {value!r} is not a declared value and cannot be sent to the database "
            f"({_describe_values(cls)})"
        )


def _unknown_member(cls: type[StateType[Any]], raw: object) -> StateType[Any]:
    """Unpickling an undeclared value: the class's own unknown member (not a copy of its map)."""
    return cast("StateType[Any]", cls._load_map[raw])


def _new_member(
    cls: type[StateType[Any]], kind: str, name: str, title: object, value: object = None
) -> StateType[Any]:
    member = cls.__new__(cls)
    TypeDecorator.__init__(member)  # type: ignore[arg-type]
    member.__dict__.update(
        _kind=kind, name=name, title=title, value=value, final=False, initial=False, known=True, check=False,
        protected=False,
    )
    return member


def _group_parts(member: StateType[Any]) -> tuple[StateType[Any], ...]:
    d = member.__dict__
    if d["_kind"] == _GROUP and d.get("_anonymous"):
        return cast("tuple[StateType[Any], ...]", d["_elements"])
    return (member,)


def _finish_group(group: StateType[Any], elements: tuple[StateType[Any], ...], *, anonymous: bool) -> None:
    d = group.__dict__
    d["_elements"] = elements
    d["_anonymous"] = anonymous
    covered: dict[StateType[Any], None] = {}
    for element in elements:
        covered.update(dict.fromkeys(element.__dict__["_covered"]))
    d["_covered"] = tuple(covered)


def _why_not_assignable(member: StateType[Any]) -> str:
    d = member.__dict__
    cls_name = type(member).__name__
    plain = ", ".join(m.name for m in d.get("_covered", ()))
    if d["_kind"] == _GROUP:
        return f"{cls_name}.{member.name} is a group; assign one of {plain}"
    if d["_kind"] == _CONDITIONAL:
        return f"{cls_name}.{member.name} is a conditional state; assign its base state ({plain})"
    return f"{member!r} is not a declared state of {cls_name} ({_describe_values(type(member))})"


def _storage_type(cls_name: str, values: list[object]) -> TypeEngine[Any]:
    if all(type(v) is int for v in values):
        return sa.Integer()
    if all(isinstance(v, str) for v in values):
        return sa.String(max(len(cast(str, v)) for v in values))
    raise StateDefinitionError(
        f"{cls_name}: stored values must all be int or all be str, got {sorted({type(v).__name__ for v in values})}"
    )


def _value_type_of(cls: type[StateType[Any]]) -> type:
    for base in cast("tuple[Any, ...]", cls.__dict__.get("__orig_bases__", ())):
        origin = getattr(base, "__origin__", None)
        if isinstance(origin, type) and issubclass(origin, StateType):
            args: tuple[object, ...] = getattr(base, "__args__", ())
            if len(args) == 1 and isinstance(args[0], type):
                value_type = args[0]
                if value_type in (int, str) or issubclass(value_type, enum.Enum):
                    return value_type
            raise StateDefinitionError(
                f"{cls.__name__}: the value type must be int, str or an Enum subclass, got {args!r}"
            )
    raise StateDefinitionError(
        f"{cls.__name__}: declare the value type, as in class {cls.__name__}(StateType[int])"
    )


def _iter_declarations(namespace: dict[str, Any]) -> Iterator[tuple[str, _Declaration[Any]]]:
    """Declarations in order; a later name for the same object (``@x.expression``
    under another name) is an alias, not a new member."""
    seen: set[int] = set()
    for key, value in namespace.items():
        if isinstance(value, _Declaration) and id(value) not in seen:  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
            seen.add(id(value))  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
            yield key, value


def _build(cls: type[StateType[Any]], namespace: dict[str, Any]) -> None:
    """Validate the class body and build members and lookup tables."""
    name = cls.__name__
    for base in cls.__mro__[1:]:
        if "_members" in base.__dict__:
            raise StateDefinitionError(f"{name}: cannot subclass {base.__name__}, which already declares states")
    type.__setattr__(cls, "cache_ok", True)
    value_type = _value_type_of(cls)
    declarations = dict(_iter_declarations(namespace))
    for key, decl in declarations.items():
        if decl._name is not None and decl._name != key:
            raise StateDefinitionError(f"{name}.{key} is already declared as {decl._name} in another class")
        decl._name = key
    for key, decl in declarations.items():
        refs: tuple[_Declaration[Any], ...] = ()
        if isinstance(decl, StateGroup):
            refs = decl._elements
        elif isinstance(decl, ConditionalState):
            refs = (decl._base,)
            if not callable(decl._predicate):
                raise StateDefinitionError(
                    f"{name}.{key}: a conditional state needs a predicate function, got {decl._predicate!r}"
                )
            if decl._expression is not None and not callable(decl._expression):
                raise StateDefinitionError(
                    f"{name}.{key}: the SQL expression must be a function, got {decl._expression!r}"
                )
        elif not isinstance(decl, State):
            raise StateDefinitionError(f"{name}.{key}: unsupported declaration {decl!r}")
        for ref in refs:
            if ref._name is None or declarations.get(ref._name) is not ref:
                raise StateDefinitionError(
                    f"{name}.{key} refers to {ref!r}, which is not declared in {name}"
                )
    plain = [(k, d) for k, d in declarations.items() if isinstance(d, State)]
    if not plain:
        raise StateDefinitionError(f"{name} declares no states")

    # Plain states: value checks, storage values, titles.
    storage: dict[object, str] = {}
    enum_seen: dict[object, str] = {}
    for key, decl in plain:
        value = decl._value
        title = decl._title
        if issubclass(value_type, enum.Enum):
            if not isinstance(value, value_type):
                raise StateDefinitionError(
                    f"{name}.{key}: {value!r} is not a member of {value_type.__name__}"
                )
            if value in enum_seen:
                raise StateDefinitionError(
                    f"{name}.{key}: {value!r} is already mapped by {name}.{enum_seen[value]}"
                )
            enum_seen[value] = key
            raw = value.value
            if title is None:
                title = humanize(value.name)
        else:
            if type(value) is not value_type:
                raise StateDefinitionError(
                    f"{name}.{key}: value {value!r} is a {type(value).__name__}, not {value_type.__name__}"
                )
            raw = value
        if raw in storage:
            raise StateDefinitionError(f"{name}.{key}: value {raw!r} is already used by {name}.{storage[raw]}")
        storage[raw] = key
        decl._title = title if title is not None else humanize(key)
    if issubclass(value_type, enum.Enum):
        missing = [m.name for m in value_type if m not in enum_seen]
        if missing:
            raise StateDefinitionError(
                f"{name}: every member of {value_type.__name__} must map to one state; missing {', '.join(missing)}"
            )
    if "impl" not in namespace:
        type.__setattr__(cls, "impl", _storage_type(name, list(storage)))

    members: dict[str, StateType[Any]] = {}
    for key, decl in declarations.items():
        title = decl._title if decl._title is not None else humanize(key)
        if isinstance(decl, State):
            member = _new_member(cls, _STATE, key, title, decl._value)
            raw = decl._value.value if isinstance(decl._value, enum.Enum) else decl._value
            member.__dict__.update(_storage=raw, final=decl._final, initial=decl._initial, _covered=None)
            member.__dict__["_covered"] = (member,)
        elif isinstance(decl, StateGroup):
            member = _new_member(cls, _GROUP, key, title)
            members[key] = member
            _finish_group(member, tuple(cast(StateType[Any], e._member) for e in decl._elements), anonymous=False)
        else:
            assert isinstance(decl, ConditionalState)
            base_member = cast(StateType[Any], decl._base._member)
            member = _new_member(cls, _CONDITIONAL, key, title)
            member.__dict__.update(
                _base=base_member,
                _predicate=decl._predicate,
                _expression=decl._expression,
                _covered=base_member.__dict__["_covered"],
            )
        decl._member = member
        members[key] = member

    states = tuple(m for m in members.values() if m.__dict__["_kind"] == _STATE)
    if not any(m.initial for m in states):
        states[0].__dict__["initial"] = True
    by_value: dict[object, StateType[Any]] = {}
    for member in states:
        by_value[member.__dict__["_storage"]] = member
        by_value[member.value] = member
    raw_types: set[type] = {type(v) for v in by_value}
    if issubclass(value_type, enum.Enum):
        raw_types.add(value_type)

    type.__setattr__(cls, "_value_type", value_type)
    type.__setattr__(cls, "_declarations", declarations)
    type.__setattr__(cls, "_members", members)
    type.__setattr__(cls, "_all_states", states)
    type.__setattr__(cls, "_all_groups", tuple(m for m in members.values() if m.__dict__["_kind"] == _GROUP))
    type.__setattr__(
        cls, "_all_conditionals", tuple(m for m in members.values() if m.__dict__["_kind"] == _CONDITIONAL)
    )
    type.__setattr__(cls, "_by_value", by_value)
    type.__setattr__(cls, "_raw_types", frozenset(raw_types))
    load_map = _LoadMap(cls)
    load_map.update({m.__dict__["_storage"]: m for m in states})
    load_map[None] = None
    type.__setattr__(cls, "_load_map", load_map)
    bind_map = _BindMap(cls, {m: m.__dict__["_storage"] for m in states})
    bind_map[None] = None
    if issubclass(value_type, enum.Enum):
        bind_map.update({m.value: m.__dict__["_storage"] for m in states})
    type.__setattr__(cls, "_bind_map", bind_map)
    sql_type = cls.__new__(cls)
    TypeDecorator.__init__(sql_type)  # type: ignore[arg-type]
    sql_type.check = False
    sql_type.protected = False
    type.__setattr__(cls, "_sql_type", sql_type)
    for member in states:
        _bound.build_bound_class(member)


# ------------------------------------------------------------------ mapping


def _instrument(mapper: Mapper[Any], class_: type[Any]) -> None:
    """Give every StateType column of a mapped class the StateAttribute behaviour (see statetype.bound)."""
    manager = mapper.class_manager
    # Mapper.columns (attribute key -> column of every column property) is
    # set during construction; Mapper.attrs would configure every mapper.
    for key, column in list(mapper.columns.items()):
        column_type: StateType[Any] | None = getattr(column, "type", None)  # checked on the next line
        if not isinstance(column_type, StateType):
            continue
        if column_type.__dict__.get("protected"):
            prop = mapper.get_property_by_column(column)
            if not isinstance(prop, _bound.ProtectedColumnProperty):
                prop.__class__ = _bound.ProtectedColumnProperty
        attr = manager.get(key)
        if attr is None or isinstance(attr, _bound.StateAttribute):
            continue
        statetype = type(column_type)
        default = None
        column_default = getattr(column, "default", None)
        if column_default is not None and getattr(column_default, "is_scalar", False):
            default = statetype._coerce(column_default.arg, f"{class_.__name__}.{key}")
        attr.__class__ = type(
            "StateAttribute",
            (_bound.StateAttribute,),
            {
                "__slots__": (),
                "_statetype": statetype,
                "_protected": bool(column_type.__dict__.get("protected")),
                "_label": f"{attr.class_.__name__}.{key}",
                "_default": default,
            },
        )
        _bound.guard_setattr(class_)


event.listen(Mapper, "after_mapper_constructed", _instrument)
event.listen(Mapper, "mapper_configured", _instrument)
