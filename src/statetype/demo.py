"""``statetype demo``: the section 2 model on a temporary SQLite file."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from . import State, StateType

__all__ = ["run"]

NOW = dt.datetime(2026, 6, 1)


class ProjectState(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_withdrawn = State(3, "Withdrawn")
    is_deleted = State(4, "Deleted", final=True)

    is_gone = (is_withdrawn | is_deleted).titled("Gone")
    is_live = is_published | is_withdrawn

    @is_published.conditional
    def is_future(self, project: Project) -> bool:
        return project.start_at is not None and project.start_at > NOW

    @is_future.expression
    def _is_future_sql(self, project: type[Project]) -> ColumnElement[bool]:
        return project.start_at > NOW


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "project"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    state: Mapped[ProjectState] = mapped_column(ProjectState(), default=ProjectState.is_draft)
    start_at: Mapped[dt.datetime | None]


def run() -> int:
    """Declare, insert, filter and print; returns the exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'demo.db'}")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(
                [
                    Project(title="Draft idea"),
                    Project(title="Launched", state=ProjectState.is_published, start_at=dt.datetime(2026, 1, 1)),
                    Project(title="Upcoming", state=2, start_at=dt.datetime(2027, 1, 1)),
                    Project(title="Retracted", state=ProjectState.is_withdrawn),
                    Project(title="Removed", state=ProjectState.is_deleted),
                ]
            )
            session.commit()
            print("States:", ", ".join(f"{s.name}={s.value} ({s.title})" for s in ProjectState.states))
            for label, condition in [
                ("Project.state.is_draft", Project.state.is_draft),
                ("Project.state.is_gone", Project.state.is_gone),
                ("Project.state.is_live", Project.state.is_live),
                ("Project.state.is_future", Project.state.is_future),
                ("~Project.state.is_gone", ~Project.state.is_gone),
            ]:
                query = sa.select(Project.title).where(condition).order_by(Project.id)
                sql = str(query.compile(engine, compile_kwargs={"literal_binds": True})).replace("\n", " ")
                print(f"\n{label}\n  SQL:  {sql}\n  rows: {list(session.scalars(query))}")
            upcoming = session.scalars(sa.select(Project).where(Project.title == "Upcoming")).one()
            print(f"\nupcoming.state: {upcoming.state} is_future={upcoming.state.is_future} is_live={upcoming.state.is_live}")
        engine.dispose()
    return 0
