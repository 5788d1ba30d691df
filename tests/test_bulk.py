"""Set-based transitions on every database: ``tx.publish.bulk(session, *criteria)``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bulk_models import DocState, Models, assert_history_consistent, make_models, refusing_registries
from statetype import BulkNotSupported, BulkResult, TransitionNotAllowed

m: Models = make_models("bulk")
Doc, Owner, Log, Tx = m.Doc, m.Owner, m.Log, m.Tx
CreateAll = Callable[[sa.MetaData], None]


@pytest.fixture
def db(engine: sa.Engine, create_all: CreateAll) -> Iterator[Session]:
    create_all(m.Base.metadata)
    m.calls.clear()
    with Session(engine) as session:
        yield session


def _seed(db: Session, states: list[DocState], **columns: Any) -> list[int]:
    start = (db.scalar(sa.select(sa.func.max(Doc.id))) or 0) + 1
    ids = list(range(start, start + len(states)))
    db.add_all(Doc(id=i, state=s, **columns) for i, s in zip(ids, states))
    db.commit()
    return ids


def _states(db: Session) -> dict[int, str]:
    """id -> state name, straight from the database."""
    return {i: s.name for i, s in db.execute(sa.select(Doc.id, Doc.state).order_by(Doc.id))}


def _history(db: Session) -> list[tuple[int, str, str | None, str, str | None]]:
    rows = db.execute(
        sa.select(Log.object_id, Log.transition, Log.from_value, Log.to_value, Log.actor).order_by(Log.id)
    )
    return sorted((int(o), t, f, to, a) for o, t, f, to, a in rows)


D, P, W, A, X = (DocState.is_draft, DocState.is_published, DocState.is_withdrawn, DocState.is_archived,
                 DocState.is_deleted)


# ------------------------------------------------------------------ counts, ids, values, history


def test_bulk_updates_exactly_the_rows_in_a_source_state(db: Session) -> None:
    ids = _seed(db, [D, P, W, D, X, A, W, D])
    result = Tx(actor="5").publish.bulk(db)
    assert isinstance(result, BulkResult)
    wanted = [i for i, s in zip(ids, [D, P, W, D, X, A, W, D]) if s in (D, W)]
    assert result.count == len(wanted) == 5
    assert sorted(result.ids) == wanted
    db.commit()
    states = _states(db)
    assert [i for i, s in states.items() if s == "is_published"] == sorted([*wanted, ids[1]])
    assert states[ids[4]] == "is_deleted" and states[ids[5]] == "is_archived"


def test_history_rows_equal_updated_rows_with_their_from_value(db: Session) -> None:
    ids = _seed(db, [D, W, P, D])
    result = Tx(actor="5").publish.bulk(db)
    db.commit()
    assert _history(db) == [
        (ids[0], "publish", "1", "2", "5"),
        (ids[1], "publish", "3", "2", "5"),
        (ids[3], "publish", "1", "2", "5"),
    ]
    assert len(_history(db)) == result.count
    stamps = set(db.scalars(sa.select(Log.created_at)))
    assert len(stamps) == 1 and next(iter(stamps)).tzinfo is not None
    assert_history_consistent(db, m, {ids[0]: "1", ids[1]: "3", ids[2]: "2", ids[3]: "1"})


def test_execute_sql_forms_and_step_values_are_written_in_the_same_statement(db: Session) -> None:
    ids = _seed(db, [D, D, P], version=3)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append(statement)

    engine = db.get_bind()
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        Tx(actor="5").publish.bulk(db, Doc.id.in_(ids))
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    db.commit()
    # one UPDATE per source state (history needs each row's from_value), each carrying every value
    assert statements and all("published_at" in s and "status_start" in s and "version" in s for s in statements)
    rows = {r.id: r for r in db.scalars(sa.select(Doc))}
    for i in ids[:2]:
        assert rows[i].version == 4
        assert rows[i].published_at is not None and rows[i].published_at.tzinfo is not None
        assert rows[i].status_start == rows[i].published_at
        assert rows[i].status_by == "5"
    assert (rows[ids[2]].version, rows[ids[2]].published_at, rows[ids[2]].status_by) == (3, None, None)
    logged = db.scalars(sa.select(Log.created_at)).all()
    assert set(logged) == {rows[ids[0]].status_start}


def test_criteria_narrow_the_rows(db: Session) -> None:
    ids = _seed(db, [D, D, D, D])
    result = Tx(actor="5").publish.bulk(db, Doc.id.in_(ids[1:3]))
    assert sorted(result.ids) == ids[1:3]
    db.commit()
    assert list(_states(db).values()) == ["is_draft", "is_published", "is_published", "is_draft"]


def test_nothing_to_do_is_an_empty_result_and_no_history(db: Session) -> None:
    _seed(db, [P, X])
    assert Tx(actor="5").publish.bulk(db) == BulkResult(0, [])
    db.commit()
    assert _history(db) == []


# ------------------------------------------------------------------ guards and permissions in SQL


def test_rows_failing_a_guard_are_untouched(db: Session) -> None:
    db.add_all([Owner(id=1, state=P), Owner(id=2, state=D)])
    db.commit()
    ok = _seed(db, [D, W], owner_id=1)
    blocked = _seed(db, [D, W], owner_id=2)
    free = _seed(db, [D])
    result = Tx(actor="5").publish.bulk(db)
    assert sorted(result.ids) == sorted(ok + free)
    db.commit()
    states = _states(db)
    assert [states[i] for i in blocked] == ["is_draft", "is_withdrawn"]
    assert {h[0] for h in _history(db)} == set(ok + free)
    assert db.scalars(sa.select(Doc.version).where(Doc.id.in_(blocked))).all() == [0, 0]


def test_permission_sql_filters_rows_by_actor(db: Session) -> None:
    mine = _seed(db, [D, D], editor_id=7)
    theirs = _seed(db, [D], editor_id=8)
    anyone = _seed(db, [D])
    result = Tx(actor="7").publish.bulk(db)
    assert sorted(result.ids) == sorted(mine + anyone)
    assert Tx(actor=None).publish.bulk(db).count == 0
    assert Tx(actor="8").publish.bulk(db).ids == theirs
    db.commit()
    assert {h[0]: h[4] for h in _history(db)} == {mine[0]: "7", mine[1]: "7", anyone[0]: "7", theirs[0]: "8"}


def test_conditional_source_writes_the_base_state_as_from_value(db: Session) -> None:
    flagged = _seed(db, [D, D], flagged=True)
    plain = _seed(db, [D])
    withdrawn = _seed(db, [W])
    result = Tx(actor="5").archive.bulk(db)
    assert sorted(result.ids) == sorted(flagged + withdrawn)
    db.commit()
    assert _history(db) == [
        (flagged[0], "archive", "1", "5", "5"),
        (flagged[1], "archive", "1", "5", "5"),
        (withdrawn[0], "archive", "3", "5", "5"),
    ]
    assert _states(db)[plain[0]] == "is_draft"


def test_self_loop_is_a_step_with_history(db: Session) -> None:
    ids = _seed(db, [P, P, D])
    result = Tx(actor="5").touch.bulk(db)
    assert sorted(result.ids) == ids[:2]
    db.commit()
    assert _history(db) == [(ids[0], "touch", "2", "2", "5"), (ids[1], "touch", "2", "2", "5")]
    assert db.scalars(sa.select(Doc.status_by).order_by(Doc.id)).all() == ["5", "5", None]


def test_plain_registry_without_history(db: Session) -> None:
    class NoLog(m.PlainTx):  # type: ignore[name-defined,misc]
        log = None

    ids = _seed(db, [D, W, P, D])
    result = NoLog().publish.bulk(db)
    assert sorted(result.ids) == [ids[0], ids[1], ids[3]]
    db.commit()
    assert _history(db) == []
    assert set(_states(db).values()) == {"is_published"}


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("hook", ["python_only_guard", "python_only_permission", "python_only_stamp", "children"])
def test_hooks_without_sql_form_are_refused_by_name(db: Session, hook: str) -> None:
    registry = refusing_registries(m)[hook]
    ids = _seed(db, [D])
    with pytest.raises(BulkNotSupported, match=hook):
        registry(actor="5").go.bulk(db)  # type: ignore[attr-defined]
    db.commit()
    assert _states(db)[ids[0]] == "is_draft"


def test_timed_transition_is_refused_with_a_timer_reason(db: Session) -> None:
    _seed(db, [D])
    with pytest.raises(TransitionNotAllowed) as info:
        Tx().expire.bulk(db)
    assert [r.kind for r in info.value.verdict.reasons] == ["timer"]
    assert "run_due" in str(info.value)


# ------------------------------------------------------------------ the session


def test_loaded_objects_see_the_new_state(db: Session) -> None:
    ids = _seed(db, [D, D, P])
    docs = [db.get(Doc, i) for i in ids]
    assert [d.state.name for d in docs] == ["is_draft", "is_draft", "is_published"]
    Tx(actor="5").publish.bulk(db)
    # before commit, in the same transaction
    assert [d.state.name for d in docs] == ["is_published"] * 3
    assert [d.version for d in docs] == [1, 1, 0]
    assert docs[0].status_by == "5" and docs[2].status_by is None
    db.commit()
    assert docs[0].state.is_published


def test_loaded_objects_are_refreshed_when_the_session_holds_fewer_than_the_result(db: Session) -> None:
    ids = _seed(db, [D] * 6)
    one = db.get(Doc, ids[2])
    assert one is not None and one.state.is_draft
    assert Tx(actor="5").publish.bulk(db).count == 6
    assert one.state.is_published


def test_pending_changes_are_flushed_first(db: Session) -> None:
    ids = _seed(db, [D])
    loaded = db.get(Doc, ids[0])
    assert loaded is not None
    loaded.flagged = True
    db.add(Doc(id=ids[0] + 1, state=W))
    result = Tx(actor="5").publish.bulk(db)
    assert sorted(result.ids) == [ids[0], ids[0] + 1]
    db.commit()
    assert db.scalar(sa.select(Doc.flagged).where(Doc.id == ids[0])) is True


# ------------------------------------------------------------------ after_commit


def test_after_commit_runs_once_per_row_after_commit(db: Session) -> None:
    ids = _seed(db, [D, W, P])
    Tx(actor="5").publish.bulk(db)
    assert m.calls == []
    db.commit()
    assert sorted(m.calls) == [("publish", ids[0], "is_draft"), ("publish", ids[1], "is_withdrawn")]
    db.commit()
    assert len(m.calls) == 2


def test_after_commit_never_runs_after_rollback(db: Session) -> None:
    _seed(db, [D, D])
    Tx(actor="5").publish.bulk(db)
    db.rollback()
    db.commit()
    assert m.calls == []
    assert set(_states(db).values()) == {"is_draft"}


def test_after_commit_of_a_rolled_back_savepoint_is_dropped(db: Session) -> None:
    ids = _seed(db, [D, D])
    Tx(actor="5").publish.bulk(db, Doc.id == ids[0])  # an UPDATE first: pysqlite is in a transaction
    savepoint = db.begin_nested()
    Tx(actor="5").publish.bulk(db, Doc.id == ids[1])
    savepoint.rollback()
    db.commit()
    assert m.calls == [("publish", ids[0], "is_draft")]
    assert _states(db) == {ids[0]: "is_published", ids[1]: "is_draft"}
