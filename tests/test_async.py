"""AsyncSession: per-row transitions through ``run_sync``, ``bulk_async`` and ``run_due_async``.

SQLite runs through aiosqlite and PostgreSQL through asyncpg, on the databases
the sync fixtures create (an unreachable server skips, or fails under
``CI=true``). MariaDB runs only when an async driver for it is installed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from bulk_models import EPOCH, DocState, Models, make_models
from statetype import BulkNotSupported, TransitionNotAllowed

m: Models = make_models("async")
Doc, Log, Tx = m.Doc, m.Log, m.Tx
CreateAll = Callable[[sa.MetaData], None]
T = TypeVar("T")
D, P, W = DocState.is_draft, DocState.is_published, DocState.is_withdrawn

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
for _module, _driver in (("asyncmy", "mysql+asyncmy"), ("aiomysql", "mysql+aiomysql")):
    if importlib.util.find_spec(_module) is not None:
        ASYNC_DRIVERS["mariadb"] = _driver
        break


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


@pytest.fixture
def async_url(db_url: sa.URL, engine: sa.Engine, create_all: CreateAll) -> Iterator[sa.URL]:
    backend = "sqlite" if db_url.get_backend_name() == "sqlite" else db_url.get_backend_name()
    backend = "mariadb" if backend == "mysql" else backend
    driver = ASYNC_DRIVERS.get(backend)
    if driver is None:
        pytest.skip(f"no async driver for {backend} installed (asyncmy or aiomysql)")
    create_all(m.Base.metadata)
    with sa.orm.Session(engine) as session:
        session.add_all(
            [
                Doc(id=1, state=D),
                Doc(id=2, state=W),
                Doc(id=3, state=P),
                Doc(id=4, state=D, created_at=EPOCH + dt.timedelta(days=60)),
            ]
        )
        session.commit()
    m.calls.clear()
    yield db_url.set(drivername=driver)


async def _session(url: sa.URL) -> tuple[AsyncEngine, AsyncSession]:
    engine = create_async_engine(url)
    return engine, AsyncSession(engine)


async def _states(session: AsyncSession) -> dict[int, str]:
    rows = await session.execute(sa.select(Doc.id, Doc.state).order_by(Doc.id))
    return {i: s.name for i, s in rows}


async def _history(session: AsyncSession) -> list[tuple[str, str, str | None, str]]:
    rows = await session.execute(
        sa.select(Log.object_id, Log.transition, Log.from_value, Log.to_value).order_by(Log.object_id, Log.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_per_row_transition_through_run_sync(async_url: sa.URL) -> None:
    async def main() -> None:
        engine, session = await _session(async_url)
        try:
            tx = Tx(actor="5")
            applied = await session.run_sync(lambda s: tx.publish(s.get(Doc, 1)))
            assert [step.to_state for step in applied.steps] == [P]
            assert m.calls == []
            await session.commit()
            assert m.calls == [("publish", 1, "is_draft")]
            doc = await session.get(Doc, 1)
            assert doc is not None and doc.state.is_published and doc.version == 1
            with pytest.raises(TransitionNotAllowed):
                await session.run_sync(lambda s: tx.withdraw(s.get(Doc, 4)))
            await session.rollback()
            assert await _history(session) == [("1", "publish", "1", "2")]
        finally:
            await session.close()
            await engine.dispose()

    run(main())


def test_bulk_async(async_url: sa.URL) -> None:
    async def main() -> None:
        engine, session = await _session(async_url)
        try:
            loaded = await session.get(Doc, 2)
            assert loaded is not None and loaded.state.is_withdrawn
            result = await Tx(actor="5").publish.bulk_async(session, Doc.id.in_([1, 2, 3]))
            assert (result.count, sorted(result.ids)) == (2, [1, 2])
            await session.refresh(loaded)
            assert loaded.state.is_published and loaded.status_by == "5"
            await session.commit()
            assert sorted(m.calls) == [("publish", 1, "is_draft"), ("publish", 2, "is_withdrawn")]
            assert await _states(session) == {1: "is_published", 2: "is_published", 3: "is_published", 4: "is_draft"}
            assert await _history(session) == [("1", "publish", "1", "2"), ("2", "publish", "3", "2")]
        finally:
            await session.close()
            await engine.dispose()

    run(main())


def test_bulk_async_rollback_runs_no_hook(async_url: sa.URL) -> None:
    async def main() -> None:
        engine, session = await _session(async_url)
        try:
            assert (await Tx(actor="5").publish.bulk_async(session)).count == 3
            await session.rollback()
            await session.commit()
            assert m.calls == []
            assert (await _states(session))[1] == "is_draft"
        finally:
            await session.close()
            await engine.dispose()

    run(main())


def test_bulk_async_refuses_what_cannot_run_set_based(async_url: sa.URL) -> None:
    from bulk_models import refusing_registries

    async def main() -> None:
        engine, session = await _session(async_url)
        try:
            with pytest.raises(BulkNotSupported, match="python_only_stamp"):
                await refusing_registries(m)["python_only_stamp"]().go.bulk_async(session)  # type: ignore[attr-defined]
        finally:
            await session.close()
            await engine.dispose()

    run(main())


def test_run_due_async(async_url: sa.URL) -> None:
    async def main() -> None:
        engine, session = await _session(async_url)
        try:
            tx = Tx(actor="cron")
            assert await tx.run_due_async(session, now=EPOCH + dt.timedelta(days=6)) == 0
            assert await tx.run_due_async(session, now=EPOCH + dt.timedelta(days=31)) == 2  # doc 1 expires, doc 2 retires
            await session.commit()
            assert await _states(session) == {1: "is_deleted", 2: "is_archived", 3: "is_published", 4: "is_draft"}
            assert m.calls == [("expire", 1, "is_draft")]
            assert await _history(session) == [("1", "expire", "1", "4"), ("2", "retire", "3", "5")]
        finally:
            await session.close()
            await engine.dispose()

    run(main())
