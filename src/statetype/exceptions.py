"""Errors raised by statetype; all derive from :class:`StateTypeError`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .transitions import Verdict

__all__ = [
    "BulkNotSupported",
    "ConcurrentTransitionError",
    "InvalidStateValue",
    "ProtectedStateError",
    "StateDefinitionError",
    "StateTypeError",
    "TransitionDataInvalid",
    "TransitionNotAllowed",
]


class StateTypeError(Exception):
    """Base class of every error statetype raises."""


class StateDefinitionError(StateTypeError, TypeError):
    """A StateType or Transitions class is declared wrongly.

    Raised at class creation, naming the class and the attribute.
    """


class InvalidStateValue(StateTypeError, ValueError):
    """A value that is not one of the declared plain states."""


class ProtectedStateError(StateTypeError, AttributeError):
    """Direct assignment to a protected state column of a persistent object."""


class TransitionNotAllowed(StateTypeError):
    """A transition was called on an object it cannot apply to.

    Attributes:
        verdict: The ``Verdict``, with every reason.
    """

    def __init__(self, message: str, verdict: Verdict) -> None:
        super().__init__(message)
        self.verdict: Verdict = verdict


class TransitionDataInvalid(StateTypeError):
    """The data or form given to a transition did not validate.

    Attributes:
        errors: Each field's name mapped to its messages.
    """

    def __init__(self, message: str, errors: Mapping[str, Sequence[str]]) -> None:
        super().__init__(message)
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in errors.items()}


class ConcurrentTransitionError(StateTypeError):
    """Another transaction changed the state between the check and the write.

    Also raised when the row was deleted meanwhile, on a serialization
    failure and on a deadlock; the database error is the ``__cause__``.
    """


class BulkNotSupported(StateTypeError):
    """A transition cannot be applied set-based; the message names the hook."""
