"""credits: a credit ledger as a Flask app with Flask-WTF forms, validators, an audit trail and notifications."""

from .app import create_app
from .forms import DisburseForm, RejectForm, RepayForm, RequestForm, WriteOffForm, approve_form
from .models import Base, Credit, CreditLog, CreditState, Notification, Officer
from .transitions import CreditTransitions, Outbox

__all__ = [
    "Base",
    "Credit",
    "CreditLog",
    "CreditState",
    "CreditTransitions",
    "DisburseForm",
    "Notification",
    "Officer",
    "Outbox",
    "RejectForm",
    "RepayForm",
    "RequestForm",
    "WriteOffForm",
    "approve_form",
    "create_app",
]
