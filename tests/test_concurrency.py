"""Concurrency: every conflict is a ConcurrentTransitionError, locks in key order, retry, and a short stress run.

Races are forced deterministically with threads and events on PostgreSQL and
MariaDB, and bounded by lock timeouts, so nothing hangs.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from statetype import ConcurrentTransitionError, retry_on_conflict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import stress  # noqa: E402

from stress import Batch, BatchTx, Item, ItemTx  # noqa: E402

SERVERS = pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)


@pytest.fixture
def rows(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[sa.Engine]:
    create_all(stress.Base.metadata)
    with Session(engine) as session:
        session.add_all([Batch(id=1), Batch(id=2)])
        session.flush()
        session.add_all([Item(id=i, batch_id=1 if i <= 3 else 2) for i in range(1, 7)])
        session.commit()
    yield engine


def _bounded(db_url: sa.URL) -> sa.Engine:
    if db_url.get_backend_name() == "postgresql":
        return sa.create_engine(db_url, connect_args={"options": "-c lock_timeout=5000"})
    return sa.create_engine(db_url, connect_args={"init_command": "SET SESSION innodb_lock_wait_timeout = 5"})


@SERVERS
def test_repeatable_read_loser_gets_concurrent_transition_error(db_url: sa.URL, rows: sa.Engine) -> None:
    engine = _bounded(db_url).execution_options(isolation_level="REPEATABLE READ")
    try:
        with Session(engine) as loser, Session(engine) as winner:
            item = loser.get(Item, 1)  # the loser's snapshot starts here
            assert item is not None
            other = winner.get(Item, 1)
            assert other is not None
            ItemTx(actor="winner").to_b(other)
            winner.commit()
            with pytest.raises(ConcurrentTransitionError) as raised:
                ItemTx(actor="loser").to_b(item)
            assert raised.value.__cause__ is not None or "no longer" in str(raised.value)
            assert item.state.is_a and item.counter == 0  # as before the call
            loser.rollback()
            assert item.state.is_b and item.counter == 1  # a retry after rollback sees the winner's work
    finally:
        engine.dispose()


@SERVERS
def test_a_deadlock_is_a_concurrent_transition_error(db_url: sa.URL, rows: sa.Engine) -> None:
    """Two transactions lock rows in opposite orders by hand; statetype's statement meets the deadlock."""
    engine = _bounded(db_url)
    first_locked = threading.Event()
    second_locked = threading.Event()
    outcome: dict[str, BaseException | None] = {}

    def hand_written() -> None:
        with engine.connect() as conn:
            with conn.begin():
                conn.execute(sa.select(Item.id).where(Item.id == 2).with_for_update()).all()
                first_locked.set()
                second_locked.wait(5)
                try:
                    conn.execute(sa.select(Item.id).where(Item.id == 1).with_for_update()).all()
                    outcome["hand"] = None
                except sa.exc.DBAPIError as error:
                    outcome["hand"] = error

    thread = threading.Thread(target=hand_written)
    thread.start()
    try:
        with Session(engine) as session:
            item1 = session.get(Item, 1)
            item2 = session.get(Item, 2)
            assert item1 is not None and item2 is not None
            ItemTx(actor="s").to_b(item1)  # locks row 1
            first_locked.wait(5)
            second_locked.set()
            try:
                ItemTx(actor="s").to_b(item2)  # waits for row 2: one of the two is the deadlock victim
                outcome["statetype"] = None
                session.commit()
            except ConcurrentTransitionError as error:
                outcome["statetype"] = error
                assert isinstance(error.__cause__, sa.exc.DBAPIError)
                assert item2.state.is_a
                session.rollback()
    finally:
        thread.join(20)
        engine.dispose()
    assert not thread.is_alive()
    # Exactly one side lost; when it was statetype's statement, the error was converted.
    assert (outcome["statetype"] is None) != (outcome["hand"] is None)


@SERVERS
def test_chains_lock_their_rows_in_key_order_and_do_not_deadlock(db_url: sa.URL, rows: sa.Engine) -> None:
    engine = _bounded(db_url)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def racer(n: int) -> None:
        try:
            barrier.wait(10)
            for _ in range(5):
                def attempt() -> None:
                    with Session(engine) as session:
                        batch = session.get(Batch, 1)
                        assert batch is not None
                        bound = BatchTx(actor=f"r{n}").close if batch.state.is_open else BatchTx(actor=f"r{n}").reopen
                        bound(batch)
                        session.commit()

                retry_on_conflict(attempt, attempts=20)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    engine.dispose()
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    report = stress.check(str(db_url.render_as_string(hide_password=False)), "db", stress.Figures(committed_steps=0), 1.0)
    assert report.illegal_states == 0 and report.lost_increments == 0


def test_retry_on_conflict_rolls_back_and_calls_again(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> None:
    create_all(stress.Base.metadata)
    calls: list[int] = []
    with Session(engine) as session:
        session.add(Item(id=1))
        session.commit()

        def flaky() -> str:
            calls.append(len(calls))
            session.add(Item(id=100 + len(calls)))
            session.flush()
            if len(calls) < 3:
                raise ConcurrentTransitionError("lost the race")
            return "done"

        assert retry_on_conflict(flaky, attempts=3, session=session) == "done"
        session.commit()
        assert calls == [0, 1, 2]
        # Only the last attempt's work was committed: the others were rolled back.
        assert sorted(session.scalars(sa.select(Item.id))) == [1, 103]
        with pytest.raises(ConcurrentTransitionError):
            retry_on_conflict(lambda: (_ for _ in ()).throw(ConcurrentTransitionError("always")), attempts=2)
        with pytest.raises(ValueError, match="attempts must be at least 1"):
            retry_on_conflict(lambda: None, attempts=0)


@SERVERS
def test_short_stress_run_loses_nothing(db_url: sa.URL, rows: sa.Engine) -> None:
    url = db_url.render_as_string(hide_password=False)
    report = stress.run(url, db_url.get_backend_name(), workers=4, attempts=200, rows=30)
    assert report.figures.raw_errors == {}, report.lines()
    assert report.illegal_states == 0 and report.lost_increments == 0, report.lines()
    assert report.history_rows == report.figures.committed_steps > 0, report.lines()
    assert report.ok
