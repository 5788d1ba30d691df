"""SQLAdmin integration (the ``admin`` extra): ``StateAdminMixin`` for ``sqladmin.ModelView``.

```python
from sqladmin import Admin, ModelView
from statetype.admin import StateAdminMixin

class ProjectAdmin(StateAdminMixin, ModelView, model=Project):
    transitions = ProjectTransitions          # the registry class

    def actor(self, request: Request) -> User | None:   # who is acting
        return request.state.user
```

State columns are shown by title and filtered by state, group and
conditional state; the detail page offers the transitions the actor may
apply (refused ones with their reasons) and the history; forms, confirmations
with ``plan()``, refusals and changes made meanwhile each get their page;
edit forms leave state columns out; a list action applies one transition to
the selected rows. See docs/admin.md.
"""

from __future__ import annotations

try:
    import sqladmin  # noqa: F401  # pyright: ignore[reportUnusedImport]  (checked here to name the extra)
except ModuleNotFoundError as _missing:  # an install without the extra
    if _missing.name not in ("sqladmin", "starlette", "jinja2", "wtforms"):
        raise
    raise ImportError("statetype.admin needs SQLAdmin: pip install 'statetype[admin]'") from _missing

from ._filters import StateFilter
from ._mixin import StateAdminMixin
from ._pages import (
    BulkOutcome,
    HistoryEntry,
    PlanEntry,
    RefusedTransition,
    StatePanel,
    TransitionChoice,
)

__all__ = [
    "BulkOutcome",
    "HistoryEntry",
    "PlanEntry",
    "RefusedTransition",
    "StateAdminMixin",
    "StateFilter",
    "StatePanel",
    "TransitionChoice",
]
