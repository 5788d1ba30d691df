"""statetype.diagram: mermaid() and dot() of registries and StateType classes, checked line by line."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from collections.abc import Iterable

import pytest
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import State, StateType, Step, Transition, Transitions
from statetype.diagram import dot, mermaid


class Base(DeclarativeBase):
    pass


class TicketState(StateType[int]):
    is_new = State(1, "New")
    is_open = State(2, "Open")
    is_waiting = State(3, 'Waiting: "customer"')
    is_closed = State(4, "Closed", final=True)

    is_active = is_open | is_waiting
    is_idle = (is_new | is_waiting).titled("Idle")

    @is_waiting.conditional
    def is_stale(self, ticket: Ticket) -> bool:
        return ticket.touched_at is not None and ticket.touched_at < dt.datetime(2026, 1, 1)

    @is_stale.expression
    def _is_stale_sql(self, ticket: type[Ticket]) -> ColumnElement[bool]:
        return ticket.touched_at < dt.datetime(2026, 1, 1)

    @is_open.conditional
    def is_urgent(self, ticket: Ticket) -> bool:
        return ticket.priority > 5


class Priority(StateType[str]):
    is_low = State("low")
    is_high = State("high", initial=True)


class Ticket(Base):
    __tablename__ = "diagram_ticket"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[TicketState] = mapped_column(TicketState(), default=TicketState.is_new)
    level: Mapped[Priority] = mapped_column(Priority(), default=Priority.is_high)
    priority: Mapped[int] = mapped_column(default=0)
    touched_at: Mapped[dt.datetime | None]


class TicketTransitions(Transitions[Ticket]):
    open = Transition(TicketState.is_new, TicketState.is_open, title="Open it")
    wait = Transition(TicketState.is_open, TicketState.is_waiting)
    close = Transition(TicketState.is_active | TicketState.is_new, TicketState.is_closed)
    escalate = Transition(TicketState.is_urgent, TicketState.is_open, title="Escalate")
    expire = Transition(TicketState.is_stale, TicketState.is_closed, after=dt.timedelta(days=30, hours=2), since="touched_at")

    @open.guard
    def has_priority(self, ticket: Ticket) -> bool:
        """A priority must be set."""
        return ticket.priority > 0

    @open.permission
    def is_agent(self, ticket: Ticket) -> bool:
        return self.actor is not None

    @close.chain
    def nothing(self, ticket: Ticket) -> Iterable[Step]:
        return []


class LevelTransitions(Transitions[Ticket]):
    raise_ = Transition(Priority.is_low, Priority.is_high, title="Raise")
    lower = Transition(Priority.is_high, Priority.is_low)
    reopen = Transition(TicketState.is_waiting, TicketState.is_open)


MERMAID_TICKETS = """\
stateDiagram-v2
    direction LR
    state "New" as is_new
    state "Open" as is_open
    state "Waiting - 'customer'" as is_waiting
    state "Closed" as is_closed
    [*] --> is_new
    is_new --> is_open: Open it [if has_priority - A priority must be set.] [permission is_agent]
    is_open --> is_waiting: Wait
    is_new --> is_closed: Close [chain nothing]
    is_open --> is_closed: Close [chain nothing]
    is_waiting --> is_closed: Close [chain nothing]
    is_open --> is_open: Escalate [when Urgent]
    is_waiting --> is_closed: Expire [when Stale] [after 30 days 2 hours since touched_at]
    is_closed --> [*]
    note left of is_new
        Groups
        Active (is_active) = Open or Waiting - 'customer'
        Idle (is_idle) = New or Waiting - 'customer'
        Conditional states
        Stale (is_stale) = Waiting - 'customer' if is_stale()
        Urgent (is_urgent) = Open if is_urgent() (no SQL expression)
    end note
"""

DOT_TICKETS = r"""digraph "TicketTransitions" {
    rankdir=LR;
    node [shape=box, style=rounded, fontname="Helvetica"];
    edge [fontname="Helvetica", fontsize=10];
    "__start__" [shape=point, width=0.15];
    "is_new" [label="New"];
    "is_open" [label="Open"];
    "is_waiting" [label="Waiting: \"customer\""];
    "is_closed" [label="Closed", peripheries=2];
    "__start__" -> "is_new";
    "is_new" -> "is_open" [label="Open it\n[if has_priority - A priority must be set.]\n[permission is_agent]"];
    "is_open" -> "is_waiting" [label="Wait"];
    "is_new" -> "is_closed" [label="Close\n[chain nothing]"];
    "is_open" -> "is_closed" [label="Close\n[chain nothing]"];
    "is_waiting" -> "is_closed" [label="Close\n[chain nothing]"];
    "is_open" -> "is_open" [label="Escalate\n[when Urgent]"];
    "is_waiting" -> "is_closed" [label="Expire\n[when Stale]\n[after 30 days 2 hours since touched_at]"];
    "__legend__" [shape=note, label="Groups\lActive (is_active) = Open or Waiting: \"customer\"\lIdle (is_idle) = New or Waiting: \"customer\"\lConditional states\lStale (is_stale) = Waiting: \"customer\" if is_stale()\lUrgent (is_urgent) = Open if is_urgent() (no SQL expression)\l"];
}
"""


def test_mermaid_of_a_registry() -> None:
    assert mermaid(TicketTransitions) == MERMAID_TICKETS


def test_dot_of_a_registry() -> None:
    assert dot(TicketTransitions) == DOT_TICKETS


def test_a_registry_instance_draws_as_its_class() -> None:
    assert mermaid(TicketTransitions()) == MERMAID_TICKETS


def test_output_is_deterministic() -> None:
    assert [mermaid(TicketTransitions) for _ in range(3)] == [MERMAID_TICKETS] * 3
    assert [dot(LevelTransitions) for _ in range(3)] == [dot(LevelTransitions)] * 3


def test_statetype_alone_has_states_markers_and_legend_but_no_edges() -> None:
    assert mermaid(Priority) == (
        "stateDiagram-v2\n"
        "    direction LR\n"
        '    state "Low" as is_low\n'
        '    state "High" as is_high\n'
        "    [*] --> is_high\n"
    )
    lines = dot(TicketState).splitlines()
    assert lines[0] == 'digraph "TicketState" {'
    assert '    "__start__" -> "is_new";' in lines
    assert '    "is_closed" [label="Closed", peripheries=2];' in lines
    assert not any(" -> " in line and "__start__" not in line for line in lines)
    assert any(line.startswith('    "__legend__" [shape=note') for line in lines)


def test_several_columns_get_one_box_each_with_prefixed_ids() -> None:
    assert mermaid(LevelTransitions) == """\
stateDiagram-v2
    direction LR
    state "state (TicketState)" as state_ {
        state "New" as state_is_new
        state "Open" as state_is_open
        state "Waiting - 'customer'" as state_is_waiting
        state "Closed" as state_is_closed
        [*] --> state_is_new
        state_is_waiting --> state_is_open: Reopen
        state_is_closed --> [*]
        note left of state_is_new
            Groups
            Active (is_active) = Open or Waiting - 'customer'
            Idle (is_idle) = New or Waiting - 'customer'
            Conditional states
            Stale (is_stale) = Waiting - 'customer' if is_stale()
            Urgent (is_urgent) = Open if is_urgent() (no SQL expression)
        end note
    }
    state "level (Priority)" as level {
        state "Low" as level_is_low
        state "High" as level_is_high
        [*] --> level_is_high
        level_is_low --> level_is_high: Raise
        level_is_high --> level_is_low: Lower
    }
"""
    text = dot(LevelTransitions)
    assert '    subgraph "cluster_level" {' in text
    assert '        label="level (Priority)";' in text
    assert '        "level.is_low" -> "level.is_high" [label="Raise"];' in text
    assert '        "state.__start__" -> "state.is_new";' in text


def test_mermaid_labels_never_contain_what_ends_a_mermaid_statement() -> None:
    for line in mermaid(TicketTransitions).splitlines()[1:]:
        if " --> " in line and ": " in line:
            label = line.split(": ", 1)[1]
            assert not re.search("[:;]", label), line
        if line.strip().startswith("state "):
            assert line.count('"') == 2, line


def test_other_objects_are_refused() -> None:
    with pytest.raises(TypeError, match="Transitions subclass or a StateType class"):
        mermaid(Ticket)
    with pytest.raises(TypeError):
        dot(TicketState.is_new)


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz dot is not installed")
@pytest.mark.parametrize("target", [TicketTransitions, LevelTransitions, TicketState, Priority])
def test_dot_output_is_valid_graphviz(target: object) -> None:
    done = subprocess.run(["dot", "-Tsvg"], input=dot(target), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "<svg" in done.stdout


def test_dot_output_is_balanced_and_quoted() -> None:
    """A syntax sanity check that needs no graphviz: braces balance, every statement ends with ';'."""
    for target in (TicketTransitions, LevelTransitions, TicketState):
        text = dot(target)
        unescaped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
        assert unescaped.count("{") == unescaped.count("}")
        for line in unescaped.splitlines()[1:]:
            stripped = line.strip()
            assert stripped in ("}",) or stripped.endswith((";", "{")), line

