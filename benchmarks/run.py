"""``make bench``: statetype against hand-written SQLAlchemy, as ratios of medians.

    python benchmarks/run.py              # every group, full size (docs/design.md, performance targets)
    python benchmarks/run.py load         # only the named groups
    python benchmarks/run.py --quick      # a small smoke run: same code, tiny sizes
    python benchmarks/run.py --strict     # exit 1 when a ratio misses its target

A full run (not ``--quick``, every group) writes its figures to
``benchmarks/results/<UTC time>.json`` (versions, machine, date; median, min
and max per side) and regenerates the tables of docs/performance.md from it
(``python benchmarks/report.py`` does only the latter, from the newest file).

Every group runs in this one process. Groups live in ``bench_*.py`` modules
next to this file and register with ``harness.benchmark``; see harness.py.
Ratios are measured and printed, never asserted by the test suite.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import report  # noqa: E402
import sqlalchemy  # noqa: E402
from harness import GROUPS, Result, Settings  # noqa: E402


def _load_groups() -> None:
    for path in sorted(HERE.glob("bench_*.py")):
        importlib.import_module(path.stem)


def _print_table(results: list[tuple[str, Result]]) -> None:
    headers = ("group", "benchmark", "ours", "baseline", "ratio", "target", "result")
    rows = [
        (
            group,
            r.label,
            report.quantity(r.ours, r.unit),
            report.quantity(r.baseline, r.unit),
            f"{r.ratio:.2f}x",
            f"<= {r.target:.2f}x" if r.target != float("inf") else "-",
            ("pass" if r.passed else "FAIL") if r.target != float("inf") else "info",
        )
        for group, r in results
    ]
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]
    right = {2, 3, 4, 5}

    def line(cells: Sequence[str]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(cells).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    _load_groups()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="*", metavar="GROUP", help=f"groups to run (default all: {', '.join(GROUPS)})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test; ratios are meaningless")
    parser.add_argument("--repeats", type=int, help="timed runs per side (default 7, quick 3)")
    parser.add_argument("--rows", type=int, help="rows for database benchmarks (default 100000, quick 2000)")
    parser.add_argument("--accesses", type=int, help="loops for access benchmarks (default 1000000, quick 20000)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a ratio misses its target")
    parser.add_argument("--no-save", action="store_true", help="write no results file and leave docs/performance.md")
    args = parser.parse_args(argv)
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    selected = args.groups or list(GROUPS)

    with tempfile.TemporaryDirectory(prefix="statetype-bench-") as tmp:
        settings = Settings(
            quick=args.quick,
            repeats=args.repeats or (3 if args.quick else 7),
            rows=args.rows or (2_000 if args.quick else 100_000),
            accesses=args.accesses or (20_000 if args.quick else 1_000_000),
            tmpdir=Path(tmp),
        )
        print(
            f"statetype benchmarks{' (--quick: sizes too small for meaningful ratios)' if args.quick else ''}\n"
            f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
            f"SQLite {sqlite3.sqlite_version}; medians of {settings.repeats} runs per side, "
            f"ratio = statetype / plain SQLAlchemy\n",
            flush=True,
        )
        results: list[tuple[str, Result]] = []
        for name in selected:
            group_dir = settings.tmpdir / name
            group_dir.mkdir()
            group_settings = Settings(**{**settings.__dict__, "tmpdir": group_dir})
            results.extend((name, result) for result in GROUPS[name](group_settings))
    _print_table(results)
    if not args.quick and not args.groups and not args.no_save:
        path = report.save(results, settings.repeats)
        report.write_docs(path)
        print(f"\nresults: {path.relative_to(HERE.parent)}; docs/performance.md regenerated")
    results_with_target = [(g, r) for g, r in results if r.target != float("inf")]
    failed = [r for _, r in results_with_target if not r.passed]
    print(f"\n{len(results_with_target) - len(failed)} of {len(results_with_target)} within target")
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
