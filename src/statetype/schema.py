"""JSON Schema of a transition's requirements, and ``describe()`` for APIs.

``tx.publish.schema(obj=None)`` is a JSON Schema (draft 2020-12) of the
``data=`` a transition takes: built from its WTForms form (field types,
required fields, lengths, number ranges, choices, labels and descriptions)
or, for a Pydantic model given as ``form=``, the model's own JSON Schema. A
transition without requirements has the schema of an object with no declared
properties. ``tx.describe(obj)`` lists every transition of the registry with
whether it is allowed, why not, and that schema: what an API returns so that
a client can render buttons and forms.

Neither WTForms nor Pydantic is imported here: a form class of either kind
implies its library is already loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Union, cast

from typing_extensions import TypeAlias, TypeAliasType, TypedDict  # Pydantic reads typing_extensions TypedDicts on Python < 3.12

from .forms import form_class, is_pydantic_model, iso_kind

if TYPE_CHECKING:
    from .transitions import BoundTransition, Transitions

__all__ = ["DRAFT", "JSON", "ReasonDescription", "TransitionDescription", "describe", "requirements_schema"]

if TYPE_CHECKING:
    JSON: TypeAlias = Union[str, int, float, bool, None, list["JSON"], dict[str, "JSON"]]
else:
    # A TypeAliasType at runtime, so that Pydantic (a FastAPI response model) resolves the recursion too.
    JSON = TypeAliasType("JSON", Union[str, int, float, bool, None, list["JSON"], dict[str, "JSON"]])
"""A JSON value, as ``json.loads`` returns it."""

DRAFT = "https://json-schema.org/draft/2020-12/schema"


class ReasonDescription(TypedDict):
    """One reason a transition is refused: ``kind`` (state, guard, permission, chain, timer, unknown) and ``message``."""

    kind: str
    message: str


class TransitionDescription(TypedDict):
    """One entry of ``describe()``."""

    name: str
    title: str
    meta: dict[str, JSON]
    allowed: bool
    reasons: list[ReasonDescription]
    schema: dict[str, JSON]


# ------------------------------------------------------------------ describe


def describe(registry: Transitions[Any, Any], obj: object) -> list[TransitionDescription]:
    """One entry per transition of ``registry``, in declaration order, for ``obj`` and the registry's actor."""
    result: list[TransitionDescription] = []
    for transition in registry.transitions():
        bound = cast("BoundTransition[Any, Any]", getattr(registry, transition.name))
        verdict = bound.check(obj)
        result.append(
            {
                "name": bound.name,
                "title": str(bound.title),
                "meta": {str(k): _jsonable(v) for k, v in bound.meta.items()},
                "allowed": bool(verdict),
                "reasons": [{"kind": r.kind, "message": str(r.message)} for r in verdict.reasons],
                "schema": requirements_schema(bound, obj),
            }
        )
    return result


def _jsonable(value: object) -> JSON:
    """Meta values as JSON: mappings and sequences copied, other objects (lazy strings...) as ``str()``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in cast("Mapping[object, object]", value).items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in cast("Iterable[object]", value)]
    return str(value)


# ------------------------------------------------------------------ schema


def requirements_schema(bound: BoundTransition[Any, Any], obj: object = None) -> dict[str, JSON]:
    """The JSON Schema of what ``bound`` requires; see ``BoundTransition.schema``."""
    declared = bound.transition._form
    if declared is not None and not isinstance(declared, type) and obj is None:
        raise TypeError(
            f"{type(bound.registry).__name__}.{bound.name} chooses its form per object; pass the object: schema(obj)"
        )
    cls = form_class(bound, obj)
    schema: dict[str, JSON] = {"$schema": DRAFT, "title": str(bound.title)}
    if cls is None:
        schema.update({"type": "object", "properties": {}})
        return schema
    if is_pydantic_model(cls):
        model_schema = cast("dict[str, JSON]", cls.model_json_schema())
        model_schema.pop("title", None)
        schema.update(model_schema)
        return schema
    form: Any = cls(formdata=None, meta={"csrf": False})
    doc = _first_paragraph(cls.__doc__)
    if doc:
        schema["description"] = doc
    schema.update(_form_schema(form))
    return schema


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _form_schema(form: Any) -> dict[str, JSON]:
    from wtforms.csrf.core import CSRFTokenField

    properties: dict[str, JSON] = {}
    required: list[JSON] = []
    for field in cast("Iterable[Any]", form):
        if isinstance(field, CSRFTokenField):
            continue
        prop, is_required = _field_schema(field)
        properties[field.short_name] = prop
        if is_required:
            required.append(field.short_name)
    schema: dict[str, JSON] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    # Keys that are not fields are refused by ``data=``.
    schema["additionalProperties"] = False
    return schema


_STRFTIME = {
    "%Y": r"\d{4}",
    "%m": r"\d{1,2}",
    "%d": r"\d{1,2}",
    "%H": r"\d{1,2}",
    "%M": r"\d{1,2}",
    "%S": r"\d{1,2}",
    "%f": r"\d{1,6}",
    "%W": r"\d{1,2}",
    "%U": r"\d{1,2}",
    "%y": r"\d{2}",
    "%%": "%",
}


# Escaped in a JSON Schema (ECMA-262) pattern; re.escape also escapes "-", an invalid escape there.
_ECMA_SPECIAL = re.compile(r"[.^$*+?()\[\]{}|\\/]")


def _format_pattern(formats: Iterable[str]) -> str | None:
    """A regular expression matching text in any of the strftime ``formats``; None for directives it cannot say."""
    alternatives: list[str] = []
    for fmt in formats:
        parts: list[str] = []
        for piece in re.split(r"(%.)", fmt):
            if piece.startswith("%") and len(piece) == 2:
                if piece not in _STRFTIME:
                    return None
                parts.append(_STRFTIME[piece])
            else:
                parts.append(_ECMA_SPECIAL.sub(r"\\\g<0>", piece))
        alternatives.append("".join(parts))
    if not alternatives:
        return None
    return "^(?:" + "|".join(alternatives) + ")$"


def _field_schema(field: Any) -> tuple[dict[str, JSON], bool]:
    """(schema, required) of one bound WTForms field."""
    from wtforms import fields as f
    from wtforms import validators as v

    from ._wtfields import StateSelectField

    schema: dict[str, JSON] = {}
    label = getattr(field, "label", None)
    if label is not None and str(label.text):
        schema["title"] = str(label.text)
    if field.description:
        schema["description"] = str(field.description)

    json_type: str | None = None
    if isinstance(field, StateSelectField):
        values: list[tuple[JSON, str]] = [(m.__dict__["_storage"], str(m.title)) for m in field.states]
        json_type = _type_of([value for value, _ in values])
        schema.update(_choice_schema(values, json_type))
    elif isinstance(field, f.SelectMultipleField):
        items = _choices(field)
        item_schema: dict[str, JSON] = {}
        if items is not None:
            item_schema = _choice_schema(items, _type_of([value for value, _ in items]))
        schema.update({"type": "array", "items": item_schema, "uniqueItems": True})
        json_type = "array"
    elif isinstance(field, (f.SelectField, f.RadioField)):
        choices = _choices(field)
        if choices is not None:
            json_type = _type_of([value for value, _ in choices])
            schema.update(_choice_schema(choices, json_type))
    elif isinstance(field, f.BooleanField):
        json_type = "boolean"
    elif isinstance(field, f.IntegerField):
        json_type = "integer"
    elif isinstance(field, (f.DecimalField, f.FloatField)):
        json_type = "number"
    elif isinstance(field, f.DateTimeField):
        kind = iso_kind(field)
        json_type = "string"
        if kind is not None:
            schema["format"] = kind
        else:
            pattern = _format_pattern(list(field.format))
            if pattern is not None:
                schema["pattern"] = pattern
    elif isinstance(field, f.FormField):
        schema.update(_form_schema(cast(Any, field).form))
        json_type = "object"
    elif isinstance(field, f.FieldList):
        json_type = "array"
        schema["type"] = "array"
        if field.min_entries:
            schema["minItems"] = field.min_entries
        if field.max_entries is not None:
            schema["maxItems"] = field.max_entries
    elif isinstance(field, f.StringField):
        json_type = "string"
        if isinstance(field, f.EmailField):
            schema["format"] = "email"
        elif isinstance(field, f.URLField):
            schema["format"] = "uri"
    if json_type is not None and "type" not in schema:
        schema["type"] = json_type

    # Optional fields are left out of "required"; null is not offered, as
    # several validators (NumberRange, AnyOf, Regexp, choices) refuse None.
    required = False
    for validator in cast("Iterable[Any]", cast(Any, field).validators):
        if isinstance(validator, (v.DataRequired, v.InputRequired)):
            required = True
            if json_type == "string":
                schema["minLength"] = max(cast(int, schema.get("minLength", 0)), 1)
            elif isinstance(validator, v.DataRequired) and json_type == "boolean":
                schema["const"] = True
            elif isinstance(validator, v.DataRequired) and json_type in ("integer", "number"):
                schema["not"] = {"const": 0}
        elif isinstance(validator, v.Length):
            minimum = cast("int | None", validator.min)  # the stubs say int; WTForms' default is -1
            maximum = cast("int | None", validator.max)
            if minimum is not None and minimum >= 0:
                schema["minLength"] = max(cast(int, schema.get("minLength", 0)), minimum)
            if maximum is not None and maximum >= 0:
                schema["maxLength"] = validator.max
        elif isinstance(validator, v.NumberRange):
            if validator.min is not None:
                schema["minimum"] = cast(JSON, _number(validator.min))
            if validator.max is not None:
                schema["maximum"] = cast(JSON, _number(validator.max))
        elif isinstance(validator, v.AnyOf):
            schema["enum"] = [_scalar(x) for x in cast("Iterable[object]", validator.values)]
        elif isinstance(validator, v.NoneOf):
            schema["not"] = {"enum": [_scalar(x) for x in cast("Iterable[object]", validator.values)]}
        elif isinstance(validator, v.Regexp):
            regex: Any = validator.regex
            pattern_text = regex.pattern if isinstance(regex.pattern, str) else None
            if pattern_text is not None:
                # WTForms matches from the start (re.match): anchor the JSON Schema pattern likewise.
                schema["pattern"] = pattern_text if pattern_text.startswith("^") else "^(?:" + pattern_text + ")"
        elif isinstance(validator, v.Email):
            schema["format"] = "email"
        elif isinstance(validator, v.URL):
            schema["format"] = "uri"
        elif isinstance(validator, v.UUID):
            schema["format"] = "uuid"
    default = field.default
    if not callable(default) and isinstance(default, (str, int, float, bool)) and default != "":
        schema["default"] = default
    return schema, required


def _choices(field: Any) -> list[tuple[JSON, str]] | None:
    """A select's (value, label) pairs, option groups flattened; None when it has no choices yet."""
    choices = field.choices
    if choices is None:
        return None
    if isinstance(choices, Mapping):
        flat: list[object] = [c for group in cast("Mapping[object, Iterable[object]]", choices).values() for c in group]
    else:
        flat = list(cast("Iterable[object]", choices))
    pairs: list[tuple[JSON, str]] = []
    for choice in flat:
        value: object = getattr(choice, "value", None)
        label: object = getattr(choice, "label", None)
        if isinstance(choice, (tuple, list)):
            items: list[object] = list(cast("Iterable[object]", choice))
            value, label = items[0], items[1] if len(items) > 1 else items[0]
        elif not hasattr(choice, "value"):
            value = label = choice
        pairs.append((_scalar(value), str(label)))
    return pairs


def _scalar(value: object) -> JSON:
    attrs: dict[str, Any] = getattr(value, "__dict__", {})
    if "_kind" in attrs and "_storage" in attrs:  # a member: its stored value
        return cast(JSON, attrs["_storage"])
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _number(value: object) -> int | float | str:
    if isinstance(value, (int, float)):
        return value
    try:
        return float(cast(Any, value))
    except (TypeError, ValueError):
        return str(value)


def _type_of(values: list[JSON]) -> str | None:
    kinds = {type(value) for value in values}
    if kinds <= {str}:
        return "string"
    if kinds <= {int} or kinds <= {bool}:
        return "integer" if kinds <= {int} else "boolean"
    if kinds <= {int, float}:
        return "number"
    return None


def _choice_schema(values: list[tuple[JSON, str]], json_type: str | None) -> dict[str, JSON]:
    schema: dict[str, JSON] = {}
    if json_type is not None:
        schema["type"] = json_type
    schema["enum"] = [value for value, _ in values]
    schema["oneOf"] = [{"const": value, "title": title} for value, title in values]
    return schema
