"""The executor example: idempotent submission, exactly-once runs, notifications, crash recovery, conflicts.

Every test runs on SQLite, PostgreSQL and MariaDB, except the racing threads,
which need a server (PostgreSQL and MariaDB). Threads and lock waits are
bounded in time; nothing asserts on timing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from examples.executor import (
    Base,
    Event,
    Executor,
    Operation,
    OperationLog,
    OperationState,
    OperationTransitions,
    Subscribers,
)
from statetype import ConcurrentTransitionError, TransitionNotAllowed
from statetype.testing import assert_refused

O = OperationState
CreateAll = Callable[[sa.MetaData], None]
SERVERS = pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)


class Crash(BaseException):
    """The process dies in the middle of a handler (not an Exception: nothing catches it)."""


class Work:
    """Handlers that record every call, thread-safely."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.flaky_failures: Counter[str] = Counter()
        self.crash_on: set[str] = set()

    def add(self, payload: dict[str, Any]) -> int:
        with self.lock:
            self.calls.append(("add", payload["key"]))
        if payload["key"] in self.crash_on:
            self.crash_on.discard(payload["key"])
            raise Crash(payload["key"])
        return int(payload["a"]) + int(payload["b"])

    def flaky(self, payload: dict[str, Any]) -> str:
        """Fails ``payload["fail"]`` times, then succeeds."""
        key = payload["key"]
        with self.lock:
            self.calls.append(("flaky", key))
            failures = self.flaky_failures[key]
            self.flaky_failures[key] += 1
        if failures < payload["fail"]:
            raise ConnectionError(f"attempt {failures + 1} of {key} failed")
        return f"{key} done"

    def handlers(self) -> dict[str, Callable[[Any], Any]]:
        return {"add": self.add, "flaky": self.flaky}

    def count(self, key: str) -> int:
        return sum(1 for _, k in self.calls if k == key)


def record(subscribers: Subscribers) -> list[tuple[str, str, str, str]]:
    seen: list[tuple[str, str, str, str]] = []
    lock = threading.Lock()

    def callback(change: Event) -> None:
        with lock:
            seen.append((change.operation_id, change.transition, change.from_state.name, change.to_state.name))

    subscribers.subscribe(callback)
    return seen


def history(engine: sa.Engine) -> list[tuple[str, str, str, str]]:
    """Every history row, as (operation, transition, from, to), oldest first."""
    names = {s.value: s.name for s in O.states}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(OperationLog.object_id, OperationLog.transition, OperationLog.from_value, OperationLog.to_value)
            .order_by(OperationLog.id)
        )
        return [(o, t, names[f or ""], names[to]) for o, t, f, to in rows]  # per-row steps always have a from_value


def states(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {i: s.name for i, s in conn.execute(sa.select(Operation.id, Operation.state).order_by(Operation.id))}


def of(rows: list[tuple[str, str, str, str]], operation_id: str) -> list[str]:
    return [t for o, t, _, _ in rows if o == operation_id]


@pytest.fixture
def tables(engine: sa.Engine, create_all: CreateAll) -> sa.Engine:
    create_all(Base.metadata)
    return engine


def add(key: str, a: int = 1, b: int = 2) -> dict[str, Any]:
    return {"key": key, "a": a, "b": b}


# ------------------------------------------------------------------ every database


def test_an_operation_submitted_twice_runs_once(tables: sa.Engine) -> None:
    work = Work()
    executor = Executor(tables, work.handlers(), worker="w1")
    seen = record(executor.subscribers)
    first, created = executor.submit("op-1", "add", add("op-1", 2, 3))
    assert created and first.state is O.is_pending
    again, created_again = executor.submit("op-1", "add", add("op-1", 2, 3))
    assert not created_again and again.id == "op-1"
    with pytest.raises(ValueError, match="another kind or payload"):
        executor.submit("op-1", "add", add("op-1", 9, 9))

    assert executor.run_pending() == 1
    assert executor.submit("op-1", "add", add("op-1", 2, 3))[1] is False  # after it ran, too
    assert executor.run_pending() == 0
    assert executor.run("op-1") is None  # inactive: claiming is refused, nothing runs

    assert work.count("op-1") == 1
    done = executor.get("op-1")
    assert (done.state, done.result, done.attempts, done.worker) == (O.is_succeeded, 5, 1, "w1")
    assert states(tables) == {"op-1": "is_succeeded"}
    assert history(tables) == [
        ("op-1", "claim", "is_pending", "is_running"),
        ("op-1", "succeed", "is_running", "is_succeeded"),
    ]
    assert seen == history(tables)  # one notification per committed transition


def test_retries_until_success_then_fails_when_attempts_run_out(tables: sa.Engine) -> None:
    work = Work()
    executor = Executor(tables, work.handlers(), worker="w1")
    seen = record(executor.subscribers)
    executor.submit("ok-on-3rd", "flaky", {"key": "ok-on-3rd", "fail": 2}, max_attempts=3)
    executor.submit("never", "flaky", {"key": "never", "fail": 99}, max_attempts=2)
    executor.run_pending()

    ok, never = executor.get("ok-on-3rd"), executor.get("never")
    assert (ok.state, ok.attempts, ok.result, ok.error) == (O.is_succeeded, 3, "ok-on-3rd done", None)
    assert (never.state, never.attempts) == (O.is_failed, 2)
    assert never.error == "ConnectionError: attempt 2 of never failed"
    assert work.count("ok-on-3rd") == 3 and work.count("never") == 2
    rows = history(tables)
    assert of(rows, "ok-on-3rd") == ["claim", "retry", "claim", "retry", "claim", "succeed"]
    assert of(rows, "never") == ["claim", "retry", "claim", "fail"]
    assert seen == rows
    with Session(tables) as session:
        logged = session.scalars(
            sa.select(OperationLog.data).where(OperationLog.object_id == "never", OperationLog.transition == "fail")
        ).one()
        assert logged == {"error": "ConnectionError: attempt 2 of never failed"}


def test_terminal_states_are_final(tables: sa.Engine) -> None:
    work = Work()
    executor = Executor(tables, work.handlers(), worker="w1")
    executor.submit("done", "add", add("done"))
    executor.submit("dropped", "add", add("dropped"))
    assert executor.cancel("dropped")
    executor.run_pending()
    assert not executor.cancel("done") and not executor.cancel("dropped")
    assert work.count("dropped") == 0
    with Session(tables) as session:
        active = session.scalars(sa.select(Operation.id).where(Operation.state == O.is_active)).all()
        inactive = session.scalars(
            sa.select(Operation.id).where(Operation.state == O.is_inactive).order_by(Operation.id)
        ).all()
        assert (active, inactive) == ([], ["done", "dropped"])
        operation = session.get(Operation, "done")
        assert operation is not None
        tx = OperationTransitions(actor="w1")
        assert tx.available(operation) == []  # nothing leaves a final state
        assert_refused(tx.cancel, operation, kind="state")
        with pytest.raises(TransitionNotAllowed):
            tx.cancel(operation)


def test_subscribers_hear_nothing_of_a_rollback(tables: sa.Engine) -> None:
    work = Work()
    executor = Executor(tables, work.handlers(), worker="w1")
    seen = record(executor.subscribers)
    executor.submit("op", "add", add("op"))
    with Session(tables) as session:
        operation = session.get(Operation, "op")
        assert operation is not None
        executor.apply(session, operation, "claim")
        assert operation.state.is_running and operation.attempts == 1
        session.rollback()
    assert seen == [] and history(tables) == [] and states(tables) == {"op": "is_pending"}

    assert executor.run("op") is O.is_succeeded
    assert seen == history(tables) and len(seen) == 2


def test_recover_resumes_every_non_terminal_operation_after_a_restart(db_url: sa.URL, tables: sa.Engine) -> None:
    # Before the crash: one operation succeeded, one was cancelled, one is retrying,
    # one was running when the process died, one was never started.
    work = Work()
    first_engine = sa.create_engine(db_url)
    before = Executor(first_engine, work.handlers(), worker="node-1")
    for key in ("done", "cancelled", "retrying", "interrupted", "pending"):
        before.submit(key, "flaky" if key == "retrying" else "add", {"key": key, "fail": 1} if key == "retrying" else add(key))
    assert before.run("done") is O.is_succeeded
    assert before.cancel("cancelled")
    assert before.run("retrying") is O.is_retrying
    work.crash_on.add("interrupted")
    with pytest.raises(Crash):
        before.run("interrupted")
    assert states(tables) == {
        "cancelled": "is_cancelled", "done": "is_succeeded", "interrupted": "is_running",
        "pending": "is_pending", "retrying": "is_retrying",
    }
    first_engine.dispose()
    del before, first_engine  # the process is gone: no in-memory state survives

    # After the restart: a new engine, a new executor, the same database.
    second_engine = sa.create_engine(db_url)
    after = Executor(second_engine, work.handlers(), worker="node-1")
    seen = record(after.subscribers)
    assert sorted(after.recover()) == ["interrupted", "pending", "retrying"]
    assert states(tables) == {
        "cancelled": "is_cancelled", "done": "is_succeeded", "interrupted": "is_succeeded",
        "pending": "is_succeeded", "retrying": "is_succeeded",
    }
    # finished work is not redone; interrupted work runs again (handlers should be idempotent by id)
    assert {k: work.count(k) for k in ("done", "cancelled", "retrying", "interrupted", "pending")} == {
        "done": 1, "cancelled": 0, "retrying": 2, "interrupted": 2, "pending": 1,
    }
    rows = history(tables)
    assert of(rows, "interrupted") == ["claim", "requeue", "claim", "succeed"]
    assert ("interrupted", "requeue", "is_running", "is_retrying") in rows
    # the new process's subscribers heard of everything it did, the set-based requeue included
    assert len(seen) == 7 and seen == rows[-7:]
    interrupted = after.get("interrupted")
    assert (interrupted.attempts, interrupted.worker, interrupted.error) == (2, "node-1", None)
    assert after.recover() == []  # nothing left to resume
    second_engine.dispose()


def test_recover_only_the_operations_of_dead_workers(tables: sa.Engine) -> None:
    work = Work()
    alive = Executor(tables, work.handlers(), worker="alive")
    dead = Executor(tables, work.handlers(), worker="dead")
    alive.submit("mine", "add", add("mine"))
    alive.submit("theirs", "add", add("theirs"))
    assert alive.claim("mine") is not None and dead.claim("theirs") is not None
    assert alive.recover(workers=["dead"]) == ["mine", "theirs"]
    assert states(tables) == {"mine": "is_running", "theirs": "is_succeeded"}
    assert of(history(tables), "mine") == ["claim"]
    assert alive.finish("mine", result=3) is not None


def test_a_conflict_is_retried_and_the_loser_of_a_race_gives_up_cleanly(db_url: sa.URL, tables: sa.Engine) -> None:
    """An operator cancels while a worker claims: the cancel meets a conflict, retries and wins."""
    work = Work()
    operator = Executor(tables, work.handlers(), worker="operator")
    # The worker writes while the operator's transaction is open: bound its lock waits on the servers.
    racer_engine = tables if db_url.get_backend_name() == "sqlite" else guarded(db_url, 1)
    worker = Executor(racer_engine, work.handlers(), worker="worker")
    seen = record(operator.subscribers)
    operator.submit("op", "add", add("op"))
    injected: list[str] = []

    # Just before the operator's compare-and-set reaches the database (after it loaded
    # the operation as pending), the worker claims it in its own transaction and commits.
    @event.listens_for(tables, "before_cursor_execute")
    def race(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not injected and statement.startswith("UPDATE executor_operation"):
            injected.append("claim")
            assert worker.claim("op") is not None

    try:
        assert operator.cancel("op")
    finally:
        event.remove(tables, "before_cursor_execute", race)
    assert injected == ["claim"] and operator.conflicts == 1
    # the worker's outcome arrives too late: refused, discarded, nothing changes
    assert worker.finish("op", result=3) is None
    final = operator.get("op")
    assert (final.state, final.result, final.worker) == (O.is_cancelled, None, "worker")
    assert history(tables) == [
        ("op", "claim", "is_pending", "is_running"),
        ("op", "cancel", "is_running", "is_cancelled"),
    ]
    assert seen == [("op", "cancel", "is_running", "is_cancelled")]  # the operator's own subscribers
    if racer_engine is not tables:
        racer_engine.dispose()


def test_a_stale_object_gets_concurrent_transition_error(tables: sa.Engine) -> None:
    work = Work()
    a = Executor(tables, work.handlers(), worker="a")
    b = Executor(tables, work.handlers(), worker="b")
    a.submit("op", "add", add("op"))
    with Session(tables) as session:
        stale = session.get(Operation, "op")
        assert stale is not None and stale.state.is_pending
        assert b.claim("op") is not None  # another connection, committed
        with pytest.raises(ConcurrentTransitionError):
            a.apply(session, stale, "claim")
        assert stale.state.is_pending and stale.attempts == 0  # the object is put back too
        session.rollback()
    assert of(history(tables), "op") == ["claim"]
    assert a.get("op").worker == "b"


# ------------------------------------------------------------------ racing threads (servers)


def guarded(url: sa.URL, workers: int) -> sa.Engine:
    """Lock waits end in an error, so a deadlock fails the test instead of hanging it."""
    if url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {"options": "-c lock_timeout=10000 -c statement_timeout=20000"}
    else:
        connect_args = {"init_command": "SET SESSION innodb_lock_wait_timeout=10", "read_timeout": 30}
    return sa.create_engine(url, pool_size=workers + 2, connect_args=connect_args)


def threads(count: int, target: Callable[[int], None], timeout: float = 60) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(count, timeout=timeout)

    def body(n: int) -> None:
        try:
            start.wait()
            target(n)
        except BaseException as error:
            errors.append(error)

    running = [threading.Thread(target=body, args=(n,), daemon=True) for n in range(count)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout)
    assert not any(t.is_alive() for t in running), "a worker is still running: deadlock or lost wake-up"
    return errors


@SERVERS
def test_racing_claims_have_one_winner_and_losers_see_a_conflict(db_url: sa.URL, tables: sa.Engine) -> None:
    workers, operations = 4, 5
    engine = guarded(db_url, workers)
    work = Work()
    hub = Subscribers()
    seen = record(hub)
    executors = [Executor(engine, work.handlers(), worker=f"w{n}", subscribers=hub) for n in range(workers)]
    ids = [f"op-{i}" for i in range(operations)]
    for key in ids:
        executors[0].submit(key, "add", add(key))
    loaded = threading.Barrier(workers, timeout=30)
    outcomes: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def worker(n: int) -> None:
        for key in ids:
            with Session(engine) as session:
                operation = session.get(Operation, key)
                assert operation is not None and operation.state.is_pending
                loaded.wait()  # every worker holds the operation as pending
                try:
                    executors[n].apply(session, operation, "claim")
                    session.commit()
                    outcome = "won"
                except ConcurrentTransitionError:
                    session.rollback()
                    outcome = "conflict"
            with lock:
                outcomes[(key, outcome)] += 1
            loaded.wait()  # next operation only once everyone is done with this one

    assert threads(workers, worker) == []
    assert outcomes == Counter({**{(k, "won"): 1 for k in ids}, **{(k, "conflict"): workers - 1 for k in ids}})
    rows = history(engine)
    assert sorted(rows) == sorted((k, "claim", "is_pending", "is_running") for k in ids)
    with Session(engine) as session:
        attempts = session.execute(sa.select(Operation.id, Operation.attempts, Operation.worker)).all()
        assert all(a == 1 and w is not None for _, a, w in attempts)
    assert sorted(seen) == sorted(rows)  # the winners' claims, each notified once; no loser's
    engine.dispose()


@SERVERS
def test_racing_workers_run_every_operation_exactly_once(db_url: sa.URL, tables: sa.Engine) -> None:
    workers, operations = 4, 16
    engine = guarded(db_url, workers)
    work = Work()
    hub = Subscribers()  # one process: every worker reports to the same subscribers
    seen = record(hub)
    executors = [Executor(engine, work.handlers(), worker=f"w{n}", subscribers=hub) for n in range(workers)]
    ids = [f"op-{i:02d}" for i in range(operations)]
    submitted: Counter[bool] = Counter()
    lock = threading.Lock()

    def worker(n: int) -> None:
        # every worker submits every operation (idempotent), then runs what is pending
        for key in ids:
            _, created = executors[n].submit(key, "add", add(key))
            with lock:
                submitted[created] += 1
        executors[n].run_pending()

    assert threads(workers, worker) == []
    assert submitted == Counter({True: operations, False: operations * (workers - 1)})
    assert all(work.count(k) == 1 for k in ids), Counter(k for _, k in work.calls)
    assert states(engine) == {k: "is_succeeded" for k in ids}
    rows = history(engine)
    assert all(of(rows, k) == ["claim", "succeed"] for k in ids)
    assert sorted(seen) == sorted(rows)  # each committed transition notified exactly once
    engine.dispose()
