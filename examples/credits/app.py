"""The credit ledger as a Flask application.

Officers sign in through the ``X-Officer`` header (a stand-in for a real
login). Pages render Flask-WTF forms with CSRF protection; listings, counts,
audit trails and notifications are JSON.

    GET       /credits?state=is_open&borrower=...&min_amount=...&max_amount=...
    GET       /credits/counts
    GET, POST /credits/new
    GET       /credits/<id>            state, the transitions the officer may take, audit trail
    GET, POST /credits/<id>/<transition>
    GET       /notifications
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, g, jsonify, redirect, render_template_string, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from statetype import BoundTransition, TransitionDataInvalid, TransitionNotAllowed

from .forms import RequestForm
from .models import Credit, CreditLog, CreditState, Notification, Officer
from .transitions import CreditTransitions, Outbox

__all__ = ["create_app"]

FORM_PAGE = """<!doctype html>
<title>{{ title }}</title>
<h1>{{ title }}</h1>
<form method="post">{{ form.hidden_tag() }}
{% for field in form if field.name != "csrf_token" %}<p>{{ field.label }} {{ field() }}
{% for error in errors.get(field.name, []) %}<span class="error">{{ error }}</span>{% endfor %}</p>
{% endfor %}{% for error in errors.get("csrf_token", []) %}<p class="error">{{ error }}</p>{% endfor %}
<button class="{{ style }}">{{ title }}</button></form>
"""

NAMES = {m.name for m in (*CreditState.states, *CreditState.groups, *CreditState.conditionals)}


def create_app(engine: sa.Engine, secret_key: str = "change me", **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret_key, **config)
    outbox = Outbox(engine)

    @app.before_request
    def open_session() -> None:
        g.db = Session(engine)
        login = request.headers.get("X-Officer")
        g.officer = g.db.scalars(sa.select(Officer).where(Officer.login == login)).one_or_none() if login else None

    @app.teardown_request
    def close_session(error: BaseException | None) -> None:
        db: Session | None = g.pop("db", None)
        if db is not None:
            db.close()

    def registry() -> CreditTransitions:
        return CreditTransitions(actor=g.officer, outbox=outbox)

    def load(credit_id: int) -> Credit:
        credit: Credit | None = g.db.get(Credit, credit_id)
        if credit is None:
            abort(404)
        return credit

    def listed(credit: Credit) -> dict[str, Any]:
        return {"id": credit.id, "borrower": credit.borrower, "amount": credit.amount, "state": credit.state.name}

    # ---------------------------------------------------------------- search and counts

    @app.get("/credits")
    def search() -> ResponseReturnValue:
        query = sa.select(Credit).order_by(Credit.id)
        state = request.args.get("state")
        if state:
            if state not in NAMES:
                return jsonify(error=f"unknown state {state!r}"), 400
            query = query.where(getattr(Credit.state, state))  # a state, a group or a conditional state
        if borrower := request.args.get("borrower"):
            query = query.where(Credit.borrower == borrower)
        if (low := request.args.get("min_amount", type=int)) is not None:
            query = query.where(Credit.amount >= low)
        if (high := request.args.get("max_amount", type=int)) is not None:
            query = query.where(Credit.amount <= high)
        return jsonify([listed(c) for c in g.db.scalars(query)])

    @app.get("/credits/counts")
    def counts() -> ResponseReturnValue:
        rows = g.db.execute(sa.select(Credit.state, sa.func.count()).group_by(Credit.state))
        per_state = {s.name: 0 for s in CreditState.states}
        for state, count in rows:
            per_state[state.name] = count
        per_group = {grp.name: sum(per_state[s.name] for s in grp.states) for grp in CreditState.groups}
        overdue = g.db.scalar(sa.select(sa.func.count()).where(Credit.state.is_overdue))
        return jsonify(states=per_state, groups=per_group, overdue=overdue)

    # ---------------------------------------------------------------- a new request

    @app.route("/credits/new", methods=["GET", "POST"])
    def new_credit() -> ResponseReturnValue:
        if g.officer is None:
            abort(403)
        form = RequestForm()
        if form.validate_on_submit():
            credit = Credit(
                borrower=form.borrower.data, amount=form.amount.data, term_months=form.term_months.data,
                requested_by_id=g.officer.id,
            )
            g.db.add(credit)
            g.db.commit()
            return redirect(f"/credits/{credit.id}")
        errors = form.errors if request.method == "POST" else {}
        page = render_template_string(FORM_PAGE, form=form, errors=errors, title="Request a credit", style="")
        return page, 400 if errors else 200

    # ---------------------------------------------------------------- one credit

    @app.get("/credits/<int:credit_id>")
    def show(credit_id: int) -> ResponseReturnValue:
        credit = load(credit_id)
        logins = {officer_id: login for officer_id, login in g.db.execute(sa.select(Officer.id, Officer.login))}
        trail = [
            {
                "transition": row.transition,
                "from": row.from_value,
                "to": row.to_value,
                "by": logins.get(int(row.actor)) if row.actor else None,
                "at": row.created_at.isoformat(),
                "data": row.data,
            }
            for row in registry().history(credit)
        ]
        return jsonify(
            listed(credit) | {
                "title": str(credit.state.title),
                "open": credit.state.is_open,
                "overdue": credit.state.is_overdue,
                "actions": [t.name for t in registry().available(credit)],
                "history": trail,
            }
        )

    @app.route("/credits/<int:credit_id>/<name>", methods=["GET", "POST"])
    def take(credit_id: int, name: str) -> ResponseReturnValue:
        credit = load(credit_id)
        if name not in {t.name for t in CreditTransitions.transitions()}:
            abort(404)
        bound: BoundTransition[Credit, Officer] = getattr(registry(), name)
        verdict = bound.check(credit)
        if not verdict:
            return jsonify(refused=[r.message for r in verdict.reasons]), 403
        form = bound.form(credit)  # every credit transition has a form (a FlaskForm: it reads request.form)
        assert form is not None
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            try:
                bound(credit, form=form)
            except TransitionNotAllowed as error:
                g.db.rollback()
                return jsonify(refused=[r.message for r in error.verdict.reasons]), 403
            except TransitionDataInvalid as error:
                g.db.rollback()
                errors = dict(error.errors)
            else:
                g.db.commit()  # after_commit hooks (notifications) run here
                return redirect(f"/credits/{credit.id}")
        page = render_template_string(
            FORM_PAGE, form=form, errors=errors, title=str(bound.title), style=bound.meta.get("style", "")
        )
        return page, 400 if errors else 200

    @app.get("/notifications")
    def notifications() -> ResponseReturnValue:
        rows = g.db.scalars(sa.select(Notification).order_by(Notification.id))
        return jsonify([{"credit": n.credit_id, "kind": n.kind, "to": n.recipient, "message": n.message} for n in rows])

    return app

