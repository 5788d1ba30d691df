"""A real Flask app with Flask-WTF (CSRF on), driven by its test client, on every database.

The app lists the transitions the logged-in user may apply to a project,
renders the chosen transition's form, and applies it on POST. An invalid POST
re-renders the form with its errors and changes nothing; a refused transition
is a 403.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, abort, g, redirect, render_template_string, request, session, url_for
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import InputRequired, Length

from statetype import (
    State,
    StateType,
    Transition,
    TransitionDataInvalid,
    TransitionLogMixin,
    TransitionNotAllowed,
    Transitions,
)
from statetype.forms import StateSelectField

CreateAll = Callable[[sa.MetaData], None]


# ------------------------------------------------------------------ the application's model


class Base(DeclarativeBase):
    pass


class ProjectState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_withdrawn = State(3, "Withdrawn")
    is_deleted = State(4, "Deleted", final=True)
    is_live = is_published | is_withdrawn


class Member(Base):
    __tablename__ = "app_member"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    admin: Mapped[bool] = mapped_column(default=False)


class Project(Base):
    __tablename__ = "app_project"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("app_member.id"))
    title: Mapped[str] = mapped_column(sa.String(100))
    summary: Mapped[str | None] = mapped_column(sa.String(200))
    state: Mapped[ProjectState] = mapped_column(ProjectState(protected=True), default=ProjectState.is_draft)
    published_at: Mapped[dt.datetime | None]
    withdrawn_to: Mapped[ProjectState | None] = mapped_column(ProjectState(check=False))


class ProjectLog(TransitionLogMixin, Base):
    __tablename__ = "app_project_log"


class PublishForm(FlaskForm):
    title = StringField("Title", validators=[InputRequired(), Length(max=100)])
    summary = TextAreaField("Summary", validators=[InputRequired(), Length(max=200)])
    submit = SubmitField("Publish")


class WithdrawForm(FlaskForm):
    reason = StringField("Reason", validators=[InputRequired()])
    # Where a withdrawn project is listed: a StateSelectField restricted to a group.
    listed_as = StateSelectField(ProjectState, "Listed as", states=ProjectState.is_live)


class ConfirmForm(FlaskForm):
    """The form for transitions that need no data: CSRF protection only."""

    submit = SubmitField("Confirm")


class ProjectTransitions(Transitions[Project, Member]):
    log = ProjectLog

    # withdrawn_to holds a ProjectState too, so each transition names its column.
    publish = Transition(
        ProjectState.is_draft | ProjectState.is_withdrawn, ProjectState.is_published, form=PublishForm, column="state"
    )
    withdraw = Transition(ProjectState.is_published, ProjectState.is_withdrawn, form=WithdrawForm, column="state")
    delete = Transition(None, ProjectState.is_deleted, column="state")

    @publish.permission
    @withdraw.permission
    def is_owner(self, project: Project) -> bool:
        """Only the project's owner may do this."""
        return self.actor is not None and self.actor.id == project.owner_id

    @delete.permission
    def is_admin(self, project: Project) -> bool:
        """Only an administrator may delete projects."""
        return self.actor is not None and self.actor.admin

    @publish.execute
    def stamp(self, project: Project, data: Mapping[str, Any]) -> None:
        project.title = data["title"]
        project.summary = data["summary"]
        project.published_at = dt.datetime(2026, 4, 1, 12, 0)

    @withdraw.execute
    def list_as(self, project: Project, data: Mapping[str, Any]) -> None:
        project.withdrawn_to = data["listed_as"]


# ------------------------------------------------------------------ the application


PAGE = """
<h1>{{ project.title }} ({{ project.state.title }})</h1>
<ul id="transitions">
{% for t in available %}<li><a href="{{ url_for('transition', project_id=project.id, name=t.name) }}">{{ t.title }}</a></li>
{% endfor %}</ul>
"""

FORM = """
<h1>{{ transition.title }}: {{ project.title }}</h1>
<form method="post">
  {{ form.hidden_tag() }}
  {% for field in form if field.widget.input_type not in ('hidden', 'submit') %}
    <p>{{ field.label }} {{ field() }}
    {% for error in errors.get(field.short_name, []) %}<span class="error">{{ error }}</span>{% endfor %}</p>
  {% endfor %}
  {% for name, messages in errors.items() if name not in form or form[name].widget.input_type == 'hidden' %}<p class="error">{{ name }}: {{ messages|join(' ') }}</p>{% endfor %}
  <button type="submit">{{ transition.title }}</button>
</form>
"""


def create_app(engine: sa.Engine) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test secret", TESTING=True)  # TESTING leaves CSRF on in Flask-WTF

    def db() -> Session:
        if "db" not in g:
            g.db = Session(engine)
        return g.db  # type: ignore[no-any-return]

    @app.teardown_appcontext
    def close_db(_error: BaseException | None) -> None:
        database = g.pop("db", None)
        if database is not None:
            database.close()

    def current_member() -> Member | None:
        member_id = session.get("member_id")
        return db().get(Member, member_id) if member_id is not None else None

    def project_or_404(project_id: int) -> Project:
        project = db().get(Project, project_id)
        if project is None:
            abort(404)
        return project

    @app.post("/login/<int:member_id>")
    def login(member_id: int) -> Any:
        session["member_id"] = member_id
        return "ok"

    @app.get("/projects/<int:project_id>/")
    def project_page(project_id: int) -> Any:
        project = project_or_404(project_id)
        tx = ProjectTransitions(actor=current_member())
        return render_template_string(PAGE, project=project, available=tx.available(project))

    @app.route("/projects/<int:project_id>/<name>", methods=["GET", "POST"])
    def transition(project_id: int, name: str) -> Any:
        project = project_or_404(project_id)
        tx = ProjectTransitions(actor=current_member())
        if name not in {t.name for t in ProjectTransitions.transitions()}:
            abort(404)
        bound = getattr(tx, name)
        if not bound.check(project):
            abort(403)
        # The transition's own form, prefilled from the project; Flask-WTF reads
        # the submission itself on POST. Transitions without one still get CSRF.
        form = bound.form(project) or ConfirmForm()
        errors: Mapping[str, list[str]] = {}
        if request.method == "POST":
            try:
                bound(project, form=form)
            except TransitionNotAllowed:
                abort(403)
            except TransitionDataInvalid as error:
                errors = error.errors
            else:
                db().commit()
                return redirect(url_for("project_page", project_id=project.id))
        status = 400 if errors else 200
        return render_template_string(FORM, transition=bound, project=project, form=form, errors=errors), status

    return app


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def app(engine: sa.Engine, create_all: CreateAll) -> Iterator[Flask]:
    create_all(Base.metadata)
    with Session(engine) as db:
        db.add_all([Member(id=1, name="ann"), Member(id=2, name="bob"), Member(id=3, name="root", admin=True)])
        db.flush()
        db.add(Project(id=10, owner_id=1, title="Rivers", summary=None))
        db.commit()
    yield create_app(engine)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _login(client: FlaskClient, member_id: int) -> None:
    assert client.post(f"/login/{member_id}").status_code == 200


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def _stored(engine: sa.Engine) -> tuple[Any, ...]:
    """The project row and the number of history rows, as the database holds them."""
    with engine.connect() as conn:
        table = Project.__table__
        row = conn.execute(
            sa.select(table.c.state, table.c.title, table.c.summary, table.c.withdrawn_to).where(table.c.id == 10)
        ).one()
        logs = conn.scalar(sa.select(sa.func.count()).select_from(ProjectLog.__table__))
    return (*row, logs)


def _links(page: str) -> list[str]:
    return re.findall(r'<li><a href="[^"]+">([^<]+)</a></li>', page)


# ------------------------------------------------------------------ tests


def test_available_transitions_depend_on_the_logged_in_member(client: FlaskClient) -> None:
    assert _links(client.get("/projects/10/").get_data(as_text=True)) == []
    _login(client, 1)
    assert _links(client.get("/projects/10/").get_data(as_text=True)) == ["Publish"]
    _login(client, 2)
    assert _links(client.get("/projects/10/").get_data(as_text=True)) == []
    _login(client, 3)
    assert _links(client.get("/projects/10/").get_data(as_text=True)) == ["Delete"]


def test_publish_through_the_form(client: FlaskClient, engine: sa.Engine) -> None:
    _login(client, 1)
    page = client.get("/projects/10/publish").get_data(as_text=True)
    # Prefilled from the project's attributes of the same names.
    assert re.search(r'<input [^>]*name="title"[^>]*value="Rivers"', page)
    assert re.search(r'<textarea [^>]*name="summary"[^>]*>\s*</textarea>', page)
    response = client.post(
        "/projects/10/publish",
        data={"csrf_token": _csrf(page), "title": "Rivers of Europe", "summary": "A field guide"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/projects/10/")
    assert _stored(engine) == (2, "Rivers of Europe", "A field guide", None, 1)
    page = client.get("/projects/10/").get_data(as_text=True)
    assert "Rivers of Europe (Published)" in page
    assert _links(page) == ["Withdraw"]
    with Session(engine) as db:
        [entry] = ProjectTransitions().history(db.get(Project, 10))
        # The step's data is the form's data, without the CSRF token.
        assert entry.data == {"title": "Rivers of Europe", "summary": "A field guide", "submit": False}
        assert entry.actor == "1"


def test_invalid_post_rerenders_with_errors_and_changes_nothing(client: FlaskClient, engine: sa.Engine) -> None:
    _login(client, 1)
    before = _stored(engine)
    page = client.get("/projects/10/publish").get_data(as_text=True)
    response = client.post(
        "/projects/10/publish", data={"csrf_token": _csrf(page), "title": "x" * 101, "summary": ""}
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert '<span class="error">Field cannot be longer than 100 characters.</span>' in html
    assert '<span class="error">This field is required.</span>' in html
    assert 'value="' + "x" * 101 + '"' in html  # what was submitted is shown again
    assert _stored(engine) == before


def test_post_without_csrf_token_changes_nothing(client: FlaskClient, engine: sa.Engine) -> None:
    _login(client, 1)
    before = _stored(engine)
    response = client.post("/projects/10/publish", data={"title": "Rivers", "summary": "A guide"})
    assert response.status_code == 400
    assert "csrf_token: The CSRF token is missing." in response.get_data(as_text=True)
    response = client.post(
        "/projects/10/publish", data={"csrf_token": "forged", "title": "Rivers", "summary": "A guide"}
    )
    assert response.status_code == 400
    assert "csrf_token: The CSRF token is invalid." in response.get_data(as_text=True)
    assert _stored(engine) == before


def test_refused_transition_is_forbidden(client: FlaskClient, engine: sa.Engine) -> None:
    _login(client, 1)
    token = _csrf(client.get("/projects/10/publish").get_data(as_text=True))
    _login(client, 2)  # bob does not own the project; the session (and its CSRF secret) stays
    before = _stored(engine)
    assert client.get("/projects/10/publish").status_code == 403
    response = client.post("/projects/10/publish", data={"csrf_token": token, "title": "Mine", "summary": "Now"})
    assert response.status_code == 403
    assert client.get("/projects/10/withdraw").status_code == 403  # the wrong state for everyone
    assert client.get("/projects/10/nope").status_code == 404
    assert _stored(engine) == before


def test_state_select_field_and_transitions_without_form(client: FlaskClient, engine: sa.Engine) -> None:
    _login(client, 1)
    page = client.get("/projects/10/publish").get_data(as_text=True)
    client.post("/projects/10/publish", data={"csrf_token": _csrf(page), "title": "Rivers", "summary": "A guide"})

    page = client.get("/projects/10/withdraw").get_data(as_text=True)
    assert '<option value="2">Published</option><option value="3">Withdrawn</option>' in page
    response = client.post(
        "/projects/10/withdraw", data={"csrf_token": _csrf(page), "reason": "outdated", "listed_as": "1"}
    )
    assert response.status_code == 400
    assert '<span class="error">Not a valid choice.</span>' in response.get_data(as_text=True)
    assert _stored(engine)[0] == 2
    response = client.post(
        "/projects/10/withdraw", data={"csrf_token": _csrf(page), "reason": "outdated", "listed_as": "3"}
    )
    assert response.status_code == 302
    assert _stored(engine) == (3, "Rivers", "A guide", 3, 2)

    _login(client, 3)  # delete has no form: a CSRF-protected confirmation
    page = client.get("/projects/10/delete").get_data(as_text=True)
    assert client.post("/projects/10/delete", data={}).status_code == 400
    assert _stored(engine)[0] == 3
    assert client.post("/projects/10/delete", data={"csrf_token": _csrf(page)}).status_code == 302
    assert _stored(engine)[0] == 4
    with Session(engine) as db:
        history = ProjectTransitions().history(db.get(Project, 10))
    assert [(h.transition, h.data) for h in history] == [
        ("publish", {"title": "Rivers", "summary": "A guide", "submit": False}),
        ("withdraw", {"reason": "outdated", "listed_as": 3}),
        ("delete", {"submit": False}),
    ]
