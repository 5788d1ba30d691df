"""Hypothesis strategies: members of a StateType, walks through a registry, data for a form.

* ``members(ProjectState, kind="state")``: the StateType's members, of one
  kind (plain states, groups, conditional states) or of any;
* ``walks(tx, project, max_steps=20)``: a strategy of ``Walk`` objects. A
  walk applies, one step at a time as it is iterated, a transition drawn
  among those ``tx.available(project)`` offers (guards, permissions and the
  actor respected, timed transitions left to ``run_due``), so that a
  property can be asserted after every step;
* ``form_data(PublishForm)``: mappings a WTForms form accepts, derived from
  its fields and validators; walks use it for transitions with a form.

Why a walk is drawn, then iterated: the transitions available at a step
depend on the state the previous step left, so steps cannot be drawn before
they are applied. A walk holds hypothesis's ``data()`` object and draws each
step when it is reached; each draw is labelled ``step N`` and shows in a
failing example's report, and hypothesis shrinks a failure to a shortest walk
of earliest-declared transitions with the simplest data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, Literal, TypeVar, cast

from hypothesis import event, note
from hypothesis import strategies as st
from hypothesis.strategies import DataObject, SearchStrategy

from ..exceptions import TransitionDataInvalid
from ..states import StateType
from ..transitions import AppliedStep, BoundTransition, Transitions
from ._describe import describe_current, describe_object, label

__all__ = ["FormData", "FormNotSupported", "MemberKind", "Walk", "form_data", "members", "walks"]

M = TypeVar("M")
S = TypeVar("S", bound="StateType[Any]")

MemberKind = Literal["state", "group", "conditional", "any"]
FormData = dict[str, object]
"""What ``form_data`` draws: ``{field name: value}``."""


class FormNotSupported(ValueError):
    """No data strategy can be derived for a field of a form; the message names the form, field and type."""


def members(statetype: type[S], kind: MemberKind = "state") -> SearchStrategy[S]:
    """Members of ``statetype``: ``state`` (plain states, the default), ``group``, ``conditional`` or ``any``.

    Shrinks towards the first declared. Raises ``TypeError`` when
    ``statetype`` is not a StateType class with states, ``ValueError`` for
    an unknown kind or a kind the class declares none of.
    """
    given = cast(object, statetype)
    if not isinstance(given, type) or not issubclass(given, StateType) or "_members" not in given.__dict__:
        raise TypeError(f"members() takes a StateType class with states, got {statetype!r}")
    pools: dict[str, tuple[S, ...]] = {
        "state": statetype.states,
        "group": statetype.groups,
        "conditional": statetype.conditionals,
    }
    pools["any"] = pools["state"] + pools["group"] + pools["conditional"]
    if kind not in pools:
        raise ValueError(f"members({statetype.__name__}): kind must be state, group, conditional or any, got {kind!r}")
    pool = pools[kind]
    if not pool:
        raise ValueError(f"members({statetype.__name__}, kind={kind!r}): {statetype.__name__} declares no {kind}")
    return st.sampled_from(pool)


def form_data(form: type[Any]) -> SearchStrategy[FormData]:
    """A strategy of ``{field name: value}`` mappings that the WTForms ``form`` accepts.

    Fields: string fields (``Length``, ``InputRequired``/``DataRequired``,
    ``AnyOf``, ``NoneOf``, ``Regexp``, ``UUID``; printable ASCII, at most 30
    characters unless ``Length`` says otherwise), ``IntegerField``,
    ``DecimalField`` and ``FloatField`` (``NumberRange``), date, time and
    datetime fields (``DateRange``; text in the field's first format, whole
    minutes), ``BooleanField``, ``SelectField``/``RadioField`` and
    ``SelectMultipleField`` (their choices). Values are given as a browser
    submits them (text), booleans and multiple selections as Python values.
    A field with ``Optional()`` or no validator may be left out. Validators
    it does not know (``Email``, ``URL``, ``EqualTo``, custom ones) are left
    to the form, which may refuse the data (walks then skip the step and say
    so). Raises ``FormNotSupported`` when a field that must be given has a
    type it cannot produce (``FileField``, ``FormField``, a select whose
    choices are set in a view).
    """
    from ._form_data import derive  # WTForms is an optional extra

    return derive(form)


class _Move:
    """One drawn step: a bound transition and the data for it (shown in failing examples)."""

    __slots__ = ("transition", "data")

    def __init__(self, transition: BoundTransition[Any, Any], data: Mapping[str, object] | None) -> None:
        self.transition = transition
        self.data = data

    def __repr__(self) -> str:
        if self.data is None:
            return self.transition.name
        return f"{self.transition.name}(data={dict(self.data)!r})"


class Walk(Generic[M]):
    """A walk through a registry's transitions on one object, applied step by step as it is iterated.

    Iterating yields the ``AppliedStep`` of each applied transition (the
    top-level step, after its chain); ``.steps`` lists those applied so far,
    ``run()`` applies the rest and returns them all. A walk ends after its
    drawn length, or earlier when no transition is available. A transition
    whose form cannot be satisfied is not drawn, and data its form refuses
    skips the step; both are recorded in ``.skipped`` and reported with
    hypothesis's ``event()`` (``--hypothesis-show-statistics``) and ``note()``.
    A walk is iterated once.
    """

    def __init__(
        self,
        registry: Transitions[M, Any],
        obj: M,
        length: int,
        data: DataObject,
        overrides: Mapping[str, SearchStrategy[Mapping[str, object]]],
    ) -> None:
        self.registry = registry
        self.obj = obj
        self.length = length
        self.steps: list[AppliedStep[M]] = []
        self.skipped: list[tuple[str, str]] = []
        """``(transition, why)`` for each transition left out or step skipped."""
        self._data = data
        self._overrides = overrides
        self._attempts = 0

    def __repr__(self) -> str:
        return (
            f"<Walk of {type(self.registry).__name__} on {describe_object(self.obj)}, "
            f"up to {self.length} step{'s' if self.length != 1 else ''}>"
        )

    def __iter__(self) -> Iterator[AppliedStep[M]]:
        return self

    def __next__(self) -> AppliedStep[M]:
        while self._attempts < self.length:
            self._attempts += 1
            moves = self._moves()
            if not moves:
                self._attempts = self.length
                event(f"walk ended: no transition of {type(self.registry).__name__} available")
                break
            move: _Move = self._data.draw(st.one_of(moves), label=f"step {self._attempts}")
            try:
                applied = move.transition(self.obj, data=move.data)
            except TransitionDataInvalid as error:
                self._skip(move.transition, f"the form refused the drawn data: {error}")
                continue
            step = next((s for s in reversed(applied.steps) if s.obj is self.obj), applied.steps[-1])
            self.steps.append(step)
            return step
        raise StopIteration

    def run(self) -> list[AppliedStep[M]]:
        """Apply every remaining step; returns all the walk's steps."""
        for _ in self:
            pass
        return list(self.steps)

    def _moves(self) -> list[SearchStrategy[_Move]]:
        moves: list[SearchStrategy[_Move]] = []
        for bound in self.registry.available(self.obj):
            override = self._overrides.get(bound.name)
            if override is not None:
                moves.append(override.map(_move_to(bound)))
                continue
            form = _form_class(bound, self.obj)
            if form is None:
                moves.append(st.just(_Move(bound, None)))
                continue
            try:
                strategy = form_data(form)
            except FormNotSupported as error:
                self._skip(bound, str(error))
                continue
            moves.append(strategy.map(_move_to(bound)))
        return moves

    def _skip(self, bound: BoundTransition[Any, Any], why: str) -> None:
        self.skipped.append((bound.name, why))
        event(f"skipped {label(bound)}: {why.splitlines()[0]}")
        note(f"walk on {describe_object(self.obj)} ({describe_current(self.obj, bound.transition.key)}): "
             f"skipped {label(bound)}: {why}")


def _move_to(bound: BoundTransition[Any, Any]) -> Callable[[Mapping[str, object]], _Move]:
    return lambda data: _Move(bound, data)


def _form_class(bound: BoundTransition[Any, Any], obj: object) -> type[Any] | None:
    if bound.transition._form is None:  # pyright: ignore[reportPrivateUsage]
        return None
    from ..forms import form_class  # WTForms is an optional extra

    return form_class(bound, obj)


def walks(
    registry: Transitions[M, Any],
    obj: M,
    max_steps: int = 20,
    *,
    data: Mapping[str, SearchStrategy[Mapping[str, object]]] | None = None,
) -> SearchStrategy[Walk[M]]:
    """A strategy of walks of up to ``max_steps`` transitions of ``registry`` on ``obj``; see ``Walk``.

    ``registry`` is a registry instance (its actor decides permissions);
    ``obj`` is changed by iterating the walk, so build the object inside the
    test and draw the walk with ``data.draw(walks(...))`` (``@given(st.data())``).
    ``data`` maps transition names to strategies of their data, replacing
    what is derived from their forms (``form_data``). Raises ``TypeError``
    for a registry class, ``ValueError`` for a negative ``max_steps`` or a
    ``data`` key that names no transition of the registry.
    """
    given = cast(object, registry)
    if not isinstance(given, Transitions):
        raise TypeError(
            f"walks() takes a registry instance with its actor, as {getattr(given, '__name__', 'Registry')}(actor=user); "
            f"got {registry!r}"
        )
    if max_steps < 0:
        raise ValueError(f"walks(): max_steps must be 0 or more, got {max_steps}")
    overrides = dict(data or {})
    names = {t.name for t in type(registry).transitions()}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(
            f"walks(data=...): {', '.join(unknown)} is not a transition of {type(registry).__name__} "
            f"(transitions: {', '.join(sorted(names))})"
        )

    @st.composite
    def walk(draw: st.DrawFn) -> Walk[M]:
        # A composite, not map(): failing examples then print the walk's own repr.
        length = draw(st.integers(0, max_steps))
        return Walk(registry, obj, length, draw(st.data()), overrides)

    return walk()
