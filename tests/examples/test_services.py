"""The services example: lifecycle, validate-and-begin, observers, history, wait_for_state.

Sync tests run on SQLite, PostgreSQL and MariaDB; the async ones on SQLite
(aiosqlite) and PostgreSQL (asyncpg).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from examples.services import (
    AsyncServiceManager,
    Base,
    Observers,
    Service,
    ServiceFailed,
    ServiceLog,
    ServiceManager,
    ServiceState,
    ServiceTransitions,
    StateChange,
)
from statetype import ProtectedStateError, TransitionNotAllowed

S = ServiceState
CreateAll = Callable[[sa.MetaData], None]
T = TypeVar("T")
ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
ASYNC_BACKENDS = pytest.mark.parametrize("db_url", list(ASYNC_DRIVERS), indirect=True)


@pytest.fixture
def manager(engine: sa.Engine, create_all: CreateAll) -> ServiceManager:
    create_all(Base.metadata)
    return ServiceManager(engine, actor="ops")


def record(observers: Observers, **kwargs: Any) -> list[tuple[int, str, str, str]]:
    seen: list[tuple[int, str, str, str]] = []

    def observer(change: StateChange) -> None:
        seen.append((change.service_id, change.transition, change.from_state.name, change.to_state.name))

    observers.subscribe(observer, **kwargs)
    return seen


def load(session: Session, service_id: int) -> Service:
    service = session.get(Service, service_id)
    assert service is not None
    return service


def db_states(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Service.name, Service.state).order_by(Service.id))
        return {name: state.name for name, state in rows}


def log_rows(engine: sa.Engine) -> list[tuple[str, str, str | None, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ServiceLog.object_id, ServiceLog.transition, ServiceLog.from_value, ServiceLog.to_value).order_by(
                ServiceLog.id
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_lifecycle_writes_rows_history_and_tells_observers(manager: ServiceManager, engine: sa.Engine) -> None:
    seen = record(manager.observers)
    db = manager.create("db", command="postgres -D /data", port=5432)
    assert manager.state(db) is S.is_initializing and manager.in_state(S.is_in_progress) == [db]

    assert manager.finish(db) is S.is_initialized
    assert manager.start(db) is S.is_starting
    assert manager.in_state(S.is_in_progress) == [db]
    assert manager.finish(db) is S.is_started
    assert manager.mark_running(db) is S.is_running
    assert manager.stop(db) is S.is_stopping
    assert manager.finish(db) is S.is_stopped
    assert manager.in_state(S.is_in_progress) == [] and manager.in_state(S.is_settled) == [db]

    expected = [
        ("finish_initializing", "is_initializing", "is_initialized"),
        ("start", "is_initialized", "is_starting"),
        ("confirm_started", "is_starting", "is_started"),
        ("confirm_running", "is_started", "is_running"),
        ("stop", "is_running", "is_stopping"),
        ("confirm_stopped", "is_stopping", "is_stopped"),
    ]
    assert seen == [(db, *e) for e in expected]  # each committed change, once, in order
    history = manager.history(db)
    assert [(h.transition, h.from_state.name if h.from_state else None, h.to_state.name) for h in history] == expected
    assert all(h.actor == "ops" for h in history)
    stamps = [h.at for h in history]
    assert all(t.tzinfo is not None and t.utcoffset() == dt.timedelta(0) for t in stamps)
    assert stamps == sorted(stamps)
    with Session(engine) as session:
        service = session.get(Service, db)
        assert service is not None and service.starts == 1 and service.error is None
        # step_values stamps the row with the same instant as the history row
        assert service.state_changed_at == stamps[-1].replace(tzinfo=None)
    assert db_states(engine) == {"db": "is_stopped"}


def test_validate_and_begin_refuses_a_bad_configuration(manager: ServiceManager, engine: sa.Engine) -> None:
    seen = record(manager.observers)
    web = manager.create("web", port=0)
    manager.finish(web)
    with pytest.raises(TransitionNotAllowed) as refused:
        manager.start(web)
    assert [(r.kind, r.message) for r in refused.value.verdict.reasons] == [
        ("guard", "The configuration needs a command."),
        ("guard", "The configuration needs a port between 1 and 65535."),
    ]
    # nothing began: the state, the history and the observers are as before
    assert db_states(engine) == {"web": "is_initialized"}
    assert [r[1] for r in log_rows(engine)] == ["finish_initializing"]
    assert [s[1] for s in seen] == ["finish_initializing"]
    assert manager.startable() == []

    manager.configure(web, command="gunicorn app:web", port=8000)
    assert manager.startable() == [web]
    assert manager.start(web) is S.is_starting
    with pytest.raises(ValueError, match="stop it before"):
        manager.configure(web, command="", port=None)
    assert [r[1] for r in log_rows(engine)] == ["finish_initializing", "start"]


def test_a_service_starts_only_once_its_dependency_runs(manager: ServiceManager) -> None:
    db = manager.create("db", command="postgres", port=5432)
    api = manager.create("api", command="uvicorn api:app", port=8080, depends_on=db)
    manager.finish(db)
    manager.finish(api)
    assert manager.startable() == [db]  # the guard's SQL form, with a correlated EXISTS
    with pytest.raises(TransitionNotAllowed, match="The service it depends on must be running."):
        manager.start(api)

    manager.start(db)
    manager.finish(db)
    assert manager.startable() == []  # db is started, not yet running
    manager.mark_running(db)
    assert manager.startable() == [api]
    assert manager.start(api) is S.is_starting


def test_failure_records_the_error_and_reinitialize_clears_it(manager: ServiceManager, engine: sa.Engine) -> None:
    seen = record(manager.observers)
    svc = manager.create("worker", command="celery worker", port=6379)
    manager.finish(svc)
    manager.start(svc)
    assert manager.fail(svc, "port 6379 already in use") is S.is_failed
    with pytest.raises(ValueError, match="not in progress"):
        manager.finish(svc)
    with Session(engine) as session:
        service = session.get(Service, svc)
        assert service is not None and service.error == "port 6379 already in use"
    assert manager.history(svc)[-1].data == {"error": "port 6379 already in use"}

    assert manager.reinitialize(svc) is S.is_initializing
    with Session(engine) as session:
        service = session.get(Service, svc)
        assert service is not None and service.error is None and service.state.is_in_progress
    assert [s[1] for s in seen] == ["finish_initializing", "start", "fail", "reinitialize"]


def test_only_transitions_change_the_state(manager: ServiceManager, engine: sa.Engine) -> None:
    svc = manager.create("cache")
    with Session(engine) as session:
        service = session.get(Service, svc)
        assert service is not None
        with pytest.raises(ProtectedStateError):
            service.state = S.is_running
        tx = ServiceTransitions(actor="ops")
        with pytest.raises(TransitionNotAllowed):
            tx.stop(service)  # stop needs started or running
    assert db_states(engine) == {"cache": "is_initializing"}


def test_observers_hear_of_commits_only(manager: ServiceManager, engine: sa.Engine) -> None:
    svc = manager.create("queue", command="rabbitmq-server", port=5672)
    other = manager.create("other")
    seen = record(manager.observers, service_id=svc)
    tx = ServiceTransitions(actor="ops", observers=manager.observers)

    with Session(engine) as session:
        tx.finish_initializing(load(session, svc))
        tx.finish_initializing(load(session, other))
        assert seen == []  # not committed yet
        session.rollback()
    assert seen == [] and log_rows(engine) == []
    assert db_states(engine) == {"queue": "is_initializing", "other": "is_initializing"}

    with Session(engine) as session:
        tx.finish_initializing(load(session, svc))
        tx.finish_initializing(load(session, other))
        session.commit()
    # the subscriber filtered on svc hears of svc only, once
    assert seen == [(svc, "finish_initializing", "is_initializing", "is_initialized")]
    assert len(log_rows(engine)) == 2


def test_a_failing_observer_does_not_silence_the_others(manager: ServiceManager) -> None:
    def broken(change: StateChange) -> None:
        raise RuntimeError("observer bug")

    manager.observers.subscribe(broken)
    seen = record(manager.observers)
    svc = manager.create("mail")
    assert manager.finish(svc) is S.is_initialized
    assert seen == [(svc, "finish_initializing", "is_initializing", "is_initialized")]


# ------------------------------------------------------------------ async: wait_for_state


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=60))  # a safety bound, not a timing assertion


@pytest.fixture
def async_url(db_url: sa.URL, manager: ServiceManager) -> sa.URL:
    return db_url.set(drivername=ASYNC_DRIVERS[db_url.get_backend_name()])


@contextlib.asynccontextmanager
async def _async_manager(url: sa.URL, observers: Observers | None = None) -> AsyncIterator[AsyncServiceManager]:
    engine = create_async_engine(url)
    try:
        yield AsyncServiceManager(engine, actor="async-ops", observers=observers)
    finally:
        await engine.dispose()


@ASYNC_BACKENDS
def test_wait_for_state_returns_once_the_service_runs(async_url: sa.URL) -> None:
    async def main() -> None:
        async with _async_manager(async_url) as services:
            svc = await services.create("search", command="opensearch", port=9200)
            waiter = asyncio.create_task(services.wait_for_state(svc, S.is_running, timeout=30))
            await services.finish(svc)
            await services.start(svc)
            await services.finish(svc)
            assert not waiter.done()
            await services.mark_running(svc)
            assert await waiter is S.is_running
            history = await services.history(svc)
            assert [h.transition for h in history] == [
                "finish_initializing", "start", "confirm_started", "confirm_running"
            ]
            assert {h.actor for h in history} == {"async-ops"}

    run(main())


@ASYNC_BACKENDS
def test_wait_for_a_group_sees_changes_made_elsewhere(async_url: sa.URL, manager: ServiceManager) -> None:
    """Another process (here a sync manager with its own observers, in a thread) changes the state: polling sees it."""
    svc = manager.create("ingest", command="ingest --serve", port=7000)
    for step in (manager.finish, manager.start, manager.finish):
        step(svc)

    async def main() -> None:
        async with _async_manager(async_url) as services:
            assert await services.wait_for_state(svc, S.is_up, timeout=30) is S.is_started  # already there
            waiter = asyncio.create_task(services.wait_for_state(svc, S.is_in_progress, timeout=30))
            await asyncio.to_thread(manager.stop, svc)
            assert await waiter is S.is_stopping
            waiter = asyncio.create_task(services.wait_for_state(svc, S.is_stopped, timeout=30))
            await asyncio.to_thread(manager.finish, svc)
            assert await waiter is S.is_stopped

    run(main())


@ASYNC_BACKENDS
def test_wait_for_state_times_out(async_url: sa.URL) -> None:
    async def main() -> None:
        async with _async_manager(async_url) as services:
            svc = await services.create("idle")
            with pytest.raises(TimeoutError, match="did not reach Running within 0.2s \\(it is Initializing\\)"):
                await services.wait_for_state(svc, S.is_running, timeout=0.2)
            # the waiter unsubscribed: later changes reach no stale observer
            assert services.observers._subscribers == []
            assert await services.state(svc) is S.is_initializing

    run(main())


@ASYNC_BACKENDS
def test_wait_for_state_reports_a_failure(async_url: sa.URL) -> None:
    async def main() -> None:
        async with _async_manager(async_url) as services:
            svc = await services.create("flaky", command="flaky", port=1234)
            await services.finish(svc)
            await services.start(svc)
            waiter = asyncio.create_task(services.wait_for_state(svc, S.is_running, timeout=30))
            await services.fail(svc, "exit code 3")
            with pytest.raises(ServiceFailed, match="exit code 3"):
                await waiter
            # waiting for the failure itself is fine
            assert await services.wait_for_state(svc, S.is_failed, timeout=30) is S.is_failed

    run(main())


@ASYNC_BACKENDS
def test_async_refusal_changes_nothing(async_url: sa.URL, engine: sa.Engine) -> None:
    async def main() -> None:
        async with _async_manager(async_url) as services:
            svc = await services.create("bare")
            await services.finish(svc)
            with pytest.raises(TransitionNotAllowed, match="needs a command"):
                await services.start(svc)
            assert await services.state(svc) is S.is_initialized

    run(main())
    assert [r[1] for r in log_rows(engine)] == ["finish_initializing"]
