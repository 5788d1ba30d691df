"""Applying a transition: atomically, with compare-and-set, history and rollback of objects.

Paths, cheapest first (see docs/transitions.md, "What atomic means"):

* **in memory**: a transient object (no session) changes in memory; its
  history rows and ``after_commit`` hooks wait for its first flush;
* **one compare-and-set**: a single step whose hooks changed only columns of
  the object's own table. Hooks run under ``no_autoflush``; what they changed
  is folded into the compare-and-set UPDATE, and the history row follows it.
  SQLite and MariaDB roll back only a failed statement, so a lone UPDATE needs
  no savepoint there; the UPDATE with its history row, and on PostgreSQL
  (which aborts the whole transaction) every write, run inside a
  connection-level savepoint;
* **a savepoint of the session**: chains, a registry's ``after()``, hooks that
  touched other objects or relationships, an object that must be flushed first,
  ``Transitions.savepoint = True``. Every step runs inside one savepoint,
  children before their parent, with row locks taken in primary-key order.

Whatever fails, a :class:`~statetype._atomic.SessionSnapshot` puts back every
object the call touched and the exception is raised unchanged (database
conflicts become :class:`ConcurrentTransitionError`, the driver's error as
``__cause__``).
"""

from __future__ import annotations

import datetime as dt
import weakref
from types import MappingProxyType
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ColumnProperty, Mapper, Session, object_session
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.session import SessionTransactionState, _sessions
from sqlalchemy.orm.state import InstanceState

from . import _raw
from ._atomic import (
    ObjectSnapshot,
    Savepoint,
    SessionSnapshot,
    raise_converted,
    rollback_savepoint,
    session_savepoint,
    set_modified,
)
from .aftercommit import on_commit
from .bound import _PLAIN_VALUES, is_sql_expression, set_state
from .exceptions import ConcurrentTransitionError, StateTypeError
from .log import actor_text, jsonable, object_id_text
from .transitions import (
    Applied,
    AppliedStep,
    BoundTransition,
    Transitions,
    Verdict,
    _AppliedOne,
    _NO_RESULTS,
    _chain_steps,
    _operations,
    _reasons,
    refuse,
)

if TYPE_CHECKING:
    from .states import StateType

__all__ = ["apply", "table_info", "utcnow"]

_MISSING = object()

_ACTIVE = SessionTransactionState.ACTIVE
_get_bind = Session.get_bind
# The per-mapper binds in a Session's __dict__: public on SQLAlchemy 2.1, name-mangled on 2.0.
_BINDS = "binds" if sa.__version__ >= "2.1" else "_Session__binds"
_NO_EXPRESSIONS: dict[str, Any] = {}  # read only: steps whose hooks assigned no SQL expression
_NO_DATA: Mapping[str, Any] = MappingProxyType({})  # AppliedStep.data of a call without data
_STORED_STATES = ("st_new", "st_old")  # the compare-and-set's state parameters, passed as stored values
_NO_CHANGES: frozenset[str] = frozenset()  # a step whose hooks changed no column
_now = dt.datetime.now
_UTC = dt.timezone.utc


def utcnow() -> dt.datetime:
    """Timezone-aware UTC now."""
    return _now(_UTC)


# ------------------------------------------------------------------ per-model plan


class _TableInfo:
    """What a compare-and-set UPDATE needs for one state attribute of one model."""

    __slots__ = (
        "table", "state_column", "pk", "foldable", "foldable_keys", "refresh_keys", "statements", "mapper",
        "prepared", "version_key", "version_column", "version_generator", "fallible_state",
        "pk_params", "value_params", "version_keys", "expire_keys",
    )

    def __init__(self, model: type[Any], key: str) -> None:
        mapper = cast("Mapper[Any]", sa.inspect(model))
        self.mapper = mapper
        state_column = mapper.columns[key]
        table = state_column.table
        self.table = table
        self.state_column = state_column
        self.pk: list[tuple[str, sa.Column[Any]]] = []
        self.foldable: list[tuple[str, sa.Column[Any]]] = []
        refresh: list[str] = []
        version_column = mapper.version_id_col
        self.version_key: str | None = None
        self.version_column: sa.Column[Any] | None = None
        self.version_generator: Any = mapper.version_id_generator
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            if not isinstance(prop, ColumnProperty) or getattr(column, "table", None) is not table:  # pyright: ignore[reportUnnecessaryIsInstance]  (runtime guard)
                continue
            if column.primary_key:
                continue
            if version_column is not None and column is version_column:
                self.version_key = prop.key
                self.version_column = cast("sa.Column[Any]", column)
                continue
            if prop.key != key:
                self.foldable.append((prop.key, cast("sa.Column[Any]", column)))
            if column.onupdate is not None or column.server_onupdate is not None:
                refresh.append(prop.key)
        for column in table.primary_key.columns:
            self.pk.append((mapper.get_property_by_column(column).key, column))
        self.foldable_keys = frozenset(k for k, _ in self.foldable)
        self.pk_params = tuple(f"st_pk_{i}" for i in range(len(self.pk)))
        self.value_params = {k: f"st_v_{k}" for k, _ in self.foldable}
        self.refresh_keys = tuple(refresh)
        # Written by the compare-and-set besides the state and the hooks' columns: committed after it.
        self.version_keys: tuple[str, ...] = (self.version_key,) if self.version_key is not None else ()
        # Expired after the compare-and-set: onupdate columns, and a version counter the database sets.
        self.expire_keys = self.refresh_keys + (self.version_keys if self.version_generator is False else ())
        # A state column that is also a foreign key can be rejected by the database.
        self.fallible_state = bool(state_column.foreign_keys)
        self.statements: dict[frozenset[str], sa.Update] = {}
        self.prepared: dict[frozenset[str], _raw.Prepared] = {}

    def prepare(self, changed: frozenset[str]) -> _raw.Prepared:
        """The compare-and-set UPDATE writing ``changed`` besides the state, compiled once per dialect.

        :class:`statetype._raw.Prepared` sends it straight to a DBAPI cursor
        when nothing listens to the connection, else with ``exec_driver_sql``
        (which keeps SQLAlchemy's events and logging). Either way it skips
        the per-call compile-cache lookup and parameter processing of
        ``execute()``. Its state parameters take stored values.
        """
        prepared = self.prepared.get(changed)
        if prepared is None:
            prepared = self.prepared[changed] = _raw.Prepared(self.statement(changed), stored=_STORED_STATES)
        return prepared

    def execute_expressions(
        self, connection: sa.Connection, changed: frozenset[str], params: dict[str, Any], expressions: dict[str, Any]
    ) -> int:
        """The compare-and-set UPDATE when hooks assigned SQL expressions: evaluated by the database."""
        columns = dict(self.foldable)
        stmt = self.statement(changed).values({columns[k]: v for k, v in expressions.items()})
        return connection.execute(stmt, params).rowcount

    def statement(self, changed: frozenset[str]) -> sa.Update:
        stmt = self.statements.get(changed)
        if stmt is None:
            values: dict[Any, Any] = {self.state_column: sa.bindparam("st_new", type_=self.state_column.type)}
            for attr_key, column in self.foldable:
                if attr_key in changed:
                    values[column] = sa.bindparam(f"st_v_{attr_key}", type_=column.type)
            conditions = [column == sa.bindparam(f"st_pk_{i}", type_=column.type) for i, (_, column) in enumerate(self.pk)]
            conditions.append(self.state_column == sa.bindparam("st_old", type_=self.state_column.type))
            version = self.version_column
            if version is not None:
                conditions.append(version == sa.bindparam("st_ver_old", type_=version.type))
                if self.version_generator is not False:
                    values[version] = sa.bindparam("st_ver_new", type_=version.type)
            stmt = sa.update(self.table).where(*conditions).values(values)
            self.statements[changed] = stmt
        return stmt

    def exists(self, connection: sa.Connection, identity: tuple[Any, ...]) -> bool:
        pk = [column for _, column in self.pk]
        query = sa.select(sa.literal(1)).select_from(self.table).where(*(c == v for c, v in zip(pk, identity)))
        if connection.dialect.name != "sqlite":
            # A locking read is a current read: under REPEATABLE READ a plain one would see the snapshot.
            query = query.with_for_update(read=True)
        return connection.execute(query).first() is not None


_table_infos: dict[tuple[type[Any], str], _TableInfo] = {}


def table_info(model: type[Any], key: str) -> _TableInfo:
    """The compare-and-set plan of ``model``'s state attribute ``key`` (cached)."""
    info = _table_infos.get((model, key))
    if info is None:
        info = _table_infos[(model, key)] = _TableInfo(model, key)
    return info


def _overrides(registry: Transitions[Any, Any], name: str) -> bool:
    return getattr(type(registry), name) is not getattr(Transitions, name)


# ------------------------------------------------------------------ compiled plan


class _Compiled:
    """What applying one transition of one registry class needs, computed once per set of hooks."""

    __slots__ = (
        "model", "key", "to", "plain_sources", "source_ids", "checks", "simple_check",
        "has_before", "has_after", "has_step_values", "step_hooks", "lazy_step", "needs_snapshot", "chained",
        "after_commits", "has_form",
        "version", "logged", "executes", "impls", "bare", "info",
    )

    def __init__(self, bound: BoundTransition[Any, Any]) -> None:
        registry = bound.registry
        transition = bound.transition
        self.version = transition._hooks_version
        self.model = type(registry).model
        self.key = transition.key
        self.to = transition.to
        self.plain_sources = transition._plain_sources
        # Identity, not equality: members compare equal to their raw values.
        self.source_ids = frozenset(id(m) for m in self.plain_sources or ())
        # Guards first, then permissions: the functions apply() calls before a step.
        self.checks = tuple(g.func for g in transition.guards) + tuple(p.func for p in transition.permissions)
        self.chained = bool(transition.chains) or registry.savepoint
        self.simple_check = self.plain_sources is not None and not transition.chains and transition.after is None
        self.has_before = _overrides(registry, "before")
        self.has_after = _overrides(registry, "after")
        self.has_step_values = _overrides(registry, "step_values")
        self.step_hooks = self.has_before or self.has_after or self.has_step_values  # hooks that take the AppliedStep
        self.needs_snapshot = bool(transition.executes) or self.step_hooks
        self.after_commits = tuple(h.func for h in transition.after_commits)
        self.has_form = transition._form is not None
        self.logged = type(registry).log is not None
        self.executes = tuple((hook.name, hook.func) for hook in transition.executes)
        # Nothing runs besides the check and the new state: no hook, chain, form, history or after_commit.
        self.bare = not (self.chained or self.needs_snapshot or self.logged or self.after_commits or self.has_form)
        # Nothing takes the AppliedStep while the call runs: it can be built when read (_AppliedOne).
        self.lazy_step = not (self.step_hooks or self.logged or self.after_commits)
        self.impls: dict[type[Any], Any] = {}  # mapped class -> the state attribute's AttributeImpl
        self.info: _TableInfo | None = None  # the compare-and-set plan, once a step needs it (mappers configured)

    def table(self) -> _TableInfo:
        """The compare-and-set plan of the model's state attribute."""
        info = self.info
        if info is None:
            info = self.info = table_info(self.model, self.key)
        return info

    def impl(self, cls: type[Any]) -> Any:
        """The state attribute's AttributeImpl on ``cls`` (a subclass has its own)."""
        try:
            return self.impls[cls]
        except KeyError:
            impl = self.impls[cls] = getattr(cls, self.key).impl
            return impl


def _compiled(bound: BoundTransition[Any, Any]) -> _Compiled:
    """The plan for this transition in this registry class; rebuilt when hooks were added since."""
    transition = bound.transition
    compiled = cast("_Compiled | None", bound._compiled)
    if compiled is None or compiled.version != transition._hooks_version:
        per_registry = transition._compiled_by_registry
        compiled = per_registry.get(type(bound.registry))
        if compiled is None or compiled.version != transition._hooks_version:
            compiled = per_registry[type(bound.registry)] = _Compiled(bound)
        bound._compiled = compiled
    return compiled


def _session_of(bound: BoundTransition[Any, Any], obj: object, state: InstanceState[Any]) -> Session | None:
    """The object's session; refuses detached objects and objects deleted in their session."""
    session = object_session(obj) if state.session_id is not None else None
    if session is None:
        if state.key is not None:
            raise StateTypeError(
                f"{type(bound.registry).__name__}.{bound.name}: {type(obj).__name__} "
                f"{object_id_text(tuple(state.key[1]))} is detached; merge() or add() it to a session first"
            )
        return None
    if state.deleted or state in session._deleted:
        raise StateTypeError(
            f"{type(bound.registry).__name__}.{bound.name}: {type(obj).__name__} "
            f"{object_id_text(tuple(state.key[1])) if state.key else '(new)'} is deleted in its session"
        )
    return session


def apply(
    bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any] | None = None, form: Any = None
) -> Applied:
    """Re-check, validate, then apply ``bound`` to ``obj`` and its chain atomically."""
    compiled = bound._compiled
    if compiled is None or compiled.version != bound.transition._hooks_version:
        compiled = _compiled(bound)
    try:
        state = instance_state(obj)
    except AttributeError:
        raise TypeError(f"{bound!r} applies to {compiled.model.__name__} objects, not {type(obj).__name__}") from None
    session_id = state.session_id
    session = _sessions.get(session_id) if session_id is not None else None
    if session is None or state._deleted or state in session._deleted:  # pyright: ignore[reportPrivateUsage]
        session = _session_of(bound, obj, state) if session_id is not None or state.key is not None else None
    values = obj.__dict__  # what state.dict returns, without its weak reference call
    current: Any = values.get(compiled.key)
    allowed = compiled.simple_check and id(current) in compiled.source_ids and isinstance(obj, compiled.model)
    if allowed and compiled.checks:
        registry = bound.registry
        for func in compiled.checks:  # guards and permissions, without allocating
            if not func(registry, obj):
                allowed = False
                break
    if not allowed:
        reasons = _reasons(bound, obj, set())
        if reasons:
            raise refuse(bound, obj, Verdict(reasons))
        current = getattr(obj, compiled.key)._member
    if data is not None and not isinstance(data, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]  (runtime guard)
        raise TypeError(
            f"{type(bound.registry).__name__}.{bound.name}: data= takes a mapping of field names to values, "
            f"got {type(data).__name__}"
        )
    if compiled.has_form or form is not None:
        from .forms import validate  # WTForms is an optional extra: imported only when a form is involved

        data = validate(bound, obj, data, form)
    elif data is None:
        data = _NO_DATA  # hooks get a dict of their own (_run_hooks)
    if session is None:
        if compiled.bare:
            # The common in-memory case: nothing can fail after the check.
            impl = compiled.impls.get(type(obj))
            if impl is None:
                impl = compiled.impl(type(obj))
            impl.set(state, values, compiled.to, None)
            return _AppliedOne(obj, bound, current, data)
        if compiled.chained:
            return _apply_in_memory(bound, obj, data)
        # One step without a chain: hooks, the new state, after(); the object is put back on failure.
        snapshot = ObjectSnapshot(state, values)
        applied: Applied
        results: dict[str, object]
        try:
            if compiled.step_hooks:
                step, results = _run_hooks(bound, obj, data, compiled, current)
                compiled.impl(type(obj)).set(state, values, compiled.to, None)
                if compiled.has_after:
                    bound.registry.after(step)
                applied = Applied((step,), results)
            else:
                # Only execute hooks, which take the object and the data: the step waits until it is read.
                hook_data: Mapping[str, Any] = {} if data is _NO_DATA else data
                results = _run_executes(bound.registry, obj, hook_data, compiled)
                compiled.impl(type(obj)).set(state, values, compiled.to, None)
                applied = _AppliedOne(obj, bound, current, hook_data, results)
        except BaseException:
            snapshot.restore()
            raise
        if compiled.logged or compiled.after_commits:
            _defer(applied.steps[0])
        return applied
    if compiled.chained or compiled.has_after or state.key is None or compiled.key in state.committed_state:
        return _apply_in_savepoint(bound, obj, data, session)
    return _apply_one(bound, compiled, obj, state, current, data, session)


# ------------------------------------------------------------------ one compare-and-set


def _apply_one(
    bound: BoundTransition[Any, Any],
    compiled: _Compiled,
    obj: object,
    state: InstanceState[Any],
    current: StateType[Any],
    data: Mapping[str, Any],
    session: Session,
) -> Applied:
    """One step whose effects fit in one compare-and-set UPDATE (plus its history row)."""
    registry = bound.registry
    # The AppliedStep is built now only for whatever takes it (history, after_commit, before/after hooks).
    eager = compiled.lazy_step is False
    if not compiled.needs_snapshot:
        applied: Applied = (
            Applied((AppliedStep(obj, bound, current, compiled.to, data, registry.actor),), _NO_RESULTS)
            if eager
            else _AppliedOne(obj, bound, current, data)
        )
        try:
            _write(bound, compiled, obj, state, current, applied, session, _NO_CHANGES, _NO_EXPRESSIONS)
        except BaseException as error:
            raise_converted(error, session, f"{type(registry).__name__}.{bound.name}")
        if compiled.after_commits:
            _schedule_after_commit(session, applied.steps)
        return applied
    # A clean object is not copied: until the compare-and-set commits it, committed_state records the
    # hooks' changes and a failure reverts them (taken only when the step must move to a savepoint).
    snapshot = SessionSnapshot(session, (obj,), copy_clean=False)
    results: dict[str, object]
    try:
        autoflush = session.autoflush
        session.autoflush = False  # no_autoflush, without a context manager per step
        try:
            if eager:
                step, results = _run_hooks(bound, obj, data, compiled, current)
                applied = Applied((step,), results)
            else:
                hook_data: Mapping[str, Any] = {} if data is _NO_DATA else data
                results = _run_executes(registry, obj, hook_data, compiled)
                applied = _AppliedOne(obj, bound, current, hook_data, results)
        finally:
            session.autoflush = autoflush
        own = snapshot.objects.get(id(state))
        # A clean object (the common case, not copied): what the hooks assigned is what committed_state holds.
        changed = (
            _changed_keys(state, own.values, own.committed) if own is not None else frozenset(state.committed_state)
        )
        info = compiled.info or compiled.table()
        if not changed <= info.foldable_keys or not snapshot.unchanged_except(state):
            # Hooks reached beyond the one row: the unit of work writes it all, inside a savepoint,
            # which flushes the object; its snapshot must be taken from committed_state before that.
            snapshot.own(state)
            return _apply_in_savepoint(bound, obj, data, session, snapshot, (applied.steps[0], results))
        expressions = _sql_expressions(obj.__dict__, changed) if changed else _NO_EXPRESSIONS
        _write(bound, compiled, obj, state, current, applied, session, changed, expressions)
    except BaseException as error:
        snapshot.restore()
        raise_converted(error, session, f"{type(registry).__name__}.{bound.name}")
    if compiled.after_commits:
        _schedule_after_commit(session, applied.steps)
    return applied


def _changed_keys(state: InstanceState[Any], before: Mapping[str, Any], committed_before: Mapping[str, Any]) -> frozenset[str]:
    """Attributes assigned since the snapshot: new entries in committed_state, or new values of dirty ones."""
    committed = state.committed_state
    if not committed_before:
        return frozenset(committed)
    changed = [k for k in committed if k not in committed_before]
    current = state.dict
    for key in committed_before:
        if current.get(key, _MISSING) is not before.get(key, _MISSING):
            changed.append(key)
    return frozenset(changed)


def _write(
    bound: BoundTransition[Any, Any],
    compiled: _Compiled,
    obj: object,
    state: InstanceState[Any],
    current: StateType[Any],
    applied: Applied,
    session: Session,
    changed: frozenset[str],
    expressions: dict[str, Any],
) -> None:
    """The compare-and-set, then its history row, as one unit.

    Without history, the compare-and-set is one UPDATE, atomic by itself on
    SQLite and MariaDB, which roll back only a failed statement; on
    PostgreSQL, which aborts the whole transaction on any failed statement (a
    CHECK or trigger of the user's, a lock timeout), it runs inside a
    savepoint, sent with it in one round trip by psycopg 3 (pipeline mode).
    With history, the row follows the compare-and-set (so it is written once
    the step holds the row, and SQL the step runs never sees it) inside a
    savepoint on every database.
    """
    info = compiled.info or compiled.table()
    connection = _connection(session, info.mapper)
    log = bound.registry.log
    to = compiled.to
    if log is None and connection.dialect.name != "postgresql":
        _compare_and_set(bound, info, obj, state, current, to, connection, changed, expressions)
    elif log is None and not expressions:
        # PostgreSQL: SAVEPOINT, UPDATE and RELEASE in one round trip where the driver can.
        _compare_and_set(bound, info, obj, state, current, to, connection, changed, expressions, in_savepoint=True)
    else:
        with Savepoint(connection):
            _cas_and_history(bound, info, obj, state, applied.steps[0], connection, changed, expressions)
    _committed(session, info, obj, state, compiled.key, to, changed, expressions)


def _connection(session: Session, mapper: Mapper[Any]) -> sa.Connection:
    """``session.connection()`` for ``mapper``, without its per-call bookkeeping once the transaction has one.

    Only for the common case (one bind, no ``get_bind`` override) and an
    active transaction; anything else asks the session.
    """
    transaction = session._transaction  # pyright: ignore[reportPrivateUsage]
    bind = session.bind
    if (
        transaction is not None
        and bind is not None
        and transaction._state is _ACTIVE  # pyright: ignore[reportPrivateUsage]
        and not session.__dict__.get(_BINDS)
        and type(session).get_bind is _get_bind
    ):
        entry = transaction._connections.get(bind)  # pyright: ignore[reportPrivateUsage]
        if entry is not None:
            return entry[0]
    return session.connection(bind_arguments={"mapper": mapper})


def _compare_and_set(
    bound: BoundTransition[Any, Any],
    info: _TableInfo,
    obj: object,
    state: InstanceState[Any],
    old: StateType[Any],
    new: StateType[Any],
    connection: sa.Connection,
    changed: frozenset[str],
    expressions: dict[str, Any],
    in_savepoint: bool = False,
) -> tuple[Any, ...]:
    """Run the compare-and-set; returns the object's primary key. Raises ConcurrentTransitionError.

    ``in_savepoint``: inside a savepoint of its own, sent with the UPDATE in
    one round trip where the driver can (PostgreSQL with psycopg 3).
    """
    # Stored values: the member's hash and the column's bind map are Python calls; the value is at hand.
    params: dict[str, Any] = {"st_new": new.__dict__["_storage"], "st_old": old.__dict__["_storage"]}
    identity = state.identity
    if identity is None:
        raise ConcurrentTransitionError(f"{type(obj).__name__} has no identity; it was deleted")
    for name, value in zip(info.pk_params, identity):
        params[name] = value
    values: dict[str, Any] = obj.__dict__
    if changed:
        names = info.value_params
        for attr_key in changed:
            if attr_key not in expressions:
                params[names[attr_key]] = values[attr_key]
    if info.version_key is not None:
        old_version = state.committed_state.get(info.version_key, values.get(info.version_key, _MISSING))
        if old_version is _MISSING:
            old_version = getattr(obj, info.version_key)
        params["st_ver_old"] = old_version
        if info.version_generator is not False:
            params["st_ver_new"] = info.version_generator(old_version)
    matched: int | None
    if expressions:
        matched = info.execute_expressions(connection, changed, params, expressions)
    else:
        prepared = info.prepared.get(changed) or info.prepare(changed)
        if in_savepoint:
            # SAVEPOINT, UPDATE and RELEASE in one round trip, or nothing sent (None) where the driver can't.
            matched = prepared.run_in_savepoint(connection, params)
            if matched is None:
                with Savepoint(connection):
                    matched = prepared.run(connection, params)
        else:
            matched = prepared.run(connection, params)
    if matched != 1:
        label = f"{type(bound.registry).__name__}.{bound.name}: {type(obj).__name__} {object_id_text(tuple(identity))}"
        if not _exists(connection, info, tuple(identity)):
            raise ConcurrentTransitionError(f"{label} was deleted by another transaction")
        detail = f"is no longer {old.title}" + (" at the version loaded" if info.version_key else "")
        raise ConcurrentTransitionError(f"{label} {detail} in the database; another transaction changed it first")
    if "st_ver_new" in params:
        values[info.version_key] = params["st_ver_new"]  # type: ignore[index]
    return tuple(identity)


def _exists(connection: sa.Connection, info: _TableInfo, identity: tuple[Any, ...]) -> bool:
    """Whether the row is still there (after a compare-and-set that matched nothing); on PostgreSQL
    inside a savepoint, as the locking read could fail (a lock timeout) and abort the transaction."""
    if connection.dialect.name != "postgresql":
        return info.exists(connection, identity)
    with Savepoint(connection):
        return info.exists(connection, identity)


def _committed(
    session: Session,
    info: _TableInfo,
    obj: object,
    state: InstanceState[Any],
    key: str,
    to: StateType[Any],
    changed: frozenset[str],
    expressions: dict[str, Any],
) -> None:
    """The object now matches the row: commit its attributes and tell the session it changed in this transaction."""
    values: dict[str, Any] = obj.__dict__
    values[key] = to
    state._commit(values, (key, *changed, *info.version_keys))
    if not state.committed_state and state.modified:
        set_modified(state, False)  # everything the step changed is in the database now
    # A rollback of the caller's transaction or savepoint expires it, as after a flush.
    session._register_altered((state,))
    if info.expire_keys or expressions:
        session.expire(obj, [*info.expire_keys, *expressions])


def _insert_history(
    connection: sa.Connection,
    log: type[Any],
    info: _TableInfo,
    bound: BoundTransition[Any, Any],
    identity: tuple[Any, ...],
    step: AppliedStep[Any],
) -> None:
    """Insert one history row (the INSERT is compiled once per log table and dialect)."""
    _history_statement(log).run(connection, _history_row(info, bound, identity, step))


_HISTORY_KEYS = (
    "table_name", "object_id", "column_name", "transition", "from_value", "to_value", "actor", "created_at", "data",
)
_history_prepared: dict[object, _raw.Prepared] = {}


def _history_statement(log: type[Any]) -> _raw.Prepared:
    table = cast("sa.Table", log.__table__)
    prepared = _history_prepared.get(table)
    if prepared is None:
        prepared = _history_prepared[table] = _raw.Prepared(sa.insert(table), column_keys=_HISTORY_KEYS)
    return prepared


def _cas_and_history(
    bound: BoundTransition[Any, Any],
    info: _TableInfo,
    obj: object,
    state: InstanceState[Any],
    step: AppliedStep[Any],
    connection: sa.Connection,
    changed: frozenset[str],
    expressions: dict[str, Any],
) -> None:
    """The compare-and-set, then (once it holds the row lock) the history row."""
    old = cast("StateType[Any]", step.from_state)
    identity = _compare_and_set(bound, info, obj, state, old, step.to_state, connection, changed, expressions)
    log = bound.registry.log
    if log is not None:
        _insert_history(connection, log, info, bound, identity, step)


def _sql_expressions(values: Mapping[str, Any], changed: frozenset[str]) -> dict[str, Any]:
    """The changed attributes (in the object's ``values``) a hook assigned SQL to: the database evaluates them."""
    found: dict[str, Any] | None = None
    for key in changed:
        value = values[key]
        if type(value) not in _PLAIN_VALUES and is_sql_expression(value):
            if found is None:
                found = {}
            found[key] = value
    return found if found is not None else _NO_EXPRESSIONS


def _history_row(info: _TableInfo, bound: BoundTransition[Any, Any], identity: tuple[Any, ...], step: AppliedStep[Any]) -> dict[str, Any]:
    from_state = step.from_state
    return {
        "table_name": info.table.name,
        "object_id": object_id_text(identity),
        "column_name": info.state_column.name,
        "transition": bound.name,
        "from_value": str(from_state.__dict__["_storage"]) if from_state is not None else None,
        "to_value": str(step.to_state.__dict__["_storage"]),
        "actor": actor_text(bound.registry.actor),
        "created_at": step.at,
        "data": jsonable(step.data) if step.data else None,
    }


# ------------------------------------------------------------------ savepoint path


def _steps(
    bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any]
) -> list[tuple[BoundTransition[Any, Any], object, Mapping[str, Any]]]:
    """Steps in the order applied: depth first, children before their parent; one per object and column."""
    order: list[tuple[BoundTransition[Any, Any], object, Mapping[str, Any]]] = []
    seen: set[tuple[int, str]] = set()

    def visit(step_bound: BoundTransition[Any, Any], step_obj: object, step_data: Mapping[str, Any]) -> None:
        seen.add((id(step_obj), step_bound.transition.key))
        if step_bound.transition.chains:
            for child_bound, child in _chain_steps(step_bound, step_obj):
                if (id(child), child_bound.transition.key) not in seen:
                    visit(child_bound, child, {})
        order.append((step_bound, step_obj, step_data))

    visit(bound, obj, data)
    return order


def _run_hooks(
    bound: BoundTransition[Any, Any],
    obj: object,
    data: Mapping[str, Any],
    compiled: _Compiled | None = None,
    current: StateType[Any] | None = None,
) -> tuple[AppliedStep[Any], dict[str, object]]:
    """``before``, then execute hooks (old state still visible), then step values."""
    registry = bound.registry
    transition = bound.transition
    if compiled is None:
        compiled = _compiled(bound)
    if current is None:
        current = getattr(obj, transition.key)._member
    if data is _NO_DATA:
        data = {}
    step = AppliedStep(obj, bound, current, transition.to, data, registry.actor)
    if compiled.has_before:
        registry.before(step)
    results = _run_executes(registry, obj, data, compiled)
    if compiled.has_step_values:
        for key, value in registry.step_values(transition, step.at).items():
            setattr(obj, key, value)
    return step, results


def _run_executes(
    registry: Transitions[Any, Any], obj: object, data: Mapping[str, Any], compiled: _Compiled
) -> dict[str, object]:
    """The execute hooks in order, with the call's data (a dict of their own); their results by hook name."""
    results: dict[str, object] = {}
    for name, func in compiled.executes:
        results[name] = func(registry, obj, data)
    return results


def _lock_in_key_order(session: Session, objects: list[object]) -> None:
    """``SELECT ... FOR UPDATE`` of the chain's rows, table by table (by name), each in primary-key order.

    Every statetype path takes its row locks in this order, so two chains, or
    a chain and a bulk, wait for each other instead of deadlocking.
    """
    if len(objects) < 2:
        return
    by_table: dict[str, tuple[list[sa.Column[Any]], list[tuple[Any, ...]]]] = {}
    for obj in objects:
        state = instance_state(obj)
        if state.key is None:
            continue
        table = cast("sa.Table", state.mapper.base_mapper.local_table)
        entry = by_table.setdefault(table.name, (list(table.primary_key.columns), []))
        entry[1].append(tuple(state.key[1]))
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return  # no row locks: the first write locks the whole database
    for name in sorted(by_table):
        pk, keys = by_table[name]
        where = pk[0].in_([k[0] for k in keys]) if len(pk) == 1 else sa.tuple_(*pk).in_(keys)
        connection.execute(sa.select(*pk).where(where).order_by(*pk).with_for_update()).all()


def _apply_in_savepoint(
    bound: BoundTransition[Any, Any],
    obj: object,
    data: Mapping[str, Any],
    session: Session,
    snapshot: SessionSnapshot | None = None,
    ran: tuple[AppliedStep[Any], dict[str, object]] | None = None,
) -> Applied:
    """Every step inside one savepoint of the session; the unit of work writes what hooks changed.

    ``snapshot`` and ``ran`` come from a single step that ran its hooks before
    finding they reached beyond its own row: they are not run twice.
    """
    registry = bound.registry
    order = _steps(bound, obj, data) if ran is None else [(bound, obj, data)]
    objects = list({id(o): o for _, o, _ in order}.values())
    for step_bound, step_obj, _ in order:
        if step_obj is not obj:
            _session_of(step_bound, step_obj, instance_state(step_obj))
    if snapshot is None:
        snapshot = SessionSnapshot(session, objects)
    applied: list[AppliedStep[Any]] = []
    results: dict[str, object] = {}
    try:
        nested = session_savepoint(session)
        try:
            session.flush()
            _lock_in_key_order(session, objects)
            for step_bound, step_obj, step_data in order:
                state = instance_state(step_obj)
                if ran is not None:
                    own = snapshot.own(state)
                    step, step_results = ran
                else:
                    own = ObjectSnapshot(state)
                    with session.no_autoflush:
                        step, step_results = _run_hooks(step_bound, step_obj, step_data)
                compiled = _compiled(step_bound)
                info = table_info(compiled.model, compiled.key)
                # The hooks' changes to the object's own row ride on the compare-and-set, which
                # also finds a conflict before the unit of work writes anything else.
                changed = _changed_keys(state, own.values, own.committed) & info.foldable_keys
                expressions = _sql_expressions(step_obj.__dict__, changed)
                connection = session.connection(bind_arguments={"mapper": info.mapper})
                _cas_and_history(step_bound, info, step_obj, state, step, connection, changed, expressions)
                _committed(session, info, step_obj, state, compiled.key, step.to_state, changed, expressions)
                session.flush()
                if compiled.has_after:
                    with session.no_autoflush:
                        step_bound.registry.after(step)
                applied.append(step)
                if step_obj is obj and step_bound is bound:
                    results = step_results
            session.flush()
        except BaseException:
            snapshot.revert_untracked()
            rollback_savepoint(session, nested)
            raise
        nested.commit()
    except BaseException as error:
        snapshot.restore()
        raise_converted(error, session, f"{type(registry).__name__}.{bound.name}")
    _schedule_after_commit(session, applied)
    return Applied(applied, results)


# ------------------------------------------------------------------ in memory (transient objects)

_DEFERRED = "statetype_deferred_steps"
_deferred: weakref.WeakSet[object] = weakref.WeakSet()


def _apply_in_memory(bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any]) -> Applied:
    order = _steps(bound, obj, data)
    snapshot = SessionSnapshot(None, [o for _, o, _ in order])
    applied: list[AppliedStep[Any]] = []
    results: dict[str, object] = {}
    try:
        for step_bound, step_obj, step_data in order:
            step, step_results = _run_hooks(step_bound, step_obj, step_data)
            set_state(step_obj, step_bound.transition.key, step_bound.transition.to)
            if _compiled(step_bound).has_after:
                step_bound.registry.after(step)
            applied.append(step)
            if step_obj is obj and step_bound is bound:
                results = step_results
    except BaseException:
        snapshot.restore()
        raise
    for step in applied:
        if step.transition.registry.log is not None or step.transition.transition.after_commits:
            _defer(step)
    return Applied(applied, results)


def _defer(step: AppliedStep[Any]) -> None:
    """History rows and after_commit hooks wait for the object's first flush."""
    if step.data:
        step.data = dict(step.data)  # what the step received, whatever the caller does to its dict until then
    instance_state(step.obj).info.setdefault(_DEFERRED, []).append(step)
    _deferred.add(step.obj)


@event.listens_for(Session, "after_flush")
def _write_deferred(session: Session, flush_context: Any) -> None:
    """History rows and after_commit hooks of steps applied to objects before their first flush."""
    if not _deferred:
        return
    waiting = [obj for obj in session.new if obj in _deferred]
    steps: list[AppliedStep[Any]] = []
    for obj in waiting:
        _deferred.discard(obj)
        steps.extend(instance_state(obj).info.pop(_DEFERRED, []))
    for step in steps:
        bound = step.transition
        log = bound.registry.log
        if log is None:
            continue
        info = table_info(type(bound.registry).model, bound.transition.key)
        mapper = info.mapper
        identity = mapper.primary_key_from_instance(step.obj)
        connection = session.connection(bind_arguments={"mapper": mapper})
        _insert_history(connection, log, info, bound, tuple(identity), step)
    _schedule_after_commit(session, steps)


# ------------------------------------------------------------------ after_commit


def _schedule_after_commit(session: Session, applied: Sequence[AppliedStep[Any]]) -> None:
    calls: list[Callable[[], object]] = []
    for step in applied:
        for hook in step.transition.transition.after_commits:
            calls.append(_bind_call(hook.func, step.transition.registry, step))
    if calls:
        on_commit(session, calls)


def _bind_call(func: Callable[..., object], registry: object, step: AppliedStep[Any]) -> Callable[[], object]:
    return lambda: func(registry, step)


_operations.apply = apply
if not TYPE_CHECKING:
    # The hot path: calling a bound transition is apply itself, one frame less.
    BoundTransition.__call__ = apply
