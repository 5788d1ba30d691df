"""No ``Any`` in statetype's public signatures (DESIGN section 7, docs/typing.md).

Walks every name in ``statetype.__all__`` and in the ``__all__`` of the public
modules (``statetype.forms``, ``statetype.alembic``, ``statetype.diagram``,
``statetype.mypy``), plus the hook objects the registry decorators return;
for each function, method, property and annotated attribute that statetype
defines, every annotation is evaluated (names imported only for type
checkers become placeholders) and searched for ``Any``.

Not counted:

* ``Any`` as a type argument of statetype's own generic classes
  (``StateType[Any]``, ``Transition[Any]``, ``BoundTransition[Any, Any]``,
  ``Transitions[Any, Any]``, ``AppliedStep[Any]``): "of any StateType / model",
  where one signature serves every StateType or model (Python has no
  existential types; the concrete classes appear wherever they are known);
* methods that override a method of a third-party base class (SQLAlchemy's
  ``TypeDecorator`` protocol, WTForms, mypy's plugin API): their signatures
  are the base class's;
* functions installed under another name at runtime (the checkers see the
  declared signature, which is walked instead).

Every other occurrence must be listed in ``JUSTIFIED`` with its reason, and
docs/typing.md gives the same list; an entry that no longer holds ``Any``
fails the test too, so the list stays exact.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MODULES = ("statetype", "statetype.forms", "statetype.alembic", "statetype.diagram", "statetype.mypy", "statetype.admin")
# What ``@publish.guard`` and the other decorators return: reachable from user code.
HOOK_CLASSES = ("Guard", "Permission", "Execute", "Chain", "AfterCommit", "FormFactory")
DUNDERS = frozenset({"__init__", "__call__", "__get__", "__eq__", "__ne__", "__or__"})

JUSTIFIED = {
    "statetype.BulkResult.ids": "primary-key values, whose type depends on the model (one or several columns)",
    "statetype.BulkResult.__init__(ids)": "as BulkResult.ids",
    "statetype.TransitionLogMixin.data": "the JSON column of the step's data: any JSON value, as json.loads gives",
    "statetype.Transitions.model": "a ClassVar cannot hold the registry's type variable M",
    "statetype.transitions._Hook.__init__(func)": (
        "the decorators (guard, permission, execute, ...) check the function's shape; "
        "the hook object keeps it as given"
    ),
    "statetype._wtfields.StateSelectField.__init__(kwargs)": "forwarded unchanged to WTForms' SelectField",
    "statetype.forms.validate(data)": "statetype's own call into WTForms (from a transition call), not user API",
    "statetype.forms.validate(form)": "any object the caller passed as form=, checked at runtime against the form class",
    "statetype.forms.validate(return)": "the form's .data: field values of any type, passed to execute hooks",
}


class _Names(dict[str, Any]):
    """Evaluation namespace: the module's globals, builtins, statetype's own classes (imported
    by other modules for checkers only), then a placeholder class."""

    def __init__(self, module: types.ModuleType) -> None:
        super().__init__()
        self._globals = vars(module)

    def __missing__(self, key: str) -> Any:
        if key in self._globals:
            return self._globals[key]
        if hasattr(builtins, key):
            return getattr(builtins, key)
        for module_name in ("statetype", "statetype.transitions", "statetype.states"):
            found = vars(importlib.import_module(module_name)).get(key)
            if found is not None:
                return found
        placeholder = types.new_class(key, exec_body=lambda ns: ns.update(__module__="<TYPE_CHECKING>"))
        placeholder.__class_getitem__ = classmethod(types.GenericAlias)  # type: ignore[attr-defined]
        self[key] = placeholder
        return placeholder


def evaluate(annotation: object, module: types.ModuleType) -> object:
    """An annotation (a string under ``from __future__ import annotations``) as a typing object."""
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        return evaluate(eval(annotation, dict(vars(module)), _Names(module)), module)
    return annotation


def has_any(annotation: object, module: types.ModuleType) -> bool:
    tp = evaluate(annotation, module)
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if isinstance(origin, type) and origin.__module__.startswith("statetype."):
        return False  # StateType[Any], BoundTransition[Any, Any]...: "of any StateType / model"
    for arg in typing.get_args(tp):
        if isinstance(arg, list):
            if any(has_any(a, module) for a in arg):
                return True
        elif arg is not Ellipsis and has_any(arg, module):
            return True
    return False


def _functions(func: Callable[..., object]) -> list[Callable[..., object]]:
    return list(typing.get_overloads(func)) or [func]


def _check(label: str, func: Callable[..., object]) -> Iterator[str]:
    for variant in _functions(func):
        module = importlib.import_module(variant.__module__)
        for name, annotation in getattr(variant, "__annotations__", {}).items():
            if has_any(annotation, module):
                yield f"{label}({name})"


def _third_party_method(cls: type, name: str) -> bool:
    """Whether ``name`` overrides a method of a third-party base (constructors are statetype's own)."""
    if name == "__init__":
        return False
    return any(
        name in vars(base)
        for base in cls.__mro__[1:]
        if base is not object and not base.__module__.startswith("statetype")
    )


def _walk_class(cls: type) -> Iterator[str]:
    for owner in cls.__mro__:
        if not owner.__module__.startswith("statetype"):
            continue
        module = importlib.import_module(owner.__module__)
        prefix = f"{owner.__module__}.{owner.__qualname__}"
        for name, annotation in vars(owner).get("__annotations__", {}).items():
            if not name.startswith("_") and has_any(annotation, module):
                yield f"{prefix}.{name}"
        for name, raw in vars(owner).items():
            if name.startswith("_") and name not in DUNDERS:
                continue
            if isinstance(raw, property):
                func = raw.fget
            elif isinstance(raw, (classmethod, staticmethod)):
                func = raw.__func__
            elif inspect.isfunction(raw):
                func = raw
            else:
                continue
            if func is None or _third_party_method(owner, name):
                continue
            if not func.__qualname__.startswith(owner.__qualname__ + "."):
                continue  # installed under this name at runtime; the declared signature is walked instead
            yield from _check(f"{prefix}.{name}", func)


def _public() -> Iterator[object]:
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            yield getattr(module, name)
    transitions = importlib.import_module("statetype.transitions")
    for name in HOOK_CLASSES:
        yield getattr(transitions, name)


def offenders() -> set[str]:
    found: set[str] = set()
    seen: set[int] = set()
    for obj in _public():
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if inspect.isclass(obj) and obj.__module__.startswith("statetype"):
            found.update(_walk_class(obj))
        elif inspect.isfunction(obj):
            found.update(_check(f"{obj.__module__}.{obj.__qualname__}", obj))
    return {_public_label(label) for label in found}


def _public_label(label: str) -> str:
    """``statetype.transitions.Transitions.model`` -> ``statetype.Transitions.model`` when exported there."""
    package = importlib.import_module("statetype")
    module, _, rest = label.partition(".")[2].partition(".")
    head = rest.split(".")[0].split("(")[0]
    if head in package.__all__ and getattr(package, head).__module__ == f"statetype.{module}":
        return f"statetype.{rest}"
    return label


def test_no_any_in_public_signatures() -> None:
    found = offenders()
    unexplained = sorted(found - set(JUSTIFIED))
    assert not unexplained, "Any in public signatures (type it, or justify it in JUSTIFIED and docs/typing.md):\n" + (
        "\n".join(unexplained)
    )
    stale = sorted(set(JUSTIFIED) - found)
    assert not stale, "JUSTIFIED lists names that no longer hold Any:\n" + "\n".join(stale)


def test_justifications_are_documented() -> None:
    """docs/typing.md names every remaining Any."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "typing.md").read_text(encoding="utf-8")
    missing = [name for name in JUSTIFIED if f"`{name.removeprefix('statetype.')}`" not in page]
    assert not missing, f"docs/typing.md does not list: {missing}"


def test_the_walk_sees_any() -> None:
    """The walker itself: bare, nested and TYPE_CHECKING-only annotations; statetype generics excepted."""
    module = importlib.import_module("statetype.transitions")
    assert has_any("Any", module)
    assert has_any("Mapping[str, Any] | None", module)
    assert has_any("type[Any]", module)
    assert has_any("Callable[..., Any]", module)
    assert has_any("list[Session] | Mapping[str, Any]", module)  # Session is imported for checkers only
    assert not has_any("Mapping[str, object]", module)
    assert not has_any("BoundTransition[Any, Any]", module)
    assert not has_any("ColumnElement[bool]", module)
