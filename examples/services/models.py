"""The service lifecycle: states, the service table, its history and the transition registry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Optional, cast

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from statetype import AppliedStep, State, StateType, Transition, TransitionLogMixin, Transitions

from .observers import Observers, StateChange

__all__ = ["Base", "Service", "ServiceLog", "ServiceState", "ServiceTransitions"]


class ServiceState(StateType[str]):
    is_initializing = State("initializing", "Initializing", initial=True)
    is_initialized = State("initialized", "Initialized")
    is_starting = State("starting", "Starting")
    is_started = State("started", "Started")
    is_running = State("running", "Running")
    is_stopping = State("stopping", "Stopping")
    is_stopped = State("stopped", "Stopped")
    is_failed = State("failed", "Failed")

    # A service in progress is between two settled states; only a completion or a failure moves it on.
    is_in_progress = (is_initializing | is_starting | is_stopping).titled("In progress")
    is_up = (is_started | is_running).titled("Up")
    is_startable = (is_initialized | is_stopped).titled("Startable")
    is_settled = (is_initialized | is_up | is_stopped | is_failed).titled("Settled")


class Base(DeclarativeBase):
    pass


class Service(Base):
    __tablename__ = "services_service"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    # Only transitions change the state: a direct assignment raises ProtectedStateError.
    state: Mapped[ServiceState] = mapped_column(
        ServiceState(protected=True), default=ServiceState.is_initializing, index=True
    )
    # The configuration that `start` validates before the service begins starting.
    command: Mapped[Optional[str]] = mapped_column(sa.String(255))
    port: Mapped[Optional[int]]
    depends_on_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("services_service.id"))
    error: Mapped[Optional[str]] = mapped_column(sa.Text)
    starts: Mapped[int] = mapped_column(default=0)
    state_changed_at: Mapped[Optional[dt.datetime]]

    depends_on: Mapped[Optional[Service]] = relationship(remote_side=[id])


class ServiceLog(TransitionLogMixin, Base):
    __tablename__ = "services_log"


class ServiceTransitions(Transitions[Service, str]):
    """Every change of a service's state; the actor is the name of who asked for it."""

    log = ServiceLog

    def __init__(self, actor: str | None = None, *, observers: Observers | None = None) -> None:
        super().__init__(actor)
        self.observers = observers

    # Completions end an in-progress state (meta tells `ServiceManager.finish` which they are).
    finish_initializing = Transition(
        ServiceState.is_initializing, ServiceState.is_initialized, meta={"completes": True}
    )
    # Validate-and-begin: the guards below check the configuration before the service starts.
    start = Transition(ServiceState.is_startable, ServiceState.is_starting, title="Start")
    confirm_started = Transition(ServiceState.is_starting, ServiceState.is_started, meta={"completes": True})
    confirm_running = Transition(ServiceState.is_started, ServiceState.is_running, title="Healthy")
    stop = Transition(ServiceState.is_up, ServiceState.is_stopping, title="Stop")
    confirm_stopped = Transition(ServiceState.is_stopping, ServiceState.is_stopped, meta={"completes": True})
    fail = Transition(ServiceState.is_in_progress | ServiceState.is_up, ServiceState.is_failed, title="Fail")
    reinitialize = Transition(ServiceState.is_failed | ServiceState.is_stopped, ServiceState.is_initializing)

    # -- configuration guards, each with its SQL form (so `start.where(Service)` lists startable services)

    @start.guard
    def has_command(self, service: Service) -> bool:
        """The configuration needs a command."""
        return bool(service.command)

    @has_command.expression
    def _has_command_sql(self, service: type[Service]) -> ColumnElement[bool]:
        return sa.and_(service.command.is_not(None), service.command != "")

    @start.guard
    def has_valid_port(self, service: Service) -> bool:
        """The configuration needs a port between 1 and 65535."""
        return service.port is not None and 1 <= service.port <= 65535

    @has_valid_port.expression
    def _has_valid_port_sql(self, service: type[Service]) -> ColumnElement[bool]:
        return sa.and_(service.port.is_not(None), service.port.between(1, 65535))

    @start.guard
    def dependency_running(self, service: Service) -> bool:
        """The service it depends on must be running."""
        return service.depends_on is None or service.depends_on.state.is_running

    @dependency_running.expression
    def _dependency_running_sql(self, service: type[Service]) -> ColumnElement[bool]:
        dependency = aliased(Service)
        running = (
            sa.select(dependency.id)
            .where(dependency.id == service.depends_on_id, dependency.state == ServiceState.is_running)
            .exists()
        )
        return sa.or_(service.depends_on_id.is_(None), running)

    # -- side effects, run before the state changes and written by the same UPDATE

    @start.execute
    def count_start(self, service: Service, data: Mapping[str, Any]) -> int:
        service.starts += 1
        service.error = None
        return service.starts

    @fail.execute
    def record_error(self, service: Service, data: Mapping[str, Any]) -> None:
        service.error = str(data.get("error") or "unknown error")

    @reinitialize.execute
    def clear_error(self, service: Service, data: Mapping[str, Any]) -> None:
        service.error = None

    def step_values(self, transition: Transition[Any], now: dt.datetime) -> Mapping[str, Any]:
        # The same instant as the history row's created_at, stored as naive UTC.
        return {"state_changed_at": now.replace(tzinfo=None)}

    # -- observers hear of every transition once it is committed, never after a rollback

    @finish_initializing.after_commit
    @start.after_commit
    @confirm_started.after_commit
    @confirm_running.after_commit
    @stop.after_commit
    @confirm_stopped.after_commit
    @fail.after_commit
    @reinitialize.after_commit
    def notify(self, step: AppliedStep[Service]) -> None:
        if self.observers is None:
            return
        # The identity survives expire-on-commit: reading it loads nothing.
        identity = sa.inspect(step.obj).identity
        assert identity is not None and step.from_state is not None
        self.observers.publish(
            StateChange(
                service_id=identity[0],
                transition=step.transition.name,
                from_state=cast(ServiceState, step.from_state),
                to_state=cast(ServiceState, step.to_state),
                actor=self.actor,
                at=step.at,
            )
        )
