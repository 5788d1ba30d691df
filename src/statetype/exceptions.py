"""Errors raised by statetype; all derive from :class:`StateTypeError`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DontWrapMixin

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


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """Unpickle an error without calling its ``__init__`` (whose signature may differ from ``args``)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class StateTypeError(Exception):
    """Base class of every error statetype raises.

    Every statetype error pickles with its message and attributes
    (``.verdict``, ``.errors``), so it crosses process pools and task queues.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class StateDefinitionError(StateTypeError, TypeError):
    """A StateType or Transitions class is declared wrongly.

    Raised at class creation, naming the class and the attribute.
    """


class InvalidStateValue(StateTypeError, ValueError, DontWrapMixin):
    """A value that is not one of the declared plain states.

    Raised unwrapped (not as SQLAlchemy's ``StatementError``) when found while
    a statement's parameters are processed.
    """


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
