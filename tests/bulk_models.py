"""Models for the set-based and concurrency tests (bulk, run_due, races, async).

``make_models(prefix)`` builds a fresh declarative base with tables named
``<prefix>_...``, so every test module gets tables of its own in the one
database a pytest worker shares between modules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statetype import AppliedStep, State, StateType, Step, Transition, TransitionLogMixin, Transitions
from statetype.log import UTCDateTime

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


class DocState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_withdrawn = State(3, "Withdrawn")
    is_archived = State(5, "Archived")
    is_deleted = State(4, "Deleted", final=True)
    is_live = is_published | is_withdrawn

    @is_draft.conditional
    def is_flagged_draft(self, doc: Any) -> bool:
        return bool(doc.flagged)

    @is_flagged_draft.expression
    def _is_flagged_draft_sql(self, doc: Any) -> ColumnElement[bool]:
        return doc.flagged.is_(True)

    is_flagged_or_withdrawn = is_flagged_draft | is_withdrawn


@dataclasses.dataclass
class Models:
    """One set of mapped classes and registries, built by ``make_models``."""

    Base: type[DeclarativeBase]
    Owner: type[Any]
    Doc: type[Any]
    Log: type[Any]
    Tx: type[Transitions[Any, Any]]
    PlainTx: type[Transitions[Any, Any]]
    calls: list[tuple[str, int, str | None]]


def make_models(prefix: str) -> Models:
    """Owner -> Doc with history; ``Tx`` has SQL forms for every hook, ``PlainTx`` has no hooks."""

    class Base(DeclarativeBase):
        pass

    class Owner(Base):
        __tablename__ = f"{prefix}_owner"
        id: Mapped[int] = mapped_column(primary_key=True)
        state: Mapped[DocState] = mapped_column(DocState(), default=DocState.is_published)

    class Doc(Base):
        __tablename__ = f"{prefix}_doc"
        __table_args__ = (sa.Index(f"ix_{prefix}_doc_state_created", "state", "created_at"),)
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey(f"{prefix}_owner.id"))
        editor_id: Mapped[int | None]
        state: Mapped[DocState] = mapped_column(DocState(), default=DocState.is_draft)
        flagged: Mapped[bool] = mapped_column(default=False)
        created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=lambda: EPOCH)
        published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
        status_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
        status_by: Mapped[str | None] = mapped_column(sa.String(50))
        version: Mapped[int] = mapped_column(default=0)

    class Log(TransitionLogMixin, Base):
        __tablename__ = f"{prefix}_log"

    calls: list[tuple[str, int, str | None]] = []

    class Tx(Transitions[Doc, str]):
        """Every hook has its SQL form, so every transition works set-based."""

        log = Log

        publish = Transition(DocState.is_draft | DocState.is_withdrawn, DocState.is_published)
        withdraw = Transition(DocState.is_published, DocState.is_withdrawn)
        delete = Transition(DocState.is_draft | DocState.is_live, DocState.is_deleted)
        archive = Transition(DocState.is_flagged_or_withdrawn, DocState.is_archived)
        touch = Transition(DocState.is_published, DocState.is_published)
        expire = Transition(DocState.is_draft, DocState.is_deleted, after=dt.timedelta(days=30), since="created_at")
        retire = Transition(DocState.is_withdrawn, DocState.is_archived, after=dt.timedelta(days=7), since="created_at")

        @publish.guard
        def owner_published(self, doc: Doc) -> bool:
            """The owner must be published."""
            if doc.owner_id is None:
                return True
            owner = sa.inspect(doc).session.get(Owner, doc.owner_id)
            return owner is not None and bool(owner.state.is_published)

        @owner_published.expression
        def _owner_published_sql(self, doc: type[Doc]) -> ColumnElement[bool]:
            return sa.or_(
                doc.owner_id.is_(None),
                sa.exists().where(Owner.id == doc.owner_id, Owner.state == DocState.is_published),
            )

        @publish.permission
        def is_editor(self, doc: Doc) -> bool:
            """You must edit this document."""
            return doc.editor_id is None or str(doc.editor_id) == self.actor

        @is_editor.expression
        def _is_editor_sql(self, doc: type[Doc]) -> ColumnElement[bool]:
            if self.actor is None or not self.actor.isdigit():
                return doc.editor_id.is_(None)
            return sa.or_(doc.editor_id.is_(None), doc.editor_id == int(self.actor))

        @publish.execute
        def stamp(self, doc: Doc, data: Mapping[str, Any]) -> None:
            doc.published_at = EPOCH
            doc.version = doc.version + 1

        @stamp.expression
        def _stamp_sql(self, doc: type[Doc], now: dt.datetime) -> Mapping[Any, object]:
            return {"published_at": now, doc.version: doc.version + 1}

        @publish.after_commit
        def notify(self, step: AppliedStep[Doc]) -> None:
            calls.append(("publish", step.obj.id, step.from_state.name if step.from_state is not None else None))

        @expire.after_commit
        def expired(self, step: AppliedStep[Doc]) -> None:
            calls.append(("expire", step.obj.id, step.from_state.name if step.from_state is not None else None))

        def step_values(self, transition: Transition[Any], now: dt.datetime) -> Mapping[str, Any]:
            return {"status_start": now, "status_by": self.actor}

    class PlainTx(Transitions[Doc, str]):
        """No hooks: per-row steps are one compare-and-set UPDATE."""

        log = Log
        publish = Transition(DocState.is_draft | DocState.is_withdrawn, DocState.is_published)
        withdraw = Transition(DocState.is_published, DocState.is_withdrawn)
        delete = Transition(DocState.is_draft | DocState.is_live, DocState.is_deleted)

    return Models(Base, Owner, Doc, Log, Tx, PlainTx, calls)


def refusing_registries(m: Models) -> dict[str, type[Transitions[Any, Any]]]:
    """Registries whose ``go`` cannot run set-based, keyed by the hook bulk must name."""
    Doc = m.Doc

    class NoGuardSQL(Transitions[Doc, str]):
        go = Transition(DocState.is_draft, DocState.is_published)

        @go.guard
        def python_only_guard(self, doc: Any) -> bool:
            return True

    class NoPermissionSQL(Transitions[Doc, str]):
        go = Transition(DocState.is_draft, DocState.is_published)

        @go.permission
        def python_only_permission(self, doc: Any) -> bool:
            return True

    class NoExecuteSQL(Transitions[Doc, str]):
        go = Transition(DocState.is_draft, DocState.is_published)

        @go.execute
        def python_only_stamp(self, doc: Any, data: Mapping[str, Any]) -> None:
            doc.version += 1

    class Chained(Transitions[Doc, str]):
        go = Transition(DocState.is_draft, DocState.is_deleted)

        @go.chain
        def children(self, doc: Any) -> Iterable[Step]:
            return []

    return {
        "python_only_guard": NoGuardSQL,
        "python_only_permission": NoPermissionSQL,
        "python_only_stamp": NoExecuteSQL,
        "children": Chained,
    }


def history_chains(session: Any, m: Models) -> dict[int, list[tuple[str | None, str]]]:
    """(from_value, to_value) of every Doc's history rows, oldest first, read from the database."""
    rows = session.execute(
        sa.select(m.Log.object_id, m.Log.from_value, m.Log.to_value)
        .where(m.Log.table_name == m.Doc.__tablename__)
        .order_by(m.Log.id)
    ).all()
    chains: dict[int, list[tuple[str | None, str]]] = {}
    for object_id, from_value, to_value in rows:
        chains.setdefault(int(object_id), []).append((from_value, to_value))
    return chains


def assert_history_consistent(session: Any, m: Models, initial: Mapping[int, str] | str = "1") -> None:
    """Every Doc's history is an unbroken chain from ``initial`` (its first state) to the state it holds now."""
    chains = history_chains(session, m)
    states = {doc_id: state for doc_id, state in session.execute(sa.select(m.Doc.id, m.Doc.state))}
    for doc_id, state in states.items():
        current = initial if isinstance(initial, str) else initial[doc_id]
        for from_value, to_value in chains.get(doc_id, []):
            assert from_value == current, f"doc {doc_id}: history {chains[doc_id]} breaks at {from_value}"
            current = to_value
        assert current == str(state.value), f"doc {doc_id} holds {state!r}, history ends at {current}"


# ------------------------------------------------------------------ concurrency helpers


def guarded_engine(url: sa.URL, workers: int) -> sa.Engine:
    """An engine whose lock waits end in an error, so a deadlock fails instead of hanging."""
    if url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {"options": "-c lock_timeout=10000 -c statement_timeout=20000"}
    else:
        connect_args = {"init_command": "SET SESSION innodb_lock_wait_timeout=10", "read_timeout": 30}
    return sa.create_engine(url, pool_size=workers + 2, connect_args=connect_args)


def run_workers(target: Callable[[int], None], count: int, timeout: float = 60) -> list[BaseException]:
    """Start ``count`` threads at once; returns their exceptions. A thread still alive fails the test."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count, timeout=timeout)

    def body(n: int) -> None:
        try:
            barrier.wait()
            target(n)
        except BaseException as error:  # collected and reported by the test
            errors.append(error)

    threads = [threading.Thread(target=body, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    alive = [t for t in threads if t.is_alive()]
    assert not alive, f"{len(alive)} worker(s) still running after {timeout}s: deadlock or lost wake-up"
    return errors
