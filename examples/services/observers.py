"""State-change observers: subscribers told about every committed transition of a service."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import ServiceState

__all__ = ["Observer", "Observers", "StateChange"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StateChange:
    """One committed transition of one service, as observers receive it."""

    service_id: int
    transition: str
    from_state: ServiceState
    to_state: ServiceState
    actor: str | None
    at: dt.datetime


Observer = Callable[[StateChange], object]


class Observers:
    """A thread-safe list of subscribers, each optionally limited to one service.

    ``publish`` is called from the registry's ``after_commit`` hook, so a
    subscriber hears of a change only once it is committed, exactly once, and
    never of a change that was rolled back. A subscriber that raises is
    logged and does not keep the others from being told.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[Observer, int | None]] = []

    def subscribe(self, observer: Observer, *, service_id: int | None = None) -> Callable[[], None]:
        """Call ``observer(change)`` for every change (of ``service_id`` only, when given); returns unsubscribe."""
        entry = (observer, service_id)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def publish(self, change: StateChange) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for observer, service_id in subscribers:
            if service_id is not None and service_id != change.service_id:
                continue
            try:
                observer(change)
            except Exception:
                log.exception("observer %r failed on %r", observer, change)
