"""The command line as real subprocesses: graph, check, audit (on every database) and demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
STATETYPE = ROOT / ".venv" / "bin" / "statetype"

MODELS = '''
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from statetype import State, StateType, Transition, Transitions


class Base(DeclarativeBase):
    pass


class DocState(StateType[int]):
    is_draft = State(1, "Draft")
    is_review = State(2, "In review")
    is_done = State(3, "Done", final=True)
    is_open = is_draft | is_review


class Kind(StateType[str]):
    is_memo = State("memo")
    is_letter = State("letter")


class Doc(Base):
    __tablename__ = "cli_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[DocState] = mapped_column(DocState(check=False), default=DocState.is_draft)
    kind: Mapped[Kind | None] = mapped_column(Kind(check=False), nullable=True)
    created_at: Mapped[dt.datetime | None]


class DocTransitions(Transitions[Doc]):
    submit = Transition(DocState.is_draft, DocState.is_review, title="Submit")
    finish = Transition(DocState.is_review, DocState.is_done)
    expire = Transition(DocState.is_open, DocState.is_done, after=dt.timedelta(days=7), since="created_at")
'''

LINTED = '''
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import State, StateType, Transition, Transitions


class Base(DeclarativeBase):
    pass


class FlowState(StateType[int]):
    is_new = State(1)
    is_active = State(2)
    is_paused = State(3)
    is_orphan = State(4)
    is_archived = State(5)
    is_gone = State(6, final=True)

    @is_active.conditional
    def is_hot(self, item: "Item") -> bool:
        return True

    @is_paused.conditional
    def is_never(self, item: "Item") -> bool:
        return False

    @is_never.expression
    def _is_never_sql(self, item: type["Item"]) -> ColumnElement[bool]:
        return sa.false()


class Item(Base):
    __tablename__ = "lint_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FlowState] = mapped_column(FlowState(), default=FlowState.is_new)
    seen_at: Mapped[dt.datetime | None]


class ItemTransitions(Transitions[Item]):
    start = Transition(FlowState.is_new, FlowState.is_active)
    pause = Transition(FlowState.is_active, FlowState.is_paused)
    never = Transition(FlowState.is_paused, FlowState.is_archived)
    revive = Transition(FlowState.is_orphan, FlowState.is_active)
    bury = Transition(FlowState.is_active, FlowState.is_gone)
    forget = Transition(FlowState.is_active, FlowState.is_gone, after=dt.timedelta(hours=1), since="seen_at")
    unpause = Transition(FlowState.is_never, FlowState.is_active)

    @never.guard
    def impossible(self, item: Item) -> bool:
        """Never."""
        return False

    @bury.guard
    def sql_false(self, item: Item) -> bool:
        return item.id > 0

    @sql_false.expression
    def _sql_false_sql(self, item: type[Item]) -> ColumnElement[bool]:
        return sa.false()

    @forget.guard
    def python_only(self, item: Item) -> bool:
        return True
'''

CLEAN = '''
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from statetype import State, StateType, Transition, Transitions


class Base(DeclarativeBase):
    pass


class LampState(StateType[int]):
    is_off = State(0)
    is_on = State(1)


class Lamp(Base):
    __tablename__ = "lamp"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[LampState] = mapped_column(LampState(), default=LampState.is_off)


class LampTransitions(Transitions[Lamp]):
    switch_on = Transition(LampState.is_off, LampState.is_on)
    switch_off = Transition(LampState.is_on, LampState.is_off)
'''


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    for name, source in (("cli_models", MODELS), ("linted", LINTED), ("clean", CLEAN)):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path


def run(*args: str, cwd: Path, use_script: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(cwd), str(ROOT / "src")]), PYTHONDONTWRITEBYTECODE="1")
    command = [str(STATETYPE)] if use_script and STATETYPE.exists() else [sys.executable, "-m", "statetype"]
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------ graph


def test_graph_prints_mermaid_by_default(modules: Path) -> None:
    done = run("graph", "cli_models:DocTransitions", cwd=modules)
    assert done.returncode == 0, done.stderr
    assert done.stdout == textwrap.dedent("""\
        stateDiagram-v2
            direction LR
            state "Draft" as is_draft
            state "In review" as is_review
            state "Done" as is_done
            [*] --> is_draft
            is_draft --> is_review: Submit
            is_review --> is_done: Finish
            is_draft --> is_done: Expire [after 7 days since created_at]
            is_review --> is_done: Expire [after 7 days since created_at]
            is_done --> [*]
            note left of is_draft
                Groups
                Open (is_open) = Draft or In review
            end note
        """)


def test_graph_dot_and_statetype_and_python_m(modules: Path) -> None:
    done = run("graph", "cli_models:DocTransitions", "--format", "dot", cwd=modules, use_script=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('digraph "DocTransitions" {\n')
    assert '    "is_draft" -> "is_review" [label="Submit"];\n' in done.stdout
    done = run("graph", "cli_models:Kind", cwd=modules)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        'stateDiagram-v2\n    direction LR\n    state "Memo" as is_memo\n    state "Letter" as is_letter\n'
        "    [*] --> is_memo\n"
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("cli_models:Doc", "neither a Transitions subclass nor a StateType class"),
        ("cli_models:Nope", "has no attribute 'Nope'"),
        ("no_such_module:X", "cannot import no_such_module"),
        ("cli_models", "expected MODULE:NAME"),
    ],
)
def test_graph_errors_exit_2_without_traceback(modules: Path, target: str, message: str) -> None:
    done = run("graph", target, cwd=modules)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_graph_rejects_an_unknown_format(modules: Path) -> None:
    done = run("graph", "cli_models:DocTransitions", "--format", "png", cwd=modules)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


# ------------------------------------------------------------------ check


def test_check_reports_one_line_per_finding(modules: Path) -> None:
    done = run("check", "linted", cwd=modules)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "FlowState.is_hot: conditional state has no SQL expression; declare one with @is_hot.expression",
        "FlowState.is_never: conditional state can never hold: its predicate always returns False",
        "ItemTransitions.never: can never apply: guard impossible always returns False",
        "ItemTransitions.bury: where() and bulk() never match: the SQL form of guard sql_false is always false",
        "ItemTransitions.forget: can never apply: it is timed, but run_due() refuses it "
        "(ItemTransitions.forget: guard python_only has no SQL form (@python_only.expression))",
        "ItemTransitions.unpause: can never apply: its source is_never can never hold",
        "FlowState.is_orphan: unreachable from is_new in ItemTransitions (Item.state)",
        "FlowState.is_archived: unreachable from is_new in ItemTransitions (Item.state)",
        "FlowState.is_paused: not final, but no transition leaves it in ItemTransitions (Item.state)",
        "FlowState.is_archived: not final, but no transition leaves it in ItemTransitions (Item.state)",
        "ItemTransitions.revive: can never apply: its source states (is_orphan) are unreachable",
    ]
    assert "1 registry, 1 state type, 11 findings" in done.stderr


def test_check_clean_modules_exit_0(modules: Path) -> None:
    done = run("check", "clean", str(modules / "clean.py"), cwd=modules)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert "0 findings" in done.stderr


def test_check_several_modules_and_a_file_path(modules: Path) -> None:
    done = run("check", "cli_models", str(modules / "linted.py"), cwd=modules)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "FlowState.is_orphan: unreachable from is_new in ItemTransitions (Item.state)" in lines
    # cli_models is clean except for its final state reached by every path: nothing to report there.
    assert not any(line.startswith(("DocState", "DocTransitions", "Kind")) for line in lines)


def test_check_import_error_exits_2(modules: Path) -> None:
    (modules / "broken.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    done = run("check", "broken", cwd=modules)
    assert done.returncode == 2
    assert "cannot import broken: RuntimeError: boom" in done.stderr


# ------------------------------------------------------------------ audit


def _url(db_url: sa.URL) -> str:
    return db_url.render_as_string(hide_password=False)


def _setup_docs(db_url: sa.URL, modules: Path, rows: list[tuple[int, str | None]]) -> None:
    sys.path.insert(0, str(modules))
    try:
        import cli_models
    finally:
        sys.path.remove(str(modules))
    engine = sa.create_engine(db_url)
    try:
        cli_models.Base.metadata.drop_all(engine)
        cli_models.Base.metadata.create_all(engine)
        with engine.begin() as connection:
            if rows:
                raw = sa.table("cli_doc", sa.column("state", sa.Integer), sa.column("kind", sa.String))
                connection.execute(sa.insert(raw), [{"state": s, "kind": k} for s, k in rows])
    finally:
        engine.dispose()
    sys.modules.pop("cli_models", None)


def _teardown_docs(db_url: sa.URL) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS cli_doc"))
    engine.dispose()


def test_audit_counts_rows_per_state(db_url: sa.URL, modules: Path) -> None:
    _setup_docs(db_url, modules, [(1, "memo"), (1, None), (2, "letter"), (1, "memo")])
    try:
        done = run("audit", _url(db_url), "cli_models:Doc", cwd=modules)
    finally:
        _teardown_docs(db_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "Doc.state (DocState)",
        "  name       title      value  count",
        "  is_draft   Draft      1      3",
        "  is_review  In review  2      1",
        "  is_done    Done       3      0",
        "",
        "Doc.kind (Kind)",
        "  name       title   value   count",
        "  is_memo    Memo    memo    2",
        "  is_letter  Letter  letter  1",
        "  (null)             NULL    1",
    ]


def test_audit_lists_undeclared_values_and_exits_1(db_url: sa.URL, modules: Path) -> None:
    _setup_docs(db_url, modules, [(1, "memo"), (9, "memo"), (9, "fax"), (7, None)])
    try:
        done = run("audit", _url(db_url), "cli_models:Doc", cwd=modules, use_script=False)
    finally:
        _teardown_docs(db_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "Doc.state (DocState)",
        "  name       title      value  count",
        "  is_draft   Draft      1      1",
        "  is_review  In review  2      0",
        "  is_done    Done       3      0",
        "  undeclared values:",
        "    value  count",
        "    7      1",
        "    9      2",
        "",
        "Doc.kind (Kind)",
        "  name       title   value   count",
        "  is_memo    Memo    memo    2",
        "  is_letter  Letter  letter  0",
        "  (null)             NULL    1",
        "  undeclared values:",
        "    value  count",
        "    'fax'  1",
    ]
    assert "4 stored value(s) are not declared states" in done.stderr


def test_audit_of_an_empty_table(db_url: sa.URL, modules: Path) -> None:
    _setup_docs(db_url, modules, [])
    try:
        done = run("audit", _url(db_url), "cli_models:Doc", cwd=modules)
    finally:
        _teardown_docs(db_url)
    assert done.returncode == 0, done.stderr
    assert "  is_draft   Draft      1      0" in done.stdout.splitlines()


def test_audit_of_a_class_without_state_columns(modules: Path, tmp_path: Path) -> None:
    done = run("audit", f"sqlite:///{tmp_path / 'x.db'}", "cli_models:Base", cwd=modules)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ errors: exit 2, one line, nothing created


def _one_line_error(done: subprocess.CompletedProcess[str], command: str, message: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"statetype {command}: "), done.stderr
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_audit_missing_table(db_url: sa.URL, modules: Path) -> None:
    # the database exists (SQLite: an empty file), the cli_doc table does not
    engine = sa.create_engine(db_url)
    try:
        with engine.connect():
            pass
        done = run("audit", _url(db_url), "cli_models:Doc", cwd=modules)
        _one_line_error(done, "audit", "table cli_doc of Doc does not exist in ")
        assert not sa.inspect(engine).has_table("cli_doc")
    finally:
        engine.dispose()


def test_audit_unreachable_server(db_url: sa.URL, modules: Path, tmp_path: Path) -> None:
    if db_url.get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path / 'no_such_dir' / 'x.db'}"
        message = "no such SQLite database file: "
    else:
        url = db_url.set(port=1).render_as_string(hide_password=False)
        message = "cannot connect to "
    done = run("audit", url, "cli_models:Doc", cwd=modules)
    _one_line_error(done, "audit", message)
    assert not (tmp_path / "no_such_dir").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("::not a url", "cannot parse the database URL '::not a url'"),
        ("nosuchdialect://host/db", "cannot use the database URL nosuchdialect://host/db"),
        ("sqlite:///missing.db", "no such SQLite database file: missing.db"),
    ],
)
def test_audit_bad_urls_create_nothing(modules: Path, url: str, message: str) -> None:
    before = sorted(p.name for p in modules.iterdir())
    done = run("audit", url, "cli_models:Doc", cwd=modules)
    _one_line_error(done, "audit", message)
    assert sorted(p.name for p in modules.iterdir()) == before  # no SQLite file created


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("audit", "sqlite:///x.db", "no_such_module:Doc"), "cannot import no_such_module"),
        (("audit", "sqlite:///x.db", "cli_models:Nope"), "cli_models has no attribute 'Nope'"),
        (("audit", "sqlite:///x.db", "./no_such_file.py:Doc"), "no such file: ./no_such_file.py"),
        (("graph", "cli_models:Nope", "--format", "svg"), "cli_models has no attribute 'Nope'"),
        (("graph", "no_such_module:X", "--format", "dot"), "cannot import no_such_module"),
        (("check", "no_such_module"), "cannot import no_such_module"),
        (("check", "cli_models", "./no_such_file.py"), "no such file: ./no_such_file.py"),
    ],
)
def test_every_command_reports_bad_modules_in_one_line(modules: Path, args: tuple[str, ...], message: str) -> None:
    before = sorted(p.name for p in modules.iterdir())
    done = run(*args, cwd=modules)
    _one_line_error(done, args[0], message)
    assert sorted(p.name for p in modules.iterdir()) == before


def test_debug_shows_the_traceback(modules: Path) -> None:
    done = run("audit", "--debug", "sqlite:///missing.db", "cli_models:Doc", cwd=modules)
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "no such SQLite database file" in done.stderr
    assert not (modules / "missing.db").exists()
    done = run("--debug", "check", "no_such_module", cwd=modules)
    assert "Traceback" in done.stderr


# ------------------------------------------------------------------ graph --format svg

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot program is not installed (apt-get install graphviz)"
)


@needs_dot
def test_graph_svg_through_graphviz(modules: Path) -> None:
    done = run("graph", "cli_models:DocTransitions", "--format", "svg", cwd=modules)
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().startswith("<?xml")
    assert "<svg" in done.stdout and "</svg>" in done.stdout
    for text in ("Draft", "In review", "Submit"):
        assert text in done.stdout


def test_graph_svg_without_graphviz(modules: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty_path"
    empty.mkdir()
    env = dict(
        os.environ,
        PATH=str(empty),
        PYTHONPATH=os.pathsep.join([str(modules), str(ROOT / "src")]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "statetype", "graph", "cli_models:DocTransitions", "--format", "svg"],
        cwd=modules,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _one_line_error(done, "graph", "--format svg needs Graphviz's dot program, which is not installed")


# ------------------------------------------------------------------ demo


def _demo(*prefix: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([*prefix, "demo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_demo_runs_every_feature(tmp_path: Path) -> None:
    command = [str(STATETYPE)] if STATETYPE.exists() else [sys.executable, "-m", "statetype"]
    done = _demo(*command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    for expected in [
        "ProjectState: is_draft=1 (Draft), is_published=2 (Published), is_withdrawn=3 (Withdrawn), "
        "is_deleted=4 (Deleted, final)",
        "  SQL:  SELECT project.title FROM project WHERE project.state IN (3, 4) ORDER BY project.id",
        "  rows: ['Conference']",
        "available to ada on Launch: ['publish', 'delete']",
        "tx.publish.form(launch): PublishForm with fields ['note']",
        "tx.publish(launch, data={'note': ''}) -> TransitionDataInvalid {'note': ['This field is required.']}",
        "tx.publish(launch, data={'note': 'Going live'}) -> Draft -> Published; note='Going live', "
        "published_at=2026-06-01 00:00:00",
        "bob publishes Side project: allowed=False",
        "  - guard: The account must be published.",
        "  - permission: Only the project's editor may publish it.",
        "  ProjectSession 'Keynote': Scheduled -> Deleted",
        "  ProjectSession 'Workshop': Scheduled -> Deleted",
        "  Project 'Conference': Published -> Deleted",
        "tx.publish.bulk(session, Project.account_id == 1) -> 2 row(s), ids [5, 6]",
        "  publish: 1 -> 2 by user 1 data {'note': 'Going live'}",
        "  expire: 1 -> 4 by the system",
        "session 'Workshop': delete: 1 -> 3 by user 1",
        "stateDiagram-v2",
        "    is_draft --> is_deleted: Expire [after 30 days since created_at]",
    ]:
        assert expected in lines, expected
    assert any(line.startswith("calling it anyway raises TransitionNotAllowed: ") for line in lines)
    assert "  1 row(s) expired; projects now: Launch: Published, Side project: Draft, Conference: Deleted, " \
        "Old draft: Deleted, Beta: Draft, Retracted: Withdrawn, Archived: Deleted" in lines
    # Sections in order.
    sections = [line for line in lines if line.startswith("== ")]
    assert sections == [
        "== States ==",
        "== Transitions ==",
        "== SQL filters ==",
        "== A transition with a form ==",
        "== A refused transition ==",
        "== A chain: deleting a project deletes its sessions ==",
        "== Timed transitions ==",
        "== A bulk transition ==",
        "== History ==",
        "== Diagram (mermaid) ==",
    ]
    # Nothing is left behind: the database lived in a temporary directory.
    assert list(tmp_path.iterdir()) == []


def test_demo_with_python_m_and_without_wtforms(tmp_path: Path) -> None:
    block = "import sys; sys.modules['wtforms'] = None; import runpy; runpy.run_module('statetype', run_name='__main__')"
    done = _demo(sys.executable, "-c", block, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "note: WTForms is not installed (pip install 'statetype[forms]'); publish runs without a form" in lines
    assert not any("PublishForm" in line for line in lines)
    assert "tx.publish(launch, data={'note': 'Going live'}) -> Draft -> Published; note='Going live', " \
        "published_at=2026-06-01 00:00:00" in lines
    assert "== Diagram (mermaid) ==" in lines


def test_demo_is_the_same_on_every_run(tmp_path: Path) -> None:
    first = _demo(sys.executable, "-m", "statetype", cwd=tmp_path)
    second = _demo(sys.executable, "-m", "statetype", cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
