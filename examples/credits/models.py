"""The credit ledger: officers, credits, the audit trail and the notification outbox.

Amounts are whole currency units (integers), so every database stores them
exactly.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from statetype import State, StateType, TransitionLogMixin

__all__ = ["Base", "Credit", "CreditLog", "CreditState", "Notification", "Officer", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class CreditState(StateType[str]):
    is_requested = State("requested", "Requested", initial=True)
    is_approved = State("approved", "Approved")
    is_rejected = State("rejected", "Rejected", final=True)
    is_disbursed = State("disbursed", "Disbursed")
    is_repaid = State("repaid", "Repaid", final=True)
    is_written_off = State("written_off", "Written off", final=True)

    is_open = (is_requested | is_approved | is_disbursed).titled("Open")
    is_closed = (is_rejected | is_repaid | is_written_off).titled("Closed")
    is_undecided = is_requested | is_approved  # may still be rejected

    # Paid out and past its due date: only these may be written off.
    @is_disbursed.conditional
    def is_overdue(self, credit: Credit) -> bool:
        return credit.due_on is not None and credit.due_on < dt.date.today()

    @is_overdue.expression
    def _is_overdue_sql(self, credit: type[Credit]) -> ColumnElement[bool]:
        return credit.due_on < sa.func.current_date()


class Base(DeclarativeBase):
    pass


class Officer(Base):
    __tablename__ = "credits_officer"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(sa.String(50), unique=True)
    role: Mapped[str] = mapped_column(sa.String(20))  # clerk, approver, manager
    approval_limit: Mapped[int] = mapped_column(default=0)


class Credit(Base):
    __tablename__ = "credits_credit"

    id: Mapped[int] = mapped_column(primary_key=True)
    borrower: Mapped[str] = mapped_column(sa.String(100), index=True)
    amount: Mapped[int]
    term_months: Mapped[int]
    state: Mapped[CreditState] = mapped_column(
        CreditState(protected=True), default=CreditState.is_requested, index=True
    )
    requested_by_id: Mapped[int] = mapped_column(sa.ForeignKey("credits_officer.id"))
    approved_amount: Mapped[Optional[int]]
    approved_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("credits_officer.id"))
    due_on: Mapped[Optional[dt.date]]
    iban: Mapped[Optional[str]] = mapped_column(sa.String(40))
    disbursed_at: Mapped[Optional[dt.datetime]]
    closing_note: Mapped[Optional[str]] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    requested_by: Mapped[Officer] = relationship(foreign_keys=[requested_by_id])
    approved_by: Mapped[Optional[Officer]] = relationship(foreign_keys=[approved_by_id])


class CreditLog(TransitionLogMixin, Base):
    """The audit trail: one row per change of a credit's state."""

    __tablename__ = "credits_log"


class Notification(Base):
    """Messages recorded once a change is committed (never for a rolled-back one)."""

    __tablename__ = "credits_notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    credit_id: Mapped[int]
    kind: Mapped[str] = mapped_column(sa.String(50))
    recipient: Mapped[str] = mapped_column(sa.String(100))
    message: Mapped[str] = mapped_column(sa.String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
