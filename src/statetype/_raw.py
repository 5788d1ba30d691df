"""Statements statetype compiled itself, sent straight to the DBAPI cursor when nothing listens.

``Connection.exec_driver_sql`` builds an execution context and a result
object per call: about 15-25 us on SQLite, three to five times the cost of
the UPDATE by primary key it sends (docs/performance.md). A per-row
transition sends one or two such statements, compiled once per dialect, with
parameters already converted by the column types' bind processors.

When the connection does not echo and nobody listens to its statement or
cursor events (statetype's own parameter guard aside: these parameters hold
no member), :func:`run` hands the statement to a DBAPI cursor itself.
Everything else the application can observe stays as with
``exec_driver_sql``: a driver error goes through SQLAlchemy's own error
handling (wrapped in :class:`sqlalchemy.exc.DBAPIError`, ``handle_error``
listeners run, a disconnect invalidates the pool), and the statement runs
in the connection's transaction. With a listener or ``echo=True`` the
statement goes through ``exec_driver_sql``, so loggers, tracers and
fault injectors see every statement.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.engine.interfaces import DBAPICursor

from ._params import guard

__all__ = ["Prepared", "quiet", "run"]

_do_execute = DefaultDialect.do_execute
_savepoints = itertools.count(1)
_pipeline: list[bool] = []


def _pipeline_supported() -> bool:
    """Whether psycopg's libpq has pipeline mode (libpq 14 and later); asked once."""
    if not _pipeline:
        try:
            import psycopg  # the PostgreSQL driver in use: present whenever this is asked

            _pipeline.append(bool(psycopg.Pipeline.is_supported()))
        except ImportError:
            _pipeline.append(False)
    return _pipeline[0]


def quiet(connection: sa.Connection) -> bool:
    """True when no logger or listener would see a statement sent on ``connection``.

    Listeners on the connection itself set its ``_has_events``; those on its
    Engine (or the Engine class) sit in the engine's listener collections,
    whose lengths are read without calling into Python.
    """
    if connection._echo or connection._has_events:  # pyright: ignore[reportPrivateUsage]
        return False
    dialect = connection.dialect
    if type(dialect).do_execute is not _do_execute or (dialect._has_events and dialect.dispatch.do_execute):  # pyright: ignore[reportPrivateUsage]
        return False  # the dialect, or a do_execute listener, sends statements its own way
    dispatch: Any = connection.engine.dispatch
    before_execute = dispatch.before_execute
    after_execute = dispatch.after_execute
    after_cursor = dispatch.after_cursor_execute
    before_cursor = dispatch.before_cursor_execute
    if (
        before_execute.parent_listeners or before_execute.listeners
        or after_execute.parent_listeners or after_execute.listeners
        or after_cursor.parent_listeners or after_cursor.listeners
        or before_cursor.listeners
    ):
        return False
    listeners = before_cursor.parent_listeners
    return not listeners or (len(listeners) == 1 and listeners[0] is guard)


def run(connection: sa.Connection, sql: str, params: Any) -> int:
    """Execute ``sql`` with ``params`` (already in the driver's paramstyle); returns the rowcount.

    Raises what ``exec_driver_sql`` would raise for a driver error.
    """
    if not quiet(connection):
        return connection.exec_driver_sql(sql, params).rowcount
    proxied = connection.connection
    driver = proxied.dbapi_connection  # the pool's wrapper would only forward cursor()
    cursor: DBAPICursor = (proxied if driver is None else driver).cursor()
    try:
        cursor.execute(sql, params)
    except BaseException as error:
        connection._handle_dbapi_exception(error, sql, params, cursor, None)  # pyright: ignore[reportPrivateUsage]
    count: int = cursor.rowcount
    cursor.close()
    return count


Binders = tuple[tuple[str, Callable[[Any], Any] | None], ...]


class Prepared:
    """A Core statement compiled once per dialect, with its parameters' bind processors in driver order.

    ``run()`` takes the statement's parameters by bind name
    (for an INSERT compiled with ``column_keys``, by column key). Core
    executes the statement itself (the same result, at Core's cost) when it
    needs an execution context (Python-side defaults to prefetch), carries
    values of its own (SQL defaults with literals), or the connection has a
    ``schema_translate_map``.
    """

    __slots__ = ("statement", "column_keys", "stored", "_by_dialect")

    def __init__(
        self,
        statement: sa.Update | sa.Insert | sa.Delete,
        *,
        column_keys: Sequence[str] | None = None,
        stored: Sequence[str] = (),
    ) -> None:
        """``stored``: bind names of ``TypeDecorator`` columns whose values ``run()`` receives already in
        stored form (a state's raw value, not the member): only the decorated type's own processor applies."""
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self.stored = frozenset(stored)
        self._by_dialect: dict[object, tuple[str, Binders, bool] | None] = {}

    def _args(self, connection: sa.Connection, params: Mapping[str, Any]) -> tuple[str, Any] | None:
        """The SQL and driver parameters, or None when Core must execute the statement itself."""
        if connection._execution_options.get("schema_translate_map"):  # pyright: ignore[reportPrivateUsage]
            return None  # compiled here without the map: Core compiles it with the map
        dialect = connection.dialect
        try:
            entry = self._by_dialect[dialect]
        except KeyError:
            entry = self._by_dialect[dialect] = self._compile(dialect)
        if entry is None:
            return None
        sql, binders, positional = entry
        # Plain loops: a comprehension is a function call of its own on Python 3.11.
        if positional:
            values: list[Any] = []
            for name, proc in binders:
                values.append(params[name] if proc is None else proc(params[name]))
            return sql, tuple(values)
        named: dict[str, Any] = {}
        for name, proc in binders:
            named[name] = params[name] if proc is None else proc(params[name])
        return sql, named

    def _compile(self, dialect: sa.Dialect) -> tuple[str, Binders, bool] | None:
        compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys)
        if compiled.insert_prefetch or compiled.update_prefetch:
            return None
        if any(not bind.required for bind in compiled.binds.values()):
            # Values of the statement's own (an onupdate or default in SQL with a literal): Core binds them.
            return None
        processors: dict[str, object] = dict(compiled._bind_processors)  # pyright: ignore[reportPrivateUsage]
        for name in self.stored:
            decorated: Any = compiled.binds[name].type.dialect_impl(dialect)
            processors[name] = decorated.impl_instance.bind_processor(dialect)
        names = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else tuple(compiled.binds)
        binders: Binders = tuple(
            (name, cast("Callable[[Any], Any]", proc) if callable(proc := processors.get(name)) else None)
            for name in names
        )
        return compiled.string, binders, bool(compiled.positional)

    def run(self, connection: sa.Connection, params: Mapping[str, Any]) -> int:
        """Execute; returns the rowcount."""
        prepared = self._args(connection, params)
        if prepared is None:
            return connection.execute(self.statement, dict(params)).rowcount
        return run(connection, *prepared)

    def run_in_savepoint(self, connection: sa.Connection, params: Mapping[str, Any]) -> int | None:
        """``SAVEPOINT``, this statement and ``RELEASE`` in one round trip; returns the rowcount.

        With psycopg 3 (PostgreSQL), whose pipeline mode sends the three
        statements together, when :func:`quiet` holds. If the statement fails,
        the savepoint is rolled back (a second round trip, only then) and the
        error raised as ``exec_driver_sql`` would raise it, leaving the
        transaction usable. Returns None, having sent nothing, where this does
        not apply: the caller then opens the savepoint itself.
        """
        if connection.dialect.driver != "psycopg" or not _pipeline_supported() or not quiet(connection):
            return None
        prepared = self._args(connection, params)
        if prepared is None:
            return None
        sql, args = prepared
        driver: Any = connection.connection.driver_connection
        name = f"statetype_p{next(_savepoints)}"
        cursors: list[Any] = []
        try:
            with driver.pipeline():
                for statement, arguments in ((f"SAVEPOINT {name}", None), (sql, args), (f"RELEASE SAVEPOINT {name}", None)):
                    cursor = driver.cursor()
                    cursors.append(cursor)
                    cursor.execute(statement, arguments)
        except BaseException as error:
            try:
                with driver.cursor() as cursor:
                    cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    cursor.execute(f"RELEASE SAVEPOINT {name}")
            except Exception:  # noqa: BLE001  (the transaction is gone: the original error says why)
                pass
            connection._handle_dbapi_exception(error, sql, args, None, None)  # pyright: ignore[reportPrivateUsage]
        count: int = cursors[1].rowcount
        for cursor in cursors:
            cursor.close()
        return count
