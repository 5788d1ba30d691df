"""Hypothesis strategies for the data of a WTForms form, derived from its fields and validators.

Every value is given as a browser would submit it (text) except booleans
and multiple selections, which are given as Python values, so that
``tx.publish(obj, data=...)`` validates them through the form as usual.
"""

from __future__ import annotations

import datetime as dt
import decimal
import weakref
from collections.abc import Callable, Sequence
from typing import Any, cast

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from wtforms import fields as wf
from wtforms import validators as wv
from wtforms.csrf.core import CSRFTokenField

from .strategies import FormData, FormNotSupported

__all__ = ["derive"]

_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0x7E)  # printable ASCII: safe in every column charset
_MAX_TEXT = 30  # strings without a Length(max=...) stay short
_INT_RANGE = (-(2**31), 2**31 - 1)  # fits an INTEGER column on every database
_FLOAT_RANGE = (-1e9, 1e9)
_DATETIMES = (dt.datetime(1970, 1, 2), dt.datetime(2099, 12, 31))
_SKIPPED = (CSRFTokenField, wf.SubmitField)

_cache: weakref.WeakKeyDictionary[type[Any], SearchStrategy[FormData] | FormNotSupported] = weakref.WeakKeyDictionary()


def derive(form: type[Any]) -> SearchStrategy[FormData]:
    """``statetype.testing.strategies.form_data``: derived once per form class."""
    cached = _cache.get(form)
    if cached is None:
        try:
            cached = _derive(form)
        except FormNotSupported as error:
            cached = error
        _cache[form] = cached
    if isinstance(cached, FormNotSupported):
        raise cached
    return cached


def _derive(form_class: type[Any]) -> SearchStrategy[FormData]:
    form: Any = form_class(formdata=None, meta={"csrf": False})
    required: dict[str, SearchStrategy[object]] = {}
    optional: dict[str, SearchStrategy[object]] = {}
    for field in cast("Sequence[Any]", list(form)):
        if isinstance(field, _SKIPPED):
            continue
        validators: list[Any] = list(field.validators or ())
        may_omit = not validators or any(isinstance(v, wv.Optional) for v in validators)
        if isinstance(field, wf.SelectField) and not isinstance(field, wf.SelectMultipleField):
            may_omit = False  # its pre-validation refuses a missing choice, Optional() or not
        try:
            label = f"{form_class.__name__}.{field.short_name} ({type(field).__name__})"
            strategy = _field(field, validators, label)
        except FormNotSupported:
            if may_omit:
                continue
            raise
        (optional if may_omit else required)[field.short_name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def _field(field: Any, validators: list[Any], label: str) -> SearchStrategy[object]:
    required = any(isinstance(v, (wv.InputRequired, wv.DataRequired)) for v in validators)
    if isinstance(field, wf.BooleanField):
        return st.just(True) if required else st.booleans()
    if isinstance(field, wf.SelectMultipleField):
        values = _choice_values(field, label)
        return st.lists(st.sampled_from(values), unique=True, min_size=1 if required else 0).map(list)
    if isinstance(field, wf.SelectField):  # RadioField too
        return st.sampled_from([str(v) for v in _choice_values(field, label)])
    if isinstance(field, wf.IntegerField):
        low, high = _bounds(validators, _INT_RANGE)
        return st.integers(int(low), int(high)).map(str)
    if isinstance(field, wf.DecimalField):
        low, high = _bounds(validators, _INT_RANGE)
        places = field.places if isinstance(field.places, int) else 2
        return st.decimals(decimal.Decimal(low), decimal.Decimal(high), places=places).map(str)
    if isinstance(field, wf.FloatField):
        low, high = _bounds(validators, _FLOAT_RANGE)
        return st.floats(float(low), float(high), allow_nan=False, allow_infinity=False).map(repr)
    if isinstance(field, (wf.DateTimeField, wf.DateField, wf.TimeField)):
        return _when(field, validators)
    if isinstance(field, wf.StringField):
        return _text(validators, required, label)
    raise FormNotSupported(f"{label}: no data strategy for {type(field).__name__}; pass one with walks(data=...)")


def _bounds(validators: list[Any], default: tuple[float, float]) -> tuple[Any, Any]:
    low: Any
    high: Any
    low, high = default
    for validator in validators:
        if isinstance(validator, wv.NumberRange):
            if validator.min is not None:
                low = max(low, validator.min)
            if validator.max is not None:
                high = min(high, validator.max)
    return low, high


def _choice_values(field: Any, label: str) -> list[Any]:
    if field.choices is None:
        raise FormNotSupported(f"{label} has no choices (set in the view?); pass data with walks(data=...)")
    values: list[Any] = []
    for choice in field.iter_choices():
        values.append(choice.value if hasattr(choice, "value") else choice[0])
    if not values:
        raise FormNotSupported(f"{label} has no choices; pass data with walks(data=...)")
    return values


def _when(field: Any, validators: list[Any]) -> SearchStrategy[object]:
    given: object = field.format
    fmt = str(cast("Sequence[object]", given)[0]) if isinstance(given, (list, tuple)) else str(given)
    low, high = _DATETIMES
    for validator in validators:
        if isinstance(validator, getattr(wv, "DateRange", ())):
            given_min: Any = getattr(validator, "min", None)
            given_max: Any = getattr(validator, "max", None)
            if given_min is not None:
                low = max(low, _as_datetime(given_min))
            if given_max is not None:
                high = min(high, _as_datetime(given_max))
    if isinstance(field, wf.TimeField):
        return st.times().map(lambda t: t.strftime(fmt))
    # Whole minutes: every format and every database's DATETIME keep them.
    moments = st.datetimes(low, high).map(lambda d: d.replace(second=0, microsecond=0))
    moments = moments.filter(lambda d: low <= d <= high)
    return moments.map(lambda d: d.strftime(fmt))


def _as_datetime(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime(value.year, value.month, value.day)


def _text(validators: list[Any], required: bool, label: str) -> SearchStrategy[object]:
    low, high = (1 if required else 0), -1
    for validator in validators:
        if isinstance(validator, wv.Length):
            low = max(low, validator.min)
            if validator.max != -1:
                high = validator.max if high == -1 else min(high, validator.max)
    if high == -1:
        high = max(low, _MAX_TEXT)
    if low > high:
        raise FormNotSupported(f"{label}: Length allows no string ({low} to {high} characters)")
    fits: Callable[[str], bool] = lambda s: low <= len(s) <= high
    strategy: SearchStrategy[str]
    choices = next((v for v in validators if isinstance(v, wv.AnyOf)), None)
    pattern = next((v for v in validators if isinstance(v, wv.Regexp)), None)
    if choices is not None:
        strategy = st.sampled_from([str(v) for v in cast("Sequence[object]", choices.values)]).filter(fits)
    elif pattern is not None:
        strategy = st.from_regex(pattern.regex, fullmatch=True, alphabet=_TEXT).filter(fits)
    elif any(isinstance(v, wv.UUID) for v in validators):
        strategy = st.uuids().map(str)
    else:
        strategy = st.text(_TEXT, min_size=low, max_size=high)
    if any(isinstance(v, wv.DataRequired) for v in validators):
        strategy = strategy.filter(lambda s: bool(s.strip()))
    for validator in validators:
        if isinstance(validator, wv.NoneOf):
            excluded = {str(v) for v in cast("Sequence[object]", validator.values)}
            strategy = strategy.filter(_not_in(excluded))
    return cast("SearchStrategy[object]", strategy)


def _not_in(excluded: set[str]) -> Callable[[str], bool]:
    return lambda text: text not in excluded
