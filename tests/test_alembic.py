"""statetype.alembic with real alembic runs: autogenerate, upgrade and downgrade in a
temporary alembic project, on SQLite, PostgreSQL and MariaDB.

Each test writes an env.py and a models module into its own directory and runs
the ``alembic`` command in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.slow

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/migrations
path_separator = os

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)s %(name)s %(message)s
"""

ENV_PY = """\
import os

import sqlalchemy as sa
from alembic import context

import models
import statetype.alembic

engine = sa.create_engine(os.environ["STATETYPE_TEST_DB_URL"], poolclass=sa.pool.NullPool)
if engine.dialect.name == "sqlite":
    # pysqlite runs DDL outside transactions; make the whole migration one transaction.
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=models.Base.metadata,
        render_item=statetype.alembic.render_item,
        render_as_batch=True,
        version_table=os.environ["STATETYPE_TEST_VERSION_TABLE"],
    )
    with context.begin_transaction():
        context.run_migrations()
"""

SCRIPT_MAKO = '''\
"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''


class AlembicProject:
    """A throwaway alembic project: models module, env.py, versions; runs the real CLI."""

    def __init__(self, root: Path, url: sa.URL) -> None:
        self.root = root
        self.url = url
        self.token = uuid.uuid4().hex[:6]
        self.version_table = f"alembic_version_{self.token}"
        self.engine = sa.create_engine(url)
        (root / "migrations" / "versions").mkdir(parents=True)
        (root / "alembic.ini").write_text(ALEMBIC_INI)
        (root / "migrations" / "env.py").write_text(ENV_PY)
        (root / "migrations" / "script.py.mako").write_text(SCRIPT_MAKO)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def table(self, name: str) -> str:
        return f"{name}_{self.token}"

    def write_models(self, source: str) -> None:
        (self.root / "models.py").write_text(textwrap.dedent(source))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(self.root), os.environ.get("PYTHONPATH", "")]),
            PYTHONDONTWRITEBYTECODE="1",
            STATETYPE_TEST_DB_URL=self.url.render_as_string(hide_password=False),
            STATETYPE_TEST_VERSION_TABLE=self.version_table,
        )
        return subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(self.root / "alembic.ini"), *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    def revision(self, message: str) -> tuple[Path, str]:
        """Autogenerate a revision; the file and the text of its upgrade() and downgrade()."""
        before = set((self.root / "migrations" / "versions").glob("*.py"))
        self.ok("revision", "--autogenerate", "-m", message)
        (path,) = set((self.root / "migrations" / "versions").glob("*.py")) - before
        return path, path.read_text()

    def head(self) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT version_num FROM {self.version_table}")).scalar()

    def checks(self, table: str) -> dict[str, set[str]]:
        """Reflected CHECK constraints of ``table``: name -> the literals in its SQL."""
        with self.engine.connect() as conn:
            reflected = sa.inspect(conn).get_check_constraints(table)
        literal = r"'((?:[^'\\]|''|\\.)*)'|\b(\d+)\b"  # 'it''s' (SQLite, PostgreSQL), 'it\'s' (MariaDB), 1
        return {
            ck["name"]: {
                (text.replace("''", "'").replace("\\'", "'") if text else number)
                for text, number in re.findall(literal, ck["sqltext"])
            }
            for ck in reflected
        }

    def values(self, table: str, column: str) -> set[str]:
        found = self.checks(table).get(f"ck_{table}_{column}")
        assert found is not None, f"no CHECK constraint ck_{table}_{column} on {table}: {self.checks(table)}"
        return found

    def tables(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())

    def rows(self, table: str) -> list[tuple[object, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]

    def execute(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql))

    def rejects(self, sql: str) -> bool:
        """True when the database refuses ``sql`` (a CHECK violation)."""
        try:
            self.execute(sql)
        except sa.exc.DBAPIError:
            return True
        return False

    def cleanup(self) -> None:
        with self.engine.begin() as conn:
            names = sa.inspect(conn).get_table_names()
            for name in names:
                if self.token in name:
                    conn.execute(sa.text(f"DROP TABLE {name}"))
        self.engine.dispose()


@pytest.fixture
def project(db_url: sa.URL, tmp_path: Path) -> Iterator[AlembicProject]:
    proj = AlembicProject(tmp_path / "proj", db_url)
    yield proj
    proj.cleanup()


def project_models(table: str, states: dict[str, int], kinds: tuple[str, ...] = ("alpha", "it's")) -> str:
    state_lines = "\n".join(f"    {name} = State({value})" for name, value in states.items())
    kind_lines = "\n".join(f"    kind_{i} = State({kind!r})" for i, kind in enumerate(kinds))
    return f"""\
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from statetype import State, StateType


class Base(DeclarativeBase):
    pass


class ProjectState(StateType[int]):
{state_lines}


class Kind(StateType[str]):
{kind_lines}


class Project(Base):
    __tablename__ = "{table}"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    state: Mapped[ProjectState] = mapped_column(ProjectState())
    kind: Mapped[Kind] = mapped_column(Kind())
"""


def assert_plain_migration(text: str) -> None:
    """A migration that neither imports the application nor statetype."""
    assert "models" not in text
    assert "statetype" not in text
    assert "ProjectState" not in text and "Kind(" not in text
    imports = {line.strip() for line in text.splitlines() if re.match(r"\s*(import|from)\s", line)}
    allowed = {"from alembic import op", "import sqlalchemy as sa"}
    # reflected types in the downgrade of a dropped table may be dialect types
    assert all(i in allowed or i.startswith("from sqlalchemy.dialects import ") for i in imports), imports


def upgrade_body(text: str) -> str:
    """The code of upgrade(), without alembic's comment lines."""
    body = text.split("def upgrade():", 1)[1].split("def downgrade():", 1)[0]
    return "\n".join(line for line in body.splitlines() if not line.strip().startswith("#"))


def test_states_added_and_removed(project: AlembicProject) -> None:
    t = project.table("project")
    v1 = {"is_draft": 1, "is_published": 2, "is_withdrawn": 3}

    # Initial migration: storage types and explicit CHECK constraints as SQL text.
    project.write_models(project_models(t, v1))
    path, text = project.revision("initial")
    assert_plain_migration(text)
    assert f"op.create_table('{t}'" in text
    assert "sa.Column('state', sa.Integer(), nullable=False)" in text
    assert "sa.Column('kind', sa.String(length=5), nullable=False)" in text
    assert f"sa.CheckConstraint('state IN (1, 2, 3)', name=op.f('ck_{t}_state'))" in text
    assert f"""sa.CheckConstraint("kind IN ('alpha', 'it''s')", name=op.f('ck_{t}_kind'))""" in text
    project.ok("upgrade", "head")
    assert project.values(t, "state") == {"1", "2", "3"}
    assert project.values(t, "kind") == {"alpha", "it's"}
    project.execute(f"INSERT INTO {t} (id, state, kind) VALUES (1, 1, 'alpha'), (2, 2, 'it''s')")
    assert project.rejects(f"INSERT INTO {t} (id, state, kind) VALUES (3, 9, 'alpha')")
    assert project.rejects(f"INSERT INTO {t} (id, state, kind) VALUES (3, 1, 'its')")

    # Nothing changed: autogenerate finds nothing (reflected CHECK text parsed per database).
    path, text = project.revision("nothing")
    assert upgrade_body(text).split() == ["pass"], text
    path.unlink()

    # Adding a state: the constraint is replaced, no guard needed.
    project.write_models(project_models(t, {**v1, "is_archived": 4}))
    _, text = project.revision("add archived")
    assert_plain_migration(text)
    body = upgrade_body(text)
    assert f"with op.batch_alter_table('{t}', schema=None) as batch_op:" in body
    assert f"batch_op.drop_constraint(batch_op.f('ck_{t}_state'), type_='check')" in body
    assert f"batch_op.create_check_constraint(batch_op.f('ck_{t}_state'), 'state IN (1, 2, 3, 4)')" in body
    assert "_new" not in body and "kind" not in body
    project.ok("upgrade", "head")
    assert project.values(t, "state") == {"1", "2", "3", "4"}
    assert not project.rejects(f"INSERT INTO {t} (id, state, kind) VALUES (4, 4, 'alpha')")
    project.execute(f"DELETE FROM {t} WHERE id = 4")
    # ... and back: the downgrade removes 4 again.
    project.ok("downgrade", "-1")
    assert project.values(t, "state") == {"1", "2", "3"}
    assert project.rejects(f"INSERT INTO {t} (id, state, kind) VALUES (4, 4, 'alpha')")
    project.ok("upgrade", "head")

    # Removing a state no row uses: guarded by the new constraint under a temporary name.
    v3 = {"is_draft": 1, "is_published": 2, "is_archived": 4}
    project.write_models(project_models(t, v3))
    check = project.run("check")  # `alembic check` sees the pending change too
    output = check.stdout + check.stderr
    assert check.returncode != 0 and "New upgrade operations detected" in output, output
    assert "remove_constraint" in output and "add_constraint" in output
    _, text = project.revision("remove withdrawn")
    assert_plain_migration(text)
    body = upgrade_body(text)
    steps = [line.strip() for line in body.splitlines() if line.strip().startswith("batch_op.")]
    assert steps == [
        f"batch_op.create_check_constraint(batch_op.f('ck_{t}_state_new'), 'state IN (1, 2, 4)')",
        f"batch_op.drop_constraint(batch_op.f('ck_{t}_state'), type_='check')",
        f"batch_op.create_check_constraint(batch_op.f('ck_{t}_state'), 'state IN (1, 2, 4)')",
        f"batch_op.drop_constraint(batch_op.f('ck_{t}_state_new'), type_='check')",
    ]
    project.ok("upgrade", "head")
    v3_revision = project.head()
    assert project.checks(t).keys() == {f"ck_{t}_state", f"ck_{t}_kind"}
    assert project.values(t, "state") == {"1", "2", "4"}
    assert project.rejects(f"INSERT INTO {t} (id, state, kind) VALUES (3, 3, 'alpha')")
    rows = project.rows(t)
    assert rows == [(1, 1, "alpha"), (2, 2, "it's")]

    # Removing a state rows still use: the upgrade fails and nothing changes.
    project.write_models(project_models(t, {"is_draft": 1, "is_archived": 4}))
    _, text = project.revision("remove published")
    result = project.run("upgrade", "head")
    assert result.returncode != 0
    assert f"ck_{t}_state" in result.stderr, result.stderr  # SQLite: the copy; else the _new guard
    if project.backend != "sqlite":  # the guard failed, before the old constraint was dropped
        assert f"ck_{t}_state_new" in result.stderr, result.stderr
    assert project.head() == v3_revision
    assert project.checks(t).keys() == {f"ck_{t}_state", f"ck_{t}_kind"}
    assert project.values(t, "state") == {"1", "2", "4"}
    assert project.rows(t) == rows
    assert project.tables() == {t, project.version_table}
    assert project.rejects(f"INSERT INTO {t} (id, state, kind) VALUES (3, 3, 'alpha')")

    # Downgrade from v3 brings the removed state back.
    project.ok("downgrade", "-1")
    assert project.values(t, "state") == {"1", "2", "3", "4"}
    assert not project.rejects(f"INSERT INTO {t} (id, state, kind) VALUES (3, 3, 'alpha')")
    assert project.rows(t) == [*rows, (3, 3, "alpha")]


CONVENTION_MODELS = """\
import enum

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from statetype import State, StateType


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention={{"ck": "ck_%(table_name)s_%(constraint_name)s"}})


class ProjectState(StateType[int]):
    is_draft = State(1)
    is_published = State(2)


class Review(enum.Enum):
    PENDING = "pending"
    DONE = "done"


class ReviewState(StateType[Review]):
    is_pending = State(Review.PENDING)
    is_done = State(Review.DONE)


class Project(Base):
    __tablename__ = "{project}"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    state: Mapped[ProjectState] = mapped_column(ProjectState(impl=sa.SmallInteger))
{extra}
"""

CONVENTION_EXTRA = """\
    review: Mapped[ReviewState | None] = mapped_column(ReviewState())


class Account(Base):
    __tablename__ = "{account}"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    review: Mapped[ReviewState] = mapped_column(ReviewState())
"""


def test_new_column_and_table(project: AlembicProject) -> None:
    p, a = project.table("project"), project.table("account")
    project.write_models(CONVENTION_MODELS.format(project=p, extra=""))
    _, text = project.revision("initial")
    assert "sa.Column('state', sa.SmallInteger(), nullable=False)" in text
    assert f"sa.CheckConstraint('state IN (1, 2)', name=op.f('ck_{p}_state'))" in text
    project.ok("upgrade", "head")
    project.execute(f"INSERT INTO {p} (id, state) VALUES (1, 2)")

    # A StateType column added to a table, and a new table: both get their CHECK constraint.
    project.write_models(CONVENTION_MODELS.format(project=p, extra=CONVENTION_EXTRA.format(account=a)))
    _, text = project.revision("review")
    assert_plain_migration(text)
    body = upgrade_body(text)
    assert "batch_op.add_column(sa.Column('review', sa.String(length=7), nullable=True))" in body
    assert f"""batch_op.create_check_constraint(batch_op.f('ck_{p}_review'), "review IN ('pending', 'done')")""" in body
    assert body.index("add_column") < body.index("create_check_constraint")
    assert f"""sa.CheckConstraint("review IN ('pending', 'done')", name=op.f('ck_{a}_review'))""" in body
    project.ok("upgrade", "head")
    assert project.values(p, "review") == {"pending", "done"}
    assert project.values(a, "review") == {"pending", "done"}
    assert project.rows(p) == [(1, 2, None)]
    assert project.rejects(f"UPDATE {p} SET review = 'later' WHERE id = 1")
    assert project.rejects(f"INSERT INTO {a} (id, review) VALUES (1, 'later')")
    project.execute(f"UPDATE {p} SET review = 'done' WHERE id = 1")

    assert "No new upgrade operations detected" in project.ok("check")

    # The column and the table removed from the models: the constraint is dropped before its column.
    project.write_models(CONVENTION_MODELS.format(project=p, extra=""))
    _, text = project.revision("no review")
    assert_plain_migration(text)
    body = upgrade_body(text)
    steps = [line.strip() for line in body.splitlines() if line.strip().startswith("batch_op.")]
    assert steps == [
        f"batch_op.drop_constraint(batch_op.f('ck_{p}_review'), type_='check')",
        "batch_op.drop_column('review')",
    ]
    assert f"op.drop_table('{a}')" in body
    project.ok("upgrade", "head")
    assert project.tables() == {p, project.version_table}
    assert project.rows(p) == [(1, 2)]
    assert project.checks(p).keys() == {f"ck_{p}_state"}
    # Its downgrade restores the column with its constraint (rendered from the reflected one).
    project.ok("downgrade", "-1")
    assert project.values(p, "review") == {"pending", "done"}
    assert project.rejects(f"UPDATE {p} SET review = 'later' WHERE id = 1")
    assert project.rows(p) == [(1, 2, None)]

    # And down to the first revision.
    project.ok("downgrade", "-1")
    assert project.tables() == {p, project.version_table}
    assert project.rows(p) == [(1, 2)]
    assert project.checks(p).keys() == {f"ck_{p}_state"}


LOG_MODELS = """\
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from statetype import State, StateType, TransitionLogMixin


class Base(DeclarativeBase):
    pass


class ProjectState(StateType[int]):
    is_draft = State(1)
    is_published = State(2)


class Project(Base):
    __tablename__ = "{project}"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    state: Mapped[ProjectState] = mapped_column(ProjectState())


class ProjectLog(TransitionLogMixin, Base):
    __tablename__ = "{log}"
"""


def test_history_table_migration_runs_as_generated(project: AlembicProject) -> None:
    p, log = project.table("project"), project.table("log")
    project.write_models(LOG_MODELS.format(project=p, log=log))
    _, text = project.revision("history")
    assert_plain_migration(text)
    assert "UTCDateTime" not in text
    assert "sa.Column('created_at', sa.DateTime(), nullable=False)" in text
    project.ok("upgrade", "head")
    assert project.tables() == {p, log, project.version_table}
    project.execute(
        f"INSERT INTO {log} (table_name, object_id, column_name, transition, to_value, created_at) "
        "VALUES ('project', '1', 'state', 'publish', '2', '2026-01-02 03:04:05')"
    )
    assert len(project.rows(log)) == 1
    # the database now matches the models: nothing left to generate
    assert "No new upgrade operations detected" in project.ok("check")
    project.ok("downgrade", "base")
    assert project.tables() == {project.version_table}


def test_core_does_not_import_alembic() -> None:
    code = "import sys, statetype; assert 'alembic' not in sys.modules; import statetype.alembic; assert 'alembic' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
