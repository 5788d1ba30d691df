"""Pydantic v2: StateType classes as field types, Pydantic models as transition requirements.

* ``class ProjectOut(BaseModel): state: ProjectState`` validates a member, a
  loaded value (``project.state``, so ``model_validate(project,
  from_attributes=True)`` works), an enum member, the raw value or the
  member's name, and gives the member; it serializes to the raw value in JSON
  mode (Enum-backed: the enum's value); its JSON Schema lists the raw values
  as ``enum`` and, with titles, as ``oneOf`` of ``const`` + ``title``.
* ``Transition(..., form=PublishIn)`` with a Pydantic model: ``data=`` is
  validated by the model (``validate_model``).

Pydantic is an optional extra (``statetype[pydantic]``): only this module
imports it, and statetype imports this module only when Pydantic asks a
StateType for its schema or a transition's form is a Pydantic model.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

try:
    from pydantic import BaseModel, ValidationError
    from pydantic_core import PydanticCustomError, core_schema
except ModuleNotFoundError as _missing:  # an install without the extra
    if _missing.name not in ("pydantic", "pydantic_core"):
        raise
    raise ImportError("statetype.pydantic needs pydantic: pip install 'statetype[pydantic]'") from _missing

from .bound import CONDITIONAL, GROUP, STATE, BoundState
from .exceptions import InvalidStateValue, TransitionDataInvalid
from .states import StateType

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue

__all__ = ["is_model", "json_schema", "state_core_schema", "state_json_schema", "validate_model"]


# ------------------------------------------------------------------ field type


def state_core_schema(cls: type[StateType[Any]], handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    """The core schema of ``cls`` as a field type: validate to the member, serialize JSON to the raw value."""
    validate = _validator(cls)
    return core_schema.no_info_plain_validator_function(
        validate,
        ref=f"statetype:{cls.__module__}.{cls.__qualname__}:{id(cls)}",
        serialization=core_schema.plain_serializer_function_ser_schema(
            _serialize, when_used="json-unless-none"
        ),
    )


def state_json_schema(cls: type[StateType[Any]]) -> dict[str, Any]:
    """``{"title", "type", "enum": [raw...], "oneOf": [{"const": raw, "title": title}...]}``."""
    raws = [m.__dict__["_storage"] for m in cls.states]
    schema: dict[str, Any] = {"title": cls.__name__}
    doc = _first_paragraph(cls.__doc__)
    if doc:
        schema["description"] = doc
    schema["type"] = "integer" if all(type(r) is int for r in raws) else "string"
    schema["enum"] = raws
    schema["oneOf"] = [{"const": m.__dict__["_storage"], "title": str(m.title)} for m in cls.states]
    return schema


def json_schema(
    cls: type[StateType[Any]], schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
) -> JsonSchemaValue:
    """``__get_pydantic_json_schema__`` of a StateType class."""
    return state_json_schema(cls)


def _serialize(value: object) -> object:
    try:
        return cast(object, value.__dict__["_storage"])  # a member: the common case
    except (AttributeError, KeyError):
        pass
    if isinstance(value, BoundState):  # assigned without validation (validate_assignment off)
        return cast(object, value._member.__dict__["_storage"])
    if isinstance(value, enum.Enum):
        return cast(object, value.value)
    return value


def _validator(cls: type[StateType[Any]]) -> Any:
    members = cls._members
    by_value = cls._by_value
    raw_types = cls._raw_types
    lookup = by_value.get

    def validate(value: object) -> StateType[Any]:
        if type(value) in raw_types:  # the common case: a raw value (True is not 1: bool is not a raw type)
            found = lookup(value)
            if found is not None:
                return found
        elif type(value) is cls and value.__dict__.get("_kind") == STATE:
            return value
        if "_kind" not in getattr(value, "__dict__", {}) and isinstance(value, StateType):
            raise _error(cls, cast(object, value))  # a column type instance, not a member
        if isinstance(value, str) and value not in by_value:
            named = members.get(value)
            if named is not None:
                value = named
        try:
            member = cls._coerce(value, cls.__name__)
        except InvalidStateValue:
            member = None
        if member is None:
            raise _error(cls, value)
        return member

    return validate


def _error(cls: type[StateType[Any]], value: object) -> PydanticCustomError:
    """"ProjectState: 9 is not a state; allowed: 1 (is_draft), 2 (is_published) or their names"."""
    if isinstance(value, BoundState):
        value = value._member
    attrs: dict[str, Any] = getattr(value, "__dict__", {})
    kind = attrs.get("_kind")
    if type(value) is cls and kind in (GROUP, CONDITIONAL):
        plain = ", ".join(m.name for m in attrs["_covered"])
        what = "a group" if kind == GROUP else "a conditional state"
        detail = f"{cls.__name__}.{attrs['name']} is {what} (one of {plain}), not one state"
    elif kind is not None and type(value) is not cls:
        detail = f"{value!r} is a member of {type(value).__name__}, not of {cls.__name__}"
    else:
        detail = f"{cls.__name__}: {value!r} is not a state"
    allowed = ", ".join(f"{m.__dict__['_storage']!r} ({m.name})" for m in cls.states)
    return PydanticCustomError(
        "statetype_value",
        "{detail}; allowed: {allowed} or their names",
        {"detail": detail, "statetype": cls.__name__, "allowed": allowed},
    )


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


# ------------------------------------------------------------------ requirements


def is_model(cls: object) -> bool:
    """Whether ``cls`` is a Pydantic model class."""
    return isinstance(cls, type) and issubclass(cls, BaseModel)


def validate_model(model: type[BaseModel], data: Mapping[str, Any] | None, form: object, label: str) -> dict[str, Any]:
    """Validate ``data`` (or take ``form``, an instance of ``model``) and return the data for execute hooks.

    The result is ``instance.model_dump()``: field name -> validated value,
    Python objects kept (datetimes, members). Invalid data raises
    ``TransitionDataInvalid`` whose ``.errors`` maps each field (nested
    locations joined with ``-``; ``form`` for model-level errors) to messages.
    """
    if form is not None:
        if data is not None:
            raise TypeError(f"{label}: pass form= or data=, not both")
        if not isinstance(form, model):
            raise TypeError(f"{label} takes a {model.__name__}, got a {type(form).__name__}")
        instance = form
    else:
        try:
            instance = model.model_validate(dict(data or {}))
        except ValidationError as error:
            errors: dict[str, list[str]] = {}
            for item in error.errors(include_url=False):
                key = "-".join(str(part) for part in item["loc"]) or "form"
                errors.setdefault(key, []).append(item["msg"])
            detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
            raise TransitionDataInvalid(f"{label}: invalid data: {detail}", errors) from None
    return instance.model_dump()

