"""Optional mypy plugin: state names on a mapped StateType column are SQL; hooks fit their model.

Enable it in the mypy configuration::

    [mypy]
    plugins = statetype.mypy

Without it, ``Project.state.is_draft`` (class-level access) goes through
SQLAlchemy's ``QueryableAttribute.__getattr__`` and is ``Any``; any name is
accepted. With it, a declared state, group or conditional state is
``ColumnElement[bool]`` and any other name is an error that lists the declared
ones. Two mistakes plain typing cannot see become errors too:

* comparing a mapped StateType column with a member of another StateType
  (``Project.state == ReviewState.is_pending``, also ``!=`` and ``in_()``);
* a registry hook whose object parameter does not accept the registry's model
  (``@publish.guard`` on ``def p(self, user: User)`` in a
  ``Transitions[Project, User]``), reported on the decorator line. A
  parameter typed with a supertype of the model (its declarative base,
  ``object``) is accepted.

Nothing else changes: the core API is fully typed without the plugin.

The declared names are collected during semantic analysis, from the class body
(``State(...)`` calls, ``|`` of declarations, ``.titled(...)``,
``@x.conditional``), and stored in the class's mypy metadata, so they survive
incremental runs. A later name for the same object (``@x.expression`` under
another name, ``alias = is_draft``) is not a member, as at runtime.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.errorcodes import ARG_TYPE, ATTR_DEFINED, OPERATOR
from mypy.nodes import (
    ARG_POS,
    AssignmentStmt,
    CallExpr,
    ClassDef,
    ComparisonExpr,
    Decorator,
    Expression,
    ListExpr,
    MemberExpr,
    NameExpr,
    OpExpr,
    RefExpr,
    SetExpr,
    TupleExpr,
    TypeInfo,
)
from mypy.plugin import AttributeContext, ClassDefContext, MethodContext, Plugin
from mypy.types import (
    AnyType,
    CallableType,
    Instance,
    NoneType,
    ProperType,
    Type,
    TypeOfAny,
    TypeType,
    UnionType,
    get_proper_type,
)

# After mypy.types: importing these first is a circular import in (compiled) mypy.
from mypy.maptype import map_instance_to_supertype  # noqa: E402  # isort: skip
from mypy.subtypes import is_subtype  # noqa: E402  # isort: skip

__all__ = ["StateTypePlugin", "plugin"]

_STATETYPE = "statetype.states.StateType"
_DECLARATIONS = frozenset(
    {
        "statetype._declarations.State",
        "statetype._declarations.StateGroup",
        "statetype._declarations.ConditionalState",
    }
)
_QUERYABLE_ATTRIBUTE = "sqlalchemy.orm.attributes.QueryableAttribute"
_TRANSITIONS = "statetype.transitions.Transitions"
_APPLIED_STEP = "statetype.transitions.AppliedStep"
_COMPARISONS = frozenset({"__eq__", "__ne__", "in_", "not_in", "notin_"})
# Decorator -> what its function's second parameter receives: the object, the
# model class, or the AppliedStep of the object.
_HOOKS = {
    "statetype.transitions.Transition.guard": "object",
    "statetype.transitions.Transition.permission": "object",
    "statetype.transitions.Transition.execute": "object",
    "statetype.transitions.Transition.chain": "object",
    "statetype.transitions.Transition.form": "object",
    "statetype.transitions.Transition.after_commit": "step",
    "statetype.transitions.Guard.expression": "model",
    "statetype.transitions.Execute.expression": "model",
}
_COLUMN_ELEMENT = "sqlalchemy.sql.elements.ColumnElement"
_METADATA_KEY = "statetype"


def _is_declaration(expr: Expression, declared: set[str]) -> bool:
    """Whether ``expr`` creates a new state, group or conditional state."""
    if isinstance(expr, CallExpr):
        callee = expr.callee
        if isinstance(callee, RefExpr) and callee.fullname in _DECLARATIONS:
            return True
        # (is_withdrawn | is_deleted).titled("Gone") returns the same new group.
        if isinstance(callee, MemberExpr) and callee.name == "titled":
            return _is_declaration(callee.expr, declared)
        return False
    if isinstance(expr, OpExpr) and expr.op == "|":
        return all(
            _is_declaration(side, declared) or (isinstance(side, NameExpr) and side.name in declared)
            for side in (expr.left, expr.right)
        )
    return False


def _collect_members(defn: ClassDef) -> list[str]:
    """Names of the members a StateType class body declares, in order."""
    members: list[str] = []
    declared: set[str] = set()
    for stmt in defn.defs.body:
        name: str | None = None
        if isinstance(stmt, AssignmentStmt) and len(stmt.lvalues) == 1:
            target = stmt.lvalues[0]
            if isinstance(target, NameExpr) and _is_declaration(stmt.rvalue, declared):
                name = target.name
        elif isinstance(stmt, Decorator):
            if any(isinstance(d, MemberExpr) and d.name == "conditional" for d in stmt.decorators):
                name = stmt.func.name
        if name is not None and name not in declared:
            declared.add(name)
            members.append(name)
    return members


def _record_members(ctx: ClassDefContext) -> None:
    ctx.cls.info.metadata[_METADATA_KEY] = {"members": _collect_members(ctx.cls)}


def _statetype_info(typ: ProperType) -> TypeInfo | None:
    """The StateType subclass of a column's value type (``X`` or ``X | None``)."""
    if isinstance(typ, UnionType):
        items = [get_proper_type(item) for item in typ.items]
        found = [info for info in map(_statetype_info, items) if info is not None]
        rest = [item for item in items if not isinstance(item, NoneType)]
        return found[0] if len(found) == 1 and len(rest) == 1 else None
    if isinstance(typ, Instance) and typ.type.has_base(_STATETYPE):
        return typ.type
    return None


def _members_of(info: TypeInfo) -> list[str] | None:
    for base in info.mro:
        data = base.metadata.get(_METADATA_KEY)
        if data is not None:
            members: list[str] = data["members"]
            return members
    return None


def _column_attribute_type(plugin: Plugin, name: str) -> Callable[[AttributeContext], Type]:
    def hook(ctx: AttributeContext) -> Type:
        column_type = get_proper_type(ctx.type)
        if not isinstance(column_type, Instance) or not column_type.args:
            return ctx.default_attr_type
        if column_type.type.get(name) is not None:
            # A real attribute of the column (``key``, ``property``...):
            # mypy calls this hook for those too.
            return ctx.default_attr_type
        info = _statetype_info(get_proper_type(column_type.args[0]))
        if info is None:
            return ctx.default_attr_type
        members = _members_of(info)
        if members is None:
            return ctx.default_attr_type
        if name in members:
            # Looked up by module, not through package attributes as
            # named_generic_type does: sqlalchemy does not re-export "sql".
            column_element = plugin.lookup_fully_qualified(_COLUMN_ELEMENT)
            if column_element is None or not isinstance(column_element.node, TypeInfo):
                return ctx.default_attr_type
            boolean = ctx.api.named_generic_type("builtins.bool", [])
            return Instance(column_element.node, [boolean])
        ctx.api.fail(
            f'{info.name} has no state "{name}"; declared: {", ".join(members)}',
            ctx.context,
            code=ATTR_DEFINED,
        )
        return AnyType(TypeOfAny.from_error)

    return hook


def _column_statetype(typ: ProperType) -> TypeInfo | None:
    """The StateType of a mapped column attribute (``InstrumentedAttribute[ProjectState]``)."""
    if not isinstance(typ, Instance) or not typ.args or not typ.type.has_base(_QUERYABLE_ATTRIBUTE):
        return None
    return _statetype_info(get_proper_type(typ.args[0]))


def _foreign_members(typ: ProperType, own: TypeInfo, *, items: bool) -> TypeInfo | None:
    """The other StateType whose member ``typ`` is (with ``items``: whose members a list,
    tuple, set or other iterable of ``typ`` holds)."""
    if isinstance(typ, UnionType):
        for item in typ.items:
            found = _foreign_members(get_proper_type(item), own, items=items)
            if found is not None:
                return found
    if isinstance(typ, Instance):
        if typ.type.has_base(_STATETYPE):
            return None if typ.type.has_base(own.fullname) else typ.type
        if items and typ.type.has_base("typing.Iterable") and len(typ.args) == 1:
            return _foreign_members(get_proper_type(typ.args[0]), own, items=False)
    return None


def _check_comparison(ctx: MethodContext) -> Type:
    """``Project.state == ReviewState.is_pending`` (or ``!=``, ``in_()``) is always false: an error."""
    own = _column_statetype(ctx.type)
    if own is None:
        return ctx.default_return_type
    in_list = not isinstance(ctx.context, ComparisonExpr)  # in_([...]) rather than == / !=
    candidates: list[tuple[Type, bool]] = []
    for types, exprs in zip(ctx.arg_types, ctx.args):
        for typ, expr in zip(types, exprs):
            if in_list and isinstance(expr, (ListExpr, TupleExpr, SetExpr)):
                # The literal's type is joined under SQLAlchemy's Iterable[Any]: look at each item.
                candidates.extend((ctx.api.get_expression_type(item), False) for item in expr.items)
            else:
                candidates.append((typ, in_list))
    for typ, items in candidates:
        other = _foreign_members(get_proper_type(typ), own, items=items)
        if other is not None:
            ctx.api.fail(
                f"A {own.name} column compared with a member of {other.name}; use members of {own.name}",
                ctx.context,
                code=OPERATOR,
            )
            break
    return ctx.default_return_type


def _check_hook(plugin: Plugin, fullname: str, receives: str) -> Callable[[MethodContext], Type]:
    decorator = fullname.rpartition(".")[2]

    def hook(ctx: MethodContext) -> Type:
        if not ctx.arg_types or not ctx.arg_types[0]:
            return ctx.default_return_type
        func = get_proper_type(ctx.arg_types[0][0])
        if (
            not isinstance(func, CallableType)
            or len(func.arg_types) < 2
            or func.arg_kinds[1] != ARG_POS
        ):
            return ctx.default_return_type  # another shape: mypy's own check reports it
        registry = get_proper_type(func.arg_types[0])
        transitions = plugin.lookup_fully_qualified(_TRANSITIONS)
        if (
            not isinstance(registry, Instance)
            or transitions is None
            or not isinstance(transitions.node, TypeInfo)
            or not registry.type.has_base(_TRANSITIONS)
        ):
            return ctx.default_return_type
        model = get_proper_type(map_instance_to_supertype(registry, transitions.node).args[0])
        if not isinstance(model, Instance):
            return ctx.default_return_type  # a generic registry, or Any: nothing to compare with
        given: Type = model
        if receives == "model":
            given = TypeType.make_normalized(model)
        elif receives == "step":
            step = plugin.lookup_fully_qualified(_APPLIED_STEP)
            if step is None or not isinstance(step.node, TypeInfo):
                return ctx.default_return_type
            given = Instance(step.node, [model])
        declared = func.arg_types[1]
        if not is_subtype(given, declared):
            name = func.arg_names[1] or "the second parameter"
            ctx.api.fail(
                f'@{decorator} on "{(func.name or "hook").split(" of ")[0]}" of {registry.type.name}: parameter "{name}" is '
                f"{_describe(declared)}, but the hook receives {_describe(given)} "
                f"(the registry's model is {model.type.name})",
                ctx.context,
                code=ARG_TYPE,
            )
        return ctx.default_return_type

    return hook


def _describe(typ: Type) -> str:
    proper = get_proper_type(typ)
    if isinstance(proper, Instance) and not proper.args:
        return f'"{proper.type.name}"'
    if isinstance(proper, TypeType) and isinstance(proper.item, Instance) and not proper.item.args:
        return f'"type[{proper.item.type.name}]"'
    if isinstance(proper, Instance) and len(proper.args) == 1:
        inner = get_proper_type(proper.args[0])
        if isinstance(inner, Instance) and not inner.args:
            return f'"{proper.type.name}[{inner.type.name}]"'
    return f'"{typ}"'


class StateTypePlugin(Plugin):
    """Types ``Model.column.<state>`` as ``ColumnElement[bool]``; rejects undeclared names, foreign
    members in column comparisons, and hooks that do not accept their registry's model."""

    def get_base_class_hook(self, fullname: str) -> Callable[[ClassDefContext], None] | None:
        if fullname == _STATETYPE:
            return _record_members
        return None

    def get_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        owner, _, name = fullname.rpartition(".")
        if owner == _QUERYABLE_ATTRIBUTE and not name.startswith("_"):
            return _column_attribute_type(self, name)
        return None

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        receives = _HOOKS.get(fullname)
        if receives is not None:
            return _check_hook(self, fullname, receives)
        if fullname.rpartition(".")[2] in _COMPARISONS and fullname.startswith("sqlalchemy."):
            return _check_comparison
        return None


def plugin(version: str) -> type[StateTypePlugin]:
    """Entry point named by ``plugins = statetype.mypy``."""
    return StateTypePlugin
