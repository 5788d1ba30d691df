"""The machine outside Python: exported to tables, and drawn as a diagram.

``export_machine(session)`` writes the states and every edge of
``CenterTransitions`` into ``center_machine_state`` and
``center_machine_transition`` (the stations' state column is a foreign key to
the first), replacing what an older version of the code wrote.
``diagram()`` is the mermaid text of ``statetype.diagram.mermaid``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from statetype import StateType, Transition
from statetype.diagram import mermaid

from .models import CenterState, MachineState, MachineTransition
from .transitions import CenterTransitions

__all__ = ["diagram", "edges", "export_machine"]


def edges(transition: Transition[Any]) -> list[tuple[StateType[Any], StateType[Any]]]:
    """(source, target) for each plain state the transition's sources cover."""
    sources: list[StateType[Any]] = []
    for source in transition.sources:
        for state in source.states:
            if state not in sources:
                sources.append(state)
    return [(s, transition.to) for s in sources]


def export_machine(session: Session) -> tuple[int, int]:
    """Replace the persisted machine with the declared one; returns (states, edges) written."""
    session.execute(sa.delete(MachineTransition))
    declared = {s.value for s in CenterState.states}
    stale = [v for v in session.scalars(sa.select(MachineState.value)) if v not in declared]
    if stale:  # states the code no longer declares (stations must have left them)
        session.execute(sa.delete(MachineState).where(MachineState.value.in_(stale)))
    for state in CenterState.states:
        session.merge(
            MachineState(value=state, name=state.name, title=str(state.title), initial=state.initial, final=state.final)
        )
    count = 0
    for transition in CenterTransitions.transitions():
        guards = ", ".join(g.name for g in transition.guards + transition.permissions)
        timer = int(transition.after.total_seconds()) if transition.after is not None else None
        for source, target in edges(transition):
            session.add(
                MachineTransition(
                    name=transition.name,
                    title=str(transition.title),
                    from_value=source,
                    to_value=target,
                    timer_seconds=timer,
                    since=transition.since,
                    guards=guards,
                )
            )
            count += 1
    session.flush()
    return len(CenterState.states), count


def diagram() -> str:
    """The centre's state diagram as mermaid text."""
    return mermaid(CenterTransitions)
