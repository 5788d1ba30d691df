"""Testing helpers for test suites of applications built on statetype.

* ``assert_allowed(tx.publish, project)``, ``assert_refused(tx.publish,
  project, kind="permission")``, ``assert_transition(tx.publish, project,
  from_=ProjectState.is_draft, to=ProjectState.is_published, data={...})``:
  assertions whose failure messages list the verdict's reasons, the object
  and the states;
* ``statetype.testing.strategies``: hypothesis strategies (``members``,
  ``walks``, ``form_data``), imported on its own;
* the pytest plugin (``statetype.testing._plugin``, entry point ``pytest11``)
  needs no configuration.

Importing this package under pytest registers its modules for pytest's
assertion rewriting before they are imported (so the plugin, which pytest
loads at start-up, makes that happen before any test module runs). This
package and the strategies use pytest and hypothesis, test-time dependencies
(the ``testing`` extra); the core library imports neither.
"""

from __future__ import annotations

try:
    import pytest
except ImportError:  # the assertions work without pytest, as plain assert statements
    pass
else:
    pytest.register_assert_rewrite("statetype.testing._asserts", "statetype.testing.strategies")

from ._asserts import ReasonKind, assert_allowed, assert_refused, assert_transition

__all__ = ["ReasonKind", "assert_allowed", "assert_refused", "assert_transition"]
