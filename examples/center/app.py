"""The centre's operations: what the desk and the scheduler call.

Each call is one short transaction on the engine. ``tick(now)`` is the
scheduler's job (run it every minute): it releases stations idle for an hour
(``run_due``), and at 0am and 3am applies the transfer and production checks
to every waiting station with one UPDATE each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from statetype import Applied, StateType

from .machine import export_machine
from .models import Base, CenterLog, CenterState, Station
from .transitions import CenterTransitions

__all__ = ["Center", "Tick"]

SYSTEM = "system"


class Tick(NamedTuple):
    """What one scheduler tick applied: stations released, transferred and produced."""

    released: int
    transferred: int
    produced: int


class Center:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def install(self) -> None:
        """Create the tables and persist the machine (run at deployment, again after a change)."""
        Base.metadata.create_all(self.engine)
        with Session(self.engine) as session:
            export_machine(session)
            session.commit()

    def add_station(self, name: str) -> int:
        with Session(self.engine) as session:
            station = Station(name=name)
            session.add(station)
            session.commit()
            return station.id

    def _apply(self, station_id: int, name: str, user: str | None, now: dt.datetime | None, **data: object) -> Applied:
        with Session(self.engine) as session:
            station = session.get_one(Station, station_id)
            tx = CenterTransitions(actor=user, now=now)
            applied: Applied = getattr(tx, name)(station, data=data or None)
            session.commit()
            return applied

    def take(self, station_id: int, user: str, job: str, now: dt.datetime | None = None) -> Applied:
        return self._apply(station_id, "take", user, now, job=job)

    def do(self, station_id: int, name: str, user: str | None, now: dt.datetime | None = None) -> Applied:
        """Apply a transition by name (release, submit_trans, recall, close_prod, ...)."""
        if name not in {t.name for t in CenterTransitions.transitions()}:
            raise LookupError(f"no transition {name!r}")
        return self._apply(station_id, name, user, now)

    def actions(self, station_id: int, user: str | None, now: dt.datetime | None = None) -> list[str]:
        with Session(self.engine) as session:
            station = session.get_one(Station, station_id)
            return [t.name for t in CenterTransitions(actor=user, now=now).available(station)]

    def tick(self, now: dt.datetime) -> Tick:
        with Session(self.engine) as session:
            tx = CenterTransitions(actor=SYSTEM, now=now)
            released = tx.run_due(session, now=now)
            # The hour guards' SQL forms are false outside 0am and 3am: these match no row then.
            transferred = tx.run_trans.bulk(session).count
            produced = tx.run_prod.bulk(session).count
            session.commit()
            return Tick(released, transferred, produced)

    def board(self, state: StateType[object] | None = None) -> Sequence[tuple[str, str, str | None]]:
        """(station, state name, current user), optionally only those in a state or group."""
        with Session(self.engine) as session:
            query = sa.select(Station.name, Station.state, Station.current_user).order_by(Station.id)
            if state is not None:
                query = query.where(Station.state == state)
            return [(n, s.name, u) for n, s, u in session.execute(query)]

    def station(self, station_id: int) -> Station:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get_one(Station, station_id)

    def history(self, station_id: int) -> list[tuple[str, str | None, str, str | None]]:
        with Session(self.engine) as session:
            query = (
                sa.select(CenterLog.transition, CenterLog.from_value, CenterLog.to_value, CenterLog.actor)
                .where(CenterLog.table_name == Station.__tablename__, CenterLog.object_id == str(station_id))
                .order_by(CenterLog.id)
            )
            return [tuple(r) for r in session.execute(query)]  # type: ignore[misc]
