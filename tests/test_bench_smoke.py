"""``benchmarks/run.py --quick`` runs end to end and prints its ratio table.

Only the plumbing is checked here: timings are measured by ``make bench``,
never asserted in tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RATIO_LINE = re.compile(r"^(?P<group>\S+)\s+(?P<label>.+?)\s+\S+ [mu]?s\s+\S+ [mu]?s\s+\d+\.\d+x\s+<= \d+\.\d+x\s+(pass|FAIL)$")


def test_quick_benchmark_run_prints_ratios(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [m for m in map(RATIO_LINE.match, done.stdout.splitlines()) if m]
    labels = [(m["group"], m["label"]) for m in lines]
    for group, fragment in [
        ("load", "ORM load"),
        ("load", "Core load"),
        ("access", "obj.state.is_draft"),
        ("access", "obj.state.is_published"),
    ]:
        assert any(g == group and fragment in label for g, label in labels), done.stdout
    assert re.search(r"^\d+ of \d+ within target$", done.stdout, re.MULTILINE), done.stdout
