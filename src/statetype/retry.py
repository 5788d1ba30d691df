"""``retry_on_conflict``: roll back and call again when another transaction got there first.

Optimistic concurrency, as statetype's compare-and-set practises it, turns a
race into a :class:`~statetype.exceptions.ConcurrentTransitionError` for the
loser. The usual answer is to start over: roll back, reload, decide again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from .exceptions import ConcurrentTransitionError

__all__ = ["retry_on_conflict"]

T = TypeVar("T")


def retry_on_conflict(
    fn: Callable[[], T], attempts: int = 3, *, session: Session | None = None, backoff: float = 0.0
) -> T:
    """Call ``fn()``; on :class:`ConcurrentTransitionError`, roll back and call it again.

    Args:
        fn: The unit of work, from loading the objects to ``commit()``: each
            attempt must reload what it decides on (a retry of a stale object
            fails the same way).
        attempts: How many calls in all (default 3, at least 1).
        session: Rolled back after each conflict, when ``fn`` uses one session
            across attempts; leave it None when ``fn`` opens its own.
        backoff: Seconds to wait before the second attempt, doubled before each
            further one (default 0: retry at once).

    Returns:
        What ``fn`` returned.

    Raises:
        ConcurrentTransitionError: The last attempt also met a conflict.
        ValueError: ``attempts`` is below 1.
    """
    if attempts < 1:
        raise ValueError(f"retry_on_conflict: attempts must be at least 1, got {attempts!r}")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except ConcurrentTransitionError:
            if session is not None:
                session.rollback()
            if attempt == attempts:
                raise
            if backoff:
                time.sleep(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # the loop returns or raises
