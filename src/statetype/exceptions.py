"""Errors raised by statetype; all derive from :class:`StateTypeError`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .transitions import Verdict

__all__ = [
    "AfterCommitError",
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

    ``.verdict`` holds every reason.
    """

    def __init__(self, message: str, verdict: Verdict) -> None:
        super().__init__(message)
        self.verdict: Verdict = verdict


class TransitionDataInvalid(StateTypeError):
    """The data or form given to a transition did not validate.

    ``.errors`` maps each field to its messages.
    """

    def __init__(self, message: str, errors: Mapping[str, Sequence[str]]) -> None:
        super().__init__(message)
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in errors.items()}


class ConcurrentTransitionError(StateTypeError):
    """Another transaction changed the state between the check and the write."""


class BulkNotSupported(StateTypeError):
    """A transition cannot be applied set-based; the message names the hook."""


class AfterCommitError(StateTypeError, ExceptionGroup):  # pyright: ignore[reportGeneralTypeIssues]
    """One or more ``after_commit`` hooks raised; the transaction was committed.

    Raised by ``Session.commit()`` once every hook has run. ``.exceptions``
    holds the hooks' exceptions, in the order the hooks ran. The session stays
    usable.
    """

    def __new__(cls, message: str, exceptions: Sequence[Exception]) -> AfterCommitError:
        return super().__new__(cls, message, exceptions)

    def __init__(self, message: str, exceptions: Sequence[Exception]) -> None:
        super().__init__(message, exceptions)

    def __reduce__(self) -> tuple[type[AfterCommitError], tuple[str, list[Exception]]]:
        return (AfterCommitError, (self.message, list(self.exceptions)))
