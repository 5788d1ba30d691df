"""Pydantic models with a StateType field against the same model with an
``IntEnum`` field: validating raw values and serializing to JSON (target <= 1.2x)."""

from __future__ import annotations

import enum
from collections.abc import Iterator

from harness import Result, Settings, benchmark, compare
from pydantic import BaseModel, TypeAdapter

from statetype import State, StateType

PYDANTIC_TARGET = 1.2


class Phase(StateType[int]):
    is_draft = State(1, "Draft")
    is_published = State(2, "Published")
    is_withdrawn = State(3, "Withdrawn")
    is_deleted = State(4, "Deleted", final=True)


class PhaseEnum(enum.IntEnum):
    DRAFT = 1
    PUBLISHED = 2
    WITHDRAWN = 3
    DELETED = 4


class WithState(BaseModel):
    id: int
    title: str
    state: Phase


class WithEnum(BaseModel):
    id: int
    title: str
    state: PhaseEnum


@benchmark("pydantic", order=60)
def pydantic_models(settings: Settings) -> Iterator[Result]:
    n = settings.rows
    rows = [{"id": i, "title": f"row {i}", "state": 1 + i % 4} for i in range(n)]
    ours_adapter = TypeAdapter(list[WithState])
    enum_adapter = TypeAdapter(list[WithEnum])
    assert ours_adapter.validate_python(rows[:4])[1].state is Phase.is_published

    def ours() -> None:
        ours_adapter.dump_json(ours_adapter.validate_python(rows))

    def baseline() -> None:
        enum_adapter.dump_json(enum_adapter.validate_python(rows))

    assert ours_adapter.dump_json(ours_adapter.validate_python(rows[:8])) == enum_adapter.dump_json(
        enum_adapter.validate_python(rows[:8])
    )
    ours_time, baseline_time = compare(ours, baseline, settings.repeats)
    yield Result(f"validate + dump_json {n:,} models, StateType vs IntEnum field", ours_time, baseline_time,
                 PYDANTIC_TARGET)
