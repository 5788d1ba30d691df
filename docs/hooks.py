"""MkDocs hook and the one parser of fenced code blocks in docs/*.md.

Every ```python block of a page is executed by tests/test_docs.py, in order,
in one fresh module per page. A block opened with ```python skip-test is
shown but not run; this hook removes the marker before rendering, because
Markdown would otherwise not recognise the fence. See docs/contributing.md.

This file is excluded from the site (``exclude_docs`` in mkdocs.yml).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SKIP_MARKER = "skip-test"
PYTHON_LANGUAGES = ("python", "py")

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")
# What may follow the language of a runnable block: the skip marker and
# pymdownx.superfences options written as key="value" (title, hl_lines...).
_OPTION = re.compile(r'^(skip-test|[A-Za-z_][A-Za-z0-9_]*="[^"]*")$')


@dataclass(frozen=True)
class CodeBlock:
    """One top-level fenced block of a Markdown page."""

    language: str  # first word of the info string, lower case ("" when none)
    options: tuple[str, ...]  # the other words of the info string
    code: str  # the content, with the fence's indentation removed
    line: int  # 1-based line number of the first content line
    opener_line: int  # 0-based index of the opening fence line

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON_LANGUAGES

    @property
    def skipped(self) -> bool:
        return SKIP_MARKER in self.options

    @property
    def bad_options(self) -> tuple[str, ...]:
        """Words after ``python`` that Markdown would not accept as a fence."""
        return tuple(o for o in self.options if not _OPTION.match(o))


def code_blocks(text: str) -> Iterator[CodeBlock]:
    """The fenced blocks of ``text`` in order; fences inside a block are content."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"]
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        words = info.split()
        if words and words[0].startswith("{"):  # {.python .skip-test} attribute form
            words = [w.strip("{}").lstrip(".") for w in info.split()]
        language = words[0].lower() if words else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        yield CodeBlock(language, tuple(words[1:]), "\n".join(body) + "\n", i + 2, i)
        i = j + 1


def strip_skip_markers(markdown: str) -> str:
    """```python skip-test -> ```python, so the block renders as Python."""
    lines = markdown.splitlines(keepends=True)
    for block in code_blocks(markdown):
        if block.is_python and block.skipped:
            lines[block.opener_line] = re.sub(r"[ \t]+skip-test(?=[ \t]|$)", "", lines[block.opener_line], count=1)
    return "".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return strip_skip_markers(markdown)
