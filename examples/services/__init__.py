"""A service lifecycle on statetype: in-progress states, validate-and-begin, waiting, observers, history.

See README.md in this directory.
"""

from .manager import AsyncServiceManager, HistoryEntry, ServiceFailed, ServiceManager, UnknownService
from .models import Base, Service, ServiceLog, ServiceState, ServiceTransitions
from .observers import Observer, Observers, StateChange

__all__ = [
    "AsyncServiceManager",
    "Base",
    "HistoryEntry",
    "Observer",
    "Observers",
    "Service",
    "ServiceFailed",
    "ServiceLog",
    "ServiceManager",
    "ServiceState",
    "ServiceTransitions",
    "StateChange",
    "UnknownService",
]
