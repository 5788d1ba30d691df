"""The transition registry: ``class ProjectTransitions(Transitions[Project, User])``.

A registry is separate from the states and the model. Its ``Transition``
attributes carry their hooks (guards, permissions, form, execute, chain,
after_commit); an instance binds an actor, and attribute access on it gives a
``BoundTransition`` that checks, plans and applies.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from time import time as _time
from types import MappingProxyType
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, Protocol, cast, overload

import sqlalchemy as sa
from sqlalchemy.orm import Mapper
from typing_extensions import Self, TypeVar

from .bound import GROUP, STATE, covers
from .exceptions import StateDefinitionError, TransitionNotAllowed
from .log import TransitionLogMixin, history_of
from .states import StateType, humanize

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.elements import ColumnElement

    from wtforms import Form

    from .schema import JSON, TransitionDescription

__all__ = [
    "Applied",
    "AppliedStep",
    "BoundTransition",
    "BulkResult",
    "PlannedStep",
    "Reason",
    "Step",
    "Transition",
    "Transitions",
    "Verdict",
]

M = TypeVar("M")
A = TypeVar("A", default=None)
S = TypeVar("S", bound="StateType[Any]")
_M_co = TypeVar("_M_co", covariant=True)
_L = TypeVar("_L", bound="TransitionLogMixin")
_L_co = TypeVar("_L_co", bound="TransitionLogMixin", covariant=True)


# ------------------------------------------------------------------ results


class Reason(NamedTuple):
    """Why a transition cannot apply; one of the ``reasons`` of a ``Verdict``.

    Attributes:
        kind: ``"state"`` (the object is not in a source state), ``"guard"``,
            ``"permission"``, ``"chain"`` (a child step is refused), ``"timer"``
            (a timed transition called directly) or ``"unknown"`` (the stored
            value is not a declared state).
        message: Readable text: a guard's docstring's first line, else its
            humanized name; for a chain, the child's transition, object and reason.
        obj: The object refused (for ``"chain"``, the child).
    """

    kind: str
    message: str
    obj: object


class Verdict:
    """The result of ``check()``: truthy when allowed.

    Attributes:
        reasons: Every failing ``Reason``, not only the first; empty when allowed.
    """

    __slots__ = ("reasons",)

    def __init__(self, reasons: Sequence[Reason] = ()) -> None:
        self.reasons: tuple[Reason, ...] = tuple(reasons)

    def __bool__(self) -> bool:
        return not self.reasons

    def __repr__(self) -> str:
        if not self.reasons:
            return "<Verdict allowed>"
        return f"<Verdict refused: {'; '.join(r.message for r in self.reasons)}>"

    def __str__(self) -> str:
        return "allowed" if not self.reasons else "; ".join(r.message for r in self.reasons)


class PlannedStep(NamedTuple):
    """One step of ``plan()``.

    Attributes:
        transition: The ``BoundTransition`` the step would apply.
        obj: The object it would apply to.
        verdict: What ``transition.check(obj)`` says now.
    """

    transition: BoundTransition[Any, Any]
    obj: object
    verdict: Verdict


_NO_RESULTS: Mapping[str, object] = MappingProxyType({})  # Applied.results of a step without execute hooks


class AppliedStep(Generic[_M_co]):
    """One applied step, given to ``before``/``after`` and ``after_commit`` hooks.

    Generic in the model, so ``step.obj`` is typed in hooks.

    Attributes:
        obj: The object whose state changed.
        transition: The ``BoundTransition`` applied.
        from_state: The member it left; None for a set-based step whose
            source is a group.
        to_state: The member it entered.
        data: The validated form data or ``data=`` mapping (empty without one).
        actor: The actor of the top-level call (None when there is none).
        at: When the step was applied, timezone-aware UTC.
    """

    __slots__ = ("obj", "transition", "from_state", "to_state", "data", "actor", "_at", "_posix")

    def __init__(
        self,
        obj: _M_co,
        transition: BoundTransition[Any, Any],
        from_state: StateType[Any] | None,
        to_state: StateType[Any],
        data: Mapping[str, object],
        actor: object,
        at: dt.datetime | None = None,
    ) -> None:
        """``at`` defaults to now; the clock is read here, and turned into a datetime when ``at`` is first read."""
        self.obj = obj
        self.transition = transition
        self.from_state = from_state
        self.to_state = to_state
        self.data: Mapping[str, object] = data
        self.actor = actor
        self._at = at
        # POSIX seconds: reading the clock costs a fraction of building an aware datetime,
        # which most in-memory steps never need.
        self._posix = _time() if at is None else 0.0

    @property
    def at(self) -> dt.datetime:
        """When the step was applied: a timezone-aware UTC datetime."""
        at = self._at
        if at is None:
            at = self._at = dt.datetime.fromtimestamp(self._posix, dt.timezone.utc)
        return at

    def __repr__(self) -> str:
        return f"<AppliedStep {self.transition.name} {self.from_state!r} -> {self.to_state!r} on {self.obj!r}>"


class Applied:
    """What a transition call did.

    Attributes:
        steps: The ``AppliedStep``s in the order applied (chain children before
            their parent).
        results: Each execute hook's name mapped to what it returned for the
            top-level step.
    """

    __slots__ = ("steps", "results")

    def __init__(self, steps: Sequence[AppliedStep[Any]], results: Mapping[str, object]) -> None:
        self.steps: tuple[AppliedStep[Any], ...] = steps if type(steps) is tuple else tuple(steps)
        self.results: Mapping[str, object] = results

    def __repr__(self) -> str:
        return f"<Applied {len(self.steps)} step(s)>"


class _AppliedOne(Applied):  # pyright: ignore[reportUnusedClass]  (built by statetype.execution)
    """What a one-step call returns when no hook took its step: the ``AppliedStep`` is built when ``steps`` is first read.

    Most such calls (an in-memory transition) never read it; the clock is
    read at the call all the same, so ``at`` is when the step was applied.
    """

    __slots__ = ("_obj", "_bound", "_from", "_data", "_actor", "_posix", "_built")

    def __init__(
        self,
        obj: object,
        bound: BoundTransition[Any, Any],
        from_state: StateType[Any],
        data: Mapping[str, object],
        results: Mapping[str, object] = _NO_RESULTS,
    ) -> None:
        self._obj = obj
        self._bound = bound
        self._from = from_state
        self._data = data
        self._actor = bound.registry.actor
        self._posix = _time()
        self._built: tuple[AppliedStep[Any], ...] | None = None
        self.results = results

    @property
    def steps(self) -> tuple[AppliedStep[Any], ...]:  # type: ignore[override]  # pyright: ignore[reportIncompatibleVariableOverride]  (a slot in Applied)
        built = self._built
        if built is None:
            bound = self._bound
            step: AppliedStep[Any] = AppliedStep(
                self._obj, bound, self._from, bound.transition.to, self._data, self._actor
            )
            step._posix = self._posix  # pyright: ignore[reportPrivateUsage]
            built = self._built = (step,)
        return built


@dataclasses.dataclass(frozen=True)
class BulkResult:
    """What a set-based transition did: ``count`` rows changed, ``ids`` their primary keys.

    ``ids`` holds plain values for a single-column key and tuples for a
    composite key, in the order the database returned them.
    """

    count: int
    ids: list[Any]


class _Operations:
    """Entry points of the layers above this module, installed by them when imported.

    ``statetype.execution`` (apply) and ``statetype.bulk`` (bulk, run_due)
    build on the classes here; ``statetype/__init__`` imports both, so a
    registry's calls always reach them, while imports keep pointing one way.
    """

    apply: Callable[[BoundTransition[Any, Any], Any, Mapping[str, Any] | None, Any], Applied]
    bulk: Callable[..., BulkResult]
    bulk_async: Callable[..., Awaitable[BulkResult]]
    run_due: Callable[[Transitions[Any, Any], Session, dt.datetime | None], int]
    run_due_async: Callable[[Transitions[Any, Any], AsyncSession, dt.datetime | None], Awaitable[int]]


_operations = _Operations()


# ------------------------------------------------------------------ hook shapes


class _GuardFunc(Protocol):
    def __call__(self, registry: Any, obj: Any, /) -> bool: ...


class _GuardSQL(Protocol):
    def __call__(self, registry: Any, model: Any, /) -> ColumnElement[bool]: ...


class _ExecuteFunc(Protocol):
    def __call__(self, registry: Any, obj: Any, data: Mapping[str, Any], /) -> object: ...


class _ExecuteSQL(Protocol):
    def __call__(self, registry: Any, model: Any, now: dt.datetime, /) -> Mapping[Any, object]: ...


class _ChainFunc(Protocol):
    def __call__(self, registry: Any, obj: Any, /) -> Iterable[Step]: ...


class _AfterCommitFunc(Protocol):
    def __call__(self, registry: Any, step: AppliedStep[Any], /) -> object: ...


class _FormFactory(Protocol):
    def __call__(self, registry: Any, obj: Any, /) -> type[Form] | None: ...


class _HasLog(Protocol[_L_co]):
    """A registry whose ``log`` is a history class: ``log = ProjectLog``."""

    @property
    def log(self) -> type[_L_co]: ...


class _Hook:
    """A function registered on a transition; the decorated name keeps the hook."""

    __slots__ = ("func", "name", "transitions")

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.name: str = getattr(func, "__name__", "hook")
        self.transitions: list[Transition[Any]] = []

    def __set_name__(self, owner: type[object], name: str) -> None:
        # The SQL form may bind the same hook under a second name: keep the function's.
        if owner.__dict__.get(getattr(self.func, "__name__", "")) is not self:
            self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Guard(_Hook):
    """A condition on the object; ``.expression`` declares its SQL form."""

    __slots__ = ("sql",)

    def __init__(self, func: _GuardFunc) -> None:
        super().__init__(func)
        self.sql: _GuardSQL | None = None

    def expression(self, sql: _GuardSQL) -> Self:
        """Declare the SQL form, ``(self, model) -> ColumnElement[bool]``; give it another name."""
        self.sql = sql
        return self

    @property
    def message(self) -> str:
        """The refusal message: the docstring's first line, else the humanized name."""
        doc = (self.func.__doc__ or "").strip()
        if doc:
            return doc.splitlines()[0].strip()
        text = self.func.__name__.strip("_").replace("_", " ")
        return text[:1].upper() + text[1:]


class Permission(Guard):
    """A condition on the actor and object; refusals have kind ``permission``."""

    __slots__ = ()


class Execute(_Hook):
    """A side effect run before the state changes; ``.expression`` gives its set-based form."""

    __slots__ = ("sql",)

    def __init__(self, func: _ExecuteFunc) -> None:
        super().__init__(func)
        self.sql: _ExecuteSQL | None = None

    def expression(self, sql: _ExecuteSQL) -> Self:
        """Declare the set-based form, ``(self, model, now) -> {attribute: value or SQL}``."""
        self.sql = sql
        return self


class Chain(_Hook):
    """Transitions this one causes on other objects: returns ``[(tx.delete, child), ...]``."""

    __slots__ = ()


class AfterCommit(_Hook):
    """Run with the AppliedStep once the outer transaction commits, never after a rollback."""

    __slots__ = ()


class FormFactory(_Hook):
    """``(self, obj) -> form class``: the form a transition needs, chosen per object."""

    __slots__ = ()


# ------------------------------------------------------------------ declarations

class Transition(Generic[S]):
    """A transition declared on a registry: ``publish = Transition(from_, to, ...)``.

    Args:
        from_: The source: a state, group or conditional state, an iterable of
            them, or None for every non-final state.
        to: The target, one plain state; it may be among the sources (a
            self-loop is a normal step).
        title: Display title (a str or a lazy string); default humanized from
            the attribute name.
        form: A WTForms form class (or Pydantic model where supported) that
            the transition requires, or a callable ``(registry, obj) -> form
            class``; default None (no input).
        column: The state column's attribute name, needed only when the model
            has several StateType columns the states could belong to.
        after: For a timed transition, how long after ``since`` it becomes
            due; it is then applied only by ``Transitions.run_due``.
        since: The attribute (a datetime column) ``after`` counts from.
        meta: A free mapping for views and templates, exposed as ``.meta``.

    Raises:
        StateDefinitionError: At registry class creation: a source that is
            final, a target that is not a plain state, an unknown or
            ambiguous column, hooks registered on another registry's transition.
    """

    name: str
    registry: type[Transitions[Any, Any]]

    def __init__(
        self,
        from_: S | Iterable[S] | None,
        to: S,
        *,
        title: object = None,
        form: type[Form] | _FormFactory | None = None,
        column: str | None = None,
        after: dt.timedelta | None = None,
        since: str | None = None,
        meta: Mapping[str, object] | None = None,
    ) -> None:
        self._from_arg = from_
        self.to = to
        self._title = title
        self._form: type[Form] | _FormFactory | FormFactory | None = form
        self.column = column
        self.after = after
        self.since = since
        self.meta: Mapping[str, object] = dict(meta or {})
        self.guards: list[Guard] = []
        self.permissions: list[Permission] = []
        self.executes: list[Execute] = []
        self.chains: list[Chain] = []
        self.after_commits: list[AfterCommit] = []
        self.name = ""
        # Filled in by Transitions.__init_subclass__.
        self.sources: tuple[StateType[Any], ...] = ()
        self._compiled_by_registry: dict[type[Any], Any] = {}  # execution's plans, per registry class
        self._hooks_version = 0  # bumped by every hook registration: plans built before are stale
        self._plain_sources: frozenset[StateType[Any]] | None = None
        # Identity, not equality (members compare equal to their raw values): the fast check in available().
        self._source_ids: frozenset[int] | None = None
        self.key = ""

    # Decorators -----------------------------------------------------------

    def guard(self, func: _GuardFunc | Guard) -> Guard:
        """Register a guard: ``@publish.guard``; refusal message from its docstring."""
        hook = func if isinstance(func, Guard) else Guard(func)
        self.guards.append(hook)
        hook.transitions.append(self)
        self._hooks_version += 1
        return hook

    def permission(self, func: _GuardFunc | Permission) -> Permission:
        """Register a permission check on ``self.actor``: ``@publish.permission``."""
        hook = func if isinstance(func, Permission) else Permission(func)
        self.permissions.append(hook)
        hook.transitions.append(self)
        self._hooks_version += 1
        return hook

    def execute(self, func: _ExecuteFunc | Execute) -> Execute:
        """Register a side effect ``(self, obj, data)``; it sees the old state."""
        hook = func if isinstance(func, Execute) else Execute(func)
        self.executes.append(hook)
        hook.transitions.append(self)
        self._hooks_version += 1
        return hook

    def chain(self, func: _ChainFunc | Chain) -> Chain:
        """Register transitions caused on other objects, applied before this one."""
        hook = func if isinstance(func, Chain) else Chain(func)
        self.chains.append(hook)
        hook.transitions.append(self)
        self._hooks_version += 1
        return hook

    def after_commit(self, func: _AfterCommitFunc | AfterCommit) -> AfterCommit:
        """Register a hook run once the outer transaction commits."""
        hook = func if isinstance(func, AfterCommit) else AfterCommit(func)
        self.after_commits.append(hook)
        hook.transitions.append(self)
        self._hooks_version += 1
        return hook

    def form(self, func: _FormFactory) -> FormFactory:
        """Register a form factory ``(self, obj) -> form class``."""
        hook = FormFactory(func)
        self._form = hook
        hook.transitions.append(self)
        self._hooks_version += 1
        return hook

    # Access ---------------------------------------------------------------

    @property
    def title(self) -> str:
        """The given title (a lazy string stays lazy: ``str()`` it), else humanized from the name."""
        return cast(str, self._title) if self._title is not None else humanize(self.name)

    @overload
    def __get__(self, instance: None, owner: type[object]) -> Self: ...

    @overload
    def __get__(self, instance: Transitions[M, A], owner: type[object]) -> BoundTransition[M, A]: ...

    def __get__(self, instance: Transitions[Any, Any] | None, owner: type[object]) -> object:
        if instance is None:
            return self
        # A non-data descriptor: from now on ``registry.publish`` is found in the instance dict.
        bound = instance.__dict__[self.name] = BoundTransition(self, instance)
        return bound

    def __repr__(self) -> str:
        return f"<Transition {self.name}: {', '.join(s.name for s in self.sources)} -> {self.to.name}>"

    def allows_from(self, current: StateType[Any], obj: object) -> bool:
        """Whether ``obj`` in ``current`` is in one of the source states."""
        plain = self._plain_sources
        if plain is not None:
            return current in plain
        return any(covers(source, current, obj) for source in self.sources)

    def where(self, model: type[object]) -> ColumnElement[bool]:
        """SQL for "this transition could apply": source states AND guard expressions.

        ``model`` is the registry's model or an ``aliased()`` form of it.
        """
        registry = self.registry()
        attr = getattr(model, self.key)
        entity = model
        clause = attr.__clause_element__()
        conditions = [sa.or_(*(source._sql(clause, entity) for source in self.sources))]
        restriction = subclass_criterion(model, clause.table)
        if restriction is not None:
            conditions.append(restriction)
        for guard in self.guards:
            if guard.sql is None:
                raise StateDefinitionError(
                    f"{self.registry.__name__}.{guard.name} has no SQL form; declare one with @{guard.name}.expression"
                )
            conditions.append(guard.sql(registry, model))
        return sa.and_(*conditions)


def subclass_criterion(model: type[Any], table: Any) -> ColumnElement[bool] | None:
    """SQL restricting rows of ``table`` to ``model`` and its subclasses, or None when every row is one.

    Inheritance: a registry of ``PrintJob(Job)`` must not touch plain ``Job``
    rows. Through the discriminator when it lives in ``table`` (single-table
    and most joined-table hierarchies), else through the subclass's own
    table's primary key.
    """
    mapper: object = sa.inspect(model)
    if not isinstance(mapper, Mapper):
        return None  # an aliased() entity: the caller's query says which rows
    if mapper.inherits is None or (not mapper.single and mapper.local_table is table):
        return None
    discriminator = mapper.polymorphic_on
    if discriminator is not None and getattr(discriminator, "table", None) is table:
        identities = [m.polymorphic_identity for m in mapper.self_and_descendants if m.polymorphic_identity is not None]
        return cast("ColumnElement[Any]", discriminator).in_(identities)
    table_pk = list(table.primary_key.columns)
    local_pk = list(cast("sa.Table", mapper.local_table).primary_key.columns)
    if len(table_pk) == 1:
        return cast("ColumnElement[bool]", table_pk[0].in_(sa.select(local_pk[0])))
    return sa.tuple_(*table_pk).in_(sa.select(*local_pk))


Step = tuple["BoundTransition[Any, Any]", Any]
"""A ``(bound transition, object)`` pair, as chain hooks return them."""


# ------------------------------------------------------------------ registry


class Transitions(Generic[M, A]):
    """A registry of transitions for one model: ``class ProjectTransitions(Transitions[Project, User])``.

    The type arguments are the mapped model and the actor's type. Attribute
    access on an instance gives a ``BoundTransition`` for each ``Transition``.

    Args:
        actor: Who acts (permissions read ``self.actor``); default None.
        log: The history model (a ``TransitionLogMixin`` subclass); default the
            ``log`` class attribute, None for no history.

    Raises:
        StateDefinitionError: At class creation, when the registry declares
            transitions without naming a mapped model.
    """

    model: ClassVar[type[Any]]
    log: ClassVar[type[TransitionLogMixin] | None] = None
    savepoint: ClassVar[bool] = False
    """Wrap every transition in a savepoint; set it when hooks issue SQL themselves."""

    _transitions: ClassVar[dict[str, Transition[Any]]] = {}

    def __init__(self, actor: A | None = None, *, log: type[TransitionLogMixin] | None = None) -> None:
        self.actor: A | None = actor
        if log is not None:
            self.log = log  # type: ignore[misc]

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles carry the actor and log, not the bound transitions cached for this instance."""
        state: dict[str, Any] = dict(self.__dict__)
        for name, value in self.__dict__.items():
            if isinstance(value, BoundTransition) and value.registry is self:  # pyright: ignore[reportUnknownMemberType]
                del state[name]
        return state

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = _model_of(cls)
        if model is None:
            declared = [name for name, value in cls.__dict__.items() if isinstance(value, Transition)]
            if declared:
                raise StateDefinitionError(
                    f"{cls.__name__}.{declared[0]}: the registry has no model; "
                    f"declare it as class {cls.__name__}(Transitions[Model, Actor]) with the mapped class itself"
                )
            return
        cls.model = model
        transitions = dict(getattr(cls, "_transitions", {}))
        for name, value in list(cls.__dict__.items()):
            if isinstance(value, Transition):
                value.name = name
                value.registry = cls
                _resolve(cls, model, value)  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
                transitions[name] = value
        cls._transitions = transitions
        _check_hooks(cls)

    # Registry-wide hooks, for subclasses to override ----------------------

    def before(self, step: AppliedStep[M]) -> None:
        """Run before every per-row step's execute hooks."""

    def after(self, step: AppliedStep[M]) -> None:
        """Run after every per-row step's compare-and-set and history."""

    def step_values(self, transition: Transition[Any], now: dt.datetime) -> Mapping[str, object]:
        """Attribute values written with every step, per-row and set-based."""
        return {}

    # Queries ---------------------------------------------------------------

    @classmethod
    def transitions(cls) -> tuple[Transition[Any], ...]:
        """Every transition, in declaration order."""
        return tuple(cls._transitions.values())

    def available(self, obj: M) -> list[BoundTransition[M, A]]:
        """Bound transitions that ``check(obj)`` allows, in declaration order; timed ones are omitted."""
        result: list[BoundTransition[M, A]] = []
        # The loaded members, when obj is a model instance: most transitions are decided from them
        # without building the reasons check() would report.
        values: dict[str, object] | None = getattr(obj, "__dict__", None) if isinstance(obj, type(self).model) else None
        for transition in self._transitions.values():
            if transition.after is not None:
                continue
            bound = cast("BoundTransition[M, A]", getattr(self, transition.name))
            source_ids = transition._source_ids
            if source_ids is not None and values is not None and not transition.chains:
                current = values.get(transition.key)
                if id(current) in source_ids:
                    if all(g.func(self, obj) for g in transition.guards) and all(
                        p.func(self, obj) for p in transition.permissions
                    ):
                        result.append(bound)
                    continue
                if isinstance(current, StateType):
                    continue  # a declared member outside the sources
            if bound.check(obj):
                result.append(bound)
        return result

    def describe(self, obj: M) -> list[TransitionDescription]:
        """Every transition for ``obj`` and this actor, in declaration order, as JSON-ready dicts:
        ``name``, ``title``, ``meta``, ``allowed``, ``reasons`` (``kind``, ``message``) and ``schema``."""
        from .schema import describe

        return describe(self, obj)

    @overload
    def history(self: _HasLog[_L], obj: M) -> list[_L]: ...

    @overload
    def history(self, obj: M) -> list[TransitionLogMixin]: ...

    def history(self, obj: M) -> list[Any]:
        """History rows of ``obj``, oldest first (by id), whichever registry wrote them.

        Typed ``list[ProjectLog]`` with ``log = ProjectLog`` on the registry.

        Raises:
            StateDefinitionError: The registry has no ``log``.
        """
        log = self.log
        if log is None:
            raise StateDefinitionError(f"{type(self).__name__} has no log; pass log= or set a log class attribute")
        return history_of(log, obj)

    def run_due(self, session: Session, now: dt.datetime | None = None) -> int:
        """Apply every timed transition whose time has elapsed, set-based and atomically.

        Args:
            session: The session whose transaction the UPDATEs join; the caller commits.
            now: The current time (timezone-aware); default the current UTC time.

        Returns:
            The number of rows moved, over every timed transition.
        """
        return _operations.run_due(self, session, now)

    async def run_due_async(self, session: AsyncSession, now: dt.datetime | None = None) -> int:
        """``run_due`` with an AsyncSession."""
        return await _operations.run_due_async(self, session, now)


class BoundTransition(Generic[M, A]):
    """A transition bound to a registry instance, and so to an actor: ``tx.publish``.

    Attributes:
        transition: The class-level ``Transition``.
        registry: The registry instance.
        name: The transition's attribute name (``"publish"``).
        title: The transition's title.
        meta: The transition's ``meta`` mapping.
        actor: The registry's actor.
    """

    __slots__ = ("transition", "registry", "name", "_compiled")

    def __init__(self, transition: Transition[Any], registry: Transitions[M, A]) -> None:
        self.transition = transition
        self.registry = registry
        self.name = transition.name
        self._compiled: Any = None  # execution's precomputed plan, built on first call

    @property
    def title(self) -> str:
        """The transition's title (a lazy string stays lazy: ``str()`` it)."""
        return self.transition.title

    @property
    def meta(self) -> Mapping[str, object]:
        """The transition's ``meta=`` mapping."""
        return self.transition.meta

    @property
    def actor(self) -> A | None:
        return self.registry.actor

    def __repr__(self) -> str:
        return f"<BoundTransition {type(self.registry).__name__}.{self.name}>"

    def check(self, obj: M) -> Verdict:
        """Every reason ``obj`` cannot take this transition (empty: allowed), chain included."""
        return Verdict(_reasons(self, obj, set()))

    def plan(self, obj: M) -> list[PlannedStep]:
        """This step then its chain depth first, with verdicts; children already in their target are left out."""
        planned: list[PlannedStep] = []
        _plan(self, obj, planned, set())
        return planned

    def where(self, model: type[M]) -> ColumnElement[bool]:
        """SQL for "this transition could apply" (source states AND guard expressions)."""
        return self.transition.where(model)

    def form(self, obj: M, formdata: object = None) -> Form | None:
        """The WTForms form for this transition bound to ``obj`` (None when it needs none).

        Args:
            obj: Fields named like an attribute of ``obj`` start with its value.
            formdata: Submitted data (a multidict, e.g. ``request.form``); default None.

        Raises:
            ImportError: WTForms (the ``forms`` extra) is not installed.
        """
        from .forms import build_form  # WTForms is an optional extra: imported when a form is asked for

        return build_form(self, obj, formdata)

    def schema(self, obj: M | None = None) -> dict[str, JSON]:
        """JSON Schema (draft 2020-12) of the ``data=`` this transition takes; see ``statetype.schema``.

        From the WTForms form or the Pydantic model given as ``form=``; an object
        with no declared properties when the transition needs no data. A form
        factory needs ``obj`` (TypeError without it).
        """
        from .schema import requirements_schema

        return requirements_schema(self, obj)

    def __call__(self, obj: M, data: Mapping[str, object] | None = None, form: Form | None = None) -> Applied:
        """Check, validate the input, and apply atomically (docs/transitions.md, "What atomic means").

        Args:
            obj: The object; a transient one changes in memory, its history and
                ``after_commit`` hooks wait for its first flush.
            data: Input validated by the transition's form; default None.
            form: A form instance to validate instead of ``data``; default None.
                With neither, a transition that has a form validates an empty
                submission.

        Returns:
            ``Applied`` with the steps applied (chain included) and the
            execute hooks' results.

        Raises:
            TransitionNotAllowed: ``check(obj)`` refuses (``.verdict`` has every reason).
            TransitionDataInvalid: The input is invalid (``.errors``: field -> messages).
            ConcurrentTransitionError: Another transaction changed or deleted the row first,
                or the database reported a deadlock or serialization failure.
            StateTypeError: The object is detached or deleted in its session.
            Exception: Whatever a hook or the database raised, unchanged. In every
                case nothing is applied and the caller's transaction is intact.
        """
        return _operations.apply(self, obj, data, form)

    def bulk(self, session: Session, *criteria: ColumnElement[bool]) -> BulkResult:
        """Apply set-based to every row that can take it and matches ``criteria``, atomically.

        One UPDATE over the source states, the guards' SQL and ``criteria``;
        history is written set-based, ``after_commit`` hooks run per row after
        the commit.

        Returns:
            ``BulkResult(count, ids)``: how many rows moved and their primary keys.

        Raises:
            BulkNotSupported: A guard or permission has no SQL form, the
                transition has a chain or an execute hook without an SQL form,
                or ``criteria`` name a table the UPDATE cannot correlate.
        """
        return _operations.bulk(self, session, *criteria)

    async def bulk_async(self, session: AsyncSession, *criteria: ColumnElement[bool]) -> BulkResult:
        """``bulk`` with an AsyncSession."""
        return await _operations.bulk_async(self, session, *criteria)


# ------------------------------------------------------------------ checks


def current_state(bound: BoundTransition[Any, Any], obj: object) -> StateType[Any] | None:
    """The object's current member for the transition's column (None if unset)."""
    value = getattr(obj, bound.transition.key)
    if value is None:
        return None
    return cast("StateType[Any]", value._member)


def _reasons(bound: BoundTransition[Any, Any], obj: object, seen: set[tuple[int, str]]) -> list[Reason]:
    transition = bound.transition
    registry = bound.registry
    model = type(registry).model
    if not isinstance(obj, model):
        raise TypeError(f"{bound!r} applies to {model.__name__} objects, not {type(obj).__name__}")
    reasons: list[Reason] = []
    current = current_state(bound, obj)
    if current is None or not current.known:
        label = f"{type(obj).__name__} {_identity(obj)}"
        value = "no state" if current is None else f"undeclared value {current.value!r}"
        reasons.append(Reason("unknown", f"{label} has {value}; {transition.name} cannot apply", obj))
    elif not transition.allows_from(current, obj):
        label = f"{type(obj).__name__} {_identity(obj)}"
        reasons.append(
            Reason(
                "state",
                f"{label} is {current.title}; {transition.name} needs "
                f"{' or '.join(str(s.title) for s in transition.sources)}",
                obj,
            )
        )
    if transition.after is not None:
        reasons.append(
            Reason("timer", f"{transition.name} is a timed transition, applied only by run_due()", obj)
        )
    for guard in transition.guards:
        if not guard.func(registry, obj):
            reasons.append(Reason("guard", guard.message, obj))
    for permission in transition.permissions:
        if not permission.func(registry, obj):
            reasons.append(Reason("permission", permission.message, obj))
    if transition.chains:
        seen.add((id(obj), transition.key))
        for child_bound, child in _chain_steps(bound, obj):
            if (id(child), child_bound.transition.key) in seen:
                continue
            child_reasons = _reasons(child_bound, child, seen)
            if child_reasons:
                detail = "; ".join(r.message for r in child_reasons)
                reasons.append(
                    Reason(
                        "chain",
                        f"{child_bound.name} on {type(child).__name__} {_identity(child)} is refused: {detail}",
                        child,
                    )
                )
    return reasons


def _chain_steps(bound: BoundTransition[Any, Any], obj: object) -> list[tuple[BoundTransition[Any, Any], object]]:
    """The chain's children that are not already in their target state, bound to this step's actor.

    A chain hook may build its child registry with any actor; the children are
    checked, applied and recorded with the actor of the top-level call.
    """
    steps: list[tuple[BoundTransition[Any, Any], object]] = []
    actor = bound.registry.actor
    for chain in bound.transition.chains:
        for step in chain.func(bound.registry, obj):
            child_bound, child = step
            if not isinstance(child_bound, BoundTransition):
                raise TypeError(
                    f"{type(bound.registry).__name__}.{chain.name} must return (bound transition, object) pairs, "
                    f"got {step!r}"
                )
            child_bound = _with_actor(child_bound, actor)  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
            current = current_state(child_bound, child)
            if current is child_bound.transition.to:
                continue
            steps.append((child_bound, child))  # pyright: ignore[reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
    return steps


def _with_actor(bound: BoundTransition[Any, Any], actor: object) -> BoundTransition[Any, Any]:
    registry = bound.registry
    if registry.actor is actor:
        return bound
    clone = copy.copy(registry)  # without the original's bound transitions (Transitions.__getstate__)
    clone.actor = actor
    return cast("BoundTransition[Any, Any]", getattr(clone, bound.name))


def _plan(
    bound: BoundTransition[Any, Any], obj: object, planned: list[PlannedStep], seen: set[tuple[int, str]]
) -> None:
    seen.add((id(obj), bound.transition.key))
    planned.append(PlannedStep(bound, obj, bound.check(obj)))
    for child_bound, child in _chain_steps(bound, obj) if bound.transition.chains else ():
        if (id(child), child_bound.transition.key) not in seen:
            _plan(child_bound, child, planned, seen)


def _identity(obj: object) -> str:
    try:
        state = sa.inspect(obj, raiseerr=True)  # SQLAlchemy 2.0 types the default as Optional
        key = state.identity
    except Exception:
        key = None
    if key is None:
        return f"(new, id {id(obj):#x})"
    return str(key[0]) if len(key) == 1 else str(list(key))


def refuse(bound: BoundTransition[Any, Any], obj: object, verdict: Verdict) -> TransitionNotAllowed:
    """The error for a refused transition, naming object, transition and reasons."""
    return TransitionNotAllowed(
        f"{type(bound.registry).__name__}.{bound.name} refused for {type(obj).__name__} {_identity(obj)}: {verdict}",
        verdict,
    )


# ------------------------------------------------------------------ class creation


def _model_of(cls: type[Transitions[Any, Any]]) -> type[Any] | None:
    for base in cast("tuple[Any, ...]", cls.__dict__.get("__orig_bases__", ())):
        origin = getattr(base, "__origin__", None)
        if isinstance(origin, type) and issubclass(origin, Transitions):
            args = getattr(base, "__args__", ())
            if args and isinstance(args[0], type):
                return cast("type[Any]", args[0])
    for base in cls.__mro__[1:]:
        model = base.__dict__.get("model")
        if isinstance(model, type):
            return model
    return None


def _state_columns(model: type[Any]) -> dict[str, type[StateType[Any]]]:
    mapper = cast("Mapper[Any]", sa.inspect(model))
    found: dict[str, type[StateType[Any]]] = {}
    for key, column in mapper.columns.items():
        column_type: StateType[Any] | None = getattr(column, "type", None)  # checked on the next line
        if isinstance(column_type, StateType):
            found[key] = type(column_type)
    return found


def _sources(cls: type[Any], transition: Transition[Any]) -> list[StateType[Any]]:
    arg = transition._from_arg
    if arg is None:
        return [s for s in cast("type[StateType[Any]]", type(transition.to)).states if not s.final]
    if isinstance(arg, StateType):
        return [arg]
    if isinstance(arg, Iterable) and not isinstance(arg, (str, bytes)):
        return list(cast("Iterable[StateType[Any]]", arg))
    raise StateDefinitionError(f"{cls.__name__}.{transition.name}: from_ must be states of a StateType, got {arg!r}")


def _resolve(cls: type[Transitions[Any, Any]], model: type[Any], transition: Transition[Any]) -> None:
    label = f"{cls.__name__}.{transition.name}"
    to = transition.to
    if not isinstance(to, StateType) or to.__dict__.get("_kind") != STATE:
        raise StateDefinitionError(f"{label}: the target must be one plain state, got {to!r}")
    statetype = type(to)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]  (isinstance narrowing leaves type arguments Unknown)
    sources = _sources(cls, transition)
    for source in sources:
        if not isinstance(source, StateType) or "_kind" not in source.__dict__:  # pyright: ignore[reportUnnecessaryIsInstance]  (runtime guard)
            raise StateDefinitionError(f"{label}: from_ contains {source!r}, which is not a state")
        if type(source) is not statetype:
            raise StateDefinitionError(
                f"{label}: from_ state {source!r} belongs to {type(source).__name__}, "
                f"but the target {to!r} belongs to {statetype.__name__}"
            )
        finals = [s for s in source.states if s.final]
        if finals:
            raise StateDefinitionError(
                f"{label}: {', '.join(repr(s) for s in finals)} is final; no transition may leave it"
            )
    columns = _state_columns(model)
    if transition.column is not None:
        if transition.column not in columns:
            raise StateDefinitionError(
                f"{label}: {model.__name__} has no StateType column {transition.column!r} "
                f"(state columns: {', '.join(columns) or 'none'})"
            )
        if columns[transition.column] is not statetype:
            raise StateDefinitionError(
                f"{label}: {model.__name__}.{transition.column} holds {columns[transition.column].__name__}, "
                f"not {statetype.__name__}"
            )
        key = transition.column
    else:
        matching = [k for k, t in columns.items() if t is statetype]
        if not matching:
            raise StateDefinitionError(f"{label}: {model.__name__} has no column of type {statetype.__name__}")
        if len(matching) > 1:
            raise StateDefinitionError(
                f"{label}: {model.__name__} has several {statetype.__name__} columns ({', '.join(matching)}); "
                "name one with column="
            )
        key = matching[0]
    if transition.after is not None:
        if transition.since is None or not hasattr(model, transition.since):
            raise StateDefinitionError(
                f"{label}: a timed transition needs since= naming a datetime column of {model.__name__}"
            )
    transition.key = key
    transition.sources = tuple(sources)
    plain: set[StateType[Any]] = set()
    for source in sources:
        if source.__dict__["_kind"] not in (STATE, GROUP) or any(
            c for c in _conditionals_in(source)
        ):
            break
        plain.update(source.states)
    else:
        transition._plain_sources = frozenset(plain)
        transition._source_ids = frozenset(id(m) for m in plain)


def _conditionals_in(member: StateType[Any]) -> list[StateType[Any]]:
    d = member.__dict__
    if d["_kind"] == GROUP:
        return [c for e in d["_elements"] for c in _conditionals_in(e)]
    if d["_kind"] == STATE:
        return []
    return [member]


def _check_hooks(cls: type[Transitions[Any, Any]]) -> None:
    """Hooks registered on a transition of another registry are a definition error."""
    own = set(cls._transitions.values())
    for name, value in cls.__dict__.items():
        if isinstance(value, _Hook):
            for transition in value.transitions:
                if transition not in own:
                    raise StateDefinitionError(
                        f"{cls.__name__}.{name} is registered on {transition!r}, which is not a transition of "
                        f"{cls.__name__}"
                    )
