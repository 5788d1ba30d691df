"""statetype: a state machine as a typed SQLAlchemy column type."""

from __future__ import annotations

from ._declarations import ConditionalState, State, StateGroup
from .exceptions import (
    BulkNotSupported,
    ConcurrentTransitionError,
    InvalidStateValue,
    ProtectedStateError,
    StateDefinitionError,
    StateTypeError,
    TransitionDataInvalid,
    TransitionNotAllowed,
)
from .states import StateType

__version__ = "0.1.0"

__all__ = [
    "BulkNotSupported",
    "ConcurrentTransitionError",
    "ConditionalState",
    "InvalidStateValue",
    "ProtectedStateError",
    "State",
    "StateDefinitionError",
    "StateGroup",
    "StateType",
    "StateTypeError",
    "TransitionDataInvalid",
    "TransitionNotAllowed",
]
