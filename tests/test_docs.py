"""The documentation site builds strictly, and its Python examples run.

Every ```python block of a docs/*.md page runs, in order, in one namespace;
each page in a fresh process, as a module of its own (so SQLAlchemy
declarative classes of different pages never meet). Blocks opened with
```python skip-test are not run. See docs/contributing.md.

Run one page without pytest: ``python tests/test_docs.py docs/states.md``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
EXAMPLE_PAGES = [*PAGES, ROOT / "README.md"]  # the README's example runs too


def _hooks() -> Any:
    """docs/hooks.py: the fenced-block parser shared with the MkDocs hook."""
    spec = importlib.util.spec_from_file_location("statetype_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_page(page: Path) -> int:
    """Execute the page's runnable Python blocks in one fresh module; returns the count."""
    from typing_extensions import reveal_type

    name = f"docs_{page.stem.replace('-', '_')}"
    module = types.ModuleType(name)
    module.__file__ = str(page)
    module.__dict__["reveal_type"] = reveal_type
    sys.modules[name] = module  # SQLAlchemy resolves string annotations through it
    count = 0
    for block in _hooks().code_blocks(page.read_text(encoding="utf-8")):
        if not block.is_python or block.skipped:
            continue
        # Pad so that tracebacks show the page's own line numbers and lines.
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        exec(code, module.__dict__)
        count += 1
    return count


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONDONTWRITEBYTECODE="1")
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def test_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    for page in PAGES:
        expected = "index.html" if page.stem == "index" else f"{page.stem}/index.html"
        assert expected in built, f"{page.name} was not built"
    assert not (tmp_path / "site" / "hooks.py").exists()


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=[p.stem for p in EXAMPLE_PAGES])
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    blocks = list(_hooks().code_blocks(page.read_text(encoding="utf-8")))
    malformed = [f"line {b.line - 1}: {' '.join(b.bad_options)}" for b in blocks if b.is_python and b.bad_options]
    assert not malformed, (
        f"{page.name}: a ```python fence takes only `skip-test` or key=\"value\" options: {malformed}"
    )
    done = subprocess.run(
        [sys.executable, "-P", __file__, str(page)],  # -P: keep tests/ (and tests/typing) off sys.path
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert done.returncode == 0, f"an example of {page.relative_to(ROOT)} failed:\n{done.stdout}{done.stderr}"


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        ran = run_page(Path(arg).resolve())
        print(f"{arg}: {ran} block(s) ran", file=sys.stderr)
