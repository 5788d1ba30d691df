"""The ``statetype`` command line: ``demo``, ``graph``, ``check`` and ``audit``.

* ``statetype graph MODULE:Registry [--format mermaid|dot|svg]`` prints the
  diagram of a registry or StateType class (``statetype.diagram``; svg is
  drawn by Graphviz's ``dot`` program);
* ``statetype check MODULE...`` lints every registry and StateType class
  defined in the modules, one line per finding, exit status 1 on findings;
* ``statetype audit URL MODULE:Model`` counts the rows per state of each
  StateType column, then the rows holding undeclared values (exit status 1
  when there are any);
* ``statetype demo`` runs the demo on a temporary SQLite database.

Modules are imported by dotted name (the current directory is on the path)
or loaded from a ``.py`` file path. Usage and environment errors (a bad
module path, a missing attribute, an unparsable or unreachable URL, a
missing table, a SQLite file that does not exist) print one line on stderr
and exit with status 2, creating nothing; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO, cast

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, DBAPIError, NoInspectionAvailable, NoSuchModuleError
from sqlalchemy.orm import Mapper
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import False_
from sqlalchemy.types import TypeEngine

from .bound import CONDITIONAL
from .bulk import _refusals
from .exceptions import BulkNotSupported
from .states import StateType
from .transitions import Transition, Transitions, _state_columns

__all__ = ["Finding", "check_registry", "check_statetype", "main"]


class UsageError(Exception):
    """A bad argument: printed without a traceback, exit status 2."""


# ------------------------------------------------------------------ loading


def _import(spec: str) -> ModuleType:
    """A module by dotted name, or a ``.py`` file by path."""
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"no such file: {spec}")
        name = path.stem
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"cannot load {spec}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as error:
            raise UsageError(f"cannot import {spec}: {type(error).__name__}: {error}") from error
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(spec)
    except Exception as error:
        raise UsageError(f"cannot import {spec}: {type(error).__name__}: {error}") from error


def _resolve(target: str) -> object:
    """``MODULE:Name`` (``Name`` may be dotted) -> the object."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected MODULE:NAME, got {target!r}")
    obj: object = _import(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{module_name} has no attribute {attr!r}") from None
    return obj


def _is_registry(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, Transitions) and hasattr(obj, "model")  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)


def _is_statetype(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, StateType) and "_members" in obj.__dict__


# ------------------------------------------------------------------ graph


def _graph(args: argparse.Namespace, out: TextIO) -> int:
    from .diagram import dot, mermaid

    target = _resolve(args.target)
    if not (_is_registry(target) or _is_statetype(target)):
        raise UsageError(f"{args.target} is neither a Transitions subclass nor a StateType class")
    if args.format == "svg":
        out.write(_svg(dot(target)))
        return 0
    render = dot if args.format == "dot" else mermaid
    out.write(render(target))
    return 0


def _svg(source: str) -> str:
    """SVG drawn by Graphviz's ``dot`` program from DOT ``source``."""
    program = shutil.which("dot")
    if program is None:
        raise UsageError("--format svg needs Graphviz's dot program, which is not installed (package graphviz)")
    done = subprocess.run([program, "-Tsvg"], input=source, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise UsageError(f"dot failed (exit status {done.returncode}): {detail}")
    return done.stdout


# ------------------------------------------------------------------ check


@dataclasses.dataclass(frozen=True)
class Finding:
    """One lint finding: ``subject`` is ``Class.attribute``."""

    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


def _always_false(func: Callable[..., Any]) -> bool:
    """Whether the function's body (docstring aside) is only ``return <falsy constant>``."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return False
    if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = tree.body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Return):
        return False
    value = body[0].value
    return value is None or (isinstance(value, ast.Constant) and not value.value)


def check_statetype(statetype: type[StateType[Any]]) -> list[Finding]:
    """Findings on a StateType class alone: conditional states without SQL or that never hold."""
    findings: list[Finding] = []
    for conditional in statetype.conditionals:
        d = conditional.__dict__
        subject = f"{statetype.__name__}.{conditional.name}"
        if d["_expression"] is None:
            findings.append(
                Finding(subject, f"conditional state has no SQL expression; declare one with @{conditional.name}.expression")
            )
        if _always_false(d["_predicate"]):
            findings.append(Finding(subject, "conditional state can never hold: its predicate always returns False"))
    return findings


def _never_conditions(instance: Transitions[Any, Any] | None, transition: Transition[Any]) -> list[str]:
    """Why ``transition`` can never pass, as far as the declarations tell."""
    reasons: list[str] = []
    for kind, hooks in (("guard", transition.guards), ("permission", transition.permissions)):
        for hook in hooks:
            if _always_false(hook.func):
                reasons.append(f"{kind} {hook.name} always returns False")
    for source in transition.sources:
        if source.__dict__["_kind"] == CONDITIONAL and _always_false(source.__dict__["_predicate"]):
            reasons.append(f"its source {source.name} can never hold")
    if instance is not None and transition.after is not None:
        try:
            _refusals(getattr(instance, transition.name))
        except BulkNotSupported as error:
            reasons.append(f"it is timed, but run_due() refuses it ({error})")
    return reasons


def _sql_always_false(
    registry: type[Transitions[Any, Any]], instance: Transitions[Any, Any], transition: Transition[Any]
) -> list[str]:
    """Guards whose SQL form is the constant ``false()`` (their Python form may still pass per row)."""
    names: list[str] = []
    for guard in transition.guards:
        if guard.sql is None:
            continue
        try:
            expression = guard.sql(instance, registry.model)
        except Exception:
            continue
        if isinstance(expression, False_):
            names.append(guard.name)
    return names


def check_registry(registry: type[Transitions[Any, Any]]) -> list[Finding]:
    """Findings on a registry: unreachable states, states with no way out, transitions that never pass."""
    findings: list[Finding] = []
    name = registry.__name__
    model = registry.model
    try:
        instance: Transitions[Any, Any] | None = registry()
    except Exception:
        instance = None
    transitions = registry.transitions()
    blocked: dict[str, list[str]] = {}
    for transition in transitions:
        reasons = _never_conditions(instance, transition)
        if reasons:
            blocked[transition.name] = reasons
            for reason in reasons:
                findings.append(Finding(f"{name}.{transition.name}", f"can never apply: {reason}"))
        if instance is not None:
            for guard in _sql_always_false(registry, instance, transition):
                findings.append(
                    Finding(
                        f"{name}.{transition.name}",
                        f"where() and bulk() never match: the SQL form of guard {guard} is always false",
                    )
                )
    columns = _state_columns(model)
    for key, statetype in columns.items():
        own = [t for t in transitions if t.key == key]
        if not own:
            continue
        where = f"{name} ({model.__name__}.{key})"
        passable = [t for t in own if t.name not in blocked]
        initial = [s for s in statetype.states if s.initial]
        reachable = set(initial)
        changed = True
        while changed:
            changed = False
            for transition in passable:
                if transition.to not in reachable and any(
                    s in reachable for source in transition.sources for s in source.states
                ):
                    reachable.add(transition.to)
                    changed = True
        starts = ", ".join(s.name for s in initial)
        for state in statetype.states:
            if state not in reachable:
                findings.append(
                    Finding(f"{statetype.__name__}.{state.name}", f"unreachable from {starts} in {where}")
                )
        for state in statetype.states:
            if state.final:
                continue
            leaves = any(
                t.to is not state and any(state in source.states for source in t.sources) for t in passable
            )
            if not leaves:
                findings.append(
                    Finding(f"{statetype.__name__}.{state.name}", f"not final, but no transition leaves it in {where}")
                )
        for transition in passable:
            covered = {s for source in transition.sources for s in source.states}
            if covered and not covered & reachable:
                states = ", ".join(s.name for s in statetype.states if s in covered)
                findings.append(
                    Finding(f"{name}.{transition.name}", f"can never apply: its source states ({states}) are unreachable")
                )
    return findings


def _check(args: argparse.Namespace, out: TextIO) -> int:
    registries: dict[type[Any], None] = {}
    statetypes: dict[type[Any], None] = {}
    for spec in args.modules:
        module = _import(spec)
        for value in vars(module).values():
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if _is_registry(value):
                registries[value] = None
            elif _is_statetype(value):
                statetypes[value] = None
    findings: list[Finding] = []
    for statetype in statetypes:
        findings.extend(check_statetype(statetype))
    for registry in registries:
        findings.extend(check_registry(registry))
    for finding in findings:
        print(finding, file=out)
    print(
        f"statetype check: {len(registries)} registr{'y' if len(registries) == 1 else 'ies'}, "
        f"{len(statetypes)} state type{'' if len(statetypes) == 1 else 's'}, "
        f"{len(findings)} finding{'' if len(findings) == 1 else 's'}",
        file=sys.stderr,
    )
    return 1 if findings else 0


# ------------------------------------------------------------------ audit


def _table(rows: Sequence[Sequence[object]], indent: str = "  ") -> list[str]:
    texts = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in texts) for i in range(len(texts[0]))]
    return [
        (indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths))).rstrip() for row in texts
    ]


def _shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _engine(text: str) -> sa.Engine:
    """An engine for ``text``; never creates a SQLite file (a missing one is a usage error)."""
    try:
        url = sa.make_url(text)
    except ArgumentError:
        raise UsageError(f"cannot parse the database URL {text!r}") from None
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:") and not Path(database).is_file():
            raise UsageError(f"no such SQLite database file: {database}")
    try:
        return sa.create_engine(url, poolclass=NullPool)
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise UsageError(f"cannot use the database URL {_shown(url)}: {_first_line(error)}") from error


def _connect(engine: sa.Engine) -> sa.Connection:
    try:
        return engine.connect()
    except DBAPIError as error:
        raise UsageError(f"cannot connect to {_shown(engine.url)}: {_first_line(cast(BaseException, error.orig))}") from error


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _audit(args: argparse.Namespace, out: TextIO) -> int:
    model = _resolve(args.model)
    if not isinstance(model, type):
        raise UsageError(f"{args.model} is not a mapped class")
    try:
        columns = _state_columns(model)
    except NoInspectionAvailable:
        raise UsageError(f"{args.model} is not a mapped class") from None
    if not columns:
        raise UsageError(f"{model.__name__} has no StateType column")
    mapper: Mapper[Any] = sa.inspect(model)
    undeclared_total = 0
    engine = _engine(args.url)
    try:
        connection = _connect(engine)
        with connection:
            table = mapper.local_table
            if isinstance(table, sa.Table) and not sa.inspect(connection).has_table(table.name, schema=table.schema):
                raise UsageError(f"table {table.name} of {model.__name__} does not exist in {_shown(engine.url)}")
            for index, (key, statetype) in enumerate(columns.items()):
                column = mapper.columns[key]
                storage_type: TypeEngine[Any] = getattr(column.type, "impl_instance")  # the raw storage type
                raw = sa.type_coerce(column, storage_type)
                query = sa.select(raw, sa.func.count()).select_from(model).group_by(raw)
                counts: dict[object, int] = {value: count for value, count in connection.execute(query)}
                if index:
                    print(file=out)
                print(f"{model.__name__}.{key} ({statetype.__name__})", file=out)
                rows: list[Sequence[object]] = [("name", "title", "value", "count")]
                for state in statetype.states:
                    storage = state.__dict__["_storage"]
                    rows.append((state.name, state.title, storage, counts.pop(storage, 0)))
                nulls = counts.pop(None, 0)
                if nulls:
                    rows.append(("(null)", "", "NULL", nulls))
                for line in _table(rows):
                    print(line, file=out)
                if counts:
                    undeclared_total += sum(counts.values())
                    print("  undeclared values:", file=out)
                    ordered = sorted(counts.items(), key=lambda item: (type(item[0]).__name__, str(item[0])))
                    for line in _table([("value", "count"), *((repr(v), c) for v, c in ordered)], "    "):
                        print(line, file=out)
    finally:
        engine.dispose()
    if undeclared_total:
        print(f"statetype audit: {undeclared_total} stored value(s) are not declared states", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statetype",
        description="Tools for statetype state machines.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    debug_help = "show the traceback of an error instead of one line"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("demo", help="run the demo on a temporary SQLite database")
    graph = commands.add_parser("graph", parents=[common], help="print the diagram of a registry or StateType class")
    graph.add_argument("target", metavar="MODULE:NAME", help="a Transitions subclass or StateType class")
    graph.add_argument(
        "--format", choices=("mermaid", "dot", "svg"), default="mermaid", help="default: mermaid; svg needs Graphviz"
    )
    check = commands.add_parser("check", parents=[common], help="lint the registries and StateType classes of modules")
    check.add_argument("modules", metavar="MODULE", nargs="+", help="a dotted module name or a .py file")
    audit = commands.add_parser(
        "audit", parents=[common], help="count rows per state, and rows with undeclared values"
    )
    audit.add_argument("url", metavar="URL", help="SQLAlchemy database URL")
    audit.add_argument("model", metavar="MODULE:MODEL", help="a mapped class with StateType columns")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run

        return run()
    commands: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
        "graph": _graph,
        "check": _check,
        "audit": _audit,
    }
    try:
        return commands[args.command](args, sys.stdout)
    except Exception as error:
        # Usage and environment errors: one line, exit status 2; --debug shows the traceback.
        if args.debug:
            raise
        message = str(error) if isinstance(error, UsageError) else f"{type(error).__name__}: {_first_line(error)}"
        print(f"statetype {args.command}: {message}", file=sys.stderr)
        return 2
