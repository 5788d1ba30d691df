"""``after_commit`` hooks: the root commit only, a usable session, isolated failures, any number of rows.

Every case runs on SQLite, PostgreSQL and MariaDB; the large bulk also through
asyncpg.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from statetype import AfterCommitError, AppliedStep, State, StateType, StateTypeError, Transition, Transitions


class HState(StateType[int]):
    is_new = State(1, "New")
    is_sent = State(2, "Sent")
    is_done = State(3, "Done")


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "ac_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(60))


class Mail(Base):
    __tablename__ = "ac_mail"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[HState] = mapped_column(HState(), default=HState.is_new)
    subject: Mapped[str] = mapped_column(sa.String(60), default="hello")
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ac_author.id"), nullable=True)
    author: Mapped[Author | None] = relationship()


calls: list[tuple[str, int]] = []
failing: set[int] = set()


class MailTx(Transitions[Mail, str]):
    send = Transition(HState.is_new, HState.is_sent)
    finish = Transition(HState.is_sent, HState.is_done)

    @send.after_commit
    def notify(self, step: AppliedStep[Mail]) -> None:
        if step.obj.id in failing:
            raise RuntimeError(f"notifier failed for {step.obj.id}")
        calls.append(("send", step.obj.id))

    @finish.after_commit
    def notify_author(self, step: AppliedStep[Mail]) -> None:
        author = step.obj.author  # a lazy load, after the commit
        calls.append((author.email if author else "nobody", step.obj.id))


@pytest.fixture
def db(engine: sa.Engine, create_all: Callable[[sa.MetaData], None]) -> Iterator[Session]:
    create_all(Base.metadata)
    calls.clear()
    failing.clear()
    with Session(engine) as session:
        author = Author(email="a@example.org")
        session.add_all([Mail(author=author), Mail(author=author), Mail(), Mail(state=HState.is_sent, author=author)])
        session.commit()
        yield session


def _mail(db: Session, mail_id: int) -> Mail:
    mail = db.get(Mail, mail_id)
    assert mail is not None
    return mail


def test_hooks_run_at_the_root_commit_not_at_a_savepoint_release(db: Session) -> None:
    MailTx().send(_mail(db, 1))
    with db.begin_nested():
        db.add(Author(email="b@example.org"))
    assert calls == []  # released a savepoint: nothing committed yet
    db.rollback()
    db.commit()
    assert calls == []  # the step was rolled back: its hook never runs
    MailTx().send(_mail(db, 1))
    with db.begin_nested():
        pass
    db.commit()
    assert calls == [("send", 1)]


def test_hooks_of_work_discarded_by_close_never_run(db: Session) -> None:
    MailTx().send(_mail(db, 1))
    db.close()
    MailTx().send(_mail(db, 2))  # the same Session, reused
    db.commit()
    assert calls == [("send", 2)]


def test_hooks_of_a_begin_block_that_raised_never_run(engine: sa.Engine, db: Session) -> None:
    db.close()
    with Session(engine) as session:
        with pytest.raises(RuntimeError):
            with session.begin():
                MailTx().send(_mail(session, 1))
                raise RuntimeError("the block fails")
        with session.begin():
            MailTx().send(_mail(session, 2))
    assert calls == [("send", 2)]


def test_hooks_run_with_a_usable_session(db: Session) -> None:
    mail = _mail(db, 4)
    db.expire(mail, ["author"])
    MailTx().finish(mail)
    db.commit()  # expire_on_commit: the hook's lazy load and column reads load again
    assert calls == [("a@example.org", 4)]
    assert db.scalar(sa.select(sa.func.count()).select_from(Mail)) == 4  # the session still works


def test_one_failing_hook_does_not_stop_the_others(db: Session) -> None:
    failing.add(2)
    tx = MailTx()
    for mail_id in (1, 2, 3):
        tx.send(_mail(db, mail_id))
    with pytest.raises(AfterCommitError) as raised:
        db.commit()
    assert isinstance(raised.value, StateTypeError) and isinstance(raised.value, ExceptionGroup)
    assert "committed" in str(raised.value)
    assert [str(e) for e in raised.value.exceptions] == ["notifier failed for 2"]
    assert calls == [("send", 1), ("send", 3)]  # in the order the steps were applied
    # The transaction committed, and the session is usable.
    assert sorted(db.scalars(sa.select(Mail.id).where(Mail.state == HState.is_sent))) == [1, 2, 3, 4]
    MailTx().finish(_mail(db, 1))
    db.commit()
    assert calls[-1] == ("a@example.org", 1)


def test_a_hook_may_commit_its_own_transaction(db: Session) -> None:
    class Chaining(MailTx):
        pass

    @Chaining.send.after_commit
    def then_finish(self: MailTx, step: AppliedStep[Mail]) -> None:
        session = sa.orm.object_session(step.obj)
        assert session is not None
        MailTx().finish(step.obj)
        session.commit()

    try:
        Chaining().send(_mail(db, 3))
        db.commit()
        assert calls == [("send", 3), ("nobody", 3)]
        assert _mail(db, 3).state.is_done
    finally:
        Chaining.send.after_commits.remove(then_finish)


def test_a_rolled_back_savepoint_drops_only_its_own_hooks(db: Session) -> None:
    tx = MailTx()
    tx.send(_mail(db, 1))
    savepoint = db.begin_nested()
    tx.send(_mail(db, 2))
    savepoint.rollback()
    tx.send(_mail(db, 3))
    db.commit()
    assert calls == [("send", 1), ("send", 3)]


def test_hooks_of_a_transient_object_run_when_its_first_flush_commits(db: Session) -> None:
    mail = Mail()
    MailTx().send(mail)
    assert calls == []
    db.add(mail)
    db.flush()
    db.rollback()
    assert calls == []
    other = Mail()
    MailTx().send(other)
    db.add(other)
    db.commit()
    assert calls == [("send", other.id)]


def test_bulk_hooks_run_once_per_row_after_commit(db: Session) -> None:
    result = MailTx().send.bulk(db)
    assert calls == []
    db.commit()
    assert sorted(calls) == [("send", i) for i in sorted(result.ids)]


def _seed(engine: sa.Engine, rows: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(Mail))
        conn.execute(sa.insert(Mail.__table__), [{"id": i, "state": 1, "subject": "s"} for i in range(1, rows + 1)])


ROWS = 70_000


@pytest.mark.parametrize(
    ("db_url", "driver"),
    [("postgresql", "sync"), ("postgresql", "async"), ("mariadb", "sync")],
    indirect=["db_url"],
)
def test_bulk_hooks_over_more_rows_than_a_driver_takes_parameters(
    db: Session, engine: sa.Engine, db_url: sa.URL, driver: str
) -> None:
    """psycopg and asyncpg take at most 65,535 and 32,767 parameters per statement; pymysql has no limit
    but the same chunks bound memory. SQLite's own limit is covered by the same chunk size."""
    db.close()
    _seed(engine, ROWS)
    seen: list[int] = []

    class Counting(Transitions[Mail, str]):
        send = Transition(HState.is_new, HState.is_sent)

        @send.after_commit
        def count(self, step: AppliedStep[Mail]) -> None:
            seen.append(step.obj.id)

    if driver == "sync":
        with Session(engine) as session:
            assert Counting().send.bulk(session).count == ROWS
            session.commit()
    else:
        async_engine = create_async_engine(db_url.set(drivername="postgresql+asyncpg"))

        async def main() -> None:
            async with AsyncSession(async_engine) as session:
                assert (await Counting().send.bulk_async(session)).count == ROWS
                await session.commit()
            await async_engine.dispose()

        asyncio.run(asyncio.wait_for(main(), timeout=300))
    assert len(seen) == ROWS and len(set(seen)) == ROWS


def test_hook_receives_the_step(db: Session) -> None:
    received: list[AppliedStep[Any]] = []

    class Recording(Transitions[Mail, str]):
        send = Transition(HState.is_new, HState.is_sent)

        @send.after_commit
        def record(self, step: AppliedStep[Mail]) -> None:
            received.append(step)

    Recording(actor="ann").send(_mail(db, 1))
    db.commit()
    (step,) = received
    assert (step.from_state, step.to_state, step.actor) == (HState.is_new, HState.is_sent, "ann")
    assert step.at.tzinfo is dt.timezone.utc
