"""WTForms forms: what a user must supply to take a transition."""

from __future__ import annotations

from wtforms import DateTimeLocalField, Form, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

__all__ = ["PublishForm", "WithdrawForm"]


class PublishForm(Form):
    """Publishing a project fixes its public title, summary and start."""

    title = StringField("Title", validators=[InputRequired(), Length(max=100)])
    summary = TextAreaField("Summary", validators=[InputRequired(), Length(max=500)])
    start_at = DateTimeLocalField("Starts at", format="%Y-%m-%dT%H:%M", validators=[Optional()])


class WithdrawForm(Form):
    reason = StringField("Reason", validators=[InputRequired(), Length(max=200)])
