"""MkDocs hook: API reference pages for modules that may not exist yet.

``statetype.testing`` and the Pydantic integration are optional parts of the
package. For each module of ``OPTIONAL`` that the checkout holds, this hook
adds a generated page ``reference/<page>.md`` (``::: module``) and its nav
entry under "API reference"; a module that is absent gets neither, so
``mkdocs build --strict`` passes with or without it.

This file is excluded from the site (``exclude_docs`` in mkdocs.yml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

# module -> page name under docs/reference/
OPTIONAL = {
    "statetype.testing": "testing",
    "statetype.pydantic": "pydantic",
    "statetype.admin": "admin",
}
_SRC = Path(__file__).resolve().parent.parent / "src"


def _present() -> dict[str, str]:
    found: dict[str, str] = {}
    for module, page in OPTIONAL.items():
        path = _SRC.joinpath(*module.split("."))
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            found[module] = page
    return found


def on_config(config: MkDocsConfig, **kwargs: Any) -> MkDocsConfig:
    for entry in config.nav or []:
        if isinstance(entry, dict) and "API reference" in entry:
            pages: list[Any] = entry["API reference"]
            for module, page in _present().items():
                pages.append({module: f"reference/{page}.md"})
    return config


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    for module, page in _present().items():
        uri = f"reference/{page}.md"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, content=f"# `{module}`\n\n::: {module}\n"))
    return files
