"""Timed transitions: ``tx.run_due(session, now=None)`` on every database, and concurrent workers."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bulk_models import EPOCH, DocState, Models, guarded_engine, make_models, run_workers
from statetype import TransitionNotAllowed

m: Models = make_models("due")
Doc, Log, Tx = m.Doc, m.Log, m.Tx
CreateAll = Callable[[sa.MetaData], None]
DAY = dt.timedelta(days=1)
D, P, W, X, A = (DocState.is_draft, DocState.is_published, DocState.is_withdrawn, DocState.is_deleted,
                 DocState.is_archived)


@pytest.fixture
def db(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(m.Base.metadata)
    m.calls.clear()
    with Session(engine) as session:
        yield session


def _states(db: Session) -> dict[int, str]:
    db.expire_all()
    return {i: s.name for i, s in db.execute(sa.select(Doc.id, Doc.state).order_by(Doc.id))}


def _world(db: Session) -> None:
    """Drafts created 40, 20 and 31 days before EPOCH + 31 days; withdrawn ones 10 and 3 days before."""
    now = EPOCH + 31 * DAY
    db.add_all(
        [
            Doc(id=1, state=D, created_at=now - 40 * DAY),
            Doc(id=2, state=D, created_at=now - 20 * DAY),
            Doc(id=3, state=D, created_at=now - 30 * DAY),  # exactly due
            Doc(id=4, state=P, created_at=now - 40 * DAY),  # not a source state
            Doc(id=5, state=W, created_at=now - 10 * DAY),
            Doc(id=6, state=W, created_at=now - 3 * DAY),
        ]
    )
    db.commit()


def test_nothing_is_due_before_the_deadline(db: Session) -> None:
    _world(db)
    before = _states(db)
    assert Tx().run_due(db, now=EPOCH + 31 * DAY - 10 * DAY - dt.timedelta(seconds=1)) == 0
    db.commit()
    assert _states(db) == before
    assert db.scalar(sa.select(sa.func.count()).select_from(Log)) == 0


def test_due_rows_are_applied_once_the_deadline_passes(db: Session) -> None:
    _world(db)
    now = EPOCH + 31 * DAY
    assert Tx(actor="cron").run_due(db, now=now) == 3
    db.commit()
    assert _states(db) == {
        1: "is_deleted", 2: "is_draft", 3: "is_deleted", 4: "is_published", 5: "is_archived", 6: "is_withdrawn",
    }
    history = db.execute(
        sa.select(Log.object_id, Log.transition, Log.from_value, Log.to_value, Log.actor, Log.created_at).order_by(
            Log.object_id
        )
    ).all()
    assert [tuple(h[:5]) for h in history] == [
        ("1", "expire", "1", "4", "cron"),
        ("3", "expire", "1", "4", "cron"),
        ("5", "retire", "3", "5", "cron"),
    ]
    assert {h[5] for h in history} == {now}
    # step_values are written set-based too, with the given now
    assert db.scalars(sa.select(Doc.status_start).where(Doc.id.in_([1, 3, 5]))).all() == [now] * 3
    assert sorted(m.calls) == [("expire", 1, "is_draft"), ("expire", 3, "is_draft")]
    # a second run finds nothing
    assert Tx().run_due(db, now=now + 365 * DAY) == 2  # docs 2 and 6 are due by then
    db.commit()
    assert Tx().run_due(db, now=now + 365 * DAY) == 0


def test_run_due_without_now_uses_the_current_time(db: Session) -> None:
    from statetype.execution import utcnow

    current = utcnow()
    db.add_all([Doc(id=1, created_at=current - 31 * DAY), Doc(id=2, created_at=current - DAY)])
    db.commit()
    assert Tx().run_due(db) == 1
    db.commit()
    assert _states(db) == {1: "is_deleted", 2: "is_draft"}


def test_a_naive_now_is_taken_as_utc(db: Session) -> None:
    _world(db)
    assert Tx().run_due(db, now=(EPOCH + 31 * DAY).replace(tzinfo=None)) == 3
    db.commit()


def test_rollback_undoes_run_due_and_its_hooks(db: Session) -> None:
    _world(db)
    assert Tx().run_due(db, now=EPOCH + 31 * DAY) == 3
    db.rollback()
    db.commit()
    assert m.calls == []
    assert _states(db)[1] == "is_draft"


def test_timed_transitions_are_not_available_and_refuse_a_direct_call(db: Session) -> None:
    _world(db)
    doc = db.get(Doc, 1)
    assert doc is not None
    tx = Tx(actor="5")
    names = [b.name for b in tx.available(doc)]
    assert "expire" not in names and "publish" in names
    verdict = tx.expire.check(doc)
    assert not verdict and [r.kind for r in verdict.reasons] == ["timer"]
    with pytest.raises(TransitionNotAllowed) as info:
        tx.expire(doc)
    assert [r.kind for r in info.value.verdict.reasons] == ["timer"]
    db.commit()
    assert _states(db)[1] == "is_draft"


def test_the_state_and_since_index_is_usable(db: Session) -> None:
    """run_due's WHERE is ``state = ? AND created_at <= ?``: the composite index covers it."""
    index = next(i for i in Doc.__table__.indexes if i.name == "ix_due_doc_state_created")
    assert [c.name for c in index.columns] == ["state", "created_at"]
    inspected = sa.inspect(db.get_bind()).get_indexes(Doc.__tablename__)
    assert any(i["column_names"] == ["state", "created_at"] for i in inspected)


# ------------------------------------------------------------------ concurrent workers

SERVERS = pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
STRESS = os.environ.get("STATETYPE_STRESS", "") not in ("", "0")


def race_run_due(db_url: sa.URL, db: Session, workers: int, rounds: int, due: int) -> None:
    """``workers`` threads each call run_due ``rounds`` times at once; every due row changes once."""
    now = EPOCH + 100 * DAY
    db.add_all(Doc(id=i, state=D if i % 3 else W, created_at=EPOCH) for i in range(1, due + 1))
    db.add_all(Doc(id=i, state=D, created_at=now) for i in range(due + 1, due + 21))  # not due
    db.commit()
    engine = guarded_engine(db_url, workers)
    counts: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        tx = Tx(actor=f"worker{n}")
        for _ in range(rounds):
            with Session(engine) as session:
                count = tx.run_due(session, now=now)
                session.commit()
            with lock:
                counts.append(count)

    try:
        errors = run_workers(worker, workers, timeout=120)
    finally:
        engine.dispose()
    assert errors == []
    assert sum(counts) == due
    rows = db.execute(sa.select(Log.object_id, sa.func.count()).group_by(Log.object_id)).all()
    assert len(rows) == due and all(n == 1 for _, n in rows)
    states = _states(db)
    assert all(states[i] == ("is_deleted" if i % 3 else "is_archived") for i in range(1, due + 1))
    assert all(states[i] == "is_draft" for i in range(due + 1, due + 21))
    assert len(m.calls) == sum(1 for i in range(1, due + 1) if i % 3)


@SERVERS
def test_concurrent_workers_apply_each_due_step_exactly_once(db_url: sa.URL, db: Session) -> None:
    race_run_due(db_url, db, workers=6, rounds=3, due=150)


@SERVERS
@pytest.mark.slow
@pytest.mark.skipif(not STRESS, reason="long variant: set STATETYPE_STRESS=1 (make stress)")
def test_concurrent_workers_stress(db_url: sa.URL, db: Session) -> None:
    race_run_due(db_url, db, workers=8, rounds=10, due=3000)
