"""Units of atomic work inside a caller's transaction: savepoints, object snapshots, conflict errors.

A transition must leave the caller's transaction exactly as it found it when
anything fails. Two tools do it, used by :mod:`statetype.execution` and
:mod:`statetype.bulk`:

* :class:`Savepoint`, a connection-level ``SAVEPOINT`` around statements that
  may fail for reasons other than the compare-and-set (history rows, columns a
  hook changed). PostgreSQL aborts the whole transaction on any failed
  statement; a savepoint keeps the caller's earlier work committable.
  :func:`session_savepoint` is the ORM-level one, for steps that must flush.
* :class:`SessionSnapshot`, which puts back every object the call touched (its
  attribute values, change tracking, and whether the session held it as new or
  deleted): the transitioned objects, the caller's pending work and whatever
  hooks changed.

:func:`conflict` turns a deadlock, a lock timeout or a serialization failure
raised by one of statetype's statements into :class:`ConcurrentTransitionError`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence, Set as AbstractSet
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.base import NEVER_SET, NO_VALUE
from sqlalchemy.orm.state import InstanceState

from . import _raw
from .exceptions import ConcurrentTransitionError

__all__ = [
    "ObjectSnapshot", "Savepoint", "SessionSnapshot", "as_conflict", "conflict", "ensure_transaction", "flush_safely",
    "raise_converted", "set_modified",
    "rollback_savepoint", "session_savepoint", "transaction_lost",
]

_names = itertools.count(1)
_NOTHING: frozenset[str] = frozenset()
_NO_STATES: frozenset[InstanceState[Any]] = frozenset()

# SQLSTATEs and driver codes that mean "another transaction got in the way".
_PG_CONFLICTS = {"40001": "serialization failure", "40P01": "deadlock", "55P03": "lock not available"}
_INNODB_DEADLOCK = 1213  # InnoDB rolls the whole transaction back, savepoints included
_MYSQL_CONFLICTS = {_INNODB_DEADLOCK: "deadlock", 1205: "lock wait timeout", 1020: "record changed since last read"}
_SQLITE_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED


def ensure_transaction(connection: sa.Connection) -> None:
    """pysqlite starts no transaction on SAVEPOINT, and RELEASE would commit: BEGIN first."""
    if connection.dialect.name != "sqlite":
        return
    driver: Any = connection.connection.driver_connection  # sqlite3 or aiosqlite: both say in_transaction
    if getattr(driver, "in_transaction", True) is False:
        connection.exec_driver_sql("BEGIN")


class Savepoint:
    """A raw ``SAVEPOINT`` on the session's connection, unknown to the Session.

    Cheaper than ``Session.begin_nested()`` (no flush, no ORM bookkeeping); for
    statements statetype sends itself, straight to the driver when nothing
    listens (:func:`statetype._raw.run`). ``rollback()`` never masks the original
    error: when the database already dropped the savepoint (MariaDB rolls the
    whole transaction back on a deadlock), its own error is swallowed.
    """

    __slots__ = ("connection", "name")

    def __init__(self, connection: sa.Connection) -> None:
        ensure_transaction(connection)
        self.connection = connection
        self.name = f"statetype_{next(_names)}"
        _raw.run(connection, f"SAVEPOINT {self.name}", ())

    def __enter__(self) -> Savepoint:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """Released when the block ends normally, rolled back when it raises (the exception goes on)."""
        if exc_type is None:
            self.release()
        else:
            self.rollback()

    def release(self) -> None:
        _raw.run(self.connection, f"RELEASE SAVEPOINT {self.name}", ())

    def rollback(self) -> None:
        try:
            _raw.run(self.connection, f"ROLLBACK TO SAVEPOINT {self.name}", ())
            _raw.run(self.connection, f"RELEASE SAVEPOINT {self.name}", ())
        except DBAPIError:
            pass  # the transaction is already gone; the caller sees the original error


def session_savepoint(session: Session) -> SessionTransaction:
    """``Session.begin_nested()`` without its preliminary flush.

    ``begin_nested()`` flushes pending work before it emits SAVEPOINT, so a
    flush failure there would abort the caller's transaction. Here the flush
    happens inside the savepoint, where its failure rolls back to it; the
    objects it expires or expunges are put back by a :class:`SessionSnapshot`.
    """
    ensure_transaction(session.connection())
    flushing = session._flushing
    session._flushing = True  # suppresses the flush in SessionTransaction._take_snapshot
    try:
        return session.begin_nested()
    finally:
        session._flushing = flushing


def rollback_savepoint(session: Session, nested: SessionTransaction) -> None:
    """Roll back ``nested`` unless it is already over (a failed flush leaves it inactive, not closed).

    When the database already dropped the savepoint (InnoDB rolls back the
    whole transaction on a deadlock), its "savepoint does not exist" error is
    swallowed: the caller sees the original error.
    """
    if nested.is_active or session.get_nested_transaction() is nested:
        try:
            nested.rollback()
        except DBAPIError:
            pass


def flush_safely(session: Session) -> None:
    """Flush pending work inside a savepoint: a failure leaves the transaction and the objects as they were."""
    if session._is_clean():
        return
    snapshot = SessionSnapshot(session, ())
    nested = session_savepoint(session)
    try:
        session.flush()
    except BaseException:
        rollback_savepoint(session, nested)
        snapshot.restore()
        raise
    nested.commit()


class ObjectSnapshot:
    """One object's attribute values and change tracking."""

    __slots__ = ("state", "values", "committed", "modified", "expired", "expired_attributes")

    @classmethod
    def before_changes(cls, state: InstanceState[Any]) -> ObjectSnapshot:
        """The snapshot a clean persistent object had before the changes its ``committed_state`` records.

        Changed scalar attributes get their committed values back; a changed
        collection (or an attribute that had no value) is left unloaded, so it
        loads again from the database, as :func:`_revert` leaves it.
        """
        snapshot = cls(state)
        values = snapshot.values
        manager = state.manager
        reload: set[str] = set()
        for key, original in snapshot.committed.items():
            if original is NO_VALUE or original is NEVER_SET:
                values.pop(key, None)  # it had no value: unloaded again
            elif getattr(manager[key].impl, "collection", False):
                values.pop(key, None)  # loaded again from the database, as _revert() leaves it
                reload.add(key)
            else:
                values[key] = original
        snapshot.committed = {}
        snapshot.modified = False
        if reload:
            snapshot.expired_attributes = reload
        return snapshot

    def __init__(self, state: InstanceState[Any], values: dict[str, Any] | None = None) -> None:
        """``values``: the object's ``__dict__`` when the caller has it at hand (else read from ``state``)."""
        self.state = state
        self.values = dict(state.dict if values is None else values)
        self.committed = dict(state.committed_state)
        self.modified = state.modified
        self.expired = state.expired
        expired_attributes = state.expired_attributes
        self.expired_attributes = set(expired_attributes) if expired_attributes else _NOTHING

    def restore(self) -> None:
        state = self.state
        current = state.dict
        current.clear()
        current.update(self.values)
        state.committed_state.clear()
        state.committed_state.update(self.committed)
        state.expired = self.expired
        state.expired_attributes.clear()
        state.expired_attributes.update(self.expired_attributes)
        set_modified(state, self.modified)


def set_modified(state: InstanceState[Any], modified: bool) -> None:
    """Set an object's "has unflushed changes" flag and its membership in the identity map's modified set."""
    state.modified = modified
    identity_map = state._instance_dict()
    if identity_map is not None:
        if modified:
            identity_map._modified.add(state)
        else:
            identity_map._modified.discard(state)


def _revert(state: InstanceState[Any]) -> None:
    """Undo in-memory changes of an object that was clean before: back to its committed values."""
    current = state.dict
    expire: list[str] = []
    manager = state.manager
    for key, original in state.committed_state.items():
        impl = manager[key].impl
        if getattr(impl, "collection", False) or original is NO_VALUE or original is NEVER_SET:
            expire.append(key)
        else:
            current[key] = original
    state.committed_state.clear()
    set_modified(state, False)
    if expire:
        state._expire_attributes(current, expire)


class SessionSnapshot:
    """Everything a failed call must put back in a session; see the module docstring.

    Taken before the call's hooks run: the given objects, every pending object
    and every object with unflushed changes. Objects that were clean and that
    the call changed are reverted to their committed values. With
    ``copy_clean=False``, so is a given object that is clean and persistent:
    it is not copied, and :meth:`own` rebuilds its snapshot from
    ``committed_state`` where one is needed.
    """

    __slots__ = ("session", "new", "deleted", "objects", "modified")

    def __init__(self, session: Session | None, objects: Iterable[object], *, copy_clean: bool = True) -> None:
        """``copy_clean=False``: a given object that is clean and persistent is not copied; the caller
        takes :meth:`own` before anything commits that object's attributes."""
        self.session = session
        snapshots: dict[int, ObjectSnapshot] = {}
        self.objects = snapshots
        for obj in objects:
            state = instance_state(obj)
            if id(state) in snapshots:
                continue
            if (
                not copy_clean
                and session is not None
                and state.key is not None
                and not state.modified
                and not state.committed_state
                and not state.expired
                and not state.expired_attributes
            ):
                # Clean and persistent (the common case): nothing to copy. What the call changes,
                # committed_state records, and restore() reverts it (see own()).
                continue
            snapshots[id(state)] = ObjectSnapshot(state, obj.__dict__)
        self.new: Sequence[object] = ()
        self.deleted: Sequence[object] = ()
        self.modified: AbstractSet[InstanceState[Any]] = _NO_STATES
        if session is None:
            return
        # The session's own dicts: its ``new``/``deleted`` properties build an IdentitySet per call.
        new, deleted, modified = session._new, session._deleted, session.identity_map._modified
        if new:
            self.new = list(new.values())
            for obj in self.new:
                state = instance_state(obj)
                if id(state) not in snapshots:
                    snapshots[id(state)] = ObjectSnapshot(state)
        if deleted:
            self.deleted = list(deleted.values())
        if modified:
            self.modified = set(modified)
            for state in self.modified:
                if id(state) not in snapshots:
                    snapshots[id(state)] = ObjectSnapshot(state)

    def own(self, state: InstanceState[Any]) -> ObjectSnapshot:
        """The snapshot of one of the given objects; a clean one's is rebuilt from its committed_state."""
        snapshot = self.objects.get(id(state))
        if snapshot is None:
            snapshot = self.objects[id(state)] = ObjectSnapshot.before_changes(state)
        return snapshot

    def unchanged_except(self, state: InstanceState[Any]) -> bool:
        """Whether the session's membership and other objects are as snapshotted (only ``state``'s object may differ)."""
        session = self.session
        if session is None:
            return True
        modified = session.identity_map._modified
        if not (self.new or self.deleted or self.modified):
            # The common case, a clean session before the call: only the object itself may have changed.
            if session._new or session._deleted:
                return False
            return not modified or (len(modified) == 1 and state in modified)
        if len(session._new) != len(self.new) or len(session._deleted) != len(self.deleted):
            return False
        for other in modified:
            if other is not state and other not in self.modified:
                return False
        return True

    def revert_untracked(self) -> None:
        """Revert objects that were clean before and changed since (call it before a savepoint's rollback,
        which would otherwise expire them)."""
        session = self.session
        if session is not None:
            for state in list(session.identity_map._modified):
                if id(state) not in self.objects:
                    _revert(state)

    def restore(self) -> None:
        session = self.session
        if session is not None:
            new_ids = {id(o) for o in self.new}
            for added in [o for o in session.new if id(o) not in new_ids]:
                session.expunge(added)
            self.revert_untracked()
            current_new = {id(o) for o in session.new}
            for obj in self.new:
                if id(obj) not in current_new:
                    session.add(obj)  # expunged by the savepoint's rollback: pending again
            deleted_ids = {id(o) for o in self.deleted}
            for obj in list(session.deleted):
                if id(obj) not in deleted_ids:
                    session._deleted.pop(instance_state(obj), None)
            current_deleted = {id(o) for o in session.deleted}
            for obj in self.deleted:
                if id(obj) not in current_deleted and instance_state(obj).key is not None:
                    session.delete(obj)
        for snapshot in self.objects.values():
            snapshot.restore()


def conflict(error: DBAPIError) -> str | None:
    """What kind of conflict a database error is (deadlock, serialization failure...), or None."""
    orig: Any = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate in _PG_CONFLICTS:
        return _PG_CONFLICTS[sqlstate]
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CONFLICTS:
        return _MYSQL_CONFLICTS[args[0]]
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _SQLITE_BUSY:
        return "database is locked"
    return None


def transaction_lost(error: BaseException) -> bool:
    """Whether the database rolled back the whole transaction (InnoDB does on a deadlock)."""
    if not isinstance(error, DBAPIError):
        return False
    args: Any = getattr(error.orig, "args", ())
    return bool(args) and args[0] == _INNODB_DEADLOCK


def _abandon(session: Session, error: BaseException) -> None:
    """Tell the session its transaction is gone, as a failed flush does: ``commit()`` raises until ``rollback()``."""
    transaction = session.get_transaction()
    if transaction is None or not transaction.is_active:
        return
    try:
        raise error
    except BaseException:
        # A subtransaction rolled back with its exception captured: SQLAlchemy's own
        # mechanism for "this transaction is dead" (PendingRollbackError on commit).
        sub = session._autobegin_t()._begin()
        sub.rollback(_capture_exception=True)


def raise_converted(error: BaseException, session: Session, label: str) -> NoReturn:
    """Raise ``error`` (a conflict as ConcurrentTransitionError), after marking a lost transaction."""
    converted = as_conflict(error, label)
    if transaction_lost(error):
        _abandon(session, error)
    if converted is error:
        raise error
    raise converted from error


def as_conflict(error: BaseException, label: str) -> BaseException:
    """``ConcurrentTransitionError`` for a conflict raised by a statetype statement, else ``error`` itself."""
    if isinstance(error, StaleDataError):
        new = ConcurrentTransitionError(f"{label}: {error}; another transaction changed or deleted the row first")
        new.__cause__ = error
        return new
    if isinstance(error, DBAPIError):
        kind = conflict(error)
        if kind is not None:
            new = ConcurrentTransitionError(
                f"{label}: {kind} with another transaction; roll back and retry"
            )
            new.__cause__ = error
            return new
    return error
