"""docs/performance.md shows the newest ``benchmarks/results`` file, and results files hold what the page needs.

Timings are never asserted here (``make bench`` measures them); this checks
that the committed figures and the page generated from them agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import report  # noqa: E402


def test_the_performance_page_shows_the_newest_results_file() -> None:
    newest = report.newest()
    generated = report.tables(json.loads(newest.read_text()), str(newest.relative_to(ROOT)))
    page = (ROOT / "docs" / "performance.md").read_text()
    assert f"{report.START}\n\n{generated}\n{report.END}" in page


def test_results_files_hold_versions_machine_and_the_spread_of_each_side() -> None:
    files = sorted(report.RESULTS.glob("*.json"))
    assert files
    for path in files:
        document = json.loads(path.read_text())
        assert {"python", "sqlalchemy", "sqlite"} <= set(document["versions"])
        assert document["machine"]["cpus"] and document["date"]
        groups = {row["group"] for row in document["results"]}
        assert {"load", "persisted", "bulk", "transitions", "memory"} <= groups, path.name
        for row in document["results"]:
            for side in ("ours", "baseline"):
                spread = row[side]
                assert spread["min"] <= spread["median"] <= spread["max"], (path.name, row["label"])
            assert abs(row["ratio"] - row["ours"]["median"] / row["baseline"]["median"]) < 1e-9
            assert row["passed"] is None or row["passed"] == (row["ratio"] <= row["target"])
