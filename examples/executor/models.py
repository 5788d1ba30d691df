"""Durable operations: states, the operation table, its history and the transition registry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Optional, cast

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import AppliedStep, State, StateType, Transition, TransitionLogMixin, Transitions

__all__ = [
    "Base",
    "Event",
    "Operation",
    "OperationLog",
    "OperationState",
    "OperationTransitions",
    "Subscribers",
]

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the worker stopped during the attempt"


class OperationState(StateType[str]):
    is_pending = State("pending", "Pending", initial=True)
    is_running = State("running", "Running")
    is_retrying = State("retrying", "Retrying")
    is_succeeded = State("succeeded", "Succeeded", final=True)
    is_failed = State("failed", "Failed", final=True)
    is_cancelled = State("cancelled", "Cancelled", final=True)

    is_claimable = (is_pending | is_retrying).titled("Claimable")
    # Active operations still have work to do; inactive (terminal) ones never change again.
    is_active = (is_claimable | is_running).titled("Active")
    is_inactive = (is_succeeded | is_failed | is_cancelled).titled("Inactive")


class Base(DeclarativeBase):
    pass


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Operation(Base):
    __tablename__ = "executor_operation"
    # recover() and run_pending() look operations up by state
    __table_args__ = (sa.Index("ix_executor_operation_state_submitted", "state", "submitted_at"),)

    # The caller's idempotency key: submitting the same id twice makes one operation.
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(50))
    payload: Mapped[Optional[Any]] = mapped_column(sa.JSON)
    state: Mapped[OperationState] = mapped_column(OperationState(protected=True), default=OperationState.is_pending)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    worker: Mapped[Optional[str]] = mapped_column(sa.String(50))
    result: Mapped[Optional[Any]] = mapped_column(sa.JSON)
    error: Mapped[Optional[str]] = mapped_column(sa.Text)
    submitted_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)
    updated_at: Mapped[Optional[dt.datetime]]


class OperationLog(TransitionLogMixin, Base):
    __tablename__ = "executor_log"


@dataclasses.dataclass(frozen=True)
class Event:
    """One committed transition of one operation, as subscribers receive it."""

    operation_id: str
    transition: str
    from_state: OperationState
    to_state: OperationState
    actor: str | None
    at: dt.datetime


class Subscribers:
    """Thread-safe subscribers; fed by ``after_commit`` hooks, so only committed transitions reach them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Event], object]] = []

    def subscribe(self, callback: Callable[[Event], object]) -> Callable[[], None]:
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:
                log.exception("subscriber %r failed on %r", callback, event)


class OperationTransitions(Transitions[Operation, str]):
    """The actor is the worker's name."""

    log = OperationLog

    def __init__(self, actor: str | None = None, *, subscribers: Subscribers | None = None) -> None:
        super().__init__(actor)
        self.subscribers = subscribers

    claim = Transition(OperationState.is_claimable, OperationState.is_running)
    succeed = Transition(OperationState.is_running, OperationState.is_succeeded)
    retry = Transition(OperationState.is_running, OperationState.is_retrying)
    fail = Transition(OperationState.is_running, OperationState.is_failed)
    cancel = Transition(OperationState.is_active, OperationState.is_cancelled)
    # Crash recovery: a running operation whose worker died goes back in the queue (set-based).
    requeue = Transition(OperationState.is_running, OperationState.is_retrying)

    @claim.execute
    def take(self, operation: Operation, data: Mapping[str, Any]) -> int:
        operation.attempts += 1
        operation.worker = self.actor
        return operation.attempts

    @retry.guard
    def attempts_left(self, operation: Operation) -> bool:
        """No attempts are left."""
        return operation.attempts < operation.max_attempts

    @attempts_left.expression
    def _attempts_left_sql(self, operation: type[Operation]) -> ColumnElement[bool]:
        return operation.attempts < operation.max_attempts

    @succeed.execute
    def store_result(self, operation: Operation, data: Mapping[str, Any]) -> None:
        operation.result = data.get("result")
        operation.error = None

    @retry.execute
    @fail.execute
    def store_error(self, operation: Operation, data: Mapping[str, Any]) -> None:
        operation.error = str(data.get("error") or "unknown error")

    @requeue.execute
    def release(self, operation: Operation, data: Mapping[str, Any]) -> None:
        operation.worker = None
        operation.error = INTERRUPTED

    @release.expression
    def _release_sql(self, operation: type[Operation], now: dt.datetime) -> Mapping[Any, object]:
        return {operation.worker: None, operation.error: INTERRUPTED}

    def step_values(self, transition: Transition[Any], now: dt.datetime) -> Mapping[str, Any]:
        return {"updated_at": now.replace(tzinfo=None)}

    @claim.after_commit
    @succeed.after_commit
    @retry.after_commit
    @fail.after_commit
    @cancel.after_commit
    @requeue.after_commit
    def notify(self, step: AppliedStep[Operation]) -> None:
        if self.subscribers is None:
            return
        identity = sa.inspect(step.obj).identity  # survives expire-on-commit without a query
        assert identity is not None and step.from_state is not None
        self.subscribers.publish(
            Event(
                operation_id=identity[0],
                transition=step.transition.name,
                from_state=cast(OperationState, step.from_state),
                to_state=cast(OperationState, step.to_state),
                actor=self.actor,
                at=step.at,
            )
        )
