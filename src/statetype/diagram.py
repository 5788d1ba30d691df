"""Diagrams of a state machine: ``mermaid(x)`` and ``dot(x)``.

``x`` is a registry class (a ``Transitions`` subclass) or a StateType class.
Both renderers draw the same picture from one description:

* every plain state, labelled with its title; initial states get an arrow
  from a start marker, final states an arrow to an end marker (mermaid's
  ``[*]``) or a double border (dot);
* every transition of the registry as an edge from each plain state its
  sources cover to its target, labelled with its title and, in brackets,
  what else decides it: ``[when Future]`` for a conditional source,
  ``[if name - message]`` for a guard, ``[permission name - message]``,
  ``[chain name]`` and ``[after 30 days since created_at]`` for a timer;
* groups and conditional states in a legend (a note attached to the first
  initial state in mermaid, a note-shaped node in dot), one line each,
  since groups overlap and cannot be drawn as nested boxes.

A registry whose transitions use several StateType columns gets one box per
column (a composite state in mermaid, a cluster in dot) and node ids
prefixed with the column key. The output depends only on the declarations,
in declaration order, so it can be committed and diffed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast

from .bound import CONDITIONAL, GROUP, STATE
from .states import StateType
from .transitions import Transition, Transitions, _state_columns

__all__ = ["dot", "mermaid"]

# Words that mermaid's state-diagram lexer reads as keywords at the start of a line.
_MERMAID_RESERVED = frozenset(
    {"state", "note", "end", "direction", "class", "classdef", "style", "scale", "hide", "click", "as"}
)


@dataclasses.dataclass(frozen=True)
class _Edge:
    source: StateType[Any]
    target: StateType[Any]
    parts: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Machine:
    """One StateType column: its states, legend lines and edges."""

    statetype: type[StateType[Any]]
    key: str | None
    edges: tuple[_Edge, ...]

    @property
    def states(self) -> tuple[StateType[Any], ...]:
        return self.statetype.states

    def legend(self) -> list[str]:
        lines: list[str] = []
        if self.statetype.groups:
            lines.append("Groups")
            for group in self.statetype.groups:
                elements = " or ".join(str(e.title) for e in group.__dict__["_elements"])
                lines.append(f"{group.title} ({group.name}) = {elements}")
        if self.statetype.conditionals:
            lines.append("Conditional states")
            for conditional in self.statetype.conditionals:
                d = conditional.__dict__
                predicate = getattr(d["_predicate"], "__name__", "predicate")
                line = f"{conditional.title} ({conditional.name}) = {d['_base'].title} if {predicate}()"
                if d["_expression"] is None:
                    line += " (no SQL expression)"
                lines.append(line)
        return lines


def _duration(delta: dt.timedelta) -> str:
    """``timedelta(days=30)`` -> "30 days", ``timedelta(hours=1, minutes=30)`` -> "1 hour 30 minutes"."""
    total = int(delta.total_seconds())
    parts: list[str] = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    micro = delta.microseconds
    if micro and not parts:
        return f"{micro} microseconds"
    return " ".join(parts) or "0 seconds"


def _hook_text(kind: str, name: str, message: str) -> str:
    humanized = name.strip("_").replace("_", " ")
    humanized = humanized[:1].upper() + humanized[1:]
    if message and message != humanized:
        return f"[{kind} {name} - {message}]"
    return f"[{kind} {name}]"


def _label(transition: Transition[Any], condition: tuple[StateType[Any], ...]) -> tuple[str, ...]:
    parts = [str(transition.title)]
    if condition:
        parts.append(f"[when {' or '.join(str(c.title) for c in condition)}]")
    parts.extend(_hook_text("if", g.name, g.message) for g in transition.guards)
    parts.extend(_hook_text("permission", p.name, p.message) for p in transition.permissions)
    parts.extend(f"[chain {c.name}]" for c in transition.chains)
    if transition.after is not None:
        parts.append(f"[after {_duration(transition.after)} since {transition.since}]")
    return tuple(parts)


def _expand(member: StateType[Any], out: dict[StateType[Any], list[StateType[Any]] | None], via: StateType[Any] | None) -> None:
    """Plain states covered by ``member``; value None when unconditional, else the conditionals."""
    d = member.__dict__
    kind = d["_kind"]
    if kind == STATE:
        if via is None:
            out[member] = None
        else:
            existing = out.get(member, [])
            if existing is not None and via not in existing:
                out[member] = [*existing, via]
    elif kind == GROUP:
        for element in d["_elements"]:
            _expand(element, out, via)
    elif kind == CONDITIONAL:
        _expand(d["_base"], out, via if via is not None else member)


def edges_of(transition: Transition[Any]) -> list[_Edge]:
    """The transition as edges from plain states, in the StateType's declaration order."""
    covered: dict[StateType[Any], list[StateType[Any]] | None] = {}
    for source in transition.sources:
        _expand(source, covered, None)
    edges: list[_Edge] = []
    for state in cast("type[StateType[Any]]", type(transition.to)).states:
        if state in covered:
            condition = covered[state]
            edges.append(_Edge(state, transition.to, _label(transition, tuple(condition or ()))))
    return edges


def _machines(x: object) -> list[_Machine]:
    # isinstance/issubclass narrowing leaves type arguments Unknown for pyright.
    if isinstance(x, Transitions):
        x = type(x)  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    if isinstance(x, type) and issubclass(x, StateType) and "_members" in x.__dict__:
        return [_Machine(x, None, ())]  # pyright: ignore[reportUnknownArgumentType]
    if isinstance(x, type) and issubclass(x, Transitions) and hasattr(x, "model"):  # pyright: ignore[reportUnknownArgumentType]
        registry: type[Transitions[Any, Any]] = x  # pyright: ignore[reportUnknownVariableType]
        columns = _state_columns(registry.model)
        transitions = registry.transitions()
        used = [key for key in columns if any(t.key == key for t in transitions)] or list(columns)
        machines: list[_Machine] = []
        for key in used:
            edges = tuple(e for t in transitions if t.key == key for e in edges_of(t))
            machines.append(_Machine(columns[key], key, edges))
        return machines
    raise TypeError(f"diagrams are drawn for a Transitions subclass or a StateType class, not {x!r}")


def _name(x: object) -> str:
    return getattr(x, "__name__", type(x).__name__)


# ------------------------------------------------------------------ mermaid


def _mermaid_text(text: object) -> str:
    """Mermaid ends a label at ':', ';' or a newline, and a state title at '"'."""
    return (
        str(text).replace("\n", " ").replace(":", " -").replace(";", ",").replace('"', "'")
    )


def _mermaid_id(machine: _Machine, state: StateType[Any], prefixed: bool) -> str:
    ident = f"{machine.key}_{state.name}" if prefixed else state.name
    if ident.lower() in _MERMAID_RESERVED:
        ident += "_"
    return ident


def mermaid(x: object) -> str:
    """A mermaid ``stateDiagram-v2`` of a registry class or StateType class.

    Args:
        x: A ``Transitions`` subclass (or instance) or a StateType class.

    Returns:
        The diagram's source text, deterministic for the same declarations.

    Raises:
        TypeError: ``x`` is neither a registry nor a StateType class with states.
    """
    machines = _machines(x)
    prefixed = len(machines) > 1
    lines = ["stateDiagram-v2", "    direction LR"]
    for machine in machines:
        indent = "    "
        if prefixed:
            assert machine.key is not None
            box = machine.key + "_" if machine.key.lower() in _MERMAID_RESERVED else machine.key
            lines.append(f'    state "{_mermaid_text(machine.key)} ({machine.statetype.__name__})" as {box} {{')
            indent = "        "
        ids = {s: _mermaid_id(machine, s, prefixed) for s in machine.states}
        for state in machine.states:
            lines.append(f'{indent}state "{_mermaid_text(state.title)}" as {ids[state]}')
        for state in machine.states:
            if state.initial:
                lines.append(f"{indent}[*] --> {ids[state]}")
        for edge in machine.edges:
            lines.append(f"{indent}{ids[edge.source]} --> {ids[edge.target]}: {_mermaid_text(' '.join(edge.parts))}")
        for state in machine.states:
            if state.final:
                lines.append(f"{indent}{ids[state]} --> [*]")
        legend = machine.legend()
        if legend:
            anchor = next(s for s in machine.states if s.initial)
            lines.append(f"{indent}note left of {ids[anchor]}")
            lines.extend(f"{indent}    {_mermaid_text(line)}" for line in legend)
            lines.append(f"{indent}end note")
        if prefixed:
            lines.append("    }")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ dot


def _dot_quote(text: object) -> str:
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def dot(x: object) -> str:
    """A Graphviz ``digraph`` of a registry class or StateType class.

    Args:
        x: A ``Transitions`` subclass (or instance) or a StateType class.

    Returns:
        The diagram's source text, deterministic for the same declarations.

    Raises:
        TypeError: ``x`` is neither a registry nor a StateType class with states.
    """
    machines = _machines(x)
    prefixed = len(machines) > 1
    lines = [
        f"digraph {_dot_quote(_name(x))} {{",
        "    rankdir=LR;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for machine in machines:
        indent = "    "
        prefix = f"{machine.key}." if prefixed else ""
        if prefixed:
            lines.append(f"    subgraph {_dot_quote('cluster_' + str(machine.key))} {{")
            lines.append(f"        label={_dot_quote(f'{machine.key} ({machine.statetype.__name__})')};")
            indent = "        "
        start = _dot_quote(f"{prefix}__start__")
        if any(s.initial for s in machine.states):
            lines.append(f"{indent}{start} [shape=point, width=0.15];")
        for state in machine.states:
            attrs = [f"label={_dot_quote(state.title)}"]
            if state.final:
                attrs.append("peripheries=2")
            lines.append(f"{indent}{_dot_quote(prefix + state.name)} [{', '.join(attrs)}];")
        for state in machine.states:
            if state.initial:
                lines.append(f"{indent}{start} -> {_dot_quote(prefix + state.name)};")
        for edge in machine.edges:
            label = _dot_quote("\n".join(edge.parts))
            lines.append(
                f"{indent}{_dot_quote(prefix + edge.source.name)} -> {_dot_quote(prefix + edge.target.name)}"
                f" [label={label}];"
            )
        legend = machine.legend()
        if legend:
            text = "".join(line.replace("\\", "\\\\").replace('"', '\\"') + "\\l" for line in legend)
            lines.append(f'{indent}{_dot_quote(prefix + "__legend__")} [shape=note, label="{text}"];')
        if prefixed:
            lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"
