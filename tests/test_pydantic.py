"""Pydantic v2 field types, JSON Schema of transition requirements, Pydantic models as forms, describe().

Schemas are checked with the jsonschema package (draft 2020-12); data the
schema accepts is accepted by the transition and the other way round.
Database tests run on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from wtforms import (
    BooleanField,
    DateField,
    DateTimeField,
    DateTimeLocalField,
    DecimalField,
    FloatField,
    Form,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NoneOf, NumberRange, Optional as Opt, Regexp

from statetype import State, StateType, Transition, TransitionDataInvalid, TransitionLogMixin, Transitions
from statetype.forms import StateSelectField

ROOT = Path(__file__).resolve().parent.parent
# The forms below use DateTimeField and tuple choices on purpose: both are still in WTForms 3.3.
pytestmark = pytest.mark.filterwarnings(
    "ignore:'DateTimeField' renders:DeprecationWarning", "ignore:Passing SelectField choices as tuples:DeprecationWarning"
)
CreateAll = Callable[[sa.MetaData], None]


# ------------------------------------------------------------------ model


class Colour(enum.Enum):
    RED = "r"
    GREEN = "g"


class ColourState(StateType[Colour]):
    is_red = State(Colour.RED)
    is_green = State(Colour.GREEN, "Go")


class DocState(StateType[int]):
    """Where a document is in its life."""

    is_draft = State(1, "Draft")
    is_review = State(2, "In review")
    is_published = State(3, "Published")
    is_deleted = State(4, "Deleted", final=True)

    is_open = is_draft | is_review

    @is_published.conditional
    def is_pinned(self, doc: Doc) -> bool:
        return doc.pinned


class Tag(StateType[str]):
    is_new = State("new")
    is_old = State("is_new")  # a raw value that is also another member's name: raw values win


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "pyd_doc"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100), default="")
    pinned: Mapped[bool] = mapped_column(default=False)
    due_at: Mapped[Optional[dt.datetime]]
    state: Mapped[DocState] = mapped_column(DocState(), default=DocState.is_draft)
    colour: Mapped[ColourState] = mapped_column(ColourState(), default=ColourState.is_red)


class DocLog(TransitionLogMixin, Base):
    __tablename__ = "pyd_doc_log"


class DocOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    state: DocState
    colour: ColourState
    maybe: Optional[DocState] = None


# ------------------------------------------------------------------ field type


def test_validates_members_loaded_values_raw_values_enum_members_and_names() -> None:
    doc = Doc(id=1, state=DocState.is_review, colour=ColourState.is_green)
    out = DocOut.model_validate(doc, from_attributes=True)
    assert out.state is DocState.is_review and out.colour is ColourState.is_green
    assert DocOut(id=1, state=DocState.is_draft, colour=ColourState.is_red).state is DocState.is_draft
    assert DocOut(id=1, state=3, colour="g").colour is ColourState.is_green
    assert DocOut(id=1, state="is_published", colour=Colour.RED).state is DocState.is_published
    assert DocOut(id=1, state=doc.state, colour="is_green").colour is ColourState.is_green
    assert DocOut.model_validate_json('{"id": 1, "state": 2, "colour": "r"}').state is DocState.is_review
    # A str-valued StateType: raw values are looked up before names.
    assert _TagModel(tag="is_new").tag is Tag.is_old
    assert _TagModel(tag="new").tag is Tag.is_new


class _TagModel(BaseModel):
    tag: Tag


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (9, "DocState: 9 is not a state"),
        ("2", "DocState: '2' is not a state"),
        (True, "DocState: True is not a state"),
        (2.0, "DocState: 2.0 is not a state"),
        (None, "DocState: None is not a state"),
        ("is_nothing", "DocState: 'is_nothing' is not a state"),
        (DocState.is_open, "DocState.is_open is a group (one of is_draft, is_review), not one state"),
        ("is_open", "DocState.is_open is a group"),
        (DocState.is_pinned, "DocState.is_pinned is a conditional state (one of is_published)"),
        (ColourState.is_red, "ColourState.is_red is a member of ColourState, not of DocState"),
        (DocState(), "DocState() is not a state"),
    ],
)
def test_anything_else_is_a_validation_error_naming_the_allowed_values(value: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as error:
        DocOut(id=1, state=value, colour="r")
    errors = error.value.errors(include_url=False)
    assert len(errors) == 1
    assert errors[0]["loc"] == ("state",) and errors[0]["type"] == "statetype_value"
    message = errors[0]["msg"]
    assert fragment in message
    assert "allowed: 1 (is_draft), 2 (is_review), 3 (is_published), 4 (is_deleted) or their names" in message


def test_an_undeclared_loaded_value_is_refused() -> None:
    unknown = DocState._load_map[77]
    with pytest.raises(ValidationError, match="unknown value 77"):
        DocOut(id=1, state=unknown, colour="r")


def test_serializes_to_the_raw_value_in_json_mode_and_keeps_members_in_python_mode() -> None:
    out = DocOut(id=1, state=DocState.is_review, colour=ColourState.is_green)
    assert out.model_dump() == {"id": 1, "state": DocState.is_review, "colour": ColourState.is_green, "maybe": None}
    assert out.model_dump(mode="json") == {"id": 1, "state": 2, "colour": "g", "maybe": None}
    assert json.loads(out.model_dump_json()) == {"id": 1, "state": 2, "colour": "g", "maybe": None}
    assert DocOut.model_validate_json(out.model_dump_json()) == out


def test_json_schema_lists_raw_values_with_titles() -> None:
    schema = DocOut.model_json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["state"] == {"$ref": "#/$defs/DocState"}
    assert schema["$defs"]["DocState"] == {
        "title": "DocState",
        "description": "Where a document is in its life.",
        "type": "integer",
        "enum": [1, 2, 3, 4],
        "oneOf": [
            {"const": 1, "title": "Draft"},
            {"const": 2, "title": "In review"},
            {"const": 3, "title": "Published"},
            {"const": 4, "title": "Deleted"},
        ],
    }
    assert schema["$defs"]["ColourState"]["enum"] == ["r", "g"]
    assert schema["$defs"]["ColourState"]["oneOf"] == [{"const": "r", "title": "Red"}, {"const": "g", "title": "Go"}]
    assert schema["properties"]["maybe"]["anyOf"] == [{"$ref": "#/$defs/DocState"}, {"type": "null"}]
    validator = Draft202012Validator(schema)
    assert validator.is_valid(DocOut(id=1, state=2, colour="g").model_dump(mode="json"))
    assert not validator.is_valid({"id": 1, "state": 5, "colour": "g"})


def test_importing_statetype_imports_neither_pydantic_nor_wtforms() -> None:
    code = (
        "import sys, statetype, statetype.forms, statetype.schema\n"
        "assert 'pydantic' not in sys.modules and 'pydantic_core' not in sys.modules, 'pydantic imported'\n"
        "assert 'wtforms' not in sys.modules, 'wtforms imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_a_pydantic_form_works_without_wtforms_installed() -> None:
    # WTForms made unimportable: a transition whose form is a Pydantic model still validates and applies.
    code = '''
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "wtforms" or name.startswith("wtforms."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from pydantic import BaseModel
from statetype import State, StateType, Transition, Transitions, TransitionDataInvalid
class S(StateType[int]):
    is_a = State(1)
    is_b = State(2)
class Base(DeclarativeBase): pass
class M(Base):
    __tablename__ = "m"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[S] = mapped_column(S(), default=S.is_a)
class In(BaseModel):
    note: str
class T(Transitions[M, None]):
    go = Transition(S.is_a, S.is_b, form=In)
    @go.execute
    def keep(self, m, data):
        return dict(data)
m = M(id=1, state=S.is_a)
try:
    T().go(m, data={})
except TransitionDataInvalid as e:
    assert list(e.errors) == ["note"], e.errors
assert T().go.form(m) is None
assert T().go.schema()["required"] == ["note"]
assert T().go(m, data={"note": "x"}).results == {"keep": {"note": "x"}}
assert m.state.is_b and "wtforms" not in sys.modules
'''
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ requirement schemas


class ReviewForm(Form):
    """Send a document to review.

    Second paragraph, not in the schema.
    """

    note = StringField("Note", validators=[InputRequired(), Length(min=3, max=20)], description="Why now")
    body = TextAreaField("Body", validators=[Opt(), Length(max=50)])
    pages = IntegerField("Pages", validators=[DataRequired(), NumberRange(min=1, max=500)])
    weight = FloatField("Weight", validators=[Opt(), NumberRange(min=0.5)])
    price = DecimalField("Price", validators=[Opt(), NumberRange(min=Decimal("0"), max=Decimal("99.5"))])
    urgent = BooleanField("Urgent")
    agree = BooleanField("I agree", validators=[DataRequired()])
    due = DateField("Due", validators=[Opt()])
    at = DateTimeField("At", validators=[Opt()])
    local = DateTimeLocalField("Local", format="%Y-%m-%dT%H:%M", validators=[Opt()])
    kind = SelectField("Kind", choices=[("a", "Article"), ("b", "Book")], validators=[InputRequired()])
    size = SelectField("Size", choices=[(1, "Small"), (2, "Large")], coerce=int, validators=[Opt()])
    tone = RadioField("Tone", choices=["calm", "loud"], validators=[Opt()])
    labels = SelectMultipleField("Labels", choices=[("x", "X"), ("y", "Y")], validators=[Opt()])
    colour = StateSelectField(ColourState, "Colour", validators=[Opt()])
    code = StringField("Code", validators=[Opt(), Regexp(r"[A-Z]{2}\d+")])
    level = StringField("Level", validators=[Opt(), AnyOf(["low", "high"])])
    word = StringField("Word", validators=[Opt(), NoneOf(["no"])])


class ReviewIn(BaseModel):
    """What a reviewer is asked."""

    note: str = Field(min_length=3, max_length=20, description="Why now")
    pages: int = Field(ge=1, le=500)
    due: Optional[dt.date] = None
    colour: ColourState = ColourState.is_red


class DocTransitions(Transitions[Doc, str]):
    log = DocLog

    review = Transition(DocState.is_draft, DocState.is_review, form=ReviewForm, meta={"button": "primary", "n": 1})
    publish = Transition(DocState.is_review, DocState.is_published, form=ReviewIn, title="Publish now")
    delete = Transition(DocState.is_open, DocState.is_deleted)

    @review.execute
    @publish.execute
    def record(self, doc: Doc, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict(data)

    @delete.permission
    def is_admin(self, doc: Doc) -> bool:
        """Only an admin may delete."""
        return self.actor == "admin"


FULL = {
    "note": "abcd",
    "body": "text",
    "pages": 3,
    "weight": 1.5,
    "price": 9.5,
    "urgent": True,
    "agree": True,
    "due": "2026-05-01",
    "at": "2026-05-01T10:00:00Z",
    "local": "2026-05-01T10:00",
    "kind": "a",
    "size": 2,
    "tone": "calm",
    "labels": ["x", "y"],
    "colour": "g",
    "code": "AB12",
    "level": "low",
    "word": "yes",
}


def test_wtforms_schema_describes_fields_and_validators() -> None:
    schema = DocTransitions().review.schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Review"
    assert schema["description"] == "Send a document to review."
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["note", "pages", "agree", "kind"]
    props = schema["properties"]
    assert props["note"] == {"title": "Note", "description": "Why now", "type": "string", "minLength": 3, "maxLength": 20}
    assert props["body"] == {"title": "Body", "type": "string", "maxLength": 50}
    assert props["pages"] == {"title": "Pages", "type": "integer", "not": {"const": 0}, "minimum": 1, "maximum": 500}
    assert props["weight"] == {"title": "Weight", "type": "number", "minimum": 0.5}
    assert props["price"] == {"title": "Price", "type": "number", "minimum": 0.0, "maximum": 99.5}
    assert props["urgent"] == {"title": "Urgent", "type": "boolean"}
    assert props["agree"] == {"title": "I agree", "type": "boolean", "const": True}
    assert props["due"] == {"title": "Due", "type": "string", "format": "date"}
    assert props["at"] == {"title": "At", "type": "string", "format": "date-time"}
    assert props["local"]["pattern"] == r"^(?:\d{4}-\d{1,2}-\d{1,2}T\d{1,2}:\d{1,2})$"
    assert props["kind"] == {
        "title": "Kind",
        "type": "string",
        "enum": ["a", "b"],
        "oneOf": [{"const": "a", "title": "Article"}, {"const": "b", "title": "Book"}],
        "minLength": 1,
    }
    assert props["size"]["type"] == "integer" and props["size"]["enum"] == [1, 2]
    assert props["tone"]["enum"] == ["calm", "loud"]
    assert props["labels"]["type"] == "array"
    assert props["labels"]["items"]["enum"] == ["x", "y"]
    assert props["colour"]["oneOf"][:2] == [{"const": "r", "title": "Red"}, {"const": "g", "title": "Go"}]
    assert props["code"]["pattern"] == r"^(?:[A-Z]{2}\d+)"
    assert props["level"]["enum"] == ["low", "high"]
    assert props["word"]["not"] == {"enum": ["no"]}


# (data, accepted): what the schema accepts, the transition accepts, and the other way round.
AGREEMENT: list[tuple[dict[str, Any], bool]] = [
    (FULL, True),
    ({"note": "abcd", "pages": 1, "agree": True, "kind": "b"}, True),
    ({**FULL, "colour": None}, False),
    ({**FULL, "at": "2026-05-01T10:00:00+02:00"}, True),
    ({**FULL, "at": "2026-05-01 10:00:00"}, True),  # WTForms' own format is an RFC 3339 variant
    ({"pages": 1, "agree": True, "kind": "a"}, False),  # note missing
    ({**FULL, "note": "ab"}, False),
    ({**FULL, "note": "x" * 21}, False),
    ({**FULL, "note": ""}, False),
    ({**FULL, "pages": 0}, False),
    ({**FULL, "pages": 501}, False),
    ({**FULL, "weight": 0.1}, False),
    ({**FULL, "price": 100}, False),
    ({**FULL, "agree": False}, False),
    ({**FULL, "due": "May 1st"}, False),
    ({**FULL, "local": "tomorrow"}, False),
    ({**FULL, "kind": "c"}, False),
    ({**FULL, "size": 3}, False),
    ({**FULL, "tone": "shrill"}, False),
    ({**FULL, "labels": ["z"]}, False),
    ({**FULL, "colour": "b"}, False),
    ({**FULL, "code": "ab12"}, False),
    ({**FULL, "level": "mid"}, False),
    ({**FULL, "word": "no"}, False),
    ({**FULL, "extra": 1}, False),
]


@pytest.mark.parametrize(("data", "accepted"), AGREEMENT)
def test_schema_and_form_agree(data: dict[str, Any], accepted: bool) -> None:
    tx = DocTransitions()
    validator = Draft202012Validator(tx.review.schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert validator.is_valid(data) is accepted, list(validator.iter_errors(data))
    doc = Doc(id=1, state=DocState.is_draft, colour=ColourState.is_red)
    if accepted:
        tx.review(doc, data=data)
        assert doc.state.is_review
    else:
        with pytest.raises(TransitionDataInvalid):
            tx.review(doc, data=data)
        assert doc.state.is_draft


def test_rfc3339_datetimes_are_accepted_through_data() -> None:
    doc = Doc(id=1, state=DocState.is_draft, colour=ColourState.is_red)
    applied = DocTransitions().review(doc, data={**FULL, "at": "2026-05-01T10:00:00Z", "due": "2026-05-02"})
    data = applied.results["record"]
    assert isinstance(data, dict)
    assert data["at"] == dt.datetime(2026, 5, 1, 10, tzinfo=dt.timezone.utc)
    assert data["due"] == dt.date(2026, 5, 2)
    assert data["colour"] is ColourState.is_green


def test_pydantic_model_schema_and_validation() -> None:
    tx = DocTransitions()
    schema = tx.publish.schema()
    Draft202012Validator.check_schema(schema)
    assert schema["title"] == "Publish now"
    assert schema["description"] == "What a reviewer is asked."
    assert schema["required"] == ["note", "pages"]
    assert schema["properties"]["pages"] == {"maximum": 500, "minimum": 1, "title": "Pages", "type": "integer"}
    assert schema["$defs"]["ColourState"]["enum"] == ["r", "g"]
    assert schema["properties"]["colour"]["default"] == "r"

    doc = Doc(id=1, state=DocState.is_review, colour=ColourState.is_red)
    with pytest.raises(TransitionDataInvalid) as error:
        tx.publish(doc, data={"note": "ab", "colour": "b"})
    assert set(error.value.errors) == {"note", "pages", "colour"}
    assert error.value.errors["note"] == ["String should have at least 3 characters"]
    assert "allowed: 'r' (is_red), 'g' (is_green)" in error.value.errors["colour"][0]
    assert doc.state.is_review
    with pytest.raises(TransitionDataInvalid) as error:
        tx.publish(doc)  # an empty submission
    assert set(error.value.errors) == {"note", "pages"}

    applied = tx.publish(doc, data={"note": "abcd", "pages": "7", "due": "2026-05-01", "colour": "g"})
    assert applied.results["record"] == {
        "note": "abcd", "pages": 7, "due": dt.date(2026, 5, 1), "colour": ColourState.is_green,
    }
    assert doc.state.is_published
    assert tx.publish.form(doc) is None


def test_pydantic_model_instance_as_form() -> None:
    tx = DocTransitions()
    doc = Doc(id=1, state=DocState.is_review, colour=ColourState.is_red)
    with pytest.raises(TypeError, match="takes a ReviewIn"):
        tx.publish(doc, form=DocOut(id=1, state=1, colour="r"))
    with pytest.raises(TypeError, match="not both"):
        tx.publish(doc, data={}, form=ReviewIn(note="abc", pages=1))
    applied = tx.publish(doc, form=ReviewIn(note="abc", pages=2))
    assert applied.results["record"] == {"note": "abc", "pages": 2, "due": None, "colour": ColourState.is_red}


def test_no_requirements_is_an_empty_object() -> None:
    schema = DocTransitions().delete.schema()
    Draft202012Validator.check_schema(schema)
    assert schema == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Delete",
        "type": "object",
        "properties": {},
    }


class _Lazy:
    """A lazily translated string: rendered with str()."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text.upper()


class LazyForm(Form):
    name = StringField(_Lazy("name"), description=_Lazy("the name"))  # type: ignore[arg-type]


class LazyTransitions(Transitions[Doc, str]):
    archive = Transition(DocState.is_draft, DocState.is_review, title=_Lazy("archive"), form=LazyForm,
                         meta={"label": _Lazy("sure?"), "sizes": (1, 2), "nested": {"k": _Lazy("v")}})

    @archive.form
    def per_object(self, doc: Doc) -> type[Form] | None:
        return LazyForm if not doc.pinned else None


def test_describe_lists_every_transition_in_order_json_ready() -> None:
    doc = Doc(id=7, state=DocState.is_draft, colour=ColourState.is_red)
    described = DocTransitions(actor="bob").describe(doc)
    assert json.loads(json.dumps(described)) == described
    assert [d["name"] for d in described] == ["review", "publish", "delete"]
    review, publish, delete = described
    assert review["title"] == "Review" and review["allowed"] is True and review["reasons"] == []
    assert review["meta"] == {"button": "primary", "n": 1}
    assert review["schema"] == DocTransitions().review.schema()
    assert publish["allowed"] is False
    assert publish["reasons"] == [{"kind": "state", "message": "Doc (new, id %#x) is Draft; publish needs In review" % id(doc)}]
    assert delete["reasons"] == [{"kind": "permission", "message": "Only an admin may delete."}]
    assert delete["schema"]["properties"] == {}
    for entry in described:
        Draft202012Validator.check_schema(entry["schema"])
    assert DocTransitions(actor="admin").describe(doc)[2]["allowed"] is True


def test_lazy_titles_and_meta_are_rendered_and_factories_need_the_object() -> None:
    doc = Doc(id=7, state=DocState.is_draft, colour=ColourState.is_red, pinned=False)
    (entry,) = LazyTransitions().describe(doc)
    assert json.loads(json.dumps(entry)) == entry
    assert entry["title"] == "ARCHIVE"
    assert entry["meta"] == {"label": "SURE?", "sizes": [1, 2], "nested": {"k": "V"}}
    assert entry["schema"]["properties"]["name"] == {"title": "NAME", "description": "THE NAME", "type": "string"}
    with pytest.raises(TypeError, match="chooses its form per object; pass the object"):
        LazyTransitions().archive.schema()
    doc.pinned = True
    assert LazyTransitions().archive.schema(doc)["properties"] == {}


# ------------------------------------------------------------------ database


@pytest.fixture
def db(engine: sa.Engine, create_all: CreateAll) -> Session:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add(Doc(id=1, title="one", state=DocState.is_review, colour=ColourState.is_green))
        session.commit()
    session = Session(engine)
    yield session  # type: ignore[misc]
    session.close()


def test_models_from_loaded_rows_and_pydantic_data_in_history(db: Session, engine: sa.Engine) -> None:
    doc = db.get_one(Doc, 1)
    assert DocOut.model_validate(doc, from_attributes=True).model_dump(mode="json") == {
        "id": 1, "state": 2, "colour": "g", "maybe": None,
    }
    tx = DocTransitions(actor="ann")
    tx.publish(doc, data={"note": "good", "pages": 2, "due": "2026-05-01"})
    db.commit()
    (row,) = tx.history(doc)
    assert (row.from_value, row.to_value) == ("2", "3")
    assert row.data == {"note": "good", "pages": 2, "due": "2026-05-01", "colour": "r"}
    with engine.connect() as conn:
        assert conn.scalar(sa.select(Doc.state).where(Doc.state.is_published)) is DocState.is_published
    db.expire_all()
    assert DocOut.model_validate(db.get_one(Doc, 1), from_attributes=True).state is DocState.is_published
