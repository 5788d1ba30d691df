"""Fault injection: a transition that fails leaves database, objects and the caller's transaction as before.

Every case runs on SQLite, PostgreSQL and MariaDB. The caller has earlier work
in the same transaction, flushed (a new ``Owner``) and unflushed (an edited
owner note); the fault is injected at one point of one path; then:

* the exception reaching the caller is the one injected (the same object
  when a hook raised it), raised by the call itself;
* the transitioned objects, the related objects, ``session.new`` and
  ``session.dirty`` are exactly as before;
* the caller commits, and the database holds its earlier work and nothing of
  the failed transition (states, hook columns, onupdate columns, history).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from wtforms import Form, StringField, ValidationError

from statetype import (
    AppliedStep,
    ConcurrentTransitionError,
    State,
    StateType,
    StateTypeError,
    Step,
    Transition,
    TransitionDataInvalid,
    TransitionLogMixin,
    TransitionNotAllowed,
    Transitions,
)

EPOCH = dt.datetime(2020, 1, 1)


class FState(StateType[int]):
    is_draft = State(1, "Draft")
    is_live = State(2, "Live")
    is_archived = State(3, "Archived")


class Base(DeclarativeBase):
    pass


class Owner(Base):
    __tablename__ = "f_owner"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40))
    note: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)


class Doc(Base):
    __tablename__ = "f_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    title: Mapped[str] = mapped_column(sa.String(40))
    stamp: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=EPOCH)
    updated_at: Mapped[dt.datetime] = mapped_column(default=EPOCH, onupdate=lambda: dt.datetime(2030, 1, 1))
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("f_owner.id"))
    owner: Mapped[Owner] = relationship()
    items: Mapped[list[Item]] = relationship(back_populates="doc", order_by="Item.id")


class Item(Base):
    __tablename__ = "f_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[FState] = mapped_column(FState(), default=FState.is_draft)
    label: Mapped[str] = mapped_column(sa.String(40), default="item")
    doc_id: Mapped[int] = mapped_column(sa.ForeignKey("f_doc.id"))
    doc: Mapped[Doc] = relationship(back_populates="items")


class Log(TransitionLogMixin, Base):
    __tablename__ = "f_log"


class RejectingLog(TransitionLogMixin, Base):
    """History rows the database rejects: a NOT NULL column statetype does not fill."""

    __tablename__ = "f_rejecting_log"
    required: Mapped[str] = mapped_column(sa.String(10))


class Boom(Exception):
    pass


class NoteForm(Form):
    note = StringField()

    def validate_note(self, field: StringField) -> None:
        raise ValidationError("injected validator failure")


def registries(point: str) -> tuple[type[Transitions[Doc, str]], type[Transitions[Item, str]]]:
    """A Doc registry and an Item registry that fail at ``point``."""
    log: type[TransitionLogMixin] = RejectingLog if point.startswith("history") else Log

    class ItemTx(Transitions[Item, str]):
        archive = Transition(FState.is_draft, FState.is_archived)

        @archive.execute
        def mark(self, item: Item, data: Mapping[str, Any]) -> None:
            item.label = "archived"
            if point == "child-execute" and item is item.doc.items[1]:
                raise Boom(point)

    ItemTx.log = log

    class DocTx(Transitions[Doc, str]):
        publish = Transition(FState.is_draft, FState.is_live, form=NoteForm if point == "form" else None)
        archive = Transition(FState.is_draft, FState.is_archived)
        expire = Transition(FState.is_draft, FState.is_archived, after=dt.timedelta(days=1), since="created_at")

        @publish.guard
        def guarded(self, doc: Doc) -> bool:
            if point == "guard":
                raise Boom(point)
            return True

        @guarded.expression
        def _guarded_sql(self, model: type[Doc]) -> sa.ColumnElement[bool]:
            return model.title.is_not(None)

        @publish.permission
        def permitted(self, doc: Doc) -> bool:
            if point == "permission":
                raise Boom(point)
            return True

        @permitted.expression
        def _permitted_sql(self, model: type[Doc]) -> sa.ColumnElement[bool]:
            return sa.true()

        @publish.execute
        def stamp(self, doc: Doc, data: Mapping[str, Any]) -> None:
            doc.stamp = "stamped"
            if point == "execute-related":
                doc.owner.note = "changed by hook"
                raise Boom(point)
            if point == "execute":
                raise Boom(point)
            if point == "null":
                doc.title = None  # type: ignore[assignment]  # the database rejects it

        @stamp.expression
        def _stamp_sql(self, model: type[Doc], now: dt.datetime) -> Mapping[Any, object]:
            return {"stamp": "bulk"}

        @archive.execute
        def archive_stamp(self, doc: Doc, data: Mapping[str, Any]) -> None:
            doc.stamp = "archived"
            if point == "parent-execute":
                raise Boom(point)

        @archive.chain
        def children(self, doc: Doc) -> Iterable[Step]:
            tx = ItemTx(actor=self.actor)
            return [(tx.archive, item) for item in doc.items]

        def before(self, step: AppliedStep[Doc]) -> None:
            if point == "before":
                raise Boom(point)

        def after(self, step: AppliedStep[Doc]) -> None:
            if point == "after":
                raise Boom(point)

        def step_values(self, transition: Transition[Any], now: dt.datetime) -> Mapping[str, Any]:
            if point == "step_values":
                raise Boom(point)
            return {}

    DocTx.log = log
    return DocTx, ItemTx


@pytest.fixture
def db(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as session:
        owner = Owner(name="owner")
        doc = Doc(title="doc", owner=owner, items=[Item(), Item()])
        session.add_all([doc, Doc(title="other", owner=owner)])
        session.commit()
        yield session


def _caller_work(db: Session) -> tuple[Doc, Owner]:
    """The caller's own work before the transition: one flushed new row, one unflushed edit."""
    doc = db.scalars(sa.select(Doc).where(Doc.title == "doc")).one()
    db.add(Owner(name="earlier"))
    db.flush()
    doc.owner.note = "pending edit"
    for item in doc.items:
        item.label  # loaded, so their attributes are compared below
    return doc, doc.owner


def _memory(db: Session, objects: Iterable[Any]) -> tuple[list[dict[str, Any]], set[int], set[int]]:
    """Column values as the objects show them (an expired attribute loads), and the session's new and dirty sets."""
    with db.no_autoflush:
        values = [{a.key: getattr(o, a.key) for a in sa.inspect(type(o)).column_attrs} for o in objects]
    return values, {id(o) for o in db.dirty}, {id(o) for o in db.new}


def _database(db: Session) -> dict[str, Any]:
    with db.get_bind().connect() as conn:  # another connection: only committed data
        return {
            "docs": conn.execute(sa.select(Doc.id, Doc.state, Doc.stamp, Doc.title, Doc.updated_at).order_by(Doc.id)).all(),
            "items": conn.execute(sa.select(Item.id, Item.state, Item.label).order_by(Item.id)).all(),
            "log": conn.scalar(sa.select(sa.func.count()).select_from(Log)),
            "owners": conn.execute(sa.select(Owner.name, Owner.note).order_by(Owner.id)).all(),
        }


# point -> (how to call, expected exception type)
CASES: dict[str, tuple[str, type[BaseException]]] = {
    "guard": ("publish", Boom),
    "permission": ("publish", Boom),
    "form": ("publish", TransitionDataInvalid),
    "execute": ("publish", Boom),
    "execute-related": ("publish", Boom),
    "before": ("publish", Boom),
    "after": ("publish", Boom),
    "step_values": ("publish", Boom),
    "null": ("publish", sa.exc.DBAPIError),
    "history": ("publish", sa.exc.DBAPIError),
    "parent-execute": ("archive", Boom),
    "child-execute": ("archive", Boom),
    "history-chain": ("archive", sa.exc.DBAPIError),
    "history-bulk": ("bulk", sa.exc.DBAPIError),
    "history-run_due": ("run_due", sa.exc.DBAPIError),
    "step_values-bulk": ("bulk", Boom),
}


@pytest.mark.parametrize("point", list(CASES))
def test_a_fault_leaves_everything_as_before(db: Session, point: str) -> None:
    how, expected = CASES[point]
    if point == "step_values-bulk":
        point = "step_values"
    DocTx, _ = registries(point)
    tx = DocTx(actor="ann")
    doc, owner = _caller_work(db)
    objects = [doc, owner, *doc.items]
    memory = _memory(db, objects)
    stored = _database(db)
    with pytest.raises(expected) as raised:
        if how == "publish":
            tx.publish(doc)
        elif how == "archive":
            tx.archive(doc)
        elif how == "bulk":
            tx.publish.bulk(db)
        else:
            tx.run_due(db, now=EPOCH + dt.timedelta(days=2))
    if expected is Boom:
        assert raised.value.args == (point,)
    now = _memory(db, objects)
    for index, (got, want) in enumerate(zip(now[0], memory[0])):
        assert got == want, (index, got, want)
    assert now == memory
    assert owner.note == "pending edit"
    db.commit()  # the caller's transaction is intact and commits its own work
    after = _database(db)
    assert after["docs"] == stored["docs"]
    assert after["items"] == stored["items"]
    assert after["log"] == 0
    assert [name for name, _ in after["owners"]] == ["owner", "earlier"]
    assert after["owners"][0] == ("owner", "pending edit")


def test_a_failed_flush_the_call_triggers_leaves_the_caller_able_to_commit(db: Session) -> None:
    DocTx, _ = registries("none")
    _caller_work(db)
    broken = Doc(title=None, owner_id=1)  # type: ignore[arg-type]  # NOT NULL: the flush fails
    db.add(broken)
    with pytest.raises(sa.exc.DBAPIError):
        DocTx(actor="ann").publish(broken)
    assert broken in db.new and broken.state.is_draft
    db.expunge(broken)
    db.commit()
    assert [name for name, _ in _database(db)["owners"]] == ["owner", "earlier"]


def test_a_commit_that_fails_after_a_successful_call_runs_no_hook_and_restores_objects(db: Session) -> None:
    DocTx, _ = registries("none")
    calls: list[str] = []

    class Notifying(DocTx):  # type: ignore[valid-type, misc]
        pass

    @Notifying.publish.after_commit
    def notify(self: object, step: AppliedStep[Doc]) -> None:
        calls.append("notified")

    try:
        doc, _ = _caller_work(db)
        Notifying(actor="ann").publish(doc)
        assert doc.state.is_live
        db.add(Owner(name=None))  # type: ignore[arg-type]  # makes the commit's flush fail
        with pytest.raises(sa.exc.DBAPIError):
            db.commit()
        db.rollback()
        assert calls == []
        assert doc.state.is_draft and doc.stamp is None  # the database's values again
    finally:
        Notifying.publish.after_commits.clear()


@pytest.mark.parametrize("chain", [False, True])
def test_a_rolled_back_savepoint_of_the_caller_restores_the_objects(db: Session, chain: bool) -> None:
    DocTx, _ = registries("none")
    tx = DocTx(actor="ann")
    doc = db.scalars(sa.select(Doc).where(Doc.title == "doc")).one()
    items = list(doc.items)
    with db.begin_nested() as savepoint:
        tx.archive(doc) if chain else tx.publish(doc)
        assert not doc.state.is_draft
        savepoint.rollback()
    assert doc.state.is_draft and doc.stamp is None
    assert all(item.state.is_draft for item in items)
    tx.publish(doc)  # no false conflict: the object agrees with the database
    db.commit()
    assert _database(db)["docs"][0][1] == FState.is_live


def test_a_full_rollback_restores_the_objects(db: Session) -> None:
    DocTx, _ = registries("none")
    doc = db.scalars(sa.select(Doc).where(Doc.title == "doc")).one()
    DocTx(actor="ann").publish(doc)
    db.rollback()
    assert doc.state.is_draft and doc.stamp is None


def test_a_hook_added_after_the_first_call_applies_from_the_next_call(db: Session) -> None:
    DocTx, _ = registries("none")
    other = db.scalars(sa.select(Doc).where(Doc.title == "other")).one()
    doc = db.scalars(sa.select(Doc).where(Doc.title == "doc")).one()
    DocTx(actor="ann").publish(other)
    db.commit()

    @DocTx.publish.permission
    def nobody(self: object, doc: Doc) -> bool:
        return False

    tx = DocTx(actor="ann")
    assert not tx.publish.check(doc)
    with pytest.raises(TransitionNotAllowed):
        tx.publish(doc)
    assert doc.state.is_draft


def test_chain_children_use_the_top_level_actor(db: Session) -> None:
    _, ItemTx = registries("none")

    class OnlyBob(ItemTx):  # type: ignore[valid-type, misc]
        pass

    @OnlyBob.archive.permission
    def bob(self: Transitions[Item, str], item: Item) -> bool:
        return self.actor == "bob"

    class DocTx(Transitions[Doc, str]):
        log = Log
        archive = Transition(FState.is_draft, FState.is_archived)

        @archive.chain
        def children(self, doc: Doc) -> Iterable[Step]:
            tx = OnlyBob(actor="bob")  # another actor than the caller's
            return [(tx.archive, item) for item in doc.items]

    doc = db.scalars(sa.select(Doc).where(Doc.title == "doc")).one()
    verdict = DocTx(actor="ann").archive.check(doc)
    assert [r.kind for r in verdict.reasons] == ["chain", "chain"]
    with pytest.raises(TransitionNotAllowed):
        DocTx(actor="ann").archive(doc)
    DocTx(actor="bob").archive(doc)
    db.commit()
    assert {h.actor for h in db.scalars(sa.select(Log))} == {"bob"}


def test_detached_and_deleted_objects_are_refused(db: Session) -> None:
    DocTx, _ = registries("none")
    tx = DocTx(actor="ann")
    doc = db.scalars(sa.select(Doc).where(Doc.title == "doc")).one()
    other = db.scalars(sa.select(Doc).where(Doc.title == "other")).one()
    db.expunge(other)
    with pytest.raises(StateTypeError, match="Doc 2 is detached"):
        tx.publish(other)
    assert other.state.is_draft
    db.delete(doc)
    with pytest.raises(StateTypeError, match="Doc 1 is deleted"):
        tx.publish(doc)
    assert doc.state.is_draft
    db.rollback()
    assert db.scalar(sa.select(sa.func.count()).select_from(Log)) == 0


def test_a_row_deleted_by_another_transaction_is_a_conflict_saying_so(db: Session, engine: sa.Engine) -> None:
    DocTx, _ = registries("none")
    other = db.scalars(sa.select(Doc).where(Doc.title == "other")).one()
    db.commit()
    other.state  # loaded again
    with engine.begin() as conn:
        conn.execute(sa.delete(Doc).where(Doc.id == other.id))
    with pytest.raises(ConcurrentTransitionError, match="deleted by another transaction"):
        DocTx(actor="ann").publish(other)
    db.rollback()


def test_a_transient_object_writes_its_history_and_hooks_at_its_first_flush(db: Session) -> None:
    DocTx, _ = registries("none")
    calls: list[str] = []

    class Notifying(DocTx):  # type: ignore[valid-type, misc]
        pass

    @Notifying.publish.after_commit
    def notify(self: object, step: AppliedStep[Doc]) -> None:
        calls.append(step.obj.title)

    try:
        fresh = Doc(title="fresh", owner_id=1)
        Notifying(actor="ann").publish(fresh)
        assert fresh.state.is_live and calls == []
        db.add(fresh)
        db.flush()
        db.rollback()  # the first flush did not commit: neither history nor hook
        assert calls == []
        again = Doc(title="again", owner_id=1)
        Notifying(actor="ann").publish(again)
        db.add(again)
        db.commit()
        assert calls == ["again"]
        logged = db.scalars(sa.select(Log)).all()
        assert [(h.object_id, h.transition, h.from_value, h.to_value) for h in logged] == [
            (str(again.id), "publish", "1", "2")
        ]
    finally:
        Notifying.publish.after_commits.clear()


def test_sql_expressions_assigned_by_a_hook_are_evaluated_by_the_database(db: Session) -> None:
    class Tx(Transitions[Doc, str]):
        publish = Transition(FState.is_draft, FState.is_live)

        @publish.execute
        def stamp(self, doc: Doc, data: Mapping[str, Any]) -> None:
            doc.stamp = sa.func.upper("shouted")  # type: ignore[assignment]

    doc = db.scalars(sa.select(Doc).where(Doc.title == "doc")).one()
    Tx().publish(doc)
    assert doc.stamp == "SHOUTED"  # loaded back from the database
    db.commit()
    assert _database(db)["docs"][0][2] == "SHOUTED"
