"""Transition forms with real WTForms: rendering, validation, atomic refusal; StateSelectField.

Tests that touch a database run on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session as DBSession
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    StringField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from statetype import (
    State,
    StateType,
    Transition,
    TransitionDataInvalid,
    TransitionNotAllowed,
    Transitions,
)
from statetype.forms import StateSelectField
from transition_models import Base, ItemState, Project, ProjectLog, ReviewState, User

CreateAll = Callable[[sa.MetaData], None]


# ------------------------------------------------------------------ forms and registry


class PublishForm(Form):
    note = StringField(validators=[InputRequired(), Length(max=200)])
    published_at = DateTimeLocalField(validators=[Optional()], format=["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"])
    reviewers = IntegerField(validators=[Optional(), NumberRange(min=1)])


class ReviewForm(Form):
    verdict = StateSelectField(ReviewState, states=ReviewState.is_approved | ReviewState.is_rejected)
    note = StringField()


class WithdrawReasonForm(Form):
    reason = StringField(validators=[InputRequired()])


class EditorWithdrawForm(Form):
    reason = StringField()
    notify = BooleanField(default=True)


class ConfirmForm(Form):
    confirm = BooleanField(validators=[InputRequired()])


class FormTransitions(Transitions[Project, User]):
    log = ProjectLog

    publish = Transition(ItemState.is_draft | ItemState.is_withdrawn, ItemState.is_published, form=PublishForm)
    review = Transition(ItemState.is_draft, ItemState.is_draft, form=ReviewForm)
    # A callable (registry, obj) -> form class: editors need not give a reason.
    withdraw = Transition(
        ItemState.is_published,
        ItemState.is_withdrawn,
        form=lambda registry, project: (
            EditorWithdrawForm if registry.actor is not None and registry.actor.id == project.editor_id
            else WithdrawReasonForm
        ),
    )
    delete = Transition(None, ItemState.is_deleted)
    unpublish = Transition(ItemState.is_published, ItemState.is_draft)

    @delete.form
    def delete_form(self, project: Project) -> type[Form] | None:
        """Confirm before deleting a project that has a note; others go without a form."""
        return ConfirmForm if project.note else None

    @publish.permission
    def is_editor(self, project: Project) -> bool:
        return self.actor is not None and project.editor_id in (None, self.actor.id)

    @publish.execute
    def stamp(self, project: Project, data: Mapping[str, Any]) -> dict[str, Any]:
        project.note = data["note"]
        project.published_at = data["published_at"] or dt.datetime(2026, 1, 1)
        return dict(data)

    @review.execute
    def record(self, project: Project, data: Mapping[str, Any]) -> None:
        project.review = data["verdict"]

    @withdraw.execute
    def reason(self, project: Project, data: Mapping[str, Any]) -> Mapping[str, Any]:
        project.note = data.get("reason") or None
        return data


@pytest.fixture
def db(engine: sa.Engine, create_all: CreateAll) -> Iterable[DBSession]:
    create_all(Base.metadata)
    with DBSession(engine) as session:
        yield session


def _project(db: DBSession, **values: Any) -> tuple[User, Project]:
    ann = User(id=1, name="ann")
    db.add(ann)
    db.flush()  # Project.editor_id has no relationship to order the inserts by
    project = Project(editor_id=1, **values)
    db.add(project)
    db.commit()
    return ann, project


def _row(db: DBSession, project: Project) -> tuple[Any, ...]:
    """What the database holds for the project, read with plain SQL."""
    table = Project.__table__
    row = db.execute(
        sa.select(table.c.state, table.c.review, table.c.note, table.c.published_at).where(table.c.id == project.id)
    ).one()
    return tuple(row)


def _log_count(db: DBSession) -> int:
    return db.scalar(sa.select(sa.func.count()).select_from(ProjectLog)) or 0


# ------------------------------------------------------------------ tx.name.form()


def test_form_is_none_without_a_form_class(db: DBSession) -> None:
    ann, project = _project(db)
    tx = FormTransitions(actor=ann)
    assert tx.unpublish.form(project) is None
    assert tx.delete.form(project) is None  # the factory returns None for a project without a note


def test_form_is_prefilled_from_attributes_of_the_same_name(db: DBSession) -> None:
    ann, project = _project(db, note="first draft", published_at=dt.datetime(2026, 2, 3, 4, 5))
    tx = FormTransitions(actor=ann)
    form = tx.publish.form(project)
    assert isinstance(form, PublishForm)
    assert form.note.data == "first draft"
    assert form.published_at.data == dt.datetime(2026, 2, 3, 4, 5)
    assert form.reviewers.data is None  # Project has no such attribute
    assert 'value="first draft"' in form.note()

    submitted = tx.publish.form(project, MultiDict({"note": "edited", "reviewers": "2"}))
    assert submitted.note.data == "edited"
    assert submitted.reviewers.data == 2
    assert submitted.validate()


def test_state_select_field_is_prefilled_with_the_objects_state(db: DBSession) -> None:
    class StateForm(Form):
        review = StateSelectField(ReviewState)

    class Reviews(Transitions[Project, User]):
        approve = Transition(ReviewState.is_pending, ReviewState.is_approved, form=StateForm)

    ann, project = _project(db)
    db.expire_all()
    form = Reviews(actor=ann).approve.form(project)
    assert form.review.data is ReviewState.is_pending
    assert '<option selected value="pending">Pending</option>' in form.review()


# ------------------------------------------------------------------ applying with form= and data=


def test_valid_form_applies_and_hooks_get_form_data(db: DBSession) -> None:
    ann, project = _project(db)
    tx = FormTransitions(actor=ann)
    form = tx.publish.form(project, MultiDict({"note": "launch", "published_at": "2026-05-06 07:08"}))
    applied = tx.publish(project, form=form)
    assert applied.results["stamp"] == {
        "note": "launch",
        "published_at": dt.datetime(2026, 5, 6, 7, 8),
        "reviewers": None,
    }
    db.commit()
    assert _row(db, project) == (2, "pending", "launch", dt.datetime(2026, 5, 6, 7, 8))
    [entry] = tx.history(project)
    assert entry.data == {"note": "launch", "published_at": "2026-05-06T07:08:00", "reviewers": None}


def test_invalid_form_changes_nothing(db: DBSession) -> None:
    ann, project = _project(db, note="kept")
    tx = FormTransitions(actor=ann)
    before = _row(db, project)
    form = tx.publish.form(project, MultiDict({"note": "", "reviewers": "0", "published_at": "tomorrow"}))
    with pytest.raises(TransitionDataInvalid) as caught:
        tx.publish(project, form=form)
    assert caught.value.errors == {
        "note": ["This field is required."],
        "published_at": ["Not a valid datetime value."],
        "reviewers": ["Number must be at least 1."],
    }
    assert "FormTransitions.publish: invalid data" in str(caught.value)
    assert project.state.is_draft and project.note == "kept" and project.published_at is None
    assert not db.dirty and not db.new
    db.commit()
    assert _row(db, project) == before
    assert _log_count(db) == 0


def test_data_mapping_is_validated_through_the_form_class(db: DBSession) -> None:
    ann, project = _project(db)
    tx = FormTransitions(actor=ann)
    # Strings are parsed as a submission would be; other values are taken as they are.
    applied = tx.publish(project, data={"note": "from an API", "reviewers": "3", "published_at": dt.datetime(2026, 7, 1)})
    assert applied.results["stamp"] == {
        "note": "from an API",
        "published_at": dt.datetime(2026, 7, 1),
        "reviewers": 3,
    }
    db.commit()
    assert _row(db, project) == (2, "pending", "from an API", dt.datetime(2026, 7, 1))


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (None, {"note": ["This field is required."]}),
        ({}, {"note": ["This field is required."]}),
        ({"note": ""}, {"note": ["This field is required."]}),
        ({"note": None}, {"note": ["This field is required."]}),
        # As for a browser's submission, a value that does not parse also fails the range check.
        ({"note": "x", "reviewers": "many"}, {"reviewers": ["Not a valid integer value.", "Number must be at least 1."]}),
        ({"note": "x", "reviewers": 0}, {"reviewers": ["Number must be at least 1."]}),
        ({"note": "x" * 201}, {"note": ["Field cannot be longer than 200 characters."]}),
        ({"note": "x", "published": "2026-01-01"}, {"published": ["Not a field of PublishForm."]}),
        # Values given as Python objects must have the field's type: never a driver error later.
        ({"note": "x", "published_at": 42}, {"published_at": ["Expected a datetime, got int 42."]}),
        (
            {"note": "x", "published_at": dt.date(2026, 1, 2)},
            {"published_at": ["Expected a datetime, got date datetime.date(2026, 1, 2)."]},
        ),
        ({"note": 5, "reviewers": True}, {"note": ["Expected a string, got int 5."], "reviewers": ["Expected an integer, got bool True."]}),
        ({"note": "x", "reviewers": 2.5}, {"reviewers": ["Expected an integer, got float 2.5."]}),
    ],
)
def test_invalid_data_changes_nothing(db: DBSession, data: dict[str, Any] | None, errors: dict[str, list[str]]) -> None:
    ann, project = _project(db, note="kept")
    tx = FormTransitions(actor=ann)
    before = _row(db, project)
    with pytest.raises(TransitionDataInvalid) as caught:
        tx.publish(project, data=data)
    assert caught.value.errors == errors
    assert project.state.is_draft and project.note == "kept"
    db.commit()
    assert _row(db, project) == before
    assert _log_count(db) == 0


def test_data_must_be_a_mapping(db: DBSession) -> None:
    ann, project = _project(db)
    tx = FormTransitions(actor=ann)
    with pytest.raises(TypeError, match=r"FormTransitions\.publish: data= takes a mapping .* got list"):
        tx.publish(project, data=[("note", "x")])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match=r"FormTransitions\.review: data= takes a mapping .* got str"):
        tx.review(project, data="note")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert project.state.is_draft
    db.commit()
    assert _log_count(db) == 0


def test_data_of_the_field_types_applies(db: DBSession) -> None:
    ann, project = _project(db)
    tx = FormTransitions(actor=ann)
    aware = dt.datetime(2026, 3, 4, 5, 6)
    applied = tx.publish(project, data={"note": "typed", "published_at": aware, "reviewers": 2})
    assert applied.results["stamp"] == {"note": "typed", "published_at": aware, "reviewers": 2}
    db.commit()
    assert _row(db, project) == (2, "pending", "typed", aware)


def test_empty_submission_applies_when_no_field_is_required(db: DBSession) -> None:
    ann, project = _project(db)
    tx = FormTransitions(actor=ann)
    tx.publish(project, data={"note": "up"})
    db.commit()
    # EditorWithdrawForm (ann edits the project): nothing required, defaults apply.
    applied = tx.withdraw(project)
    assert applied.results["reason"] == {"reason": None, "notify": True}
    db.commit()
    assert _row(db, project)[0] == 3


def test_form_factory_callable_chooses_per_actor_and_object(db: DBSession) -> None:
    ann, project = _project(db)
    bob = User(id=2, name="bob")
    db.add(bob)
    FormTransitions(actor=ann).publish(project, data={"note": "up"})
    db.commit()
    assert isinstance(FormTransitions(actor=ann).withdraw.form(project), EditorWithdrawForm)
    as_bob = FormTransitions(actor=bob)
    assert isinstance(as_bob.withdraw.form(project), WithdrawReasonForm)
    with pytest.raises(TransitionDataInvalid) as caught:
        as_bob.withdraw(project)
    assert caught.value.errors == {"reason": ["This field is required."]}
    as_bob.withdraw(project, data={"reason": "out of date"})
    db.commit()
    assert _row(db, project)[:3] == (3, "pending", "out of date")


def test_form_decorator_factory(db: DBSession) -> None:
    ann, project = _project(db, note="has a note")
    tx = FormTransitions(actor=ann)
    form = tx.delete.form(project)
    assert isinstance(form, ConfirmForm)
    with pytest.raises(TransitionDataInvalid) as caught:
        tx.delete(project)
    assert caught.value.errors == {"confirm": ["This field is required."]}
    tx.delete(project, form=tx.delete.form(project, MultiDict({"confirm": "y"})))
    db.commit()
    assert _row(db, project)[0] == 4
    [entry] = tx.history(project)
    assert entry.data == {"confirm": True}


def test_state_select_field_in_a_transition_form(db: DBSession) -> None:
    ann, project = _project(db)
    tx = FormTransitions(actor=ann)
    with pytest.raises(TransitionDataInvalid) as caught:
        tx.review(project, data={"verdict": "pending"})  # a state, but not offered
    assert caught.value.errors == {"verdict": ["Not a valid choice."]}
    with pytest.raises(TransitionDataInvalid) as caught:
        tx.review(project, data={"verdict": "maybe"})
    assert caught.value.errors == {"verdict": ["Invalid Choice: could not coerce."]}
    applied = tx.review(project, form=tx.review.form(project, MultiDict({"verdict": "rejected"})))
    assert applied.steps[0].data == {"verdict": ReviewState.is_rejected, "note": None}
    db.commit()
    assert _row(db, project)[:2] == (1, "rejected")
    [entry] = tx.history(project)
    assert entry.data == {"verdict": "rejected", "note": None}


def test_refused_transition_is_not_validated(db: DBSession) -> None:
    _ann, project = _project(db)
    bob = User(id=2, name="bob")
    db.add(bob)
    db.commit()
    with pytest.raises(TransitionNotAllowed):
        FormTransitions(actor=bob).publish(project, data={})  # would be invalid too


def test_wrong_form_class_and_both_form_and_data(db: DBSession) -> None:
    ann, project = _project(db)
    tx = FormTransitions(actor=ann)
    with pytest.raises(TypeError, match=r"FormTransitions\.publish takes a PublishForm, got a ConfirmForm"):
        tx.publish(project, form=ConfirmForm(MultiDict({"confirm": "y"})))
    with pytest.raises(TypeError, match="pass form= or data=, not both"):
        tx.publish(project, form=tx.publish.form(project), data={"note": "x"})
    assert project.state.is_draft


def test_form_on_a_transition_without_form_class_is_validated(db: DBSession) -> None:
    ann, project = _project(db)
    tx = FormTransitions(actor=ann)
    tx.publish(project, data={"note": "up"})
    with pytest.raises(TransitionDataInvalid):
        tx.unpublish(project, form=ConfirmForm(MultiDict()))
    assert project.state.is_published
    tx.unpublish(project, form=ConfirmForm(MultiDict({"confirm": "y"})))
    db.commit()
    assert _row(db, project)[0] == 1


def test_in_memory_object_is_validated_too() -> None:
    project = Project(state=ItemState.is_draft, editor_id=None)
    tx = FormTransitions(actor=User(id=1, name="ann"))
    with pytest.raises(TransitionDataInvalid):
        tx.publish(project, data={"note": ""})
    assert project.state.is_draft and project.note is None
    tx.publish(project, data={"note": "fine"})
    assert project.state.is_published and project.note == "fine"


def test_nested_errors_are_flattened_with_field_names() -> None:
    class Address(Form):
        city = StringField(validators=[InputRequired()])

    class Nested(Form):
        address = FormField(Address)
        tags = FieldList(StringField(validators=[Length(max=3)]), min_entries=2)

    class Registry(Transitions[Project, User]):
        move = Transition(ItemState.is_draft, ItemState.is_published, form=Nested)

    project = Project(state=ItemState.is_draft)
    tx = Registry()
    form = tx.move.form(project, MultiDict({"tags-0": "ok", "tags-1": "too long"}))
    with pytest.raises(TransitionDataInvalid) as caught:
        tx.move(project, form=form)
    assert caught.value.errors == {
        "address-city": ["This field is required."],
        "tags-1": ["Field cannot be longer than 3 characters."],
    }


def test_factory_returning_something_else_is_a_type_error() -> None:
    class Registry(Transitions[Project, User]):
        go = Transition(ItemState.is_draft, ItemState.is_published, form=lambda registry, obj: PublishForm())

    with pytest.raises(TypeError, match=r"Registry\.go: the form factory returned .* not a form class"):
        Registry().go.form(Project(state=ItemState.is_draft))


# ------------------------------------------------------------------ StateSelectField


class Lazy:
    """A lazy title: its text depends on the language current when it is rendered."""

    language = "en"

    def __init__(self, **texts: str) -> None:
        self.texts = texts

    def __str__(self) -> str:
        return self.texts[Lazy.language]


class PhaseEnum(enum.Enum):
    PLANNED = "planned"
    RUNNING = "running"
    DONE = "done"


class Phase(StateType[PhaseEnum]):
    is_planned = State(PhaseEnum.PLANNED)
    is_running = State(PhaseEnum.RUNNING, "In progress")
    is_done = State(PhaseEnum.DONE, final=True)
    is_open = is_planned | is_running


class Level(StateType[int]):
    is_low = State(10, Lazy(en="Low", fr="Bas"))
    is_high = State(20, Lazy(en="High", fr="Haut"))


def _options(field: Any) -> list[tuple[str, str]]:
    return [(c[0], c[1]) for c in field.iter_choices()]


def test_select_offers_every_plain_state_with_titles() -> None:
    class F(Form):
        state = StateSelectField(ItemState)
        review = StateSelectField(ReviewState, "Review")
        phase = StateSelectField(Phase)

    form = F()
    assert _options(form.state) == [("1", "Draft"), ("2", "Published"), ("3", "Withdrawn"), ("4", "Deleted")]
    assert _options(form.review) == [("pending", "Pending"), ("approved", "Approved"), ("rejected", "Rejected")]
    assert _options(form.phase) == [("planned", "Planned"), ("running", "In progress"), ("done", "Done")]
    assert form.review.label.text == "Review"
    assert form.state.label.text == "State"


@pytest.mark.parametrize(
    ("statetype", "submitted", "member"),
    [
        (ItemState, "2", ItemState.is_published),
        (ReviewState, "approved", ReviewState.is_approved),
        (Phase, "running", Phase.is_running),
    ],
)
def test_select_coerces_submitted_values_to_members(statetype: Any, submitted: str, member: Any) -> None:
    class F(Form):
        state = StateSelectField(statetype)

    form = F(MultiDict({"state": submitted}))
    assert form.validate()
    assert form.state.data is member
    assert form.data == {"state": member}
    assert f'<option selected value="{submitted}">' in form.state()


@pytest.mark.parametrize("submitted", ["5", "two", "", "Published", "is_published"])
def test_select_rejects_values_that_are_not_states(submitted: str) -> None:
    class F(Form):
        state = StateSelectField(ItemState)

    form = F(MultiDict({"state": submitted}))
    assert not form.validate()
    assert form.errors == {"state": ["Invalid Choice: could not coerce."]}
    assert form.state.data is None


def test_select_restricted_to_given_states_and_groups() -> None:
    class F(Form):
        gone = StateSelectField(ItemState, states=ItemState.is_gone)
        some = StateSelectField(ItemState, states=[ItemState.is_published, ItemState.is_draft, ItemState.is_live])
        open = StateSelectField(Phase, states=Phase.is_open)

    form = F(MultiDict({"gone": "1", "some": "3", "open": "done"}))
    assert _options(form.gone) == [("3", "Withdrawn"), ("4", "Deleted")]
    # In the order given, groups expanded, without repeats.
    assert _options(form.some) == [("2", "Published"), ("1", "Draft"), ("3", "Withdrawn")]
    assert _options(form.open) == [("planned", "Planned"), ("running", "In progress")]
    assert not form.validate()
    assert form.errors == {"gone": ["Not a valid choice."], "open": ["Not a valid choice."]}
    assert form.some.data is ItemState.is_withdrawn


def test_select_accepts_members_raw_and_enum_values_as_data() -> None:
    class F(Form):
        item = StateSelectField(ItemState, default=ItemState.is_withdrawn)
        raw = StateSelectField(ItemState)
        phase = StateSelectField(Phase)
        phase_value = StateSelectField(Phase)

    form = F(data={"raw": 2, "phase": PhaseEnum.DONE, "phase_value": "planned"})
    assert form.item.data is ItemState.is_withdrawn
    assert form.raw.data is ItemState.is_published
    assert form.phase.data is Phase.is_done
    assert form.phase_value.data is Phase.is_planned
    assert form.validate()
    wrong = F(data={"raw": ReviewState.is_pending, "phase": ItemState.is_draft})
    assert wrong.raw.data is None and wrong.phase.data is None
    assert not wrong.validate()


def test_select_titles_are_rendered_with_str_when_the_form_is_created() -> None:
    class F(Form):
        level = StateSelectField(Level)

    try:
        english = F()
        Lazy.language = "fr"
        french = F()
    finally:
        Lazy.language = "en"
    assert _options(english.level) == [("10", "Low"), ("20", "High")]
    assert _options(french.level) == [("10", "Bas"), ("20", "Haut")]
    assert ">Haut</option>" in french.level()
    assert all(type(label) is str for _, label in _options(french.level))


def test_select_declaration_errors() -> None:
    with pytest.raises(TypeError, match="StateSelectField takes a StateType class with states, got 'x'"):
        StateSelectField("x").bind(Form(), "f")
    with pytest.raises(TypeError, match=r"StateSelectField\(ItemState\) sets choices= itself"):
        StateSelectField(ItemState, choices=[("1", "x")]).bind(Form(), "f")
    with pytest.raises(TypeError, match=r"ReviewState\.is_pending is a member of ReviewState, not of ItemState"):
        StateSelectField(ItemState, states=[ReviewState.is_pending]).bind(Form(), "f")
    with pytest.raises(TypeError, match=r"states= takes members of ItemState, got 1"):
        StateSelectField(ItemState, states=[1]).bind(Form(), "f")
    with pytest.raises(TypeError, match=r"states= offers no state"):
        StateSelectField(ItemState, states=[]).bind(Form(), "f")


def test_select_refuses_conditional_states() -> None:
    class Timed(StateType[int]):
        is_draft = State(1)
        is_published = State(2)

        @is_published.conditional
        def is_recent(self, obj: Any) -> bool:
            return True

    with pytest.raises(TypeError, match=r"Timed\.is_recent is a conditional state and cannot be chosen"):
        StateSelectField(Timed, states=[Timed.is_recent]).bind(Form(), "f")
