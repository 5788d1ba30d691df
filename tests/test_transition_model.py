"""Hypothesis stateful test: random transitions, commits and rollbacks against a plain-Python model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from statetype import State, StateType, Transition, TransitionLogMixin, TransitionNotAllowed, Transitions


class DocState(StateType[str]):
    is_draft = State("draft")
    is_review = State("review")
    is_published = State("published")
    is_archived = State("archived", final=True)
    is_open = is_draft | is_review


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "model_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    ready: Mapped[bool] = mapped_column(default=False)
    edits: Mapped[int] = mapped_column(default=0)
    state: Mapped[DocState] = mapped_column(DocState(), default=DocState.is_draft)


class DocLog(TransitionLogMixin, Base):
    __tablename__ = "model_doc_log"


class DocTransitions(Transitions[Doc]):
    log = DocLog
    submit = Transition(DocState.is_draft, DocState.is_review)
    reject = Transition(DocState.is_review, DocState.is_draft)
    publish = Transition(DocState.is_open, DocState.is_published)
    edit = Transition(DocState.is_draft, DocState.is_draft)
    archive = Transition(None, DocState.is_archived)

    @publish.guard
    def is_ready(self, doc: Doc) -> bool:
        return doc.ready

    @edit.execute
    def count(self, doc: Doc, data: Mapping[str, Any]) -> int:
        doc.edits += 1
        return doc.edits


# The reference model: (sources, target, needs ready) per transition.
RULES: dict[str, tuple[set[str], str, bool]] = {
    "submit": ({"draft"}, "review", False),
    "reject": ({"review"}, "draft", False),
    "publish": ({"draft", "review"}, "published", True),
    "edit": ({"draft"}, "draft", False),
    "archive": ({"draft", "review", "published"}, "archived", False),
}


class DocMachine(RuleBasedStateMachine):
    def __init__(self, engine: sa.Engine) -> None:
        super().__init__()
        self.engine = engine
        self.session = Session(engine)
        self.tx = DocTransitions()
        self.docs: list[Doc] = []
        # Reference: current (uncommitted) and committed values per doc index.
        self.current: list[dict[str, Any]] = []
        self.committed: list[dict[str, Any]] = []
        self.steps_committed = 0
        self.steps_pending = 0

    @rule()
    def create(self) -> None:
        if len(self.docs) >= 4:
            return
        doc = Doc()
        self.session.add(doc)
        self.session.commit()
        self.docs.append(doc)
        self.current.append({"state": "draft", "ready": False, "edits": 0})
        self.committed.append(dict(self.current[-1]))
        self.steps_committed += self.steps_pending
        self.steps_pending = 0
        for i, values in enumerate(self.current):
            self.committed[i] = dict(values)

    @precondition(lambda self: bool(self.docs))
    @rule(index=st.integers(0, 3), name=st.sampled_from(sorted(RULES)))
    def apply(self, index: int, name: str) -> None:
        index %= len(self.docs)
        doc = self.docs[index]
        expected = self.current[index]
        sources, target, needs_ready = RULES[name]
        allowed = expected["state"] in sources and (expected["ready"] or not needs_ready)
        bound = getattr(self.tx, name)
        assert bool(bound.check(doc)) is allowed
        if allowed:
            applied = bound(doc)
            assert applied.steps[0].to_state.value == target
            expected["state"] = target
            if name == "edit":
                expected["edits"] += 1
                assert applied.results == {"count": expected["edits"]}
            self.steps_pending += 1
        else:
            with pytest.raises(TransitionNotAllowed):
                bound(doc)

    @precondition(lambda self: bool(self.docs))
    @rule(index=st.integers(0, 3), ready=st.booleans())
    def set_ready(self, index: int, ready: bool) -> None:
        index %= len(self.docs)
        self.docs[index].ready = ready
        self.current[index]["ready"] = ready

    @rule()
    def commit(self) -> None:
        self.session.commit()
        for i, values in enumerate(self.current):
            self.committed[i] = dict(values)
        self.steps_committed += self.steps_pending
        self.steps_pending = 0

    @rule()
    def rollback(self) -> None:
        self.session.rollback()
        for i, values in enumerate(self.committed):
            self.current[i] = dict(values)
        self.steps_pending = 0

    @invariant()
    def objects_match_the_model(self) -> None:
        for doc, expected in zip(self.docs, self.current):
            assert (doc.state.value, doc.ready, doc.edits) == (expected["state"], expected["ready"], expected["edits"])

    @invariant()
    def database_matches_the_committed_model(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(Doc.id, Doc.state, Doc.ready, Doc.edits).order_by(Doc.id)).all()
            logged = conn.scalar(sa.select(sa.func.count()).select_from(DocLog))
        assert [(r.state.value, r.ready, r.edits) for r in rows] == [
            (c["state"], c["ready"], c["edits"]) for c in self.committed
        ]
        assert logged == self.steps_committed

    def teardown(self) -> None:
        self.session.close()


def test_random_transitions_agree_with_the_model(
    engine: sa.Engine, create_all: Callable[[sa.MetaData], None]
) -> None:
    create_all(Base.metadata)

    def factory() -> DocMachine:
        with engine.begin() as conn:
            conn.execute(sa.delete(DocLog))
            conn.execute(sa.delete(Doc))
        return DocMachine(engine)

    run_state_machine_as_test(
        factory,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
