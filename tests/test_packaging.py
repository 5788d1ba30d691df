"""The package a user installs works: sdist and wheel, metadata, extras.

``python -m build`` makes an sdist and a wheel from the checkout, ``twine
check`` validates their metadata, and the wheel is installed into fresh
virtual environments (one without extras, one per extra) where commands run
from a directory outside the checkout, so only the installed copy can be
imported. Dependencies come from the package index (pip's cache makes this
fast after the first run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# extra -> the statetype modules it enables (a module is checked once the
# wheel holds it, so integrations being written are covered when they land)
EXTRAS = {
    "forms": ("statetype._wtfields",),  # statetype.forms itself also serves Pydantic-only installs
    "alembic": ("statetype.alembic",),
    "pydantic": ("statetype.pydantic",),
    "admin": ("statetype.admin",),
}

SMOKE = textwrap.dedent(
    """
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

    import statetype
    from statetype import State, StateType, Transition, Transitions

    class DocState(StateType[int]):
        is_draft = State(1)
        is_published = State(2)

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        state: Mapped[DocState] = mapped_column(DocState(), default=DocState.is_draft)

    class DocTransitions(Transitions[Doc]):
        publish = Transition(DocState.is_draft, DocState.is_published)

    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        doc = Doc()
        session.add(doc)
        session.commit()
        DocTransitions().publish(doc)
        session.commit()
        assert session.scalars(sa.select(Doc.id).where(Doc.state.is_published)).all() == [doc.id]
    print(statetype.__file__)
    """
)


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def _ok(args: list[str], cwd: Path, timeout: float = 120) -> str:
    done = _run(args, cwd, timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """sdist and wheel built from the checkout with ``python -m build``."""
    out = tmp_path_factory.mktemp("dist")
    # Built from a copy: xdist workers building in the checkout at once would share its egg-info and build/.
    checkout = tmp_path_factory.mktemp("checkout")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _ok([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(checkout)], out, timeout=300)
    yield out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("statetype-*.whl")
    return wheel


def _install(dist: Path, where: Path, extra: str | None) -> Path:
    """A fresh venv holding the wheel (and the extra's dependencies); returns its bin dir."""
    venv.EnvBuilder(with_pip=False).create(where)
    bindir = where / ("Scripts" if os.name == "nt" else "bin")
    spec = str(_wheel(dist)) + (f"[{extra}]" if extra else "")
    # The checkout's pip installs into the new venv: no ensurepip per venv.
    _ok([sys.executable, "-m", "pip", "--python", str(bindir / "python"), "install", "-q", spec], where, timeout=300)
    return bindir


def test_metadata_passes_twine_check(dist: Path) -> None:
    files = sorted(str(p) for p in dist.iterdir())
    assert len(files) == 2, files
    out = _ok([sys.executable, "-m", "twine", "check", "--strict", *files], dist)
    assert out.count("PASSED") == 2, out


def test_wheel_contents(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist)) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "statetype/py.typed" in names
    assert "statetype/__init__.py" in names
    assert {"statetype/admin/templates/statetype/details.html", "statetype/admin/templates/statetype/transition.html"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)
    assert "License-Expression: MIT" in metadata
    assert "Requires-Dist: SQLAlchemy<2.2,>=2.0.2" in metadata
    for extra in EXTRAS:
        assert f"Provides-Extra: {extra}" in metadata
    assert "statetype = statetype.cli:main" in entry_points
    (sdist,) = dist.glob("statetype-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[-1] for m in tar.getmembers()}
    assert {"LICENSE", "README.md", "pyproject.toml", "src/statetype/py.typed"} <= members


def test_runtime_only_install(dist: Path, tmp_path: Path) -> None:
    bindir = _install(dist, tmp_path / "venv", None)
    work = tmp_path / "work"
    work.mkdir()
    (work / "smoke.py").write_text(SMOKE)
    location = _ok([str(bindir / "python"), "smoke.py"], work).strip()
    assert location.startswith(str(tmp_path / "venv")), location  # the installed copy, not the checkout
    # The demo runs every part that needs no extra and says what it skipped.
    demo = _ok([str(bindir / "statetype"), "demo"], work)
    assert "pip install 'statetype[forms]'" in demo
    assert "== SQL filters ==" in demo
    # An integration imported without its extra names the extra to install.
    for extra, modules in EXTRAS.items():
        for module in modules:
            if not _present(dist, module):
                continue
            done = _run([str(bindir / "python"), "-c", f"import {module}"], work)
            assert done.returncode == 1
            assert f"pip install 'statetype[{extra}]'" in done.stderr, done.stderr


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_install_with_extra(dist: Path, tmp_path: Path, extra: str) -> None:
    bindir = _install(dist, tmp_path / "venv", extra)
    work = tmp_path / "work"
    work.mkdir()
    present = [m for m in EXTRAS[extra] if _present(dist, m)]
    code = "; ".join(f"import {m}" for m in ["statetype", *present]) + "; print(statetype.__file__)"
    location = _ok([str(bindir / "python"), "-c", code], work).strip()
    assert location.startswith(str(tmp_path / "venv")), location
    demo = _ok([str(bindir / "statetype"), "demo"], work)
    assert "== SQL filters ==" in demo
    assert ("pip install 'statetype[forms]'" in demo) is (extra not in ("forms", "admin"))  # SQLAdmin brings WTForms


def _wheel_names(dist: Path) -> set[str]:
    with zipfile.ZipFile(_wheel(dist)) as wheel:
        return set(wheel.namelist())


def _is_package(dist: Path, module: str) -> bool:
    return module.replace(".", "/") + "/__init__.py" in _wheel_names(dist)


def _present(dist: Path, module: str) -> bool:
    return module.replace(".", "/") + ".py" in _wheel_names(dist) or _is_package(dist, module)
