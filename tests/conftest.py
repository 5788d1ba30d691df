"""Database fixtures: every test that takes ``engine`` runs on SQLite, PostgreSQL and MariaDB.

Each pytest process (each xdist worker) gets its own database on each server,
named after the process, so parallel runs never collide. With ``CI=true`` an
unreachable server fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SERVERS = {
    "postgresql": os.environ.get("STATETYPE_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("STATETYPE_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
# STATETYPE_BACKENDS=sqlite (comma-separated) narrows the matrix, as `make test-sa20` does in CI.
BACKENDS = [b for b in os.environ.get("STATETYPE_BACKENDS", "sqlite,postgresql,mariadb").split(",") if b]


def _run_name() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"statetype_{worker}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _unreachable(backend: str, error: Exception) -> None:
    message = f"{backend} is not reachable: {error}"
    if CI:
        pytest.fail(message + " (required under CI=true)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def _server_databases() -> Iterator[dict[str, sa.URL | Exception]]:
    """Create one database per server for this process; drop them at the end."""
    created: dict[str, sa.URL | Exception] = {}
    name = _run_name()
    for backend, url in SERVERS.items():
        try:
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
            admin.dispose()
            created[backend] = sa.make_url(url).set(database=name)
        except Exception as error:  # reported per test, as skip or failure
            created[backend] = error
    yield created
    for backend, url in created.items():
        if isinstance(url, Exception):
            continue
        admin = sa.create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            force = " WITH (FORCE)" if backend == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _server_databases: dict[str, sa.URL | Exception]) -> sa.URL:
    backend: str = request.param
    if backend == "sqlite":
        return sa.make_url(f"sqlite:///{tmp_path / 'test.db'}")
    url = _server_databases[backend]
    if isinstance(url, Exception):
        _unreachable(backend, url)
        raise AssertionError("unreachable")
    return url


@pytest.fixture
def engine(db_url: sa.URL) -> Iterator[sa.Engine]:
    eng = sa.create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def create_all(engine: sa.Engine) -> Iterator[Callable[[sa.MetaData], None]]:
    """Create a metadata's tables for one test and drop them afterwards."""
    created: list[sa.MetaData] = []

    def create(metadata: sa.MetaData) -> None:
        metadata.drop_all(engine)
        metadata.create_all(engine)
        created.append(metadata)

    yield create
    for metadata in reversed(created):
        metadata.drop_all(engine)
