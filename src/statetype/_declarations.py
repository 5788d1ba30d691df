"""What a StateType class body declares: states, groups and conditional states.

These objects exist in the class body only; once the class is built each one
acts as a descriptor that returns its member (an instance of the StateType
class) on class access, and a ``bool`` on instance access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from typing_extensions import Self

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from .states import StateType

T = TypeVar("T")
_S = TypeVar("_S", bound="StateType[Any]")

__all__ = ["ConditionalState", "State", "StateGroup"]


class _Predicate(Protocol):
    """``def is_future(self, project: Project) -> bool``."""

    def __call__(self, state: Any, obj: Any, /) -> bool: ...


class _SQLExpression(Protocol):
    """``def _is_future_sql(self, project: type[Project]) -> ColumnElement[bool]``."""

    def __call__(self, state: Any, model: Any, /) -> ColumnElement[bool]: ...


class _Declaration(Generic[T]):
    """Base of State, StateGroup and ConditionalState."""

    _name: str | None
    _title: object | None  # "| None" keeps pyright from narrowing "x._title is None" to Never
    _member: StateType[Any] | None

    def __init__(self, title: object = None) -> None:
        self._title = title
        self._name = None
        self._member = None

    def titled(self, title: object) -> Self:
        """Set the title (a string or any object with ``__str__``, such as a lazy string)."""
        self._title = title
        return self

    def conditional(self, predicate: _Predicate) -> ConditionalState[T]:
        """Declare a conditional state based on this one: ``@is_published.conditional``."""
        return ConditionalState(self, predicate)

    def __or__(self, other: _Declaration[T]) -> StateGroup[T]:
        if not isinstance(other, _Declaration):  # pyright: ignore[reportUnnecessaryIsInstance]  (runtime guard)
            return NotImplemented
        return StateGroup(self, other)

    @overload
    def __get__(self, instance: None, owner: type[_S]) -> _S: ...

    @overload
    def __get__(self, instance: object, owner: type[object]) -> bool: ...

    def __get__(self, instance: object, owner: type[object]) -> object:
        member = self._member
        if member is None:
            raise AttributeError(f"{self!r} is not declared in a StateType class")
        if instance is None:
            return member
        return instance._is(member)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name or '(unnamed)'}>"


class State(_Declaration[T]):
    """A plain state: ``is_draft = State(1, "Draft")``.

    For an Enum-backed StateType, ``State(MyEnum.DRAFT)`` takes value and
    title from the enum member.

    Args:
        value: The stored value, of the StateType's type parameter.
        title: Display title, a str or a lazy string; default from the enum
            member, else humanized from the attribute name.
        final: No transition may leave this state; default False.
        initial: Objects start here; default False (then the first declared
            state is initial).
    """

    def __init__(
        self,
        value: T,
        title: object = None,
        *,
        final: bool = False,
        initial: bool = False,
    ) -> None:
        super().__init__(title)
        self._value = value
        self._final = final
        self._initial = initial


class StateGroup(_Declaration[T]):
    """A group of states, built with ``|``: ``is_gone = is_withdrawn | is_deleted``.

    May contain states, conditional states and other groups. In SQL a group is
    ``state IN (...)``, OR'ed with the SQL of each conditional state it holds.
    """

    _elements: tuple[_Declaration[T], ...]

    def __init__(self, *elements: _Declaration[T]) -> None:
        super().__init__(None)
        flat: list[_Declaration[T]] = []
        for element in elements:
            # An unnamed group built by chained ``|`` is flattened; a named
            # group stays a reference so that its SQL and title are reused.
            if isinstance(element, StateGroup) and element._name is None and element._title is None:
                flat.extend(e for e in element._elements if e not in flat)
            elif element not in flat:
                flat.append(element)
        self._elements = tuple(flat)


class ConditionalState(_Declaration[T]):
    """A state that holds when its base holds and a predicate on the object is true.

    ``.expression`` declares the SQL form, taking the model class (or alias).
    """

    def __init__(self, base: _Declaration[T], predicate: _Predicate) -> None:
        super().__init__(None)
        self._base = base
        self._predicate = predicate
        self._expression: _SQLExpression | None = None

    def expression(self, expression: _SQLExpression) -> Self:
        """Declare the SQL form; give it another name than the predicate."""
        self._expression = expression
        return self
