"""``StateSelectField``: a WTForms select offering the states of a StateType.

Re-exported as ``statetype.forms.StateSelectField``; this module imports
WTForms, so ``statetype.forms`` loads it only when the field is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from typing_extensions import TypeGuard

try:
    from wtforms.fields import SelectField
    from wtforms.fields import choices as _wtforms_choices
    from wtforms.form import BaseForm
except ModuleNotFoundError as _missing:  # an install without the extra
    if _missing.name != "wtforms":
        raise
    raise ImportError("statetype.forms.StateSelectField needs WTForms: pip install 'statetype[forms]'") from _missing

from .bound import CONDITIONAL, STATE, BoundState
from .exceptions import InvalidStateValue
from .states import StateType

__all__ = ["StateSelectField"]

# WTForms 3.3 declares options as SelectChoice and deprecates tuples; older
# versions only know tuples.
_SelectChoice: Any = getattr(_wtforms_choices, "SelectChoice", None)


# ------------------------------------------------------------------ fields


def _is_member(value: object) -> TypeGuard[StateType[Any]]:
    """A member (state, group, conditional) of some StateType, not a column type instance."""
    return isinstance(value, StateType) and "_kind" in value.__dict__


def _offered(statetype: type[StateType[Any]], states: object) -> tuple[StateType[Any], ...]:
    """Plain states offered by a StateSelectField, in the order given, groups expanded."""
    label = f"StateSelectField({statetype.__name__})"
    if states is None:
        return tuple(statetype.states)
    items: list[object]
    if isinstance(states, StateType):
        items = [cast("object", states)]
    elif isinstance(states, Iterable) and not isinstance(states, (str, bytes)):
        items = list(cast("Iterable[object]", states))
    else:
        raise TypeError(f"{label}: states= takes members of {statetype.__name__}, got {states!r}")
    offered: dict[StateType[Any], None] = {}
    for item in items:
        if not _is_member(item):
            raise TypeError(f"{label}: states= takes members of {statetype.__name__}, got {item!r}")
        if type(item) is not statetype:
            raise TypeError(f"{label}: {item!r} is a member of {type(item).__name__}, not of {statetype.__name__}")
        if item.__dict__["_kind"] == CONDITIONAL:
            raise TypeError(
                f"{label}: {item!r} is a conditional state and cannot be chosen; offer plain states or groups"
            )
        covered: tuple[StateType[Any], ...] = item.states
        offered.update(dict.fromkeys(covered))
    if not offered:
        raise TypeError(f"{label}: states= offers no state")
    return tuple(offered)


_texts: dict[type[StateType[Any]], dict[str, StateType[Any]]] = {}


def _by_text(statetype: type[StateType[Any]]) -> dict[str, StateType[Any]]:
    """Each plain state by the text of its stored value, as an HTML form submits it."""
    found = _texts.get(statetype)
    if found is None:
        found = _texts[statetype] = {str(m.__dict__["_storage"]): m for m in statetype.states}
    return found


class _Coerce:
    """Submitted text, a member, a bound value, a raw or enum value -> the plain state."""

    __slots__ = ("statetype", "by_text")

    def __init__(self, statetype: type[StateType[Any]]) -> None:
        self.statetype = statetype
        self.by_text = _by_text(statetype)

    def __call__(self, value: object) -> StateType[Any]:
        if isinstance(value, BoundState):
            value = value._member
        if _is_member(value):
            if type(value) is self.statetype and value.__dict__["_kind"] == STATE:
                return value
            raise ValueError(f"{value!r} is not a state of {self.statetype.__name__}")
        if isinstance(value, str):
            found = self.by_text.get(value)
            if found is not None:
                return found
        try:
            return self.statetype.from_value(value)
        except InvalidStateValue as error:
            raise ValueError(str(error)) from None


class StateSelectField(SelectField):
    """A select offering states of a StateType, labelled with their titles; ``.data`` is the member.

    ``StateSelectField(ProjectState, label=None, validators=None, states=None, **kwargs)``:
    ``states=`` (members or groups, a single one or an iterable) restricts the
    choices; by default every plain state is offered, in declaration order.
    Option values are the stored values as text; a submitted value outside
    the choices fails validation with "Not a valid choice.". Titles are
    rendered with ``str()`` each time a form is created, so lazy (translated)
    titles follow the request's locale.
    """

    def __init__(
        self,
        statetype: type[StateType[Any]],
        label: str | None = None,
        validators: Sequence[object] | None = None,
        *,
        states: StateType[Any] | Iterable[StateType[Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        given = cast(object, statetype)
        if not isinstance(given, type) or not issubclass(given, StateType) or "_members" not in given.__dict__:
            raise TypeError(f"StateSelectField takes a StateType class with states, got {statetype!r}")
        for argument in ("choices", "coerce"):
            if argument in kwargs:
                raise TypeError(
                    f"StateSelectField({statetype.__name__}) sets {argument}= itself; use states= to restrict choices"
                )
        self.statetype = statetype
        self.states: tuple[StateType[Any], ...] = _offered(statetype, states)
        checks = None if validators is None else list(validators)  # WTForms' stubs take a list or tuple
        super().__init__(label, checks, coerce=_Coerce(statetype), choices=self._state_choices(), **kwargs)

    def pre_validate(self, form: BaseForm) -> None:
        """Check the choice, unless the value did not coerce: its error says it all.

        WTForms 3.3 skips the choice check after a coercion error; 3.2 (which
        SQLAdmin pins) would add "Not a valid choice." to it. Both read alike here.
        """
        if self.process_errors:
            return
        super().pre_validate(form)

    def _state_choices(self) -> list[Any]:
        pairs = [(str(m.__dict__["_storage"]), str(m.title)) for m in self.states]
        if _SelectChoice is not None:
            return [_SelectChoice(value=value, label=title) for value, title in pairs]
        return pairs
