"""Per-row persisted transitions on PostgreSQL and MariaDB (informational; the targets are measured on SQLite).

The same 10k-row loops as the ``persisted`` group, at 2,000 rows, against a
server over loopback, in a database of the run's own (dropped afterwards).
Round trips dominate there; on PostgreSQL every step runs inside a savepoint
(two more round trips), since any failed statement would abort the caller's
transaction. A server that cannot be reached is skipped with a note.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from bench_transitions import BenchLog, Hooked, Plain, by_hand, by_hand_hooked, loop
from harness import Result, Settings, benchmark, compare_with_setup
from models import Base, PlainRow, StatedRow
from sqlalchemy.orm import Session

SERVERS = {
    "postgresql": os.environ.get("STATETYPE_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("STATETYPE_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
INFORMATIONAL = float("inf")


def _database(base: str) -> tuple[sa.Engine, Callable[[], None]]:
    name = f"statetype_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine = sa.create_engine(sa.make_url(base).set(database=name))

    def drop() -> None:
        engine.dispose()
        with admin.connect() as conn:
            force = " WITH (FORCE)" if admin.dialect.name == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()

    return engine, drop


@benchmark("servers", order=48)
def servers(settings: Settings) -> Iterator[Result]:
    rows = 200 if settings.quick else 2_000
    for backend, base in SERVERS.items():
        try:
            engine, drop = _database(base)
        except sa.exc.OperationalError as error:
            print(f"servers: {backend} skipped ({type(error.orig).__name__})")
            continue
        try:
            Base.metadata.create_all(engine)
            data = [{"id": i, "title": f"row {i}", "state": 1, "start_at": None} for i in range(1, rows + 1)]
            with engine.begin() as conn:
                conn.execute(sa.insert(PlainRow), data)
                conn.execute(sa.insert(StatedRow), data)

            def load(model: type[Any]) -> Callable[[], tuple[Session, list[Any]]]:
                def setup() -> tuple[Session, list[Any]]:
                    with engine.begin() as conn:
                        conn.execute(sa.update(PlainRow).values(state=1, start_at=None))
                        conn.execute(sa.update(StatedRow).values(state=1, start_at=None))
                        conn.execute(sa.delete(BenchLog))
                    session = Session(engine)
                    return session, list(session.scalars(sa.select(model).order_by(model.id)))

                return setup

            repeats = min(settings.repeats, 5)
            for label, ours_step, base_step in [
                ("per-row", Plain().publish, by_hand),
                ("per-row, guard + stamping hook", Hooked().publish, by_hand_hooked),
            ]:
                ours, baseline = compare_with_setup(
                    (load(StatedRow), loop(ours_step)), (load(PlainRow), loop(base_step)), repeats
                )
                per_step = (ours - baseline) / rows * 1e6
                yield Result(
                    f"{backend}: {rows:,} {label}, one commit, vs ORM loop ({per_step:+.0f} us per step)",
                    ours, baseline, INFORMATIONAL,
                )
        finally:
            drop()
