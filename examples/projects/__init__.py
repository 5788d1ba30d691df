"""projects: the section 2-4 model (accounts, projects, sessions, comments) with forms, chains and permissions."""

from .app import HistoryEntry, ProjectDesk
from .forms import PublishForm, WithdrawForm
from .models import Account, AccountState, Base, Comment, CommentState, Project, ProjectLog, ProjectState, TalkSession, User
from .transitions import AccountTransitions, CommentTransitions, ProjectTransitions, SessionTransitions

__all__ = [
    "Account",
    "AccountState",
    "AccountTransitions",
    "Base",
    "Comment",
    "CommentState",
    "CommentTransitions",
    "HistoryEntry",
    "Project",
    "ProjectDesk",
    "ProjectLog",
    "ProjectState",
    "ProjectTransitions",
    "PublishForm",
    "SessionTransitions",
    "TalkSession",
    "User",
    "WithdrawForm",
]
