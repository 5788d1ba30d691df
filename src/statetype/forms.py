"""WTForms integration: a transition's form class is its requirements schema.

WTForms is an optional extra (``statetype[forms]``), imported only here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from .exceptions import TransitionDataInvalid

if TYPE_CHECKING:
    from .transitions import BoundTransition

__all__ = ["build_form", "form_class", "validate"]


def form_class(bound: BoundTransition[Any, Any], obj: object) -> type[Any] | None:
    """The form class for ``obj``: the transition's ``form=``, or what its factory returns."""
    from .transitions import FormFactory

    declared = bound.transition._form
    if declared is None:
        return None
    if isinstance(declared, FormFactory):
        factory: Any = declared.func
    elif isinstance(declared, type):
        return declared
    else:
        factory = declared
    result: type[Any] | None = factory(bound.registry, obj)
    return result


def build_form(bound: BoundTransition[Any, Any], obj: object, formdata: Any = None) -> Any:
    """The form bound to ``obj`` (fields prefilled from attributes of the same name), or None."""
    cls = form_class(bound, obj)
    if cls is None:
        return None
    return cls(formdata=formdata, obj=obj)


def _errors(form: Any) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for name, messages in form.errors.items():
        key = "form" if name is None else str(name)
        if isinstance(messages, Mapping):
            nested: Mapping[Any, Any] = messages
            flat = [f"{k}: {m}" for k, ms in nested.items() for m in ms]
        else:
            flat = [str(m) for m in cast("Iterable[Any]", messages)]
        errors[key] = flat
    return errors


def validate(
    bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any] | None, form: Any
) -> Mapping[str, Any]:
    """Validate a bound form, or a plain mapping through the transition's form class.

    With a form class and neither ``form`` nor ``data``, an empty submission is
    validated, so required fields refuse. Returns the data for execute hooks.
    """
    label = f"{type(bound.registry).__name__}.{bound.name}"
    if form is None:
        cls = form_class(bound, obj)
        if cls is None:
            return dict(data or {})
        form = cls(formdata=None, data=dict(data or {}), meta={"csrf": False})
    if not form.validate():
        errors = _errors(form)
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
        raise TransitionDataInvalid(f"{label}: invalid data: {detail}", errors)
    return dict(cast("Mapping[str, Any]", form.data))
