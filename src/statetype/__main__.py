"""``python -m statetype``: the command line."""

from .cli import main

raise SystemExit(main())
