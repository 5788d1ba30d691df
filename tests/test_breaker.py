"""Adversarial cases against the transactional contract ("What atomic means", "After commit").

Cases written by trying to break the contract as a skeptical user would.
Each found a defect that is now fixed, or held already; all are kept as
regression tests.
The checks are those of ``test_faults.py``: the exception raised by the call,
the database read through another connection, the objects, and the caller's
earlier work committing afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from statetype import AppliedStep, State, StateType, StateTypeError, Transition, TransitionLogMixin, Transitions

EPOCH = dt.datetime(2020, 1, 1)


class BState(StateType[int]):
    is_draft = State(1, "Draft")
    is_live = State(2, "Live")
    is_archived = State(3, "Archived")


class Base(DeclarativeBase):
    pass


class Owner(Base):
    __tablename__ = "brk_owner"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40))


class Doc(Base):
    __tablename__ = "brk_doc"
    __table_args__ = (
        # A business rule the database enforces: a live document has a stamp.
        sa.CheckConstraint("state <> 2 OR stamp IS NOT NULL", name="brk_doc_live_has_stamp"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[BState] = mapped_column(BState(), default=BState.is_draft)
    title: Mapped[str] = mapped_column(sa.String(40))
    stamp: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    audit_id: Mapped[int | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=EPOCH)
    items: Mapped[list[Item]] = relationship(back_populates="doc", order_by="Item.id")


class Item(Base):
    __tablename__ = "brk_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[BState] = mapped_column(BState(), default=BState.is_draft)
    doc_id: Mapped[int] = mapped_column(sa.ForeignKey("brk_doc.id"))
    doc: Mapped[Doc] = relationship(back_populates="items")


class Audit(Base):
    __tablename__ = "brk_audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    what: Mapped[str] = mapped_column(sa.String(40))


class Log(TransitionLogMixin, Base):
    __tablename__ = "brk_log"


class Boom(Exception):
    pass


@pytest.fixture
def db(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    with Session(engine) as session:
        session.add_all([Doc(id=1, title="doc", items=[Item(id=1), Item(id=2)]), Doc(id=2, title="other")])
        session.commit()
        yield session


def _earlier_work(db: Session) -> None:
    """The caller's own flushed work, which must commit whatever the call did."""
    db.add(Owner(name="earlier"))
    db.flush()


def _stored(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:  # another connection: committed data only
        return {
            "docs": conn.execute(sa.select(Doc.id, Doc.state, Doc.stamp).order_by(Doc.id)).all(),
            "items": conn.execute(sa.select(Item.id, Item.state).order_by(Item.id)).all(),
            "owners": conn.scalars(sa.select(Owner.name).order_by(Owner.id)).all(),
            "audits": conn.scalars(sa.select(Audit.what).order_by(Audit.id)).all(),
            "log": conn.scalar(sa.select(sa.func.count()).select_from(Log)),
        }


# ---------------------------------------------------------------- 1. PostgreSQL: a compare-and-set the database rejects


def test_a_rejected_compare_and_set_keeps_the_callers_earlier_work(
    db: Session, engine: sa.Engine, request: pytest.FixtureRequest
) -> None:
    """A plain step (no hook, no history) whose UPDATE a CHECK constraint rejects.

    The docs promise that a failing statement never turns the caller's next
    ``commit()`` into a silent rollback on PostgreSQL. The plain compare-and-set
    runs without a savepoint there, so the transaction is aborted and the
    commit silently loses the caller's earlier flushed work.
    """

    class Tx(Transitions[Doc, str]):
        publish = Transition(BState.is_draft, BState.is_live)

    doc = db.get(Doc, 2)
    assert doc is not None
    _earlier_work(db)
    with pytest.raises(sa.exc.DBAPIError):
        Tx().publish(doc)
    assert doc.state.is_draft
    db.commit()
    assert _stored(engine)["owners"] == ["earlier"]


# ---------------------------------------------------------------- 2. a hook that flushes, then the call fails


def test_a_hook_that_flushes_a_new_row_then_fails_leaves_nothing(db: Session, engine: sa.Engine) -> None:
    """The common "add, flush to get its id" pattern inside an execute hook, then a later hook raises.

    A hook that sends SQL itself (here by flushing) needs ``savepoint = True`` on
    its registry (docs/transitions.md, "What atomic means"): its statements then
    run inside the step's savepoint and are rolled back with it.
    """

    class Tx(Transitions[Doc, str]):
        savepoint = True
        archive = Transition(BState.is_draft, BState.is_archived)

        @archive.execute
        def audit(self, doc: Doc, data: Mapping[str, Any]) -> None:
            session = sa.orm.object_session(doc)
            assert session is not None
            entry = Audit(what=f"archive {doc.id}")
            session.add(entry)
            session.flush()
            doc.audit_id = entry.id

        @archive.execute
        def fail(self, doc: Doc, data: Mapping[str, Any]) -> None:
            raise Boom("later hook")

    doc = db.get(Doc, 2)
    assert doc is not None
    _earlier_work(db)
    with pytest.raises(Boom):
        Tx().archive(doc)
    assert doc.state.is_draft and doc.audit_id is None
    assert not any(isinstance(o, Audit) for o in db.identity_map.values()), "the hook's Audit is still in the session"
    db.commit()
    stored = _stored(engine)
    assert stored["owners"] == ["earlier"]
    assert stored["audits"] == [], "half-applied: the failed call's Audit row was committed"


# ---------------------------------------------------------------- 3. a transition applied from inside a hook


def test_a_transition_applied_by_a_hook_is_undone_when_the_outer_call_fails(db: Session, engine: sa.Engine) -> None:
    """An execute hook applies another registry's transition to a child, then the outer step fails.

    Applying a transition from a hook is SQL the hook sends itself: with
    ``savepoint = True`` on the outer registry the inner step runs inside the
    outer savepoint, and the outer failure undoes it and drops its hooks.
    (A chain is the declarative way to do the same.)
    """
    fired: list[int] = []

    class ItemTx(Transitions[Item, str]):
        archive = Transition(BState.is_draft, BState.is_archived)

        @archive.after_commit
        def notify(self, step: AppliedStep[Item]) -> None:
            fired.append(step.obj.id)

    class Tx(Transitions[Doc, str]):
        savepoint = True
        archive = Transition(BState.is_draft, BState.is_archived)

        @archive.execute
        def archive_first_item(self, doc: Doc, data: Mapping[str, Any]) -> None:
            ItemTx(actor=self.actor).archive(doc.items[0])
            raise Boom("after the inner transition")

    doc = db.get(Doc, 1)
    assert doc is not None
    items = list(doc.items)
    _earlier_work(db)
    with pytest.raises(Boom):
        Tx(actor="ann").archive(doc)
    assert doc.state.is_draft
    child_state_after_failure = items[0].state
    db.commit()
    stored = _stored(engine)
    assert stored["owners"] == ["earlier"]
    assert fired == [], "after_commit of a step of the failed call ran"
    assert child_state_after_failure.is_draft, "the child still shows the failed call's state in memory"
    assert [s for _, s in stored["items"]] == [BState.is_draft, BState.is_draft], "half-applied in the database"


# ---------------------------------------------------------------- 4. run_due with several timed transitions


def test_run_due_is_all_or_nothing_across_its_timed_transitions(db: Session, engine: sa.Engine) -> None:
    """``run_due`` applies each timed transition in its own savepoint, one after the other.

    When the second one fails (here its ``step_values``), the first one's rows
    stay moved in the caller's transaction and its after_commit hooks stay
    scheduled: the call raised, yet it is half-applied.
    """
    fired: list[int] = []

    class Tx(Transitions[Doc, str]):
        log = Log
        expire = Transition(BState.is_draft, BState.is_archived, after=dt.timedelta(days=1), since="created_at")
        retire = Transition(BState.is_live, BState.is_archived, after=dt.timedelta(days=1), since="created_at")

        @expire.after_commit
        def notify(self, step: AppliedStep[Doc]) -> None:
            fired.append(step.obj.id)

        def step_values(self, transition: Transition[Any], now: dt.datetime) -> Mapping[str, Any]:
            if transition.name == "retire":
                raise Boom("retire's step values")
            return {}

    before = _stored(engine)
    _earlier_work(db)
    with pytest.raises(Boom):
        Tx(actor="ann").run_due(db, now=EPOCH + dt.timedelta(days=2))
    db.commit()
    stored = _stored(engine)
    assert stored["owners"] == ["earlier"]
    assert fired == [], "after_commit hooks of the failed run_due ran"
    assert stored["docs"] == before["docs"], "half-applied: the first timed transition's rows were committed"
    assert stored["log"] == 0


# ---------------------------------------------------------------- 5. a session joined to an external transaction


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)  # pysqlite's RELEASE would commit
@pytest.mark.parametrize("outcome", ["rollback", "commit"])
def test_after_commit_waits_for_the_real_commit_of_an_external_transaction(
    db: Session, engine: sa.Engine, outcome: str
) -> None:
    """SQLAlchemy's "join a session into an external transaction" recipe.

    With ``join_transaction_mode="create_savepoint"`` the session's commit()
    only releases a savepoint of the connection's transaction: the hooks wait
    for that transaction, run when it commits and never when it rolls back.
    """
    fired: list[int] = []

    class Tx(Transitions[Doc, str]):
        archive = Transition(BState.is_draft, BState.is_archived)

        @archive.after_commit
        def notify(self, step: AppliedStep[Doc]) -> None:
            fired.append(step.obj.id)

    with engine.connect() as connection:
        outer = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            doc = session.get(Doc, 2)
            assert doc is not None
            Tx().archive(doc)
            session.commit()
            assert fired == []  # a savepoint was released, nothing committed yet
            if outcome == "commit":
                outer.commit()
        if outcome == "rollback":
            outer.rollback()
    stored = _stored(engine)["docs"][1][1]
    if outcome == "rollback":
        assert stored == BState.is_draft  # nothing was committed
        assert fired == [], "after_commit ran although the root transaction was rolled back"
    else:
        assert stored == BState.is_archived
        assert fired == [2]


# ---------------------------------------------------------------- cases that held (kept as regression tests)


class Pair(Base):
    """A composite primary key."""

    __tablename__ = "brk_pair"
    a: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    b: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    state: Mapped[BState] = mapped_column(BState(), default=BState.is_draft)
    note: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)


def test_a_failed_call_inside_the_callers_savepoint_leaves_it_committable(db: Session, engine: sa.Engine) -> None:
    class Tx(Transitions[Doc, str]):
        log = Log
        archive = Transition(BState.is_draft, BState.is_archived)

        @archive.execute
        def stamp(self, doc: Doc, data: Mapping[str, Any]) -> None:
            doc.stamp = "x"

        def after(self, step: AppliedStep[Doc]) -> None:
            raise Boom("after")

    doc = db.get(Doc, 1)
    assert doc is not None
    _earlier_work(db)
    with db.begin_nested():
        db.add(Owner(name="in savepoint"))
        with pytest.raises(Boom):
            Tx().archive(doc)
        assert doc.state.is_draft and doc.stamp is None
    db.commit()
    stored = _stored(engine)
    assert stored["owners"] == ["earlier", "in savepoint"]
    assert stored["docs"][0] == (1, BState.is_draft, None) and stored["log"] == 0


@pytest.mark.parametrize("raised", [KeyboardInterrupt, Boom])
def test_a_hook_that_adds_and_deletes_objects_then_raises_leaves_nothing(
    db: Session, engine: sa.Engine, raised: type[BaseException]
) -> None:
    class Tx(Transitions[Doc, str]):
        log = Log
        archive = Transition(BState.is_draft, BState.is_archived)

        @archive.execute
        def reshape(self, doc: Doc, data: Mapping[str, Any]) -> None:
            session = sa.orm.object_session(doc)
            assert session is not None
            session.add(Audit(what="added"))
            session.delete(doc.items[0])

        def after(self, step: AppliedStep[Doc]) -> None:
            raise raised("after")

    doc = db.get(Doc, 1)
    assert doc is not None
    items = list(doc.items)
    _earlier_work(db)
    with pytest.raises(raised):
        Tx().archive(doc)
    assert doc.state.is_draft and list(doc.items) == items
    assert not db.new and not db.deleted and not db.dirty
    db.commit()
    stored = _stored(engine)
    assert stored["owners"] == ["earlier"] and stored["audits"] == [] and len(stored["items"]) == 2


def test_a_hook_adding_an_invalid_object_is_raised_by_the_call(db: Session, engine: sa.Engine) -> None:
    class Tx(Transitions[Doc, str]):
        archive = Transition(BState.is_draft, BState.is_archived)

        @archive.execute
        def audit(self, doc: Doc, data: Mapping[str, Any]) -> None:
            session = sa.orm.object_session(doc)
            assert session is not None
            session.add(Audit(what=None))  # NOT NULL

    doc = db.get(Doc, 2)
    assert doc is not None
    _earlier_work(db)
    with pytest.raises(sa.exc.DBAPIError):
        Tx().archive(doc)
    assert doc.state.is_draft and not db.new
    db.commit()
    stored = _stored(engine)
    assert stored["owners"] == ["earlier"] and stored["docs"][1][1] == BState.is_draft


def test_composite_keys_fail_and_succeed_cleanly(db: Session, engine: sa.Engine) -> None:
    class Tx(Transitions[Pair, str]):
        log = Log
        archive = Transition(BState.is_draft, BState.is_archived)

        @archive.execute
        def noted(self, pair: Pair, data: Mapping[str, Any]) -> None:
            pair.note = "noted"
            if data.get("fail"):
                raise Boom("composite")

    db.add_all([Pair(a=1, b="x"), Pair(a=1, b="y")])
    db.commit()
    pair = db.get(Pair, (1, "y"))
    assert pair is not None
    with pytest.raises(Boom):
        Tx().archive(pair, data={"fail": True})
    assert pair.state.is_draft and pair.note is None and not db.dirty
    Tx().archive(pair)
    db.commit()
    with engine.connect() as conn:
        assert conn.execute(sa.select(Pair.b, Pair.state, Pair.note).order_by(Pair.b)).all() == [
            ("x", BState.is_draft, None),
            ("y", BState.is_archived, "noted"),
        ]
        assert conn.scalars(sa.select(Log.object_id)).all() == ['[1, "y"]']


# ---------------------------------------------------------------- 6. a conflict on the plain compare-and-set


class _Plain(Transitions[Doc, str]):
    archive = Transition(BState.is_draft, BState.is_archived)


def _time_out_on_a_held_row(db: Session, engine: sa.Engine, caught: tuple[type[BaseException], ...]) -> None:
    """Another connection holds Doc 2's row lock; a plain step (no hook, no history) waits and times out."""
    if engine.dialect.name == "postgresql":
        db.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
    else:
        db.execute(sa.text("SET SESSION innodb_lock_wait_timeout = 1"))
    doc = db.get(Doc, 2)
    assert doc is not None
    with engine.connect() as other:
        other.execute(sa.update(Doc).where(Doc.id == 2).values(title="held"))  # holds the row lock
        try:
            with pytest.raises(caught):
                _Plain().archive(doc)
        finally:
            other.rollback()
    assert doc.state.is_draft


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)  # SQLite has no row locks
def test_a_lock_timeout_on_a_plain_step_is_a_concurrent_transition_error(
    db: Session, engine: sa.Engine, request: pytest.FixtureRequest
) -> None:
    """The docs: a lock timeout (or a deadlock) becomes ``ConcurrentTransitionError``, never a raw driver error.

    A step with no hook and no history takes the cheapest path; it converts too.
    """
    from statetype import ConcurrentTransitionError

    _time_out_on_a_held_row(db, engine, (ConcurrentTransitionError,))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # about PostgreSQL's aborted transactions
def test_a_conflict_on_postgresql_does_not_silently_discard_the_callers_work(
    db: Session, engine: sa.Engine, request: pytest.FixtureRequest
) -> None:
    """After the timed-out compare-and-set, the caller catches the error and commits.

    On PostgreSQL the one-step path runs inside a savepoint, so the caller's
    transaction stays usable and its earlier work commits. (MariaDB rolls back
    only the statement on a lock wait timeout.)
    """
    _earlier_work(db)
    _time_out_on_a_held_row(db, engine, (sa.exc.DBAPIError, StateTypeError))
    try:
        db.commit()
    except sa.exc.SQLAlchemyError:
        return  # a loud failure keeps the contract: the caller knows its work was not committed
    assert _stored(engine)["owners"] == ["earlier"], "commit() returned normally but discarded the caller's work"


# ---------------------------------------------------------------- joined inheritance (held)


class Node(Base):
    __tablename__ = "brk_node"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(10))
    label: Mapped[str] = mapped_column(sa.String(40), default="node")
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "node"}


class Leaf(Node):
    __tablename__ = "brk_leaf"
    id: Mapped[int] = mapped_column(sa.ForeignKey("brk_node.id"), primary_key=True)
    state: Mapped[BState] = mapped_column(BState(), default=BState.is_draft)
    __mapper_args__ = {"polymorphic_identity": "leaf"}


@pytest.mark.parametrize("fail", [False, True])
def test_a_sql_expression_on_the_parent_table_of_a_joined_subclass(db: Session, engine: sa.Engine, fail: bool) -> None:
    class Tx(Transitions[Leaf, str]):
        log = Log
        archive = Transition(BState.is_draft, BState.is_archived)

        @archive.execute
        def shout(self, leaf: Leaf, data: Mapping[str, Any]) -> None:
            leaf.label = sa.func.upper(Node.label)  # type: ignore[assignment]

        def after(self, step: AppliedStep[Leaf]) -> None:
            if fail:
                raise Boom("after")

    db.add(Leaf(id=1, label="quiet"))
    db.commit()
    leaf = db.get(Leaf, 1)
    assert leaf is not None
    _earlier_work(db)
    if fail:
        with pytest.raises(Boom):
            Tx().archive(leaf)
        assert leaf.state.is_draft and leaf.label == "quiet" and not db.dirty
    else:
        Tx().archive(leaf)
        assert leaf.label == "QUIET"
    db.commit()
    with engine.connect() as conn:
        node, leaf_t = Node.__table__, Leaf.__table__
        row = conn.execute(sa.select(node.c.label, leaf_t.c.state).join_from(node, leaf_t)).one()
    assert tuple(row) == (("quiet", BState.is_draft) if fail else ("QUIET", BState.is_archived))
    assert _stored(engine)["owners"] == ["earlier"]
