"""statetype: a state machine as a typed SQLAlchemy column type."""

from __future__ import annotations

from . import bulk as _bulk  # pyright: ignore[reportUnusedImport]  # noqa: F401  (installs bulk() and run_due())
from . import execution as _execution  # pyright: ignore[reportUnusedImport]  # noqa: F401  (installs the call)
from ._declarations import ConditionalState, State, StateGroup
from .exceptions import (
    AfterCommitError,
    BulkNotSupported,
    ConcurrentTransitionError,
    InvalidStateValue,
    ProtectedStateError,
    StateDefinitionError,
    StateTypeError,
    TransitionDataInvalid,
    TransitionNotAllowed,
)
from .log import TransitionLogMixin
from .retry import retry_on_conflict
from .states import StateType
from .transitions import (
    Applied,
    AppliedStep,
    BoundTransition,
    BulkResult,
    PlannedStep,
    Reason,
    Step,
    Transition,
    Transitions,
    Verdict,
)

__version__ = "0.1.0"

__all__ = [
    "Applied",
    "AppliedStep",
    "BoundTransition",
    "BulkResult",
    "PlannedStep",
    "Reason",
    "Step",
    "Transition",
    "TransitionLogMixin",
    "Transitions",
    "Verdict",
    "retry_on_conflict",
    "AfterCommitError",
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
