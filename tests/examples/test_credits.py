"""The credits example: a Flask app with Flask-WTF forms (CSRF on), driven by its test client, on every database."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from examples.credits import Base, Credit, CreditLog, CreditState, CreditTransitions, Notification, Officer, Outbox, create_app
from statetype.testing import assert_transition

CreateAll = Callable[[sa.MetaData], None]
S = CreditState
PAST = dt.date(2020, 1, 1)
FUTURE = dt.date(2099, 1, 1)


@pytest.fixture
def app(engine: sa.Engine, create_all: CreateAll) -> Flask:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add_all(
            [
                Officer(id=1, login="clara", role="clerk"),
                Officer(id=2, login="alex", role="approver", approval_limit=10_000),
                Officer(id=3, login="mia", role="manager", approval_limit=100_000),
            ]
        )
        session.commit()
    return create_app(engine, TESTING=True)  # CSRF stays on


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def as_(login: str) -> dict[str, str]:
    return {"X-Officer": login}


def token(client: FlaskClient, url: str, login: str) -> str:
    response = client.get(url, headers=as_(login))
    assert response.status_code == 200, response.get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.get_data(as_text=True))
    assert found
    return found.group(1)


def post(client: FlaskClient, url: str, login: str, **data: Any) -> Any:
    return client.post(url, headers=as_(login), data={"csrf_token": token(client, url, login), **data})


def seed(engine: sa.Engine, *credits: Credit) -> list[int]:
    with Session(engine) as session:
        session.add_all(credits)
        session.commit()
        return [c.id for c in credits]


def credit(borrower: str, amount: int, state: CreditState = S.is_requested, **kw: Any) -> Credit:
    kw.setdefault("requested_by_id", 1)
    return Credit(borrower=borrower, amount=amount, term_months=12, state=state, **kw)


def db_credit(engine: sa.Engine, credit_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(Credit.__table__).where(Credit.id == credit_id)).one()


def notifications(client: FlaskClient) -> list[tuple[int, str]]:
    return [(n["credit"], n["kind"]) for n in client.get("/notifications").json]


def test_a_credit_from_request_to_repayment(client: FlaskClient, engine: sa.Engine) -> None:
    response = post(client, "/credits/new", "clara", borrower="Kim", amount="50", term_months="12")
    assert response.status_code == 400 and "Number must be between 100 and 50000." in response.get_data(as_text=True)
    response = post(client, "/credits/new", "clara", borrower="Kim", amount="5000", term_months="12")
    assert response.status_code == 302
    credit_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert db_credit(engine, credit_id).state is S.is_requested

    assert client.get(f"/credits/{credit_id}", headers=as_("alex")).json["actions"] == ["approve", "reject"]
    assert client.get(f"/credits/{credit_id}", headers=as_("clara")).json["actions"] == []

    # the form's validator: no more than was requested
    response = post(client, f"/credits/{credit_id}/approve", "alex", approved_amount="6000")
    assert response.status_code == 400 and "Between 100 and 5000." in response.get_data(as_text=True)
    assert db_credit(engine, credit_id).state is S.is_requested and notifications(client) == []
    assert post(client, f"/credits/{credit_id}/approve", "alex", approved_amount="4000").status_code == 302
    row = db_credit(engine, credit_id)
    assert (row.state, row.approved_amount, row.approved_by_id) == (S.is_approved, 4000, 2)
    assert row.due_on > dt.date.today()

    # four eyes: the approver may not disburse
    refused = client.get(f"/credits/{credit_id}/disburse", headers=as_("alex"))
    assert refused.status_code == 403 and refused.json == {"refused": ["The approver cannot disburse the same credit."]}
    response = post(client, f"/credits/{credit_id}/disburse", "clara", iban="not an iban")
    assert response.status_code == 400 and "Not an IBAN." in response.get_data(as_text=True)
    assert post(client, f"/credits/{credit_id}/disburse", "clara", iban="DE89370400440532013000").status_code == 302
    assert post(client, f"/credits/{credit_id}/repay", "clara", reference="TX-991").status_code == 302

    row = db_credit(engine, credit_id)
    assert (row.state, row.iban, row.closing_note) == (S.is_repaid, "DE89370400440532013000", "repaid: TX-991")
    assert notifications(client) == [(credit_id, "approve"), (credit_id, "disburse")]
    page = client.get(f"/credits/{credit_id}", headers=as_("mia")).json
    assert (page["state"], page["open"], page["actions"]) == ("is_repaid", False, [])
    assert [(h["transition"], h["from"], h["to"], h["by"]) for h in page["history"]] == [
        ("approve", "requested", "approved", "alex"),
        ("disburse", "approved", "disbursed", "clara"),
        ("repay", "disbursed", "repaid", "clara"),
    ]
    assert page["history"][0]["data"] == {"approved_amount": 4000}  # no CSRF token in the audit trail
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(CreditLog)) == 3


def test_csrf_is_checked(client: FlaskClient, engine: sa.Engine) -> None:
    [credit_id] = seed(engine, credit("Kim", 1000))
    client.get(f"/credits/{credit_id}/reject", headers=as_("alex"))
    response = client.post(f"/credits/{credit_id}/reject", headers=as_("alex"), data={"reason": "no", "csrf_token": "forged"})
    assert response.status_code == 400 and "The CSRF token is invalid." in response.get_data(as_text=True)
    assert db_credit(engine, credit_id).state is S.is_requested
    response = post(client, f"/credits/{credit_id}/reject", "alex", reason="income too low")
    assert response.status_code == 302
    assert (db_credit(engine, credit_id).state, db_credit(engine, credit_id).closing_note) == (S.is_rejected, "income too low")
    assert notifications(client) == [(credit_id, "reject")]


def test_approval_limits_and_roles(client: FlaskClient, engine: sa.Engine) -> None:
    big, own = seed(engine, credit("Kim", 20_000), credit("Lou", 500, requested_by_id=3))
    refused = client.get(f"/credits/{big}/approve", headers=as_("alex"))
    assert refused.status_code == 403 and refused.json == {"refused": ["The amount exceeds your approval limit."]}
    refused = client.post(f"/credits/{big}/approve", headers=as_("clara"), data={"approved_amount": "100"})
    assert refused.json == {
        "refused": [
            "Only approvers and managers decide on credits.",
            "The amount exceeds your approval limit.",
            "You cannot approve a credit you requested.",
        ]
    }
    assert client.get(f"/credits/{own}/approve", headers=as_("mia")).status_code == 403
    assert post(client, f"/credits/{big}/approve", "mia", approved_amount="20000").status_code == 302
    assert db_credit(engine, big).state is S.is_approved and db_credit(engine, own).state is S.is_requested


def test_write_off_overdue_credits_and_the_good_standing_guard(client: FlaskClient, engine: sa.Engine) -> None:
    late, current, new, other = seed(
        engine,
        credit("Lee", 3000, S.is_disbursed, approved_amount=3000, approved_by_id=2, due_on=PAST),
        credit("Lee", 2000, S.is_disbursed, approved_amount=2000, approved_by_id=2, due_on=FUTURE),
        credit("Lee", 1000),
        credit("Kim", 1000),
    )
    # only an overdue credit may be written off (a transition from a conditional state), only by a manager
    assert client.get(f"/credits/{late}", headers=as_("mia")).json["actions"] == ["repay", "write_off"]
    assert client.get(f"/credits/{current}", headers=as_("mia")).json["actions"] == ["repay"]
    assert client.get(f"/credits/{late}/write_off", headers=as_("alex")).status_code == 403
    response = post(client, f"/credits/{late}/write_off", "mia", reason="")
    assert response.status_code == 400 and "This field is required." in response.get_data(as_text=True)
    assert post(client, f"/credits/{late}/write_off", "mia", reason="borrower unreachable").status_code == 302
    assert db_credit(engine, late).state is S.is_written_off

    # Lee now has a written-off credit: the guard refuses a new approval, in Python and in SQL
    refused = client.get(f"/credits/{new}/approve", headers=as_("mia"))
    assert refused.json == {"refused": ["The borrower must have no written-off credit."]}
    with Session(engine) as session:
        approvable = session.scalars(sa.select(Credit.id).where(CreditTransitions.approve.where(Credit))).all()
    assert approvable == [other]
    assert notifications(client) == [(late, "write_off")]


def test_search_by_state_group_and_filters_and_counts(client: FlaskClient, engine: sa.Engine) -> None:
    ids = seed(
        engine,
        credit("Kim", 1000),
        credit("Kim", 2000, S.is_approved, approved_by_id=2),
        credit("Lee", 3000, S.is_disbursed, due_on=PAST),
        credit("Lou", 4000, S.is_disbursed, due_on=FUTURE),
        credit("Lou", 5000, S.is_rejected),
        credit("Kim", 6000, S.is_repaid),
    )

    def search(**params: Any) -> list[int]:
        response = client.get("/credits", query_string=params)
        assert response.status_code == 200
        return [c["id"] for c in response.json]

    assert search() == ids
    assert search(state="is_open") == ids[:4]
    assert search(state="is_closed") == ids[4:]
    assert search(state="is_overdue") == [ids[2]]
    assert search(state="is_disbursed", min_amount=3500) == [ids[3]]
    assert search(state="is_undecided", borrower="Kim") == ids[:2]
    assert search(borrower="Kim", max_amount=2000) == ids[:2]
    assert client.get("/credits", query_string={"state": "is_lost"}).status_code == 400

    assert client.get("/credits/counts").json == {
        "states": {"is_requested": 1, "is_approved": 1, "is_rejected": 1, "is_disbursed": 2, "is_repaid": 1, "is_written_off": 0},
        "groups": {"is_open": 4, "is_closed": 2, "is_undecided": 2},
        "overdue": 1,
    }


def test_notifications_wait_for_the_commit(app: Flask, engine: sa.Engine) -> None:
    [credit_id] = seed(engine, credit("Kim", 1000))
    with app.test_request_context(), Session(engine) as session:
        alex = session.get_one(Officer, 2)
        tx = CreditTransitions(actor=alex, outbox=Outbox(engine))
        tx.approve(session.get_one(Credit, credit_id), data={"approved_amount": 900})
        session.rollback()  # never notified
        assert_transition(tx.approve, session.get_one(Credit, credit_id), from_=S.is_requested, to=S.is_approved,
                          data={"approved_amount": 800})
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(Notification)) == 0
        session.commit()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Notification.kind, Notification.recipient, Notification.message)).all()
    assert [tuple(r) for r in rows] == [("approve", "Kim", "Your credit of 800 was approved.")]
    assert db_credit(engine, credit_id).approved_amount == 800


def test_a_form_factory_may_build_a_class_per_call() -> None:
    """DESIGN 4: ``form=`` may be a callable ``(registry, obj) -> form class``; a factory that builds its
    class on each call must accept the form ``bound.form(obj)`` built."""
    from wtforms import Form, IntegerField

    from statetype import Transition, Transitions

    def per_call(registry: object, obj: Credit) -> type[Form]:
        class PerCall(Form):
            amount = IntegerField()

        return PerCall

    class Uncached(Transitions[Credit, Officer]):
        approve = Transition(S.is_requested, S.is_approved, form=per_call)

    transient = credit("Kim", 1000)
    tx = Uncached()
    assert_transition(tx.approve, transient, from_=S.is_requested, to=S.is_approved, form=tx.approve.form(transient))
