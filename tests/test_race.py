"""Racing workers on PostgreSQL and MariaDB: one winner per row per step, no lost update.

Each worker is a thread with its own Session (so its own connection). Every
loop is bounded in iterations, every wait in time: a deadlock or a lock wait
that never ends fails the test instead of hanging it. ``STATETYPE_STRESS=1``
(``make stress``) runs longer variants marked ``slow``.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bulk_models import (
    DocState,
    Models,
    assert_history_consistent,
    guarded_engine,
    history_chains,
    make_models,
    run_workers,
)
from statetype import ConcurrentTransitionError, TransitionNotAllowed

m: Models = make_models("race")
Doc, Log = m.Doc, m.Log
CreateAll = Callable[[sa.MetaData], None]
SERVERS = pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
STRESS = os.environ.get("STATETYPE_STRESS", "") not in ("", "0")
stress_only = pytest.mark.skipif(not STRESS, reason="long variant: set STATETYPE_STRESS=1 (make stress)")

# What a worker may try from each state; delete is rarer so rows live for several steps.
CHOICES: dict[str, list[str]] = {
    "is_draft": ["publish", "publish", "publish", "delete"],
    "is_published": ["withdraw", "withdraw", "withdraw", "delete"],
    "is_withdrawn": ["publish", "publish", "publish", "delete"],
}


@pytest.fixture
def db(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(m.Base.metadata)
    m.calls.clear()
    with Session(engine) as session:
        yield session


def _seed(db: Session, rows: int) -> list[int]:
    ids = list(range(1, rows + 1))
    db.add_all(Doc(id=i) for i in ids)
    db.commit()
    return ids


def _registry(n: int, actor: str) -> Any:
    # Even workers take the one-statement path, odd ones the path with hooks and step values.
    return (m.PlainTx if n % 2 == 0 else m.Tx)(actor=actor)


def race_steps(db_url: sa.URL, db: Session, workers: int, rows: int, steps: int) -> None:
    """Per step: every worker loads every row, then all try a transition on each; one may win."""
    ids = _seed(db, rows)
    engine = guarded_engine(db_url, workers)
    loaded = threading.Barrier(workers, timeout=60)
    wins: Counter[tuple[int, int]] = Counter()  # (step, row) -> winners
    losses: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(n)
        tx = _registry(n, f"w{n}")
        for step in range(steps):
            with Session(engine) as reader:
                docs = reader.scalars(sa.select(Doc).where(Doc.id.in_(ids)).order_by(Doc.id)).all()
                reader.expunge_all()  # detached: each keeps the state read at the start of the step
            loaded.wait()  # nobody writes before every worker has read this step's states
            order = list(docs)
            rng.shuffle(order)
            for stale in order:
                if stale.state.name not in CHOICES:
                    continue
                name = rng.choice(CHOICES[stale.state.name])
                # A session per attempt: a rollback expires only this attempt's object.
                with Session(engine, expire_on_commit=False) as session:
                    doc = session.merge(stale, load=False)
                    try:
                        getattr(tx, name)(doc)
                        session.commit()
                    except (ConcurrentTransitionError, TransitionNotAllowed) as error:
                        session.rollback()
                        with lock:
                            losses[type(error).__name__] += 1
                        continue
                with lock:
                    wins[(step, stale.id)] += 1
            loaded.wait()  # the step is over for everyone

    try:
        errors = run_workers(worker, workers, timeout=120)
    finally:
        engine.dispose()
    assert errors == [], errors
    db.expire_all()
    # exactly one winner per live row per step: replay the steps from the history
    chains = history_chains(db, m)
    for doc_id in ids:
        chain = chains.get(doc_id, [])
        for step in range(steps):
            expected = 1 if step < len(chain) else 0
            assert wins[(step, doc_id)] == expected, (doc_id, step, chain)
        assert len(chain) == steps or chain[-1][1] == "4", (doc_id, chain)
    assert sum(wins.values()) == db.scalar(sa.select(sa.func.count()).select_from(Log))
    assert losses["ConcurrentTransitionError"] > 0  # the compare-and-set, not only the check, refused some
    assert_history_consistent(db, m)


@SERVERS
def test_conflicting_transitions_have_one_winner_per_row_per_step(db_url: sa.URL, db: Session) -> None:
    race_steps(db_url, db, workers=8, rows=20, steps=4)


@SERVERS
@pytest.mark.slow
@stress_only
def test_conflicting_transitions_stress(db_url: sa.URL, db: Session) -> None:
    race_steps(db_url, db, workers=8, rows=100, steps=30)


def race_bulk(db_url: sa.URL, db: Session, workers: int, rows: int, rounds: int) -> None:
    """One worker runs bulk transitions while the others apply per-row ones to the same rows."""
    ids = _seed(db, rows)
    engine = guarded_engine(db_url, workers)
    applied: Counter[str] = Counter()
    lock = threading.Lock()

    def bulk_worker() -> None:
        tx = m.Tx(actor="bulk")
        with Session(engine) as session:
            for i in range(rounds):
                name = ("publish", "withdraw")[i % 2]
                result = getattr(tx, name).bulk(session, Doc.id.in_(ids))
                session.commit()
                with lock:
                    applied["bulk"] += result.count

    def row_worker(n: int) -> None:
        rng = random.Random(n)
        tx = _registry(n, f"w{n}")
        with Session(engine) as session:
            for _ in range(rounds * 3):
                doc = session.get(Doc, rng.choice(ids), populate_existing=True)
                assert doc is not None
                if doc.state.name not in CHOICES:
                    session.rollback()
                    continue
                name = rng.choice(["publish", "withdraw"] * 6 + ["delete"])
                try:
                    getattr(tx, name)(doc)
                    session.commit()
                except (ConcurrentTransitionError, TransitionNotAllowed):
                    session.rollback()
                    continue
                with lock:
                    applied["row"] += 1

    def worker(n: int) -> None:
        if n == 0:
            bulk_worker()
        else:
            row_worker(n)

    try:
        errors = run_workers(worker, workers, timeout=120)
    finally:
        engine.dispose()
    assert errors == [], errors
    db.expire_all()
    assert applied["bulk"] > 0 and applied["row"] > 0
    logged = db.scalar(sa.select(sa.func.count()).select_from(Log))
    assert logged == applied["bulk"] + applied["row"]
    assert_history_consistent(db, m)
    states = {s for (s,) in db.execute(sa.select(Doc.state))}
    assert states <= {DocState.is_draft, DocState.is_published, DocState.is_withdrawn, DocState.is_deleted}


@SERVERS
def test_bulk_racing_per_row_transitions_loses_no_update(db_url: sa.URL, db: Session) -> None:
    race_bulk(db_url, db, workers=8, rows=20, rounds=10)


@SERVERS
@pytest.mark.slow
@stress_only
def test_bulk_racing_per_row_transitions_stress(db_url: sa.URL, db: Session) -> None:
    race_bulk(db_url, db, workers=8, rows=200, rounds=100)
