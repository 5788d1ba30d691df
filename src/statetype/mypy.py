"""Optional mypy plugin: state names on a mapped StateType column are SQL.

Enable it in the mypy configuration::

    [mypy]
    plugins = statetype.mypy

Without it, ``Project.state.is_draft`` (class-level access) goes through
SQLAlchemy's ``QueryableAttribute.__getattr__`` and is ``Any``; any name is
accepted. With it, a declared state, group or conditional state is
``ColumnElement[bool]`` and any other name is an error that lists the declared
ones. Nothing else changes: the core API is fully typed without the plugin.

The declared names are collected during semantic analysis, from the class body
(``State(...)`` calls, ``|`` of declarations, ``.titled(...)``,
``@x.conditional``), and stored in the class's mypy metadata, so they survive
incremental runs. A later name for the same object (``@x.expression`` under
another name, ``alias = is_draft``) is not a member, as at runtime.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.errorcodes import ATTR_DEFINED
from mypy.nodes import (
    AssignmentStmt,
    CallExpr,
    ClassDef,
    Decorator,
    Expression,
    MemberExpr,
    NameExpr,
    OpExpr,
    RefExpr,
    TypeInfo,
)
from mypy.plugin import AttributeContext, ClassDefContext, Plugin
from mypy.types import AnyType, Instance, NoneType, ProperType, Type, TypeOfAny, UnionType, get_proper_type

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


class StateTypePlugin(Plugin):
    """Types ``Model.column.<state>`` as ``ColumnElement[bool]`` and rejects undeclared names."""

    def get_base_class_hook(self, fullname: str) -> Callable[[ClassDefContext], None] | None:
        if fullname == _STATETYPE:
            return _record_members
        return None

    def get_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        owner, _, name = fullname.rpartition(".")
        if owner == _QUERYABLE_ATTRIBUTE and not name.startswith("_"):
            return _column_attribute_type(self, name)
        return None


def plugin(version: str) -> type[StateTypePlugin]:
    """Entry point named by ``plugins = statetype.mypy``."""
    return StateTypePlugin
