"""The executor: submit operations idempotently, run them, recover after a crash.

Every state change is one short transaction with a compare-and-set on the
old state (statetype's per-row transitions), so two workers never both move
an operation from the same state: the loser gets ``ConcurrentTransitionError``,
reloads and retries, or gives up cleanly when the transition no longer applies.
Handlers run outside any transaction, between the ``claim`` and the
``succeed``/``retry``/``fail`` transactions.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from statetype import Applied, ConcurrentTransitionError

from .models import Operation, OperationState, OperationTransitions, Subscribers

__all__ = ["Executor", "Handler", "OperationView", "UnknownOperation"]

Handler = Callable[[Any], Any]
"""``handler(payload) -> result`` (JSON-serializable); raising makes the attempt fail."""


class UnknownOperation(LookupError):
    """No operation has this id."""


@dataclasses.dataclass(frozen=True)
class OperationView:
    """A detached snapshot of an operation's row."""

    id: str
    kind: str
    payload: Any
    state: OperationState
    attempts: int
    max_attempts: int
    worker: str | None
    result: Any
    error: str | None

    @classmethod
    def of(cls, operation: Operation) -> OperationView:
        return cls(
            id=operation.id,
            kind=operation.kind,
            payload=operation.payload,
            state=OperationState.from_value(operation.state.value),
            attempts=operation.attempts,
            max_attempts=operation.max_attempts,
            worker=operation.worker,
            result=operation.result,
            error=operation.error,
        )


class Executor:
    """One worker. Several may share a database; each transition is atomic and happens once."""

    def __init__(
        self,
        engine: sa.Engine,
        handlers: Mapping[str, Handler],
        *,
        worker: str = "worker",
        subscribers: Subscribers | None = None,
        conflict_retries: int = 3,
    ) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.handlers = dict(handlers)
        self.worker = worker
        self.subscribers = subscribers if subscribers is not None else Subscribers()
        self.conflict_retries = conflict_retries
        self.conflicts = 0  # ConcurrentTransitionErrors met (and retried) by this worker
        self._lock = threading.Lock()

    def _tx(self) -> OperationTransitions:
        return OperationTransitions(actor=self.worker, subscribers=self.subscribers)

    # -- submitting

    def submit(
        self, operation_id: str, kind: str, payload: Any = None, *, max_attempts: int = 3
    ) -> tuple[OperationView, bool]:
        """Create the operation unless it exists; returns it and whether this call created it.

        The id is an idempotency key: submitting it again (even concurrently)
        returns the existing operation, which runs once. Reusing an id for a
        different kind or payload is a ``ValueError``.
        """
        if kind not in self.handlers:
            raise ValueError(f"no handler for operation kind {kind!r}")
        with self.sessions() as session:
            existing = session.get(Operation, operation_id)
            if existing is None:
                operation = Operation(id=operation_id, kind=kind, payload=payload, max_attempts=max_attempts)
                session.add(operation)
                try:
                    session.commit()
                    return OperationView.of(operation), True
                except IntegrityError:  # another submit of the same id committed first
                    session.rollback()
                    existing = session.get(Operation, operation_id)
                    if existing is None:
                        raise
            if existing.kind != kind or existing.payload != payload:
                raise ValueError(f"operation {operation_id!r} was submitted with another kind or payload")
            return OperationView.of(existing), False

    def get(self, operation_id: str) -> OperationView:
        with self.sessions() as session:
            operation = session.get(Operation, operation_id)
            if operation is None:
                raise UnknownOperation(operation_id)
            return OperationView.of(operation)

    # -- transitions

    def apply(self, session: Session, operation: Operation, name: str, data: Mapping[str, Any] | None = None) -> Applied:
        """One attempt at a transition on a loaded operation, in the caller's transaction.

        Raises ``TransitionNotAllowed`` when it does not apply and
        ``ConcurrentTransitionError`` when another transaction moved the
        operation since it was loaded.
        """
        bound = getattr(self._tx(), name)
        applied: Applied = bound(operation, data=data)
        return applied

    def transition(self, operation_id: str, name: str, data: Mapping[str, Any] | None = None) -> OperationView | None:
        """Apply a transition in its own transaction, retrying on conflicts.

        Returns the operation after the step, or None when the transition no
        longer applies (another worker got there first): giving up cleanly.
        """
        for _attempt in range(self.conflict_retries + 1):
            try:
                with self.sessions.begin() as session:
                    operation = session.get(Operation, operation_id)
                    if operation is None:
                        raise UnknownOperation(operation_id)
                    if not getattr(self._tx(), name).check(operation):
                        return None
                    self.apply(session, operation, name, data)
                    view = OperationView.of(operation)
                return view  # committed: subscribers have been told
            except ConcurrentTransitionError:
                with self._lock:
                    self.conflicts += 1
        return None

    def claim(self, operation_id: str) -> OperationView | None:
        return self.transition(operation_id, "claim")

    def finish(self, operation_id: str, *, result: Any = None, error: str | None = None) -> OperationView | None:
        """Record an attempt's outcome: succeeded, else retrying while attempts are left, else failed."""
        if error is None:
            return self.transition(operation_id, "succeed", {"result": result})
        return self.transition(operation_id, "retry", {"error": error}) or self.transition(
            operation_id, "fail", {"error": error}
        )

    def cancel(self, operation_id: str) -> bool:
        """Cancel an active operation; False when it had already ended."""
        return self.transition(operation_id, "cancel") is not None

    # -- running

    def run(self, operation_id: str) -> OperationState | None:
        """Claim, execute and finish one attempt; None when another worker has it or it has ended."""
        claimed = self.claim(operation_id)
        if claimed is None:
            return None
        handler = self.handlers[claimed.kind]
        try:
            result = handler(claimed.payload)
        except Exception as error:
            finished = self.finish(operation_id, error=f"{type(error).__name__}: {error}")
        else:
            finished = self.finish(operation_id, result=result)
        # None: cancelled while it ran; the outcome is discarded.
        return finished.state if finished is not None else self.get(operation_id).state

    def _claimable(self, limit: int) -> list[str]:
        with self.sessions() as session:
            query = (
                sa.select(Operation.id)
                .where(Operation.state == OperationState.is_claimable)
                .order_by(Operation.submitted_at, Operation.id)
                .limit(limit)
            )
            return list(session.scalars(query))

    def run_pending(self, *, batch: int = 50, max_rounds: int = 100) -> int:
        """Run claimable operations (retries included) until none is left; returns the attempts made here."""
        attempts = 0
        for _round in range(max_rounds):
            ids = self._claimable(batch)
            progressed = False
            for operation_id in ids:
                if self.run(operation_id) is not None:
                    attempts += 1
                    progressed = True
            if not progressed:  # nothing left, or other workers took what there was
                break
        return attempts

    def recover(self, *, workers: Iterable[str] | None = None) -> list[str]:
        """After a restart: requeue operations left running, then run every active one.

        ``workers`` limits the requeue to operations claimed by those (dead)
        workers; by default every running operation is requeued, which is
        right when this executor is the only one. Returns the ids of the
        operations that were active, in submission order.
        """
        with self.sessions() as session:
            query = (
                sa.select(Operation.id)
                .where(Operation.state == OperationState.is_active)
                .order_by(Operation.submitted_at, Operation.id)
            )
            active = list(session.scalars(query))
        criteria = [] if workers is None else [Operation.worker.in_(list(workers))]
        with self.sessions.begin() as session:
            # One set-based UPDATE (with history and after_commit notifications per row).
            self._tx().requeue.bulk(session, *criteria)
        self.run_pending()
        return active
