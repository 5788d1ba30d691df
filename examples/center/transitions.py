"""The ten transitions of the centre.

The registry carries the moment it acts at (``now``): the 0am and 3am checks
are guards on its hour, with SQL forms, so the scheduler can apply them to
every waiting station at once with ``bulk()``; ``step_values`` stamps
``status_start`` and ``current_user`` on every change, per row and set-based.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from statetype import Transition, Transitions

from .models import CenterLog, CenterState, Station

__all__ = ["CenterTransitions", "utc_naive"]

S = CenterState


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """``moment`` as naive UTC, as ``status_start`` stores it."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return moment.replace(tzinfo=None)


class CenterTransitions(Transitions[Station, str]):
    """The actor is the user's login; ``now`` is the moment the registry acts at (default: the step's time)."""

    log = CenterLog

    def __init__(self, actor: str | None = None, *, now: dt.datetime | None = None) -> None:
        super().__init__(actor)
        self.now = now

    take = Transition(S.is_free, S.is_edit, title="Take")
    release = Transition(S.is_edit, S.is_free, title="Release")
    submit_trans = Transition(S.is_edit, S.is_wait00_trans, title="Send to the 0am transfer")
    submit_prod = Transition(S.is_edit, S.is_wait03_prod, title="Send to the 3am production")
    recall = Transition(S.is_waiting, S.is_edit, title="Recall")
    run_trans = Transition(S.is_wait00_trans, S.is_reco_trans, title="0am transfer")
    run_prod = Transition(S.is_wait03_prod, S.is_reco_prod, title="3am production")
    close_trans = Transition(S.is_reco_trans, S.is_free, title="Transfer reconciled")
    close_prod = Transition(S.is_reco_prod, S.is_free, title="Production reconciled")
    timeout = Transition(S.is_edit, S.is_free, title="Idle timeout", after=dt.timedelta(hours=1), since="status_start")

    def _hour(self) -> int:
        now = self.now if self.now is not None else dt.datetime.now(dt.timezone.utc)
        return utc_naive(now).hour

    @run_trans.guard
    def at_midnight(self, station: Station) -> bool:
        """The transfer runs at 0am only."""
        return self._hour() == 0

    @at_midnight.expression
    def _at_midnight_sql(self, station: type[Station]) -> ColumnElement[bool]:
        return sa.true() if self._hour() == 0 else sa.false()

    @run_prod.guard
    def at_three(self, station: Station) -> bool:
        """The production runs at 3am only."""
        return self._hour() == 3

    @at_three.expression
    def _at_three_sql(self, station: type[Station]) -> ColumnElement[bool]:
        return sa.true() if self._hour() == 3 else sa.false()

    @take.permission
    def signed_in(self, station: Station) -> bool:
        """Sign in to take a station."""
        return self.actor is not None

    @release.permission
    @submit_trans.permission
    @submit_prod.permission
    @recall.permission
    def holder(self, station: Station) -> bool:
        """Only the user holding the station may do this."""
        return self.actor is not None and self.actor == station.current_user

    @take.execute
    def set_job(self, station: Station, data: Mapping[str, Any]) -> None:
        station.job = data.get("job")

    def step_values(self, transition: Transition[Any], now: dt.datetime) -> Mapping[str, Any]:
        # Who holds the station from now on (nobody once it is free), and since when.
        moment = self.now if self.now is not None else now
        holder = None if transition.to is S.is_free else self.actor
        values: dict[str, Any] = {"status_start": utc_naive(moment), "current_user": holder}
        if transition.to is S.is_free:
            values["job"] = None
        return values
