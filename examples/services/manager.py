"""The application: manage services, wait for states, read their history.

`ServiceManager` works with a sync Engine, `AsyncServiceManager` with an
AsyncEngine (transitions run through ``AsyncSession.run_sync``). Both run each
action in its own short transaction and share one `Observers` hub, which the
registry's ``after_commit`` hook feeds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from .models import Service, ServiceState, ServiceTransitions
from .observers import Observers, StateChange

__all__ = ["AsyncServiceManager", "HistoryEntry", "ServiceFailed", "ServiceManager", "UnknownService"]


class UnknownService(LookupError):
    """No service has this id."""


class ServiceFailed(RuntimeError):
    """The service failed while someone waited for another state."""

    def __init__(self, service_id: int, error: str | None) -> None:
        super().__init__(f"service {service_id} failed: {error or 'unknown error'}")
        self.service_id = service_id
        self.error = error


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    transition: str
    from_state: ServiceState | None
    to_state: ServiceState
    actor: str | None
    at: dt.datetime  # timezone-aware UTC
    data: Any


# ------------------------------------------------------------------ one action, in a given session


def _load(session: Session, service_id: int) -> Service:
    service = session.get(Service, service_id)
    if service is None:
        raise UnknownService(service_id)
    return service


def _create(session: Session, name: str, command: str | None, port: int | None, depends_on: int | None) -> int:
    service = Service(name=name, command=command, port=port, depends_on_id=depends_on)
    session.add(service)
    session.flush()
    return service.id


def _configure(session: Session, service_id: int, command: str | None, port: int | None) -> None:
    service = _load(session, service_id)
    if service.state.is_in_progress or service.state.is_up:
        raise ValueError(f"service {service_id} is {service.state.title}; stop it before changing its configuration")
    service.command = command
    service.port = port


def _apply(session: Session, tx: ServiceTransitions, service_id: int, name: str, data: dict[str, Any] | None) -> ServiceState:
    """Apply one transition by name; raises TransitionNotAllowed with every reason when refused."""
    service = _load(session, service_id)
    getattr(tx, name)(service, data=data)
    return ServiceState.from_value(service.state.value)


def _finish(session: Session, tx: ServiceTransitions, service_id: int) -> ServiceState:
    """Complete whatever the service is in progress of (initializing, starting or stopping)."""
    service = _load(session, service_id)
    completions = [b for b in tx.available(service) if b.meta.get("completes")]
    if not completions:
        raise ValueError(f"service {service_id} is {service.state.title}, not in progress")
    completions[0](service)
    return ServiceState.from_value(service.state.value)


def _history(session: Session, tx: ServiceTransitions, service_id: int) -> list[HistoryEntry]:
    return [
        HistoryEntry(
            transition=row.transition,
            from_state=ServiceState.from_value(row.from_value) if row.from_value is not None else None,
            to_state=ServiceState.from_value(row.to_value),
            actor=row.actor,
            at=row.created_at,
            data=row.data,
        )
        for row in tx.history(_load(session, service_id))
    ]


def _in_state(session: Session, target: ServiceState) -> list[int]:
    # `Service.state == group` is membership in SQL.
    return list(session.scalars(sa.select(Service.id).where(Service.state == target).order_by(Service.id)))


def _startable(session: Session) -> list[int]:
    # Source states AND the guards' SQL forms: the configuration check, in the database.
    where = ServiceTransitions.start.where(Service)
    return list(session.scalars(sa.select(Service.id).where(where).order_by(Service.id)))


# ------------------------------------------------------------------ sync


class ServiceManager:
    """Services over a sync Engine, one transaction per action."""

    def __init__(self, engine: sa.Engine, *, actor: str = "system", observers: Observers | None = None) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.actor = actor
        self.observers = observers if observers is not None else Observers()

    def _tx(self) -> ServiceTransitions:
        return ServiceTransitions(actor=self.actor, observers=self.observers)

    def create(
        self, name: str, *, command: str | None = None, port: int | None = None, depends_on: int | None = None
    ) -> int:
        """A new service, initializing."""
        with self.sessions.begin() as session:
            return _create(session, name, command, port, depends_on)

    def configure(self, service_id: int, *, command: str | None, port: int | None) -> None:
        with self.sessions.begin() as session:
            _configure(session, service_id, command, port)

    def state(self, service_id: int) -> ServiceState:
        with self.sessions() as session:
            return ServiceState.from_value(_load(session, service_id).state.value)

    def finish(self, service_id: int) -> ServiceState:
        with self.sessions.begin() as session:
            return _finish(session, self._tx(), service_id)

    def start(self, service_id: int) -> ServiceState:
        """Validate the configuration, then begin starting; TransitionNotAllowed lists what is wrong."""
        return self._apply(service_id, "start")

    def mark_running(self, service_id: int) -> ServiceState:
        return self._apply(service_id, "confirm_running")

    def stop(self, service_id: int) -> ServiceState:
        return self._apply(service_id, "stop")

    def fail(self, service_id: int, error: str) -> ServiceState:
        return self._apply(service_id, "fail", {"error": error})

    def reinitialize(self, service_id: int) -> ServiceState:
        return self._apply(service_id, "reinitialize")

    def _apply(self, service_id: int, name: str, data: dict[str, Any] | None = None) -> ServiceState:
        with self.sessions.begin() as session:
            return _apply(session, self._tx(), service_id, name, data)

    def history(self, service_id: int) -> list[HistoryEntry]:
        with self.sessions() as session:
            return _history(session, self._tx(), service_id)

    def in_state(self, target: ServiceState) -> list[int]:
        """Ids of services in a state or group (``ServiceState.is_in_progress``...)."""
        with self.sessions() as session:
            return _in_state(session, target)

    def startable(self) -> list[int]:
        with self.sessions() as session:
            return _startable(session)


# ------------------------------------------------------------------ async


class AsyncServiceManager:
    """Services over an AsyncEngine; per-row transitions run through ``AsyncSession.run_sync``."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        actor: str = "system",
        observers: Observers | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.actor = actor
        self.observers = observers if observers is not None else Observers()
        self.poll_interval = poll_interval

    def _tx(self) -> ServiceTransitions:
        return ServiceTransitions(actor=self.actor, observers=self.observers)

    async def create(
        self, name: str, *, command: str | None = None, port: int | None = None, depends_on: int | None = None
    ) -> int:
        async with self.sessions.begin() as session:
            return await session.run_sync(_create, name, command, port, depends_on)

    async def finish(self, service_id: int) -> ServiceState:
        async with self.sessions.begin() as session:
            return await session.run_sync(_finish, self._tx(), service_id)

    async def start(self, service_id: int) -> ServiceState:
        return await self._apply(service_id, "start")

    async def mark_running(self, service_id: int) -> ServiceState:
        return await self._apply(service_id, "confirm_running")

    async def stop(self, service_id: int) -> ServiceState:
        return await self._apply(service_id, "stop")

    async def fail(self, service_id: int, error: str) -> ServiceState:
        return await self._apply(service_id, "fail", {"error": error})

    async def _apply(self, service_id: int, name: str, data: dict[str, Any] | None = None) -> ServiceState:
        async with self.sessions.begin() as session:
            return await session.run_sync(_apply, self._tx(), service_id, name, data)

    async def history(self, service_id: int) -> list[HistoryEntry]:
        async with self.sessions() as session:
            return await session.run_sync(_history, self._tx(), service_id)

    async def state(self, service_id: int) -> ServiceState:
        state, _error = await self._read(service_id)
        return state

    async def _read(self, service_id: int) -> tuple[ServiceState, str | None]:
        # A new session (so a new transaction, seeing the latest commits) per read.
        async with self.sessions() as session:
            row = (await session.execute(sa.select(Service.state, Service.error).where(Service.id == service_id))).first()
        if row is None:
            raise UnknownService(service_id)
        # The column loads as the member itself (an unknown member for an undeclared value).
        state: ServiceState = row[0]
        return state, row[1]

    async def wait_for_state(
        self,
        service_id: int,
        target: ServiceState,
        *,
        timeout: float,
        fail_on: ServiceState | None = ServiceState.is_failed,
    ) -> ServiceState:
        """Wait until the service is in ``target`` (a state or a group); returns the state reached.

        Polls the database every ``poll_interval`` seconds, so changes made by
        other processes are seen; a change committed through this manager's
        observers wakes it at once. Raises `TimeoutError` after ``timeout``
        seconds, and `ServiceFailed` when the service reaches ``fail_on``
        (failed, by default) while ``target`` does not cover it.
        """
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake(change: StateChange) -> None:
            loop.call_soon_threadsafe(changed.set)

        unsubscribe = self.observers.subscribe(wake, service_id=service_id)
        state: ServiceState | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()
                    state, error = await self._read(service_id)
                    if state in target.states:
                        return state
                    if fail_on is not None and state in fail_on.states:
                        raise ServiceFailed(service_id, error)
                    try:
                        await asyncio.wait_for(changed.wait(), self.poll_interval)
                    except TimeoutError:
                        pass
        except TimeoutError:
            last = state.title if state is not None else "unknown"
            raise TimeoutError(
                f"service {service_id} did not reach {target.title} within {timeout}s (it is {last})"
            ) from None
        finally:
            unsubscribe()
