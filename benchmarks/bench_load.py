"""Loading rows: a StateType column against a plain Integer column (target <= 1.05x)."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from harness import Result, Settings, benchmark, compare
from models import PlainRow, StatedRow, sqlite_engine
from sqlalchemy.orm import Session

LOAD_TARGET = 1.05


@benchmark("load", order=10)
def load(settings: Settings) -> Iterator[Result]:
    engine = sqlite_engine(settings.tmpdir, settings.rows)
    rows = f"{settings.rows // 1000}k" if settings.rows >= 1000 else str(settings.rows)
    try:

        def orm(model: type[PlainRow] | type[StatedRow]) -> None:
            with Session(engine) as session:
                loaded = session.scalars(sa.select(model)).all()
                assert len(loaded) == settings.rows

        def core(table: sa.Table) -> None:
            with engine.connect() as conn:
                loaded = conn.execute(sa.select(table)).all()
                assert len(loaded) == settings.rows

        ours, baseline = compare(lambda: orm(StatedRow), lambda: orm(PlainRow), settings.repeats)
        yield Result(f"ORM load {rows} rows (session.scalars(select(Model)).all())", ours, baseline, LOAD_TARGET)
        stated_table = StatedRow.__table__
        plain_table = PlainRow.__table__
        assert isinstance(stated_table, sa.Table) and isinstance(plain_table, sa.Table)
        ours, baseline = compare(lambda: core(stated_table), lambda: core(plain_table), settings.repeats)
        yield Result(f"Core load {rows} rows (conn.execute(select(table)).all())", ours, baseline, LOAD_TARGET)
    finally:
        engine.dispose()
