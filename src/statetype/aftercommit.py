"""``after_commit`` hooks: run once the root transaction commits, with the session usable.

One mechanism serves per-row, chain, bulk and run_due steps, sync and async
(an ``AsyncSession`` fires the same events on its ``sync_session``). It is
built on SQLAlchemy's session transaction events:

* a call is registered with the innermost transaction boundary that is open
  (a savepoint's ``SessionTransaction`` or the root one);
* ``after_soft_rollback`` drops the calls registered inside the transaction
  that rolled back (a savepoint: only its own calls; the root: all);
* ``after_commit`` of the root transaction (not of a savepoint, which fires
  the same event on release) marks the pending calls ready;
* ``after_transaction_end`` of the root transaction runs the ready calls, or
  drops them when the transaction ended without committing
  (``Session.close()``, an expunged transaction). By then the session has no
  transaction, so a hook may lazy-load relationships and expired attributes,
  which begins a new one, as any access after ``commit()`` would.

Every call runs even when one raises; afterwards ``commit()`` raises
:class:`~statetype.exceptions.AfterCommitError` with their exceptions. The
transaction is committed either way, and the session stays usable.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, NestedTransaction, event
from sqlalchemy.orm import Session, SessionTransaction

from .exceptions import AfterCommitError

__all__ = ["on_commit"]

_PENDING = "statetype_after_commit"
_READY = "statetype_after_commit_ready"

_Call = Callable[[], object]


def on_commit(session: Session, calls: list[_Call]) -> None:
    """Run ``calls`` once the root transaction commits; drop them if their (sub)transaction rolls back."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    pending: list[tuple[SessionTransaction | None, _Call]] = session.info.setdefault(_PENDING, [])
    pending.extend((transaction, call) for call in calls)


def _inside(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[tuple[SessionTransaction | None, _Call]] | None = session.info.get(_PENDING)
    if not pending:
        return
    if previous_transaction.parent is None:
        del session.info[_PENDING]
        return
    if not previous_transaction.nested:
        return  # a subtransaction (a failed flush): its boundary decides
    session.info[_PENDING] = [(t, c) for t, c in pending if not _inside(t, previous_transaction)]


def _external_connections(transaction: SessionTransaction | None) -> list[Connection]:
    """Connections whose real transaction the session's root commit does not end.

    A Session joined into a transaction its caller began on a Connection (the
    "join an external transaction" recipe, ``join_transaction_mode``) commits
    only a savepoint, or nothing, of it: the real commit is the caller's.
    """
    if transaction is None:
        return []
    found: list[Connection] = []
    for connection, core_transaction, should_commit, _autoclose in transaction._connections.values():
        if not should_commit or isinstance(core_transaction, NestedTransaction):
            found.append(connection)
    return found


def _defer_to_connection(connection: Connection, calls: list[_Call]) -> None:
    """Run ``calls`` when the connection's own transaction commits; drop them if it rolls back."""

    # Each listener fires once; whichever comes first settles the calls, the other then does nothing.
    settled: list[bool] = []

    def committed(conn: Connection) -> None:
        if not settled:
            settled.append(True)
            _run(calls)

    def rolled_back(conn: Connection) -> None:
        settled.append(True)

    event.listen(connection, "commit", committed, once=True)
    event.listen(connection, "rollback", rolled_back, once=True)


@event.listens_for(Session, "after_commit")
def _mark_ready(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint released: its calls wait for the root
    pending = session.info.pop(_PENDING, None)
    if pending:
        root = session.get_transaction()
        calls = [call for _, call in pending]
        external = _external_connections(root)
        if external:
            _defer_to_connection(external[0], calls)
            return
        session.info[_READY] = (root, calls)


@event.listens_for(Session, "after_transaction_end")
def _run_ready(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    ready: tuple[SessionTransaction | None, list[_Call]] | None = session.info.pop(_READY, None)
    if ready is None or ready[0] is not transaction:
        # The root ended without committing (close(), or a commit that failed): drop its calls.
        session.info.pop(_PENDING, None)
        if ready is not None:
            session.info[_READY] = ready
        return
    # Inside ``with session.begin():`` the block's (now closed) transaction still guards the session
    # until the block exits; hooks must be able to load, which begins the next transaction.
    guard = getattr(session, "_trans_context_manager", None)
    session._trans_context_manager = None
    try:
        _run(ready[1])
    finally:
        session._trans_context_manager = guard


def _run(calls: list[_Call]) -> None:
    """Run every call, then raise their exceptions together."""
    errors: list[Exception] = []
    for call in calls:
        try:
            call()
        except AfterCommitError as group:  # a call that runs many hooks (a bulk's rows) collected them
            errors.extend(group.exceptions)
        except Exception as error:  # every hook runs; the errors are raised together below
            errors.append(error)
    if errors:
        raise AfterCommitError(
            f"the transaction was committed, but {len(errors)} after_commit hook(s) raised", errors
        )
