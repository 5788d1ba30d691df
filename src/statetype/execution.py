"""Applying a transition: atomically, with compare-and-set, history and rollback of objects.

Paths, cheapest first:

* no session (transient or detached object): the object changes in memory;
* one step: hooks run under ``no_autoflush``; attributes they change on the
  object's own table are folded into the compare-and-set UPDATE, the only
  statement the step issues (history rows go to the session, batched by the
  unit of work). A Python error after the UPDATE is undone with a
  compensating UPDATE, safe because the row is locked by our transaction;
* a chain (or ``Transitions.savepoint = True``): every step inside one
  savepoint of the session.

Whatever fails, the objects touched get their prior attribute values back and
the exception is raised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ColumnProperty, Mapper, Session, object_session
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.state import InstanceState

from .bound import set_state
from .exceptions import ConcurrentTransitionError
from .log import actor_text, jsonable, object_id_text
from .transitions import (
    Applied,
    AppliedStep,
    BoundTransition,
    Transitions,
    _chain_steps,
    _reasons,
    refuse,
    Verdict,
)

if TYPE_CHECKING:
    from .states import StateType

__all__ = ["apply", "on_commit", "utcnow"]

_MISSING = object()
_AFTER_COMMIT_KEY = "statetype_after_commit"


_now = dt.datetime.now
_UTC = dt.timezone.utc


def utcnow() -> dt.datetime:
    """Timezone-aware UTC now."""
    return _now(_UTC)


# ------------------------------------------------------------------ per-model plan


class _TableInfo:
    """What a compare-and-set UPDATE needs for one state attribute of one model."""

    __slots__ = ("table", "state_column", "pk", "foldable", "refresh_keys", "statements", "mapper", "compiled")

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
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            if not isinstance(prop, ColumnProperty) or getattr(column, "table", None) is not table:  # pyright: ignore[reportUnnecessaryIsInstance]  (runtime guard)
                continue
            if column.primary_key:
                continue
            if prop.key != key:
                self.foldable.append((prop.key, cast("sa.Column[Any]", column)))
            if column.onupdate is not None or column.server_onupdate is not None:
                refresh.append(prop.key)
        for column in table.primary_key.columns:
            self.pk.append((mapper.get_property_by_column(column).key, column))
        self.refresh_keys = tuple(refresh)
        self.statements: dict[frozenset[str], sa.Update] = {}
        self.compiled: dict[
            tuple[frozenset[str], object], tuple[str, tuple[str, ...] | None, dict[str, Callable[[Any], Any]]]
        ] = {}

    def execute(self, connection: sa.Connection, changed: frozenset[str], params: dict[str, Any]) -> int:
        """Run the compare-and-set UPDATE; returns the matched row count.

        The statement is compiled once per dialect and sent with
        ``exec_driver_sql``, which keeps SQLAlchemy's events and logging but
        skips the per-call compile-cache lookup and parameter processing that
        make ``execute()`` cost twice as much for this one hot statement.
        """
        dialect = connection.dialect
        entry = self.compiled.get((changed, dialect))
        if entry is None:
            compiled = self.statement(changed).compile(dialect=dialect)
            found: dict[str, Callable[[Any], Any]] = {}
            for name, proc in compiled._bind_processors.items():
                if callable(proc):
                    found[name] = proc
            order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
            entry = self.compiled[(changed, dialect)] = (compiled.string, order, found)
        sql, positional, processors = entry
        processed = {name: processors[name](value) if name in processors else value for name, value in params.items()}
        if positional is not None:
            result = connection.exec_driver_sql(sql, tuple(processed[name] for name in positional))
        else:
            result = connection.exec_driver_sql(sql, processed)
        return result.rowcount

    def statement(self, changed: frozenset[str]) -> sa.Update:
        stmt = self.statements.get(changed)
        if stmt is None:
            values: dict[Any, Any] = {self.state_column: sa.bindparam("st_new", type_=self.state_column.type)}
            for attr_key, column in self.foldable:
                if attr_key in changed:
                    values[column] = sa.bindparam(f"st_v_{attr_key}", type_=column.type)
            conditions = [column == sa.bindparam(f"st_pk_{i}", type_=column.type) for i, (_, column) in enumerate(self.pk)]
            conditions.append(self.state_column == sa.bindparam("st_old", type_=self.state_column.type))
            stmt = sa.update(self.table).where(*conditions).values(values)
            self.statements[changed] = stmt
        return stmt


_table_infos: dict[tuple[type[Any], str], _TableInfo] = {}


def table_info(model: type[Any], key: str) -> _TableInfo:
    info = _table_infos.get((model, key))
    if info is None:
        info = _table_infos[(model, key)] = _TableInfo(model, key)
    return info


def _overrides(registry: Transitions[Any, Any], name: str) -> bool:
    return getattr(type(registry), name) is not getattr(Transitions, name)


# ------------------------------------------------------------------ snapshots


class _Snapshot:
    """An object's attribute values and change tracking, to put back on failure."""

    __slots__ = ("state", "values", "committed", "modified")

    def __init__(self, state: InstanceState[Any]) -> None:
        self.state = state
        self.values = dict(state.dict)
        self.committed = dict(state.committed_state)
        self.modified = state.modified

    def restore(self) -> None:
        state = self.state
        current = state.dict
        for key in [k for k in current if k not in self.values]:
            del current[key]
        current.update(self.values)
        state.committed_state.clear()
        state.committed_state.update(self.committed)
        state.expired_attributes.difference_update(self.values)
        if state.modified != self.modified:
            state.modified = self.modified
            identity_map = state._instance_dict()
            if identity_map is not None:
                if self.modified:
                    identity_map._modified.add(state)
                else:
                    identity_map._modified.discard(state)


class _Membership:
    """Which objects the session holds as new and deleted, to undo what hooks added."""

    __slots__ = ("session", "new", "deleted")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.new = set(session.new)
        self.deleted = set(session.deleted)

    def restore(self) -> None:
        session = self.session
        for added in set(session.new) - self.new:
            session.expunge(added)
        for deleted in set(session.deleted) - self.deleted:
            session._deleted.pop(instance_state(deleted), None)


# ------------------------------------------------------------------ apply


class _Compiled:
    """What applying one transition of one registry class needs, computed once."""

    __slots__ = (
        "model", "key", "to", "plain_sources", "source_ids", "guards", "permissions", "checks", "simple_check",
        "has_before", "has_after", "has_step_values", "needs_snapshot", "chained", "after_commits", "has_form",
    )

    def __init__(self, bound: BoundTransition[Any, Any]) -> None:
        registry = bound.registry
        transition = bound.transition
        self.model = type(registry).model
        self.key = transition.key
        self.to = transition.to
        self.plain_sources = transition._plain_sources
        # Identity, not equality: members compare equal to their raw values.
        self.source_ids = frozenset(id(m) for m in self.plain_sources or ())
        self.guards = tuple(g.func for g in transition.guards)
        self.permissions = tuple(p.func for p in transition.permissions)
        self.checks = bool(self.guards or self.permissions)
        self.chained = bool(transition.chains) or registry.savepoint
        self.simple_check = self.plain_sources is not None and not transition.chains and transition.after is None
        self.has_before = _overrides(registry, "before")
        self.has_after = _overrides(registry, "after")
        self.has_step_values = _overrides(registry, "step_values")
        self.needs_snapshot = bool(transition.executes) or self.has_before or self.has_after or self.has_step_values
        self.after_commits = tuple(h.func for h in transition.after_commits)
        self.has_form = transition._form is not None


def _compiled(bound: BoundTransition[Any, Any]) -> _Compiled:
    """The plan for this transition in this registry class; kept on the transition."""
    compiled = bound._compiled
    if compiled is None:
        per_registry = bound.transition._compiled_by_registry
        compiled = per_registry.get(type(bound.registry))
        if compiled is None:
            compiled = per_registry[type(bound.registry)] = _Compiled(bound)
        bound._compiled = compiled
    return cast(_Compiled, compiled)


def _allowed(bound: BoundTransition[Any, Any], compiled: _Compiled, obj: object) -> bool:
    """Guards and permissions, without allocating."""
    registry = bound.registry
    for func in compiled.guards:
        if not func(registry, obj):
            return False
    for func in compiled.permissions:
        if not func(registry, obj):
            return False
    return True


def apply(
    bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any] | None = None, form: Any = None
) -> Applied:
    """Re-check, validate, then apply ``bound`` to ``obj`` and its chain atomically."""
    compiled: _Compiled = bound._compiled or _compiled(bound)
    try:
        state = instance_state(obj)
    except AttributeError:
        raise TypeError(f"{bound!r} applies to {compiled.model.__name__} objects, not {type(obj).__name__}") from None
    values = state.dict
    current = values.get(compiled.key)
    if not (
        compiled.simple_check
        and id(current) in compiled.source_ids
        and isinstance(obj, compiled.model)
        and (not compiled.checks or _allowed(bound, compiled, obj))
    ):
        reasons = _reasons(bound, obj, set())
        if reasons:
            raise refuse(bound, obj, Verdict(reasons))
        current = getattr(obj, compiled.key)._member
    if compiled.has_form or form is not None:
        from .forms import validate

        data = validate(bound, obj, data, form)
    elif data is None:
        data = {}
    session = object_session(obj) if state.session_id is not None else None
    if compiled.chained:
        if session is None:
            return _apply_in_memory(bound, obj, data)
        return _apply_persisted(bound, obj, data, session)
    if session is None:
        if not compiled.needs_snapshot:
            # The common in-memory case: nothing can fail after the check.
            step = AppliedStep(obj, bound, current, compiled.to, data, bound.registry.actor, _now(_UTC))
            getattr(type(obj), compiled.key).impl.set(state, values, compiled.to, None)
            for func in compiled.after_commits:
                func(bound.registry, step)
            return Applied((step,), {})
        return _apply_in_memory(bound, obj, data)
    return _apply_one_persisted(bound, compiled, obj, data, session)


def _apply_one_persisted(
    bound: BoundTransition[Any, Any], compiled: _Compiled, obj: object, data: Mapping[str, Any], session: Session
) -> Applied:
    """One step in a session: a single compare-and-set UPDATE carries the state and what hooks changed."""
    state = instance_state(obj)
    if state.key is None or compiled.key in state.committed_state:
        session.flush()
    done: list[tuple[_TableInfo, object, dict[str, Any]]] = []
    if not compiled.needs_snapshot:
        with session.no_autoflush:
            step, results = _persist_step(bound, obj, data, session, None, done)
    else:
        snapshot = _Snapshot(state)
        membership = _Membership(session)
        try:
            with session.no_autoflush:
                step, results = _persist_step(bound, obj, data, session, snapshot, done)
        except BaseException:
            _compensate(session, done)
            membership.restore()
            snapshot.restore()
            raise
    if compiled.after_commits:
        _schedule_after_commit(session, [step])
    return Applied((step,), results)


def _apply_in_memory(bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any]) -> Applied:
    order = _steps(bound, obj, data)
    snapshots = [_Snapshot(instance_state(o)) for o in {id(o): o for _, o, _ in order}.values()]
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
        for snapshot in snapshots:
            snapshot.restore()
        raise
    for step in applied:
        for hook in step.transition.transition.after_commits:
            hook.func(step.transition.registry, step)
    return Applied(applied, results)


def _steps(
    bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any]
) -> list[tuple[BoundTransition[Any, Any], object, Mapping[str, Any]]]:
    """Steps in the order applied: depth first, children before their parent."""
    order: list[tuple[BoundTransition[Any, Any], object, Mapping[str, Any]]] = []
    seen: set[int] = set()

    def visit(step_bound: BoundTransition[Any, Any], step_obj: object, step_data: Mapping[str, Any]) -> None:
        seen.add(id(step_obj))
        if step_bound.transition.chains:
            for child_bound, child in _chain_steps(step_bound, step_obj):
                if id(child) not in seen:
                    visit(child_bound, child, {})
        order.append((step_bound, step_obj, step_data))

    visit(bound, obj, data)
    return order


def _run_hooks(
    bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any]
) -> tuple[AppliedStep[Any], dict[str, object]]:
    """``before``, then execute hooks (old state still visible), then step values."""
    registry = bound.registry
    transition = bound.transition
    compiled = _compiled(bound)
    current = getattr(obj, transition.key)
    step = AppliedStep(obj, bound, current._member, transition.to, data, registry.actor, utcnow())
    if compiled.has_before:
        registry.before(step)
    results: dict[str, object] = {}
    for hook in transition.executes:
        results[hook.name] = hook.func(registry, obj, data)
    if compiled.has_step_values:
        for key, value in registry.step_values(transition, step.at).items():
            setattr(obj, key, value)
    return step, results


def _ensure_sqlite_transaction(session: Session) -> None:
    """pysqlite starts no transaction on SAVEPOINT, and RELEASE would commit: BEGIN first."""
    connection = session.connection()
    dbapi: Any = connection.connection.dbapi_connection
    if isinstance(dbapi, sqlite3.Connection) and not dbapi.in_transaction:
        connection.exec_driver_sql("BEGIN")


def _apply_persisted(
    bound: BoundTransition[Any, Any], obj: object, data: Mapping[str, Any], session: Session
) -> Applied:
    order = _steps(bound, obj, data)
    registry = bound.registry
    use_savepoint = len(order) > 1 or registry.savepoint
    # Objects must exist in the database, with their state flushed, before a compare-and-set.
    for step_bound, step_obj, _ in order:
        state = instance_state(step_obj)
        if state.key is None or step_bound.transition.key in state.committed_state:
            session.flush()
            break
    snapshots: dict[int, _Snapshot] = {}
    for _, step_obj, _ in order:
        if id(step_obj) not in snapshots:
            snapshots[id(step_obj)] = _Snapshot(instance_state(step_obj))
    membership = _Membership(session)
    if use_savepoint:
        _ensure_sqlite_transaction(session)
    done: list[tuple[_TableInfo, object, dict[str, Any]]] = []
    applied: list[AppliedStep[Any]] = []
    results: dict[str, object] = {}
    try:
        with session.begin_nested() if use_savepoint else contextlib.nullcontext():
            with session.no_autoflush:
                for step_bound, step_obj, step_data in order:
                    step, step_results = _persist_step(
                        step_bound, step_obj, step_data, session, snapshots[id(step_obj)], done
                    )
                    applied.append(step)
                    if step_obj is obj and step_bound is bound:
                        results = step_results
    except BaseException:
        if not use_savepoint:
            _compensate(session, done)
            membership.restore()
        for snapshot in snapshots.values():
            snapshot.restore()
        raise
    _schedule_after_commit(session, applied)
    return Applied(applied, results)


def _persist_step(
    bound: BoundTransition[Any, Any],
    obj: object,
    data: Mapping[str, Any],
    session: Session,
    snapshot: _Snapshot | None,
    done: list[tuple[_TableInfo, object, dict[str, Any]]],
) -> tuple[AppliedStep[Any], dict[str, object]]:
    registry = bound.registry
    transition = bound.transition
    compiled = _compiled(bound)
    key = transition.key
    info = table_info(compiled.model, key)
    state = instance_state(obj)
    values = state.dict
    before = snapshot.values if snapshot is not None and compiled.needs_snapshot else None
    if compiled.needs_snapshot:
        step, step_results = _run_hooks(bound, obj, data)
    else:
        step = AppliedStep(obj, bound, getattr(obj, key)._member, transition.to, data, registry.actor, utcnow())
        step_results = {}
    old = cast("StateType[Any]", step.from_state)
    params: dict[str, Any] = {"st_new": transition.to, "st_old": old}
    identity = state.identity
    if identity is None:
        raise ConcurrentTransitionError(f"{type(obj).__name__} has no identity; it was deleted")
    for i, value in enumerate(identity):
        params[f"st_pk_{i}"] = value
    changed: list[str] = []
    previous: dict[str, Any] = {"st_new": old, "st_old": transition.to}
    if before is not None:
        for attr_key, _column in info.foldable:
            now_value = values.get(attr_key, _MISSING)
            was = before.get(attr_key, _MISSING)
            if now_value is not was and now_value is not _MISSING:
                changed.append(attr_key)
                params[f"st_v_{attr_key}"] = now_value
                previous[f"st_v_{attr_key}"] = (
                    state.committed_state.get(attr_key, was) if was is not _MISSING else None
                )
    connection = session.connection(bind_arguments={"mapper": info.mapper})
    if info.execute(connection, frozenset(changed), params) != 1:
        raise ConcurrentTransitionError(
            f"{type(registry).__name__}.{bound.name}: {type(obj).__name__} {object_id_text(tuple(identity))} "
            f"is no longer {old.title} in the database; another transaction changed it first"
        )
    for i, value in enumerate(identity):
        previous[f"st_pk_{i}"] = value
    done.append((info, obj, previous))
    values[key] = transition.to
    state._commit(values, [key, *changed])
    if not state.committed_state and state.modified:
        # Everything the step changed is now in the database: the object is clean.
        state.modified = False
        identity_map = state._instance_dict()
        if identity_map is not None:
            identity_map._modified.discard(state)
    if info.refresh_keys:
        session.expire(obj, list(info.refresh_keys))
    log = registry.log
    if log is not None:
        log_class: type[Any] = log
        session.add(
            log_class(
                table_name=info.table.name,
                object_id=object_id_text(tuple(identity)),
                column_name=info.state_column.name,
                transition=bound.name,
                from_value=str(old.__dict__["_storage"]),
                to_value=str(transition.to.__dict__["_storage"]),
                actor=actor_text(registry.actor),
                created_at=step.at,
                data=jsonable(data) if data else None,
            )
        )
    if compiled.has_after:
        registry.after(step)
    return step, step_results


def _compensate(session: Session, done: list[tuple[_TableInfo, object, dict[str, Any]]]) -> None:
    """Undo compare-and-set UPDATEs (newest first) after a Python error in a later hook."""
    for info, _obj, previous in reversed(done):
        changed = frozenset(k[len("st_v_") :] for k in previous if k.startswith("st_v_"))
        connection = session.connection(bind_arguments={"mapper": info.mapper})
        info.execute(connection, changed, previous)


# ------------------------------------------------------------------ after_commit


def _schedule_after_commit(session: Session, applied: list[AppliedStep[Any]]) -> None:
    calls: list[Callable[[], object]] = []
    for step in applied:
        for hook in step.transition.transition.after_commits:
            calls.append(_bind_call(hook.func, step.transition.registry, step))
    if not calls:
        return
    on_commit(session, calls)


def on_commit(session: Session, calls: list[Callable[[], object]]) -> None:
    """Run ``calls`` once the outer transaction commits; drop them if the current (sub)transaction rolls back."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    pending: list[tuple[Any, Callable[[], object]]] = session.info.setdefault(_AFTER_COMMIT_KEY, [])
    ref = weakref.ref(transaction) if transaction is not None else None
    pending.extend((ref, call) for call in calls)


def _bind_call(func: Callable[..., object], registry: object, step: AppliedStep[Any]) -> Callable[[], object]:
    return lambda: func(registry, step)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    pending = session.info.pop(_AFTER_COMMIT_KEY, None)
    if pending:
        for _ref, call in pending:
            call()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, previous_transaction: Any) -> None:
    pending = session.info.get(_AFTER_COMMIT_KEY)
    if not pending:
        return
    if previous_transaction.parent is None:
        session.info.pop(_AFTER_COMMIT_KEY, None)
        return
    # A savepoint rolled back: drop the hooks registered inside it.
    kept: list[Any] = []
    for ref, call in pending:
        transaction = ref() if ref is not None else None
        inside = False
        while transaction is not None:
            if transaction is previous_transaction:
                inside = True
                break
            transaction = transaction.parent
        if not inside:
            kept.append((ref, call))
    session.info[_AFTER_COMMIT_KEY] = kept
