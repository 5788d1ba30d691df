"""api: a FastAPI application over the projects model (accounts, projects, sessions).

Lists by state, group and conditional state; publishes each transition with
``describe()`` (allowed, reasons, JSON Schema of its data); applies one from a
JSON body; shows history. The OpenAPI document carries the state enums.
"""

from .app import ApplyOut, HistoryOut, ProjectOut, SessionOut, create_app, current_user, get_session, load_project

__all__ = [
    "ApplyOut",
    "HistoryOut",
    "ProjectOut",
    "SessionOut",
    "create_app",
    "current_user",
    "get_session",
    "load_project",
]
