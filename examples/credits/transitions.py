"""How a credit moves: five kinds of transition, each with its validators.

* the form validates the data (amount limits, IBAN, a required reason);
* guards check the credit (the borrower has no written-off credit), with SQL forms;
* permissions check the officer (role, approval limit, four eyes);
* ``after_commit`` hooks record notifications once the change is committed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from statetype import AppliedStep, Transition, Transitions

from .forms import DisburseForm, RejectForm, RepayForm, WriteOffForm, approve_form
from .models import Credit, CreditLog, CreditState, Notification, Officer, utcnow

__all__ = ["CreditTransitions", "Outbox"]

S = CreditState


class Outbox:
    """Records notifications in their own short transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, credit: Credit, kind: str, message: str) -> None:
        with Session(self.engine) as session:
            session.add(Notification(credit_id=credit.id, kind=kind, recipient=credit.borrower, message=message))
            session.commit()


class CreditTransitions(Transitions[Credit, Officer]):
    log = CreditLog

    def __init__(self, actor: Officer | None = None, *, outbox: Outbox | None = None) -> None:
        super().__init__(actor)
        self.outbox = outbox

    approve = Transition(S.is_requested, S.is_approved, title="Approve")
    reject = Transition(S.is_undecided, S.is_rejected, title="Reject", form=RejectForm, meta={"style": "danger"})
    disburse = Transition(S.is_approved, S.is_disbursed, title="Disburse", form=DisburseForm)
    repay = Transition(S.is_disbursed, S.is_repaid, title="Record repayment", form=RepayForm)
    write_off = Transition(S.is_overdue, S.is_written_off, title="Write off", form=WriteOffForm, meta={"style": "danger"})

    # ---------------------------------------------------------------- forms

    @approve.form
    def _approve_form(self, credit: Credit) -> type[FlaskForm]:
        return approve_form(credit.amount)

    # ---------------------------------------------------------------- guards

    @approve.guard
    @disburse.guard
    def good_standing(self, credit: Credit) -> bool:
        """The borrower must have no written-off credit."""
        session = sa.inspect(credit).session
        if session is None:
            return True
        other = aliased(Credit)
        query = sa.select(other.id).where(other.borrower == credit.borrower, other.state.is_written_off).limit(1)
        return session.scalar(query) is None

    @good_standing.expression
    def _good_standing_sql(self, credit: type[Credit]) -> ColumnElement[bool]:
        other = aliased(Credit)
        return ~sa.select(other.id).where(other.borrower == credit.borrower, other.state.is_written_off).exists()

    # ---------------------------------------------------------------- permissions

    @approve.permission
    @reject.permission
    def is_approver(self, credit: Credit) -> bool:
        """Only approvers and managers decide on credits."""
        return self.actor is not None and self.actor.role in ("approver", "manager")

    @approve.permission
    def within_limit(self, credit: Credit) -> bool:
        """The amount exceeds your approval limit."""
        return self.actor is not None and credit.amount <= self.actor.approval_limit

    @approve.permission
    def not_own_request(self, credit: Credit) -> bool:
        """You cannot approve a credit you requested."""
        return self.actor is not None and self.actor.id != credit.requested_by_id

    @disburse.permission
    def four_eyes(self, credit: Credit) -> bool:
        """The approver cannot disburse the same credit."""
        return self.actor is not None and self.actor.id != credit.approved_by_id

    @write_off.permission
    def is_manager(self, credit: Credit) -> bool:
        """Only managers write credits off."""
        return self.actor is not None and self.actor.role == "manager"

    # ---------------------------------------------------------------- effects

    @approve.execute
    def record_approval(self, credit: Credit, data: Mapping[str, Any]) -> None:
        assert self.actor is not None
        credit.approved_amount = data["approved_amount"]
        credit.approved_by_id = self.actor.id
        credit.due_on = dt.date.today() + dt.timedelta(days=30 * credit.term_months)

    @reject.execute
    @write_off.execute
    def record_reason(self, credit: Credit, data: Mapping[str, Any]) -> None:
        credit.closing_note = data["reason"]

    @disburse.execute
    def record_payout(self, credit: Credit, data: Mapping[str, Any]) -> None:
        credit.iban = data["iban"]
        credit.disbursed_at = utcnow()

    @repay.execute
    def record_repayment(self, credit: Credit, data: Mapping[str, Any]) -> None:
        credit.closing_note = f"repaid: {data['reference']}"

    # ---------------------------------------------------------------- callbacks

    @approve.after_commit
    @reject.after_commit
    @disburse.after_commit
    @write_off.after_commit
    def notify(self, step: AppliedStep[Credit]) -> None:
        if self.outbox is None:
            return
        credit = step.obj
        messages = {
            "approve": f"Your credit of {credit.approved_amount} was approved.",
            "reject": f"Your credit request was rejected: {credit.closing_note}",
            "disburse": f"{credit.approved_amount} was paid to {credit.iban}.",
            "write_off": f"Your credit of {credit.approved_amount} was written off.",
        }
        self.outbox.record(credit, step.transition.name, messages[step.transition.name])
