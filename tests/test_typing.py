"""The downstream typing suite (tests/typing): mypy and pyright against markers.

Files in tests/typing are written as a user of statetype would write them.
``pass_*.py`` and ``models.py`` must check clean; ``fail_*.py`` hold mistakes.
A trailing comment marks what a line must produce:

``# E: <fragment>``
    exactly one error on this line, and its text (message and ``[code]`` or
    ``[rule]``) contains the fragment; for both checkers.
``# R: <type>``
    a ``reveal_type`` on this line shows exactly this type, module prefixes
    removed (mypy's ``models.ProjectState`` reads ``ProjectState``).

Either marker may name the checkers: ``# E: mypy: <fragment> | pyright:
<fragment>``. A checker that a per-checker marker does not name must report
nothing on that line. Any error or warning on an unmarked line fails the test.

Each checker runs once over the whole directory: mypy in-process through
``mypy.api`` (with a cache, so reruns are quick), pyright as a subprocess with
``--outputjson``. ``tests/typing/plugin`` is run by mypy only, with a
configuration that enables ``plugins = statetype.mypy``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
PLUGIN = TYPING / "plugin"
CHECKERS = ("mypy", "pyright")

_MARKER = re.compile(r"#\s*([ER]):\s*(.*?)\s*$")
_PER_CHECKER = re.compile(r"(?:^|\s\|\s)(mypy|pyright):\s*")
_QUALIFIED = re.compile(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)")
_MYPY_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<severity>error|warning|note): (?P<message>.*)$")
_MYPY_REVEAL = re.compile(r'^Revealed type is "(?P<type>.*)"$')
_PYRIGHT_REVEAL = re.compile(r'^Type of ".*" is "(?P<type>.*)"$', re.S)


@dataclass
class Report:
    """What one checker said about one line."""

    errors: list[str] = field(default_factory=list)
    reveals: list[str] = field(default_factory=list)


Reports = dict[tuple[str, int], Report]


_SA20_SELECT = re.compile(r"\b(Select|Result|Row)\[[Tt]uple\[(.*)\]\]$")


def normalize_type(text: str) -> str:
    """``sqlalchemy.sql.elements.ColumnElement[builtins.bool]`` -> ``ColumnElement[bool]``.

    SQLAlchemy 2.0 types ``select(a)`` as ``Select[tuple[A]]``, 2.1 as
    ``Select[A]``: both read as the 2.1 spelling, so markers hold on either.
    """
    return _SA20_SELECT.sub(r"\1[\2]", _QUALIFIED.sub(r"\1", text.strip()))


def parse_marker(text: str) -> dict[str, str]:
    """``a`` -> both checkers; ``mypy: a | pyright: b`` -> one each."""
    parts = _PER_CHECKER.split(text)
    if len(parts) == 1:
        return dict.fromkeys(CHECKERS, text)
    if parts[0].strip():
        raise ValueError(f"text before the first checker name in marker {text!r}")
    return {checker: value.strip() for checker, value in zip(parts[1::2], parts[2::2])}


def read_markers(path: Path) -> dict[tuple[str, int], tuple[str, dict[str, str]]]:
    """``(file name, line) -> (kind, {checker: expectation})``."""
    markers = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _MARKER.search(line)
        if match:
            markers[path.name, number] = (match.group(1), parse_marker(match.group(2)))
    return markers


def compare(
    checker: str,
    files: list[Path],
    reports: Reports,
) -> list[str]:
    """Every mismatch between markers and what ``checker`` reported."""
    expected: dict[tuple[str, int], tuple[str, dict[str, str]]] = {}
    for path in files:
        expected.update(read_markers(path))
    problems = []
    for key in sorted(set(expected) | set(reports)):
        name, line = key
        where = f"{name}:{line}"
        report = reports.get(key, Report())
        kind, wanted = expected.get(key, ("", {}))
        want = wanted.get(checker)
        if kind == "E" and want is not None:
            if len(report.errors) != 1 or want not in report.errors[0]:
                problems.append(f"{where}: expected one error containing {want!r}, got {report.errors or 'none'}")
        elif report.errors:
            problems.append(f"{where}: unexpected {report.errors}")
        if kind == "R" and want is not None:
            if [normalize_type(t) for t in report.reveals] != [want]:
                problems.append(f"{where}: expected reveal_type {want!r}, got {report.reveals or 'none'}")
        elif report.reveals:
            problems.append(f"{where}: unmarked reveal_type {report.reveals}")
    return problems


def run_mypy(config: Path, files: list[Path], cache: Path) -> Reports:
    from mypy import api

    stdout, stderr, status = api.run(
        [
            "--config-file", str(config),
            "--cache-dir", str(cache),
            "--no-error-summary", "--no-pretty", "--hide-error-context", "--show-error-codes",
            "--show-absolute-path",
            *map(str, files),
        ]
    )  # fmt: skip
    if status not in (0, 1) or stderr.strip():
        pytest.fail(f"mypy did not run (exit {status}):\n{stderr}\n{stdout}")
    reports: Reports = {}
    for text in stdout.splitlines():
        match = _MYPY_LINE.match(text)
        if match is None:
            pytest.fail(f"unexpected mypy output: {text}")
        key = (Path(match["path"]).name, int(match["line"]))
        message = match["message"]
        if match["severity"] == "note":
            reveal = _MYPY_REVEAL.match(message)
            if reveal:
                reports.setdefault(key, Report()).reveals.append(reveal["type"])
            # Other notes explain the error before them.
            continue
        reports.setdefault(key, Report()).errors.append(message)
    return reports


def run_pyright(config: Path) -> Reports:
    command = [
        sys.executable, "-m", "pyright", "--outputjson",
        "--pythonpath", sys.executable, "--project", str(config),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    try:
        output = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright did not run (exit {result.returncode}):\n{result.stderr}\n{result.stdout}")
    reports: Reports = {}
    for diagnostic in output["generalDiagnostics"]:
        key = (Path(diagnostic["file"]).name, diagnostic["range"]["start"]["line"] + 1)
        message = diagnostic["message"].replace("\xa0", " ")
        if diagnostic["severity"] == "information":
            reveal = _PYRIGHT_REVEAL.match(message)
            if reveal:
                reports.setdefault(key, Report()).reveals.append(reveal["type"])
                continue
        rule = diagnostic.get("rule")
        reports.setdefault(key, Report()).errors.append(f"{message} [{rule}]" if rule else message)
    return reports


def _suite(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.py"))
    assert any(p.name.startswith("fail_") for p in files) and any(p.name.startswith("pass_") for p in files)
    for path in files:
        kinds = {kind for kind, _ in read_markers(path).values()}
        if path.name.startswith("fail_"):
            assert "E" in kinds, f"{path.name} marks no expected error"
        else:
            assert "E" not in kinds, f"{path.name} is not a fail_ file but expects errors"
    return files


def _assert_clean(problems: list[str], checker: str) -> None:
    assert not problems, f"{checker} disagrees with the markers in tests/typing:\n" + "\n".join(problems)


def test_mypy() -> None:
    files = _suite(TYPING)
    reports = run_mypy(TYPING / "mypy.ini", files, ROOT / ".mypy_cache" / "typing")
    _assert_clean(compare("mypy", files, reports), "mypy")


def test_pyright() -> None:
    files = _suite(TYPING)
    reports = run_pyright(TYPING / "pyrightconfig.json")
    _assert_clean(compare("pyright", files, reports), "pyright")


def test_mypy_plugin() -> None:
    files = _suite(PLUGIN)
    reports = run_mypy(PLUGIN / "mypy.ini", [TYPING / "models.py", *files], ROOT / ".mypy_cache" / "typing-plugin")
    _assert_clean(compare("mypy", files, reports), "mypy with statetype.mypy")


@pytest.mark.parametrize(
    "path",
    [p for d in (TYPING, PLUGIN) for p in sorted(d.glob("*.py")) if not p.name.startswith("fail_")],
    ids=lambda p: str(p.relative_to(TYPING)),
)
def test_pass_file_runs(path: Path) -> None:
    """What the checkers accept also works: every pass file runs without error."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TYPING), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr


def test_compare_reports_every_mismatch(tmp_path: Path) -> None:
    """The runner itself: missing, extra, duplicated and wrong errors all fail."""
    source = tmp_path / "fail_x.py"
    source.write_text(
        "a = 1  # E: wanted\n"
        "b = 2  # E: mypy: only mypy | pyright: only pyright\n"
        "c = 3\n"
        "reveal_type(a)  # R: int\n"
        "d = 4  # E: twice\n"
    )
    reports: Reports = {
        ("fail_x.py", 2): Report(errors=["only mypy [misc]"]),
        ("fail_x.py", 3): Report(errors=["surprise"]),
        ("fail_x.py", 4): Report(reveals=["builtins.str"]),
        ("fail_x.py", 5): Report(errors=["twice", "twice"]),
    }
    problems = compare("mypy", [source], reports)
    assert [p.split(":")[1] for p in problems] == ["1", "3", "4", "5"]
    assert compare("pyright", [source], {("fail_x.py", 1): Report(errors=["the wanted one"])})[0].startswith(
        "fail_x.py:2"
    )
    assert parse_marker("mypy: a | b | pyright: c") == {"mypy": "a | b", "pyright": "c"}
