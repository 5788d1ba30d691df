"""``make stress``: worker processes race transitions on one table; every figure is checked.

    python benchmarks/stress.py                       # PostgreSQL and MariaDB, 8 workers, 3,000 attempts
    python benchmarks/stress.py --workers 4 --attempts 500 --databases postgresql

Over 100 rows of a model with a ``version_id_col`` and a counter that every
step increments (an execute hook per row, its SQL form set-based), N worker
processes run a random mix of: per-row transitions (30% on objects loaded in
an earlier transaction, so stale), chains (a batch moving its items),
``bulk()`` over random subsets and ``run_due()``. Then, per database:

* attempted, committed steps, history rows, conflicts by exception class,
  refusals, raw driver errors, illegal states, lost increments, steps/s;
* exit status 1 unless raw errors, illegal states, lost increments and
  history mismatches (history rows != committed steps) are all 0.

``tests/test_stress.py`` runs a short variant of the same code in ``make test``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import multiprocessing
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from statetype import (
    ConcurrentTransitionError,
    State,
    StateType,
    Step,
    Transition,
    TransitionLogMixin,
    TransitionNotAllowed,
    Transitions,
)

SERVERS = {
    "postgresql": os.environ.get("STATETYPE_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("STATETYPE_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
EPOCH = dt.datetime(2020, 1, 1)


class Cycle(StateType[int]):
    is_a = State(1, "A")
    is_b = State(2, "B")
    is_c = State(3, "C")


class BatchState(StateType[int]):
    is_open = State(1, "Open")
    is_closed = State(2, "Closed")


class Base(DeclarativeBase):
    pass


class Batch(Base):
    __tablename__ = "stress_batch"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[BatchState] = mapped_column(BatchState(), default=BatchState.is_open)
    items: Mapped[list[Item]] = relationship(order_by="Item.id")


class Item(Base):
    __tablename__ = "stress_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[Cycle] = mapped_column(Cycle(), default=Cycle.is_a)
    counter: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=EPOCH)
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("stress_batch.id"), nullable=True)
    __mapper_args__ = {"version_id_col": version}


class Log(TransitionLogMixin, Base):
    __tablename__ = "stress_log"


class ItemTx(Transitions[Item, str]):
    log = Log
    to_b = Transition(Cycle.is_a, Cycle.is_b)
    to_c = Transition(Cycle.is_b, Cycle.is_c)
    to_a = Transition(Cycle.is_c, Cycle.is_a, after=dt.timedelta(0), since="created_at")  # run_due only
    back_to_a = Transition(Cycle.is_c, Cycle.is_a)

    @to_b.execute
    @to_c.execute
    @back_to_a.execute
    def count(self, item: Item, data: Mapping[str, Any]) -> None:
        item.counter = item.counter + 1

    @count.expression
    def _count_sql(self, model: type[Item], now: dt.datetime) -> Mapping[Any, object]:
        return {"counter": model.counter + 1}

    def next_for(self, item: Item) -> Any:
        return {Cycle.is_a: self.to_b, Cycle.is_b: self.to_c, Cycle.is_c: self.back_to_a}[item.state._member]


ItemTx.to_a.execute(ItemTx.count)  # the timed transition counts too (its SQL form runs set-based)


class BatchTx(Transitions[Batch, str]):
    log = Log
    close = Transition(BatchState.is_open, BatchState.is_closed)
    reopen = Transition(BatchState.is_closed, BatchState.is_open)

    @close.chain
    @reopen.chain
    def move_items(self, batch: Batch) -> Iterable[Step]:
        tx = ItemTx(actor=self.actor)
        return [(tx.next_for(item), item) for item in batch.items]


def _engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, pool_size=2, max_overflow=0)

    @event.listens_for(engine, "connect")
    def bounded_waits(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("SET lock_timeout = '10s'")
        else:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 10")
        cursor.close()
        if engine.dialect.name == "postgresql":
            dbapi_connection.commit()

    return engine


def setup(url: str, rows: int) -> None:
    engine = _engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    batches = max(1, rows // 10)
    with Session(engine) as session:
        session.add_all([Batch(id=b) for b in range(1, batches + 1)])
        session.flush()
        session.add_all([Item(id=i, batch_id=(i - 1) // 10 + 1 if i <= batches * 10 else None) for i in range(1, rows + 1)])
        session.commit()
    engine.dispose()


@dataclasses.dataclass
class Figures:
    attempted: int = 0
    committed_steps: int = 0
    refused: int = 0
    conflicts: Counter[str] = dataclasses.field(default_factory=Counter)
    raw_errors: Counter[str] = dataclasses.field(default_factory=Counter)

    def add(self, other: Figures) -> None:
        self.attempted += other.attempted
        self.committed_steps += other.committed_steps
        self.refused += other.refused
        self.conflicts.update(other.conflicts)
        self.raw_errors.update(other.raw_errors)


def worker(url: str, seed: int, attempts: int, rows: int) -> Figures:
    rng = random.Random(seed)
    engine = _engine(url)
    figures = Figures()
    tx = ItemTx(actor=f"w{seed}")
    btx = BatchTx(actor=f"w{seed}")
    batches = max(1, rows // 10)
    with Session(engine, expire_on_commit=False) as session:
        stale: dict[int, Item] = {}
        for _ in range(attempts):
            figures.attempted += 1
            kind = rng.choices(["row", "chain", "bulk", "due"], weights=[60, 20, 15, 5])[0]
            try:
                if kind == "row":
                    item_id = rng.randint(1, rows)
                    if item_id in stale and rng.random() < 0.3:
                        item = stale[item_id]  # loaded in an earlier transaction: maybe stale
                    else:
                        found = session.get(Item, item_id, populate_existing=True)
                        assert found is not None
                        item = found
                    stale[item_id] = item
                    steps = len(tx.next_for(item)(item).steps)
                elif kind == "chain":
                    batch = session.get(Batch, rng.randint(1, batches), populate_existing=True)
                    assert batch is not None
                    for item in batch.items:
                        session.refresh(item)
                    bound = btx.close if batch.state.is_open else btx.reopen
                    steps = len(bound(batch).steps)
                elif kind == "bulk":
                    chosen = rng.sample(range(1, rows + 1), k=min(rows, 20))
                    bound = rng.choice([tx.to_b, tx.to_c, tx.back_to_a])
                    steps = bound.bulk(session, Item.id.in_(chosen)).count
                else:
                    steps = tx.run_due(session)
                session.commit()
                figures.committed_steps += steps
            except ConcurrentTransitionError:
                session.rollback()
                figures.conflicts[f"ConcurrentTransitionError ({kind})"] += 1
            except TransitionNotAllowed:
                session.rollback()
                figures.refused += 1
            except sa.exc.DBAPIError as error:
                session.rollback()
                figures.raw_errors[f"{type(error.orig).__name__}: {str(error.orig).splitlines()[0][:80]}"] += 1
            except Exception as error:  # counted, never hidden
                session.rollback()
                figures.raw_errors[f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"] += 1
    engine.dispose()
    return figures


def _run_worker(arguments: tuple[str, int, int, int]) -> Figures:
    return worker(*arguments)


@dataclasses.dataclass
class Report:
    database: str
    figures: Figures
    history_rows: int
    illegal_states: int
    lost_increments: int
    seconds: float

    @property
    def ok(self) -> bool:
        return (
            not self.figures.raw_errors
            and self.illegal_states == 0
            and self.lost_increments == 0
            and self.history_rows == self.figures.committed_steps
        )

    def lines(self) -> list[str]:
        f = self.figures
        out = [
            f"{self.database}:",
            f"  attempted            {f.attempted}",
            f"  committed steps      {f.committed_steps}",
            f"  history rows         {self.history_rows}"
            + ("" if self.history_rows == f.committed_steps else "   MISMATCH"),
            f"  refused (not allowed) {f.refused}",
            f"  conflicts            {sum(f.conflicts.values())}",
        ]
        out += [f"    {name}: {count}" for name, count in sorted(f.conflicts.items())]
        out.append(f"  raw driver errors    {sum(f.raw_errors.values())}")
        out += [f"    {name}: {count}" for name, count in sorted(f.raw_errors.items())]
        out += [
            f"  illegal states       {self.illegal_states}",
            f"  lost increments      {self.lost_increments}",
            f"  throughput           {f.committed_steps / self.seconds:.0f} steps/s ({self.seconds:.1f} s)",
            f"  verdict              {'OK' if self.ok else 'FAILED'}",
        ]
        return out


def check(url: str, database: str, figures: Figures, seconds: float) -> Report:
    """Read back what the race left: history, states and counters."""
    engine = _engine(url)
    with Session(engine) as session:
        history = session.execute(
            sa.select(Log.object_id, Log.from_value, Log.to_value)
            .where(Log.table_name == Item.__tablename__)
            .order_by(Log.id)
        ).all()
        batch_history = session.scalar(
            sa.select(sa.func.count()).select_from(Log).where(Log.table_name == Batch.__tablename__)
        )
        rows = {i: (s, c, v) for i, s, c, v in session.execute(sa.select(Item.id, Item.state, Item.counter, Item.version))}
    engine.dispose()
    per_item: dict[int, list[tuple[str | None, str]]] = {}
    for object_id, from_value, to_value in history:
        per_item.setdefault(int(object_id), []).append((from_value, to_value))
    illegal = 0
    lost = 0
    for item_id, (state, counter, version) in rows.items():
        if not isinstance(state, Cycle) or not state.known:
            illegal += 1
            continue
        chain = per_item.get(item_id, [])
        current = "1"
        for from_value, to_value in chain:
            if from_value != current:
                illegal += 1
                break
            current = to_value
        if current != str(state.value):
            illegal += 1
        lost += abs(len(chain) - counter) + abs(1 + len(chain) - version)
    return Report(database, figures, len(history) + int(batch_history or 0), illegal, lost, seconds)


def run(url: str, database: str, workers: int, attempts: int, rows: int) -> Report:
    setup(url, rows)
    per_worker = max(1, attempts // workers)
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        results = pool.map(_run_worker, [(url, seed, per_worker, rows) for seed in range(workers)])
    seconds = time.perf_counter() - started
    total = Figures()
    for figures in results:
        total.add(figures)
    return check(url, database, total, seconds)


def _database_url(base: str) -> tuple[str, str]:
    """A database of this run's own on the server: parallel runs never collide."""
    name = f"statetype_stress_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return str(sa.make_url(base).set(database=name).render_as_string(hide_password=False)), name


def _drop(base: str, name: str) -> None:
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        force = " WITH (FORCE)" if admin.dialect.name == "postgresql" else ""
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
    admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--attempts", type=int, default=3000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--databases", default="postgresql,mariadb")
    args = parser.parse_args(argv)
    ok = True
    for database in args.databases.split(","):
        base = SERVERS[database]
        url, name = _database_url(base)
        try:
            report = run(url, database, args.workers, args.attempts, args.rows)
        finally:
            _drop(base, name)
        print("\n".join(report.lines()), flush=True)
        ok = ok and report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
