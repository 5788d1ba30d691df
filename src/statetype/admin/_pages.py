"""What the admin pages show, computed in one session: no SQLAdmin and no HTML here.

Each function takes a ``Session`` and plain values (a registry, an actor, an
object) and returns frozen dataclasses of strings, so templates never touch a
detached ORM object and the same code serves sync and async session makers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session

from ..exceptions import BulkNotSupported, ConcurrentTransitionError, TransitionNotAllowed
from ..states import StateType
from ..transitions import BoundTransition, Transition, Transitions

if TYPE_CHECKING:
    from ..log import TransitionLogMixin

__all__ = [
    "BulkOutcome",
    "HistoryEntry",
    "PlanEntry",
    "RefusedTransition",
    "StatePanel",
    "TransitionChoice",
    "bulk_apply",
    "history_entries",
    "merged_actor",
    "state_columns",
    "state_panels",
    "stale_message",
]


@dataclasses.dataclass(frozen=True)
class TransitionChoice:
    """A transition the actor may apply: a button on the detail page."""

    name: str
    title: str
    needs_form: bool


@dataclasses.dataclass(frozen=True)
class RefusedTransition:
    """A transition refused to the actor, with every reason (listed, not a button)."""

    name: str
    title: str
    reasons: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """One history row, with state titles instead of raw values."""

    at: dt.datetime
    transition: str
    from_title: str | None
    to_title: str
    actor: str | None
    data: str | None


@dataclasses.dataclass(frozen=True)
class StatePanel:
    """One state column of an object on its detail page.

    Attributes:
        column: The column's attribute name.
        label: Its display label.
        state: The current state's title.
        value: The current state's stored value as text (sent back with a
            transition, to notice a change made meanwhile).
        also: Titles of the groups and conditional states the object is in.
        allowed: Transitions the actor may apply, in declaration order.
        refused: The others, with their reasons.
        history: The column's history rows, oldest first.
    """

    column: str
    label: str
    state: str
    value: str
    also: tuple[str, ...]
    allowed: tuple[TransitionChoice, ...]
    refused: tuple[RefusedTransition, ...]
    history: tuple[HistoryEntry, ...]


@dataclasses.dataclass(frozen=True)
class PlanEntry:
    """One step of ``plan()`` for the confirmation page."""

    title: str
    target: str
    from_title: str
    to_title: str
    allowed: bool
    reasons: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BulkOutcome:
    """What a list action did: ``moved`` rows changed (``set_based`` when by one UPDATE), ``refused`` the others."""

    title: str
    selected: int
    moved: int
    set_based: bool
    refused: tuple[tuple[str, tuple[str, ...]], ...]


def state_columns(model: type[Any]) -> dict[str, type[StateType[Any]]]:
    """The model's StateType columns: attribute name -> StateType class, in mapper order."""
    mapper = cast("Mapper[Any]", sa.inspect(model))
    found: dict[str, type[StateType[Any]]] = {}
    for prop in mapper.column_attrs:
        column_type: object = getattr(prop.columns[0], "type", None)
        if isinstance(column_type, StateType):
            found[prop.key] = type(column_type)  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
    return found


def merged_actor(session: Session, actor: object) -> object:
    """A mapped actor loaded elsewhere, as an object of ``session`` (so ``actor in project.editors`` holds)."""
    state = sa.inspect(actor, raiseerr=False)
    if state is None or getattr(state, "key", None) is None:
        return actor
    return session.merge(actor, load=False)


def _title(member: StateType[Any]) -> str:
    return str(member.title)


def _value_title(statetype: type[StateType[Any]], raw: str | None) -> str | None:
    if raw is None:
        return None
    for member in statetype.states:
        if str(member.value) == raw:
            return _title(member)
    return raw


def _bound(registry: Transitions[Any, Any], transition: Transition[Any]) -> BoundTransition[Any, Any]:
    return cast("BoundTransition[Any, Any]", getattr(registry, transition.name))


def current_member(obj: object, column: str) -> StateType[Any] | None:
    """The object's current state member in ``column`` (None when unset)."""
    value: object = getattr(obj, column)
    if value is None:
        return None
    return cast("StateType[Any]", getattr(value, "_member"))


def history_entries(
    registry: Transitions[Any, Any], obj: object, column: str, statetype: type[StateType[Any]]
) -> tuple[HistoryEntry, ...]:
    """The object's history rows for ``column``, oldest first; empty when the registry has no log."""
    if registry.log is None:
        return ()
    titles = {t.name: str(t.title) for t in registry.transitions()}
    rows: list[TransitionLogMixin] = registry.history(obj)
    return tuple(
        HistoryEntry(
            at=row.created_at,
            transition=titles.get(row.transition, row.transition),
            from_title=_value_title(statetype, row.from_value),
            to_title=_value_title(statetype, row.to_value) or row.to_value,
            actor=row.actor,
            data=_data_text(row.data),
        )
        for row in rows
        if row.column_name == column
    )


def _data_text(data: object) -> str | None:
    if data is None or data == {}:
        return None
    if isinstance(data, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in cast("Mapping[str, object]", data).items() if v not in (None, ""))
    return str(data)


def state_panels(
    registry: Transitions[Any, Any], obj: object, labels: Mapping[str, str]
) -> list[StatePanel]:
    """A panel per state column of ``obj``: state, allowed and refused transitions, history."""
    panels: list[StatePanel] = []
    for column, statetype in state_columns(type(obj)).items():
        member = current_member(obj, column)
        value: object = getattr(obj, column)
        also = tuple(
            _title(m)
            for m in (*statetype.groups, *statetype.conditionals)
            if member is not None and bool(getattr(value, m.name))
        )
        allowed: list[TransitionChoice] = []
        refused: list[RefusedTransition] = []
        for transition in registry.transitions():
            if transition.key != column or transition.after is not None:
                continue
            bound = _bound(registry, transition)
            verdict = bound.check(obj)
            if verdict:
                allowed.append(TransitionChoice(bound.name, str(bound.title), transition._form is not None))
            else:
                refused.append(RefusedTransition(bound.name, str(bound.title), tuple(r.message for r in verdict.reasons)))
        panels.append(
            StatePanel(
                column=column,
                label=labels.get(column, column.replace("_", " ").capitalize()),
                state=_title(member) if member is not None else "(none)",
                value="" if member is None else str(member.value),
                also=also,
                allowed=tuple(allowed),
                refused=tuple(refused),
                history=history_entries(registry, obj, column, statetype),
            )
        )
    return panels


def plan_entries(bound: BoundTransition[Any, Any], obj: object) -> list[PlanEntry]:
    """``bound.plan(obj)`` as display rows: the step, then its chain depth first."""
    entries: list[PlanEntry] = []
    for step in bound.plan(obj):
        member = current_member(step.obj, step.transition.transition.key)
        entries.append(
            PlanEntry(
                title=str(step.transition.title),
                target=f"{type(step.obj).__name__} {_identity(step.obj)}",
                from_title=_title(member) if member is not None else "(none)",
                to_title=_title(step.transition.transition.to),
                allowed=bool(step.verdict),
                reasons=tuple(r.message for r in step.verdict.reasons),
            )
        )
    return entries


def _identity(obj: object) -> str:
    identity = sa.inspect(obj, raiseerr=True).identity
    if identity is None:
        return "(new)"
    return str(identity[0]) if len(identity) == 1 else ";".join(str(v) for v in identity)


def stale_message(obj: object) -> str:
    """The message shown on a ``ConcurrentTransitionError`` or a page submitted after the state changed."""
    return (
        f"{type(obj).__name__} {_identity(obj)} was changed by someone else meanwhile: "
        "reload the page to see its current state, then try again."
    )


def bulk_apply(
    session: Session, registry: Transitions[Any, Any], transition: Transition[Any], keys: Sequence[tuple[object, ...]]
) -> BulkOutcome:
    """Apply ``transition`` to the rows of ``keys`` and commit: set-based with ``bulk()`` when the
    transition allows it (``BulkNotSupported`` otherwise), else row by row; rows that did not move
    are reported with every reason."""
    model = type(registry).model
    bound = _bound(registry, transition)
    mapper = cast("Mapper[Any]", sa.inspect(model))
    pk = [getattr(model, mapper.get_property_by_column(c).key) for c in mapper.primary_key]
    objects = [obj for obj in (session.get(model, key) for key in keys) if obj is not None]
    refused: list[tuple[str, tuple[str, ...]]] = []
    moved = 0
    if transition._form is not None:
        raise ValueError(f"{type(registry).__name__}.{transition.name} needs a form; apply it from the detail page")
    set_based = True
    if set_based:
        if len(pk) == 1:
            criterion = pk[0].in_([key[0] for key in keys])
        else:
            criterion = sa.tuple_(*pk).in_([tuple(key) for key in keys])
        try:
            result = bound.bulk(session, criterion)
        except BulkNotSupported:
            set_based = False
        else:
            moved = result.count
            done: set[tuple[object, ...]] = {
                cast("tuple[object, ...]", r) if isinstance(r, tuple) else (r,) for r in result.ids
            }
            for obj in objects:
                identity = sa.inspect(obj, raiseerr=True).identity
                if identity is not None and tuple(identity) in done:
                    continue
                session.refresh(obj)
                verdict = bound.check(obj)
                reasons = tuple(r.message for r in verdict.reasons) or (stale_message(obj),)
                refused.append((f"{type(obj).__name__} {_identity(obj)}", reasons))
    if not set_based:
        for obj in objects:
            label = f"{type(obj).__name__} {_identity(obj)}"
            try:
                bound(obj)
            except TransitionNotAllowed as error:
                refused.append((label, tuple(r.message for r in error.verdict.reasons)))
            except ConcurrentTransitionError:
                refused.append((label, (stale_message(obj),)))
            else:
                moved += 1
    session.commit()
    missing = len(keys) - len(objects)
    if missing:
        refused.append((f"{missing} selected row(s)", ("no longer exist",)))
    return BulkOutcome(str(bound.title), len(keys), moved, set_based, tuple(refused))
