"""center: a workstation centre with a one-hour timer, 0am/3am checks, stamped changes and a persisted machine."""

from .app import Center, Tick
from .machine import diagram, edges, export_machine
from .models import Base, CenterLog, CenterState, MachineState, MachineTransition, Station
from .transitions import CenterTransitions, utc_naive

__all__ = [
    "Base",
    "Center",
    "CenterLog",
    "CenterState",
    "CenterTransitions",
    "MachineState",
    "MachineTransition",
    "Station",
    "Tick",
    "diagram",
    "edges",
    "export_machine",
    "utc_naive",
]
