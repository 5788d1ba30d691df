"""WTForms integration: a transition's form class is its requirements schema.

* ``tx.publish.form(obj, formdata=None)`` builds the transition's form bound
  to ``obj`` (fields named like an attribute of ``obj`` start with its value);
* ``tx.publish(obj, form=form)`` validates that form, ``tx.publish(obj,
  data={...})`` validates a plain mapping through the same form class, and
  with neither an empty submission is validated; the form's ``.data`` is what
  execute hooks receive. Invalid input raises ``TransitionDataInvalid``
  before anything changes;
* ``StateSelectField(ProjectState)`` offers states as choices; its ``.data``
  is the member.

WTForms is an optional extra (``statetype[forms]``); only this module imports
it, and ``statetype`` imports this module only when a transition has a form.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from typing_extensions import TypeGuard

try:
    from wtforms.csrf.core import CSRFTokenField
    from wtforms.fields import SelectField
    from wtforms.fields import choices as _wtforms_choices
except ModuleNotFoundError as _missing:  # an install without the extra
    if _missing.name != "wtforms":
        raise
    raise ImportError("statetype.forms needs WTForms: pip install 'statetype[forms]'") from _missing

from .bound import CONDITIONAL, STATE, BoundState
from .exceptions import InvalidStateValue, TransitionDataInvalid
from .states import StateType

if TYPE_CHECKING:
    from .transitions import BoundTransition

__all__ = ["StateSelectField", "build_form", "form_class", "validate"]

# WTForms 3.3 declares options as SelectChoice and deprecates tuples; older
# versions only know tuples.
_SelectChoice: Any = getattr(_wtforms_choices, "SelectChoice", None)


# ------------------------------------------------------------------ transitions


def _label(bound: BoundTransition[Any, Any]) -> str:
    return f"{type(bound.registry).__name__}.{bound.name}"


def form_class(bound: BoundTransition[Any, Any], obj: object) -> type[Any] | None:
    """The form class for ``obj``: the transition's ``form=``, or what its factory returns."""
    from .transitions import FormFactory

    declared = bound.transition._form
    if declared is None:
        return None
    if isinstance(declared, type):
        return declared
    factory: Any = declared.func if isinstance(declared, FormFactory) else declared
    result: object = factory(bound.registry, obj)
    if result is not None and not isinstance(result, type):
        raise TypeError(f"{_label(bound)}: the form factory returned {result!r}, not a form class or None")
    return result


def build_form(bound: BoundTransition[Any, Any], obj: object, formdata: Any = None) -> Any:
    """The form bound to ``obj`` (fields prefilled from attributes of the same name), or None.

    ``formdata`` (a multidict such as ``request.form``) is passed on when given;
    when it is None it is left out, so a Flask-WTF ``FlaskForm`` reads the
    current request's submission itself, as ``FlaskForm()`` does.
    """
    cls = form_class(bound, obj)
    if cls is None:
        return None
    if formdata is None:
        return cls(obj=obj)
    return cls(formdata=formdata, obj=obj)


def validate(
    bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any] | None, form: Any
) -> Mapping[str, Any]:
    """Validate a bound form, or a plain mapping through the transition's form class.

    With a form class and neither ``form`` nor ``data``, an empty submission is
    validated, so required fields refuse. Returns the data for execute hooks:
    the form's ``.data`` without its CSRF token.
    """
    label = _label(bound)
    cls = form_class(bound, obj)
    if form is None:
        if cls is None:
            return dict(data or {})
        form = _form_for_mapping(cls, data or {}, label)
    else:
        if data is not None:
            raise TypeError(f"{label}: pass form= or data=, not both")
        # A factory may build a new class per call: then a form of a class with
        # the same qualified name is the one ``form()`` built.
        if cls is not None and not isinstance(form, cls) and not (
            type(form).__qualname__ == cls.__qualname__ and type(form).__module__ == cls.__module__
        ):
            raise TypeError(f"{label} takes a {cls.__name__}, got a {type(form).__name__}")
    if not form.validate():
        errors = _errors(form.errors)
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
        raise TransitionDataInvalid(f"{label}: invalid data: {detail}", errors)
    result = dict(cast("Mapping[str, Any]", form.data))
    for field in cast("Iterable[Any]", form):
        if isinstance(field, CSRFTokenField):
            result.pop(field.short_name, None)
    return result


class _OneValue:
    """The formdata of one submitted field (what ``request.form`` would hold)."""

    __slots__ = ("name", "values")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.values = [value]

    def __contains__(self, name: object) -> bool:
        return name == self.name

    def __iter__(self) -> Iterator[str]:
        return iter((self.name,))

    def __len__(self) -> int:
        return 1

    def getlist(self, name: str) -> list[str]:
        return list(self.values) if name == self.name else []


def _form_for_mapping(cls: type[Any], data: Mapping[str, Any], label: str) -> Any:
    """A form of ``cls`` holding ``data``: strings parsed as submitted text, other values taken as they are.

    Fields missing from ``data`` take their defaults; keys that are not fields
    of the form are reported as errors. CSRF protection is off: the data does
    not come from a browser.
    """
    python_values = {k: v for k, v in data.items() if not isinstance(v, str)}
    form: Any = cls(formdata=None, data=python_values, meta={"csrf": False})
    unknown = [key for key in data if key not in form]
    if unknown:
        errors = {key: [f"Not a field of {cls.__name__}."] for key in unknown}
        raise TransitionDataInvalid(
            f"{label}: invalid data: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} "
            f"not a field of {cls.__name__} (fields: {', '.join(form.data) or 'none'})",
            errors,
        )
    for key, value in data.items():
        field = form[key]
        if isinstance(value, str):
            field.process(_OneValue(field.name, value))
        else:
            # Given, as a submission would be: InputRequired looks at raw_data.
            field.raw_data = [value]
    return form


def _errors(errors: Mapping[Any, Any]) -> dict[str, list[str]]:
    """``form.errors`` as field name -> messages; nested forms and lists as ``outer-inner``, ``list-0``."""
    flat: dict[str, list[str]] = {}
    for key, messages in errors.items():
        _collect("form" if key is None else str(key), messages, flat)
    return flat


def _collect(name: str, messages: object, flat: dict[str, list[str]]) -> None:
    if isinstance(messages, Mapping):
        for key, inner in cast("Mapping[object, object]", messages).items():
            _collect(name if key is None else f"{name}-{key}", inner, flat)
    elif isinstance(messages, (list, tuple)):
        for index, message in enumerate(cast("Sequence[object]", messages)):
            if isinstance(message, (Mapping, list, tuple)):
                _collect(f"{name}-{index}", cast(object, message), flat)
            else:
                flat.setdefault(name, []).append(str(message))
    else:
        flat.setdefault(name, []).append(str(messages))


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
        validators: Sequence[Any] | None = None,
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
        super().__init__(label, validators, coerce=_Coerce(statetype), choices=self._state_choices(), **kwargs)

    def _state_choices(self) -> list[Any]:
        pairs = [(str(m.__dict__["_storage"]), str(m.title)) for m in self.states]
        if _SelectChoice is not None:
            return [_SelectChoice(value=value, label=title) for value, title in pairs]
        return pairs
