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

A transition's ``form=`` may also be a Pydantic model class: then ``data=``
is validated by the model (``statetype.pydantic.validate_model``), and
``form()`` returns None (there is no WTForms form to render).

WTForms is an optional extra (``statetype[forms]``): this module imports it
only to validate a WTForms form, and ``StateSelectField`` (from
``statetype._wtfields``) when it is asked for; ``statetype`` imports this
module only when a transition has a form.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from typing_extensions import TypeGuard

from .exceptions import TransitionDataInvalid
from .transitions import FormFactory

if TYPE_CHECKING:
    from pydantic import BaseModel
    from wtforms import Form

    from ._wtfields import StateSelectField
    from .transitions import BoundTransition

__all__ = ["StateSelectField", "build_form", "form_class", "is_pydantic_model", "iso_kind", "validate"]


def __getattr__(name: str) -> type[StateSelectField]:
    # StateSelectField subclasses a WTForms field: WTForms is imported when it is asked for.
    if name == "StateSelectField":
        from ._wtfields import StateSelectField

        return StateSelectField
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------ transitions


def _label(bound: BoundTransition[Any, Any]) -> str:
    return f"{type(bound.registry).__name__}.{bound.name}"


def form_class(bound: BoundTransition[Any, Any], obj: object) -> type[Form] | None:
    """The form class for ``obj``: the transition's ``form=``, or what its factory returns."""
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


def build_form(bound: BoundTransition[Any, Any], obj: object, formdata: object = None) -> Form | None:
    """The form bound to ``obj`` (fields prefilled from attributes of the same name), or None.

    ``formdata`` (a multidict such as ``request.form``) is passed on when given;
    when it is None it is left out, so a Flask-WTF ``FlaskForm`` reads the
    current request's submission itself, as ``FlaskForm()`` does.
    """
    cls = form_class(bound, obj)
    if cls is None or is_pydantic_model(cls):
        return None
    if formdata is None:
        return cls(obj=obj)
    return cls(formdata=cast(Any, formdata), obj=obj)


def validate(
    bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any] | None, form: Any
) -> Mapping[str, Any]:
    """Validate a bound form, or a plain mapping through the transition's form class.

    With a form class and neither ``form`` nor ``data``, an empty submission is
    validated, so required fields refuse. ``data`` that is not a mapping is a
    ``TypeError``; a value given as a Python object of another type than its
    field's data (an int for a DateTimeField, a date for a datetime) is a
    ``TransitionDataInvalid`` naming the field. Returns the data for execute hooks:
    the form's ``.data`` without its CSRF token.
    """
    label = _label(bound)
    if data is not None and not isinstance(data, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]  (runtime guard)
        raise TypeError(f"{label}: data= takes a mapping of field names to values, got {type(data).__name__}")
    cls = form_class(bound, obj)
    model: object = cls if cls is not None or form is None else type(cast(object, form))
    if is_pydantic_model(model):
        from .pydantic import validate_model

        return validate_model(model, data, form, label)
    from wtforms.csrf.core import CSRFTokenField

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


def is_pydantic_model(cls: object) -> TypeGuard[type[BaseModel]]:
    """Whether ``cls`` is a Pydantic model class (without importing Pydantic: such a class implies it is loaded)."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(cls, type):
        return False
    return issubclass(cls, pydantic.BaseModel)


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
    wrong = {key: [message] for key, value in data.items() if (message := _wrong_type(form[key], value)) is not None}
    if wrong:
        raise TransitionDataInvalid(
            f"{label}: invalid data: " + "; ".join(f"{key}: {' '.join(m)}" for key, m in wrong.items()), wrong
        )
    for key, value in data.items():
        field = form[key]
        if isinstance(value, str):
            field.process(_OneValue(field.name, value))
            if field.process_errors:
                _parse_iso(field, value)
        else:
            # Given, as a submission would be: InputRequired looks at raw_data.
            field.raw_data = [value]
    return form


def iso_kind(field: object) -> str | None:
    """``date-time`` or ``date`` when ``data=`` also takes RFC 3339 text for ``field`` (see ``_parse_iso``)."""
    from wtforms.fields import DateField, DateTimeField, DateTimeLocalField, MonthField, TimeField, WeekField

    if isinstance(field, (DateTimeLocalField, MonthField, WeekField, TimeField)):
        return None
    if isinstance(field, DateField):
        return "date"
    if isinstance(field, DateTimeField):
        return "date-time"
    return None


def _parse_iso(field: Any, text: str) -> None:
    """The schema publishes date and datetime fields as RFC 3339 (``format: date``/``date-time``):
    take such text when the field's own formats do not parse it. An offset gives an aware datetime."""
    kind = iso_kind(field)
    try:
        if kind == "date-time":
            parsed: object = dt.datetime.fromisoformat(text)
        elif kind == "date":
            parsed = dt.date.fromisoformat(text)
        else:
            return
    except ValueError:
        return
    field.data = parsed
    field.process_errors = []


@functools.cache
def _accepted() -> dict[type, tuple[tuple[type, ...], tuple[type, ...], str]]:
    """The Python types a field's ``.data`` has, for values given in ``data=`` (not as text).

    Looked up along the field class's MRO, so subclasses inherit them. bool is
    an int subclass, and datetime a date subclass: both listed as refused.
    """
    from wtforms import fields

    return {
        fields.DateTimeField: ((dt.datetime,), (), "a datetime"),
        fields.DateField: ((dt.date,), (dt.datetime,), "a date"),
        fields.TimeField: ((dt.time,), (), "a time"),
        fields.IntegerField: ((int,), (bool,), "an integer"),
        fields.FloatField: ((float, int), (bool,), "a number"),
        fields.DecimalField: ((decimal.Decimal, int, float), (bool,), "a number"),
        fields.BooleanField: ((bool,), (), "a boolean"),
        fields.StringField: ((str,), (), "a string"),
    }


def _wrong_type(field: object, value: object) -> str | None:
    """Why ``value`` (given as a Python value) cannot be ``field``'s data; None when it can."""
    if value is None or isinstance(value, str):
        return None  # no value, or text parsed as a submission would be
    for klass in type(field).__mro__:
        accepted = _accepted().get(klass)
        if accepted is not None:
            types, refused, expected = accepted
            if isinstance(value, types) and not isinstance(value, refused):
                return None
            return f"Expected {expected}, got {type(value).__name__} {value!r}."
    return None


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


