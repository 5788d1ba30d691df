"""Flask-WTF forms: the data each transition needs, validated before anything changes."""

from __future__ import annotations

import functools

from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Regexp

__all__ = [
    "MAX_AMOUNT",
    "MIN_AMOUNT",
    "DisburseForm",
    "RejectForm",
    "RepayForm",
    "RequestForm",
    "WriteOffForm",
    "approve_form",
]

MIN_AMOUNT = 100
MAX_AMOUNT = 50_000


class RequestForm(FlaskForm):
    borrower = StringField("Borrower", validators=[InputRequired(), Length(max=100)])
    amount = IntegerField("Amount", validators=[InputRequired(), NumberRange(MIN_AMOUNT, MAX_AMOUNT)])
    term_months = IntegerField("Term (months)", validators=[InputRequired(), NumberRange(1, 60)])


@functools.lru_cache(maxsize=256)
def approve_form(requested: int) -> type[FlaskForm]:
    """The approval form of one credit: the approved amount may not exceed what was requested.

    Cached: the transition checks that a submitted form is an instance of the class
    its factory returns, so the same amount must give the same class.
    """

    class ApproveForm(FlaskForm):
        approved_amount = IntegerField(
            "Approved amount",
            validators=[InputRequired(), NumberRange(MIN_AMOUNT, requested, message=f"Between {MIN_AMOUNT} and {requested}.")],
        )

    return ApproveForm


class RejectForm(FlaskForm):
    reason = StringField("Reason", validators=[InputRequired(), Length(max=200)])


class DisburseForm(FlaskForm):
    iban = StringField(
        "IBAN", validators=[InputRequired(), Regexp(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$", message="Not an IBAN.")]
    )


class RepayForm(FlaskForm):
    reference = StringField("Payment reference", validators=[InputRequired(), Length(max=100)])


class WriteOffForm(FlaskForm):
    reason = StringField("Reason", validators=[InputRequired(), Length(max=200)])

