"""A durable operation executor on statetype: atomic, idempotent, recoverable, observable.

See README.md in this directory.
"""

from .executor import Executor, Handler, OperationView, UnknownOperation
from .models import Base, Event, Operation, OperationLog, OperationState, OperationTransitions, Subscribers

__all__ = [
    "Base",
    "Event",
    "Executor",
    "Handler",
    "Operation",
    "OperationLog",
    "OperationState",
    "OperationTransitions",
    "OperationView",
    "Subscribers",
    "UnknownOperation",
]
