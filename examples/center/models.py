"""The workstation centre: stations, their states, their history and the persisted machine.

A station is free until someone takes it to edit. An edit is sent either to
the midnight transfer (``wait00_trans``) or to the 3am production run
(``wait03_prod``); at that hour the check moves it to reconciliation
(``reco_trans``/``reco_prod``), and once reconciled the station is free again.
An edit left alone for an hour is released by a timer.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from statetype import State, StateType, TransitionLogMixin

__all__ = ["Base", "CenterLog", "CenterState", "MachineState", "MachineTransition", "Station"]


class CenterState(StateType[str]):
    is_free = State("free", "Free", initial=True)
    is_edit = State("edit", "Editing")
    is_wait00_trans = State("wait00_trans", "Waiting for the 0am transfer")
    is_wait03_prod = State("wait03_prod", "Waiting for the 3am production")
    is_reco_trans = State("reco_trans", "Reconciling the transfer")
    is_reco_prod = State("reco_prod", "Reconciling the production")

    is_waiting = (is_wait00_trans | is_wait03_prod).titled("Waiting")
    is_reconciling = (is_reco_trans | is_reco_prod).titled("Reconciling")
    is_busy = (is_edit | is_waiting | is_reconciling).titled("Busy")


class Base(DeclarativeBase):
    pass


class MachineState(Base):
    """The machine persisted: one row per state (``export_machine`` writes them)."""

    __tablename__ = "center_machine_state"

    # Typed with the StateType itself, so its CHECK constraint holds here too and
    # the station's foreign key has the very same column type on every database.
    value: Mapped[CenterState] = mapped_column(CenterState(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    initial: Mapped[bool] = mapped_column(default=False)
    final: Mapped[bool] = mapped_column(default=False)


class MachineTransition(Base):
    """The machine persisted: one row per edge (a transition with several sources has several rows)."""

    __tablename__ = "center_machine_transition"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    title: Mapped[str] = mapped_column(sa.String(100))
    from_value: Mapped[CenterState] = mapped_column(CenterState(), sa.ForeignKey("center_machine_state.value"))
    to_value: Mapped[CenterState] = mapped_column(CenterState(), sa.ForeignKey("center_machine_state.value"))
    timer_seconds: Mapped[Optional[int]]
    since: Mapped[Optional[str]] = mapped_column(sa.String(50))
    guards: Mapped[str] = mapped_column(sa.String(200), default="")


class Station(Base):
    __tablename__ = "center_station"
    # run_due (the one-hour timer) filters on (state, status_start)
    __table_args__ = (sa.Index("ix_center_station_state_status_start", "state", "status_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)
    state: Mapped[CenterState] = mapped_column(
        CenterState(protected=True), sa.ForeignKey("center_machine_state.value"), default=CenterState.is_free
    )
    # Stamped with every change by CenterTransitions.step_values, per row and set-based.
    status_start: Mapped[Optional[dt.datetime]]
    current_user: Mapped[Optional[str]] = mapped_column(sa.String(50))
    job: Mapped[Optional[str]] = mapped_column(sa.String(100))


class CenterLog(TransitionLogMixin, Base):
    __tablename__ = "center_log"
