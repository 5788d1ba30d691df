"""The ``statetype`` command line: ``demo`` (more tools to come)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="statetype", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the demo on a temporary SQLite database")
    args = parser.parse_args(argv)
    from .demo import run

    assert args.command == "demo"
    return run()
