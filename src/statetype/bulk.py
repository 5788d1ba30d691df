"""Set-based transitions: ``tx.publish.bulk(session, *criteria)`` and ``tx.run_due(session)``.

One UPDATE per call (one per source state when history is written, so each
history row knows its from_value): ``UPDATE ... SET state = :to, <execute
hooks' SQL forms>, <step_values> WHERE <source states> AND <guards> AND
<permissions> AND <criteria>``. Updated ids come back with RETURNING where
the dialect supports it for UPDATE (PostgreSQL, SQLite >= 3.35); elsewhere
(MariaDB, whose RETURNING covers INSERT and DELETE only) the rows are first
selected ``FOR UPDATE`` and then updated by primary key, still re-checking
the source state, so a concurrent writer can never be overwritten.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapper, Session

from ._atomic import Savepoint, flush_safely, raise_converted
from .aftercommit import on_commit
from .exceptions import AfterCommitError, BulkNotSupported, ConcurrentTransitionError, TransitionNotAllowed
from .execution import table_info, utcnow
from .log import UTCDateTime, actor_text, object_id_text
from .transitions import AppliedStep, BulkResult, Reason, Verdict, _operations, subclass_criterion

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.sql.elements import ColumnElement

    from .execution import _TableInfo
    from .states import StateType
    from .transitions import BoundTransition, Transition, Transitions

__all__ = ["BulkResult", "bulk", "bulk_async", "run_due", "run_due_async"]

_CHUNK = 5000
_first = operator.itemgetter(0)
# Objects loaded per query for after_commit hooks: under every driver's bound-parameter
# limit (SQLite's historical 999 is the lowest) and bounding memory.
_LOAD_CHUNK = 900


def _refusals(bound: BoundTransition[Any, Any]) -> None:
    transition = bound.transition
    label = f"{type(bound.registry).__name__}.{bound.name}"
    for chain in transition.chains:
        raise BulkNotSupported(f"{label} has a chain ({chain.name}); chains apply per row only")
    for guard in transition.guards:
        if guard.sql is None:
            raise BulkNotSupported(f"{label}: guard {guard.name} has no SQL form (@{guard.name}.expression)")
    for permission in transition.permissions:
        if permission.sql is None:
            raise BulkNotSupported(
                f"{label}: permission {permission.name} has no SQL form (@{permission.name}.expression)"
            )
    for hook in transition.executes:
        if hook.sql is None:
            raise BulkNotSupported(f"{label}: execute hook {hook.name} has no SQL form (@{hook.name}.expression)")


def _column_values(
    model: type[Any], values: Mapping[Any, object], label: str
) -> dict[sa.Column[Any], object]:
    mapper = cast("Mapper[Any]", sa.inspect(model))
    result: dict[sa.Column[Any], object] = {}
    for key, value in values.items():
        name = key if isinstance(key, str) else getattr(key, "key", None)
        if not isinstance(name, str) or name not in mapper.column_attrs:
            raise BulkNotSupported(f"{label}: {key!r} is not a column attribute of {model.__name__}")
        result[cast("sa.Column[Any]", mapper.column_attrs[name].columns[0])] = value
    return result


def _check_criteria(model: type[Any], mapper: Mapper[Any], criteria: Sequence[ColumnElement[bool]], label: str) -> None:
    """Refuse criteria naming tables the UPDATE cannot correlate (they would make a cartesian UPDATE)."""
    own = set(mapper.tables)
    for criterion in criteria:
        for source in getattr(criterion, "_from_objects", ()):
            if source not in own:
                name = getattr(source, "name", None) or repr(source)
                raise BulkNotSupported(
                    f"{label}: criterion {criterion} names table {name}, which the UPDATE of "
                    f"{model.__name__} cannot correlate; express it as a subquery, e.g. "
                    f"{model.__name__}.relationship.has(...) or {model.__name__}.id.in_(select(...))"
                )


def _version_value(info: _TableInfo, label: str) -> tuple[sa.Column[Any], object] | None:
    """The SET clause that bumps the mapper's version counter, like the ORM's own UPDATE."""
    column = info.version_column
    if column is None or info.version_generator is False:
        return None
    generator = info.version_generator
    if getattr(generator, "__module__", "").startswith("sqlalchemy"):
        return column, column + 1
    raise BulkNotSupported(
        f"{label}: {info.mapper.class_.__name__} has a version_id_generator written in Python; "
        "set-based steps can bump only the default integer counter"
    )


def _apply(
    bound: BoundTransition[Any, Any],
    session: Session,
    criteria: Sequence[ColumnElement[bool]],
    now: dt.datetime,
    skip_locked: bool = False,
) -> tuple[BulkResult, Callable[[], None] | None]:
    """One set-based transition, atomic with its history; returns the result and the call that
    schedules its after_commit hooks (None without hooks), for the caller to make once all is applied."""
    _refusals(bound)
    registry = bound.registry
    transition = bound.transition
    model = type(registry).model
    label = f"{type(registry).__name__}.{bound.name}"
    info = table_info(model, transition.key)
    mapper = info.mapper
    _check_criteria(model, mapper, criteria, label)
    pk_columns = [column for _, column in info.pk]
    values: dict[Any, object] = {info.state_column: transition.to}
    for hook in transition.executes:
        assert hook.sql is not None
        values.update(_column_values(model, hook.sql(registry, model, now), f"{label}.{hook.name}"))
    step_values = registry.step_values(transition, now)
    if step_values:
        values.update(_column_values(model, step_values, f"{label}.step_values"))
    version = _version_value(info, label)
    if version is not None:
        values[version[0]] = version[1]
    conditions: list[ColumnElement[bool]] = []
    for guard in transition.guards:
        assert guard.sql is not None
        conditions.append(guard.sql(registry, model))
    for permission in transition.permissions:
        assert permission.sql is not None
        conditions.append(permission.sql(registry, model))
    conditions.extend(criteria)
    restriction = subclass_criterion(model, info.table)
    if restriction is not None:
        conditions.append(restriction)
    attr = getattr(model, transition.key)
    clause = attr.__clause_element__()
    log = registry.log
    # With history or after_commit hooks, one statement per source state, so each
    # row's from_value (and its AppliedStep's from_state) is known.
    if log is not None or transition.after_commits:
        groups: list[tuple[StateType[Any] | None, ColumnElement[bool]]] = list(
            _source_groups(transition, clause, model)
        )
        # A self-loop's rows first: rows moved into the target by a later statement must
        # not be picked again by the target's own statement.
        groups.sort(key=lambda group: group[0] is not transition.to)
    else:
        groups = [(None, sa.or_(*(source._sql(clause, model) for source in transition.sources)))]
    if session.autoflush:
        # Like an ORM UPDATE: pending objects and changes reach the database first.
        flush_safely(session)
    connection = session.connection(bind_arguments={"mapper": mapper})
    # Everything below is one unit: a rejected history row or hook value leaves no row moved.
    savepoint = Savepoint(connection)
    try:
        from_states = _update(connection, info, groups, conditions, values, skip_locked)
        history = [(state, ids) for state, ids in from_states if ids]
        if log is not None and history:
            _write_history(connection, cast("sa.Table", cast(Any, log).__table__), bound, info, history, now)
    except BaseException as error:
        savepoint.rollback()
        raise_converted(error, session, label)
    savepoint.release()
    all_ids = from_states[0][1] if len(from_states) == 1 else [key for _, ids in from_states for key in ids]
    _expire_loaded(session, mapper, all_ids, transition.key, info.refresh_keys, values, model)
    schedule: Callable[[], None] | None = None
    if transition.after_commits and all_ids:
        schedule = functools.partial(_schedule, session, bound, model, mapper, from_states, now)
    plain_ids = list(map(_first, all_ids)) if len(pk_columns) == 1 else list(all_ids)
    return BulkResult(len(all_ids), plain_ids), schedule


def _update(
    connection: sa.Connection,
    info: _TableInfo,
    groups: list[tuple[StateType[Any] | None, ColumnElement[bool]]],
    conditions: list[ColumnElement[bool]],
    values: Mapping[Any, object],
    skip_locked: bool,
) -> list[tuple[StateType[Any] | None, list[tuple[Any, ...]]]]:
    """Run the UPDATEs; returns, per source state, the primary keys of the rows that changed.

    PostgreSQL and MariaDB: every row that will change is locked first, in
    primary-key order, by one locking read (``SKIP LOCKED`` for run_due), and
    only those rows are updated, each UPDATE re-checking its source state. Rows
    locked in key order by every statetype path cannot deadlock each other.
    MariaDB, whose UPDATE has no RETURNING, reads each source state's rows
    (already locked) through the primary key before updating them by key.
    SQLite has no row locks: one UPDATE ... RETURNING per source state.
    """
    table = info.table
    pk_columns = [column for _, column in info.pk]
    dialect = connection.dialect
    results: list[tuple[StateType[Any] | None, list[tuple[Any, ...]]]] = []
    stmt: sa.Update
    if dialect.name == "sqlite":
        for from_state, source_condition in groups:
            where = sa.and_(source_condition, *conditions)
            if dialect.update_returning:
                returning = sa.update(table).where(where).values(values).returning(*pk_columns)
                # Fetched at once and converted in C: the keys can number hundreds of thousands.
                results.append((from_state, list(map(tuple, connection.execute(returning).all()))))
            else:
                results.append((from_state, _update_unlocked(connection, table, pk_columns, where, values)))
        return results
    innodb = dialect.name in ("mysql", "mariadb")
    any_source = sa.or_(*(condition for _, condition in groups)) if len(groups) > 1 else groups[0][1]
    locked = _lock(connection, table, pk_columns, sa.and_(any_source, *conditions), skip_locked, innodb)
    for from_state, source_condition in groups:
        changed: list[tuple[Any, ...]] = []
        for start in range(0, len(locked), _CHUNK):
            chunk = locked[start : start + _CHUNK]
            if innodb:
                if len(groups) > 1:
                    read = (
                        sa.select(*pk_columns)
                        .where(_by_key(pk_columns, chunk, dialect.name), source_condition)
                        .order_by(*pk_columns)
                        .with_hint(table, "FORCE INDEX (PRIMARY)", dialect_name=dialect.name)
                        .with_for_update()
                    )
                    chunk = [tuple(row) for row in connection.execute(read)]
                    if not chunk:
                        continue
                # Locked and re-checked by the reads above: the key alone picks the rows. Without
                # the hint a long IN list may become a table scan, which locks every row it reads.
                stmt = (
                    sa.update(table)
                    .where(_by_key(pk_columns, chunk, dialect.name))
                    .values(values)
                    .with_hint("FORCE INDEX (PRIMARY)", dialect_name=dialect.name)
                )
                connection.execute(stmt)
                changed.extend(chunk)
            else:
                returning = (
                    sa.update(table)
                    .where(_by_key(pk_columns, chunk, dialect.name), source_condition)
                    .values(values)
                    .returning(*pk_columns)
                )
                changed.extend(tuple(row) for row in connection.execute(returning))
        results.append((from_state, changed))
    return results


def _lock(
    connection: sa.Connection,
    table: sa.Table,
    pk_columns: list[sa.Column[Any]],
    where: ColumnElement[bool],
    skip_locked: bool,
    innodb: bool,
) -> list[tuple[Any, ...]]:
    """Lock the rows matching ``where`` in primary-key order; returns their keys.

    MySQL/MariaDB: candidates come from a plain read, then each chunk is
    re-read ``FOR UPDATE`` through the primary key only (``FORCE INDEX
    (PRIMARY)``, in key order), so the only locks taken are record locks on
    the rows that change. A locking read through a secondary index (an index
    on the state column, say) would also lock index entries that a per-row
    compare-and-set on another row needs, and InnoDB would report a deadlock.
    """
    order = [c.asc() for c in pk_columns]
    if not innodb:
        found = sa.select(*pk_columns).where(where).order_by(*order).with_for_update(skip_locked=skip_locked)
        return [tuple(row) for row in connection.execute(found)]
    dialect = connection.dialect
    candidates = [tuple(row) for row in connection.execute(sa.select(*pk_columns).where(where).order_by(*order))]
    locked: list[tuple[Any, ...]] = []
    for start in range(0, len(candidates), _CHUNK):
        chunk = candidates[start : start + _CHUNK]
        lock = (
            sa.select(*pk_columns)
            .where(_by_key(pk_columns, chunk, dialect.name), where)
            .order_by(*order)
            .with_hint(table, "FORCE INDEX (PRIMARY)", dialect_name=dialect.name)
            .with_for_update(skip_locked=skip_locked)
        )
        locked.extend(tuple(row) for row in connection.execute(lock))
    return locked


def _update_unlocked(
    connection: sa.Connection,
    table: sa.Table,
    pk_columns: list[sa.Column[Any]],
    where: ColumnElement[bool],
    values: Mapping[Any, object],
) -> list[tuple[Any, ...]]:
    """SQLite older than 3.35 (no RETURNING): read the keys, then update them re-checking ``where``."""
    candidates = [tuple(row) for row in connection.execute(sa.select(*pk_columns).where(where))]
    ids: list[tuple[Any, ...]] = []
    for start in range(0, len(candidates), _CHUNK):
        chunk = candidates[start : start + _CHUNK]
        result = connection.execute(sa.update(table).where(_by_key(pk_columns, chunk, "sqlite"), where).values(values))
        if result.rowcount != len(chunk):
            # Another connection wrote between our read and our UPDATE, and which rows changed is unknown.
            raise ConcurrentTransitionError(
                f"UPDATE of {table.name} matched {result.rowcount} of {len(chunk)} rows: another transaction "
                "changed some of them first; roll back and retry"
            )
        ids.extend(chunk)
    return ids


def _by_key(pk_columns: list[sa.Column[Any]], keys: list[tuple[Any, ...]], dialect: str) -> ColumnElement[bool]:
    if len(pk_columns) == 1:
        values = [key[0] for key in keys]
        if dialect == "postgresql":
            # One array parameter, whatever the number of rows.
            return pk_columns[0] == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(pk_columns[0].type)))
        return pk_columns[0].in_(values)
    return sa.tuple_(*pk_columns).in_(keys)


def _source_groups(
    transition: Transition[Any], clause: ColumnElement[Any], model: type[Any]
) -> list[tuple[StateType[Any], ColumnElement[bool]]]:
    """One (plain state, SQL condition) per plain source state, in declaration order.

    A conditional source contributes its own SQL narrowed to each plain state it
    covers, so history's from_value is always a stored value.
    """
    conditions: dict[StateType[Any], list[ColumnElement[bool]]] = {}
    for source in transition.sources:
        if _has_conditional(source):
            source_sql = source._sql(clause, model)
            for state in source.states:
                conditions.setdefault(state, []).append(sa.and_(state._sql(clause, model), source_sql))
        else:
            for state in source.states:
                conditions.setdefault(state, []).append(state._sql(clause, model))
    return [(state, parts[0] if len(parts) == 1 else sa.or_(*parts)) for state, parts in conditions.items()]


def _has_conditional(member: StateType[Any]) -> bool:
    d = member.__dict__
    if d["_kind"] == "conditional":
        return True
    if d["_kind"] == "group":
        return any(_has_conditional(e) for e in d["_elements"])
    return False


def _history_insert(
    log_table: sa.Table,
    bound: BoundTransition[Any, Any],
    info: _TableInfo,
    from_state: StateType[Any] | None,
    now: dt.datetime,
    ids: ColumnElement[Any],
    where: ColumnElement[bool] | None,
) -> sa.Insert:
    """``INSERT INTO log ... SELECT`` one history row per ``ids`` value (a key column, filtered by ``where``)."""
    rows = sa.select(
        sa.literal(info.table.name, sa.String),
        sa.cast(ids, sa.String(255)),
        sa.literal(info.state_column.name, sa.String),
        sa.literal(bound.name, sa.String),
        sa.literal(str(from_state.__dict__["_storage"]) if from_state is not None else None, sa.String),
        sa.literal(str(bound.transition.to.__dict__["_storage"]), sa.String),
        sa.literal(actor_text(bound.registry.actor), sa.String),
        sa.literal(now, UTCDateTime()),
    )
    if where is not None:
        rows = rows.where(where)
    names = ["table_name", "object_id", "column_name", "transition", "from_value", "to_value", "actor", "created_at"]
    return sa.insert(log_table).from_select(names, rows)


def _write_history(
    connection: sa.Connection,
    log_table: sa.Table,
    bound: BoundTransition[Any, Any],
    info: _TableInfo,
    history: list[tuple[StateType[Any] | None, list[Any]]],
    now: dt.datetime,
) -> None:
    """One history row per updated row, set-based.

    With a single-column integer or string key the rows are written by one
    ``INSERT ... SELECT`` per source state, the ids passed as one parameter
    (``= ANY(array)`` on PostgreSQL, ``json_each`` on SQLite); otherwise by one
    executemany.
    """
    actor = actor_text(bound.registry.actor)
    to_value = str(bound.transition.to.__dict__["_storage"])
    dialect = connection.dialect.name
    pk_columns = [column for _, column in info.pk]
    for from_state, ids in history:
        from_value = str(from_state.__dict__["_storage"]) if from_state is not None else None
        plain_ids = [key[0] for key in ids]
        simple = len(pk_columns) == 1 and all(type(v) in (int, str) for v in plain_ids)
        if simple and dialect in ("postgresql", "sqlite"):
            pk = pk_columns[0]
            if dialect == "postgresql":
                matching = pk == sa.any_(sa.bindparam("st_ids", plain_ids, type_=postgresql.ARRAY(pk.type)))
                insert = _history_insert(log_table, bound, info, from_state, now, pk, matching)
            else:
                # The keys themselves, one row each: the UPDATE returned them, so no lookup in the table.
                each = sa.func.json_each(sa.bindparam("st_ids", json.dumps(plain_ids), type_=sa.String)).table_valued(
                    "value"
                )
                insert = _history_insert(log_table, bound, info, from_state, now, each.c.value, None)
            connection.execute(insert)
        else:
            connection.execute(
                sa.insert(log_table),
                [
                    {
                        "table_name": info.table.name,
                        "object_id": object_id_text(key),
                        "column_name": info.state_column.name,
                        "transition": bound.name,
                        "from_value": from_value,
                        "to_value": to_value,
                        "actor": actor,
                        "created_at": now,
                        "data": None,
                    }
                    for key in ids
                ],
            )


def _expire_loaded(
    session: Session,
    mapper: Mapper[Any],
    ids: list[Any],
    key: str,
    refresh: tuple[str, ...],
    values: Mapping[Any, object],
    model: type[Any],
) -> None:
    """Objects of updated rows already in the session reload the columns that changed."""
    if not ids or not session.identity_map:
        return
    keys = {key, *refresh}
    for column in values:
        if isinstance(column, sa.Column):
            keys.add(mapper.get_property_by_column(column).key)  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
    identity_map = session.identity_map
    if len(identity_map) < len(ids):
        wanted = set(ids)
        for obj in list(identity_map.values()):
            if isinstance(obj, model):
                identity = sa.inspect(obj).identity
                if identity is not None and tuple(identity) in wanted:
                    session.expire(obj, list(keys))
    else:
        for pk in ids:
            obj = identity_map.get(mapper.identity_key_from_primary_key(tuple(pk)))
            if obj is not None:
                session.expire(obj, list(keys))


def _schedule(
    session: Session,
    bound: BoundTransition[Any, Any],
    model: type[Any],
    mapper: Mapper[Any],
    from_states: list[tuple[StateType[Any] | None, list[tuple[Any, ...]]]],
    now: dt.datetime,
) -> None:
    """after_commit hooks for set-based steps: once per row, objects loaded by primary key in chunks.

    Each chunk is loaded in a session of its own, open while its hooks run (so
    they may lazy-load), then closed: memory stays bounded whatever the number
    of rows, and every query stays under the drivers' bound-parameter limits.
    """
    transition = bound.transition
    label = f"{type(bound.registry).__name__}.{bound.name}"
    pk_columns = list(mapper.primary_key)
    source_of = {key: state for state, keys in from_states for key in keys}
    ids = list(source_of)
    per_query = max(1, _LOAD_CHUNK // len(pk_columns))
    bind = session.get_bind(mapper)

    def run() -> None:
        errors: list[Exception] = []
        for start in range(0, len(ids), per_query):
            chunk = ids[start : start + per_query]
            if len(pk_columns) == 1:
                where = pk_columns[0].in_([k[0] for k in chunk])
            else:
                where = sa.tuple_(*pk_columns).in_(chunk)
            with Session(bind=bind) as reader:
                loaded = {tuple(mapper.primary_key_from_instance(o)): o for o in reader.scalars(sa.select(model).where(where))}
                for key in chunk:
                    obj = loaded.get(key)
                    if obj is None:
                        continue  # deleted since the commit
                    step: AppliedStep[Any] = AppliedStep(
                        obj, bound, source_of[key], transition.to, {}, bound.registry.actor, now
                    )
                    for hook in transition.after_commits:
                        try:
                            hook.func(bound.registry, step)
                        except Exception as error:  # the other rows' hooks still run
                            errors.append(error)
        if errors:
            raise AfterCommitError(f"{len(errors)} after_commit hook(s) of {label} raised", errors)

    on_commit(session, [run])


def bulk(bound: BoundTransition[Any, Any], session: Session, *criteria: ColumnElement[bool]) -> BulkResult:
    """Apply ``bound`` set-based to every row that can take it and matches ``criteria``."""
    if bound.transition.after is not None:
        message = f"{type(bound.registry).__name__}.{bound.name} is a timed transition, applied only by run_due()"
        raise TransitionNotAllowed(message, Verdict([Reason("timer", message, None)]))
    result, schedule = _apply(bound, session, criteria, utcnow())
    if schedule is not None:
        schedule()
    return result


def run_due(registry: Transitions[Any, Any], session: Session, now: dt.datetime | None = None) -> int:
    """Apply every timed transition whose ``after`` has elapsed since ``since``; returns rows changed.

    Rows locked by another worker are skipped (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL and MariaDB); the compare-and-set on the source state makes a
    second application impossible either way.
    """
    moment = now or utcnow()
    model = type(registry).model
    mapper = cast("Mapper[Any]", sa.inspect(model))
    if session.autoflush:
        flush_safely(session)  # before the savepoint below: a flush inside it would outlive its rollback
    connection = session.connection(bind_arguments={"mapper": mapper})
    skip_locked = connection.dialect.name in ("postgresql", "mysql", "mariadb")
    # All timed transitions of the call are one unit, and their hooks are scheduled once all applied.
    savepoint = Savepoint(connection)
    total = 0
    schedules: list[Callable[[], None]] = []
    try:
        for transition in type(registry).transitions():
            if transition.after is None:
                continue
            assert transition.since is not None
            since = getattr(model, transition.since)
            deadline = moment - transition.after
            if deadline.tzinfo is not None and not _aware(since):
                deadline = deadline.astimezone(dt.timezone.utc).replace(tzinfo=None)
            bound = cast("BoundTransition[Any, Any]", getattr(registry, transition.name))
            result, schedule = _apply(bound, session, [since <= deadline], moment, skip_locked=skip_locked)
            total += result.count
            if schedule is not None:
                schedules.append(schedule)
    except BaseException as error:
        savepoint.rollback()
        raise_converted(error, session, f"{type(registry).__name__}.run_due")
    savepoint.release()
    for schedule in schedules:
        schedule()
    return total


def _aware(attr: Any) -> bool:
    column_type = getattr(attr, "type", None)
    return bool(getattr(column_type, "timezone", False))


async def bulk_async(
    bound: BoundTransition[Any, Any], session: AsyncSession, *criteria: ColumnElement[bool]
) -> BulkResult:
    """``bulk`` for an AsyncSession."""
    return await session.run_sync(lambda sync: bulk(bound, sync, *criteria))


async def run_due_async(registry: Transitions[Any, Any], session: AsyncSession, now: dt.datetime | None = None) -> int:
    """``run_due`` for an AsyncSession."""
    return await session.run_sync(lambda sync: run_due(registry, sync, now))



_operations.bulk = bulk
_operations.bulk_async = bulk_async
_operations.run_due = run_due
_operations.run_due_async = run_due_async
