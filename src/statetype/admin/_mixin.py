"""``StateAdminMixin``: a SQLAdmin ``ModelView`` whose state columns change only through transitions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from urllib.parse import quote

import anyio.to_thread
from jinja2 import ChoiceLoader, PackageLoader
from sqladmin import action, expose
from sqladmin.helpers import get_object_identifier, object_identifier_values  # pyright: ignore[reportUnknownVariableType]
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..exceptions import ConcurrentTransitionError, StateDefinitionError, TransitionDataInvalid, TransitionNotAllowed
from ..transitions import BoundTransition, Transition, Transitions
from ._filters import StateFilter
from ._pages import (
    BulkOutcome,
    StatePanel,
    bulk_apply,
    current_member,
    merged_actor,
    plan_entries,
    stale_message,
    state_columns,
    state_panels,
)

if TYPE_CHECKING:
    from sqladmin import ModelView
    from sqladmin._types import ColumnFilter  # the filter protocols' union (types only)

    _ViewBase = ModelView
else:
    _ViewBase = object

__all__ = ["StateAdminMixin"]

_R = TypeVar("_R")
_MESSAGES = "statetype_messages"
_STATE_FIELD = "statetype_state"


class StateAdminMixin(_ViewBase):
    """Mix into ``sqladmin.ModelView`` first: ``class ProjectAdmin(StateAdminMixin, ModelView, model=Project)``.

    Set ``transitions`` to the model's registry class and override ``actor``.
    Then:

    * the list view shows each state column by its title and offers a filter
      per state column (states, groups and conditional states, through their SQL);
    * the detail view shows, per state column, the current state, a button per
      transition the actor may apply, the refused ones with every reason, and
      the object's history (``registry.history``);
    * a button opens the transition's page: its WTForms form (errors shown on the
      same page) or a confirmation (with ``plan()`` when it has a chain); applying
      commits and returns to the detail view with a message, a refusal shows
      every reason, a change made meanwhile (``ConcurrentTransitionError``, or a
      state that is not the one the page was shown for) says so;
    * create and edit forms leave state columns out;
    * the list action "Apply a transition" applies one transition to the
      selected rows (``bulk()`` where the transition allows it, per row
      otherwise) and reports how many moved and why the others did not.

    Attributes:
        transitions: The registry class (required).
        transition_template: The transition page's template.
        bulk_template: The list action's pages' template.

    Raises:
        StateDefinitionError: When the view is added to an ``Admin``: no
            ``transitions``, or a registry of another model.
    """

    transitions: ClassVar[type[Transitions[Any, Any]]]
    details_template: ClassVar[str] = "statetype/details.html"
    transition_template: ClassVar[str] = "statetype/transition.html"
    bulk_template: ClassVar[str] = "statetype/bulk.html"

    def __init__(self) -> None:
        registry = cast("type[Transitions[Any, Any]] | None", getattr(type(self), "transitions", None))
        name = type(self).__name__
        if registry is None or not (isinstance(registry, type) and issubclass(registry, Transitions)):  # pyright: ignore[reportUnnecessaryIsInstance]  (runtime guard)
            raise StateDefinitionError(
                f"{name}.transitions must be a Transitions subclass (the model's registry), got {registry!r}"
            )
        if not issubclass(self.model, registry.model):
            raise StateDefinitionError(
                f"{name}.transitions is {registry.__name__}, a registry of {registry.model.__name__}, "
                f"but the view shows {self.model.__name__}"
            )
        self._state_columns = state_columns(self.model)
        super().__init__()
        templates = getattr(self, "templates", None)  # set by Admin.add_view before it builds the view
        loader = getattr(getattr(templates, "env", None), "loader", None)
        if isinstance(loader, ChoiceLoader) and not any(
            getattr(sub, "package_name", None) == __package__ for sub in loader.loaders
        ):
            loader.loaders = [*loader.loaders, PackageLoader(__package__ or "statetype.admin", "templates")]

    # Who acts ----------------------------------------------------------------

    def actor(self, request: Request) -> object | None:
        """The acting user for ``request``; default ``request.state.user`` (None without one).

        A mapped actor is merged into the session that checks and applies
        transitions, so permissions comparing it with loaded objects hold.
        """
        return cast("object | None", getattr(request.state, "user", None))

    # List, detail and forms --------------------------------------------------

    def get_form_columns(self) -> list[str]:
        """The base class's form columns without the state columns."""
        return [name for name in super().get_form_columns() if name not in self._state_columns]

    def get_filters(self) -> list[ColumnFilter]:
        """The base class's filters, then a ``StateFilter`` per state column."""
        labels = cast("Mapping[str, str]", getattr(self, "_column_labels", {}))
        filters = list(super().get_filters())
        for column, statetype in self._state_columns.items():
            if not any(getattr(f, "parameter_name", None) == column for f in filters):
                filters.append(cast("ColumnFilter", StateFilter(column, statetype, labels.get(column))))
        return filters

    async def get_list_value(self, obj: object, prop: str, request: Request | None = None) -> tuple[object, object]:
        """A state column's value and its state's title; other columns as the base class shows them."""
        if prop in self._state_columns and prop not in getattr(self, "_list_formatters", {}):
            return self._state_value(obj, prop)
        return await super().get_list_value(obj, prop, request)

    async def get_detail_value(self, obj: object, prop: str, request: Request | None = None) -> tuple[object, object]:
        """A state column's value and its state's title; other columns as the base class shows them."""
        if prop in self._state_columns and prop not in getattr(self, "_detail_formatters", {}):
            return self._state_value(obj, prop)
        return await super().get_detail_value(obj, prop, request)

    def _state_value(self, obj: object, prop: str) -> tuple[object, str]:
        member = current_member(obj, prop)
        return member, "" if member is None else str(member.title)

    async def state_panels(self, request: Request, obj: object) -> list[StatePanel]:
        """The detail page's panels (``StatePanel``), one per state column, for ``request``'s actor."""
        key = str(get_object_identifier(obj))
        actor = self.actor(request)
        labels = cast("Mapping[str, str]", getattr(self, "_column_labels", {}))

        def work(session: Session) -> list[StatePanel]:
            fresh = self._load(session, key)
            return state_panels(self.transitions(actor=merged_actor(session, actor)), fresh, labels)

        return await self._in_session(work)

    def state_messages(self, request: Request) -> list[str]:
        """Messages left for this page by an applied transition (taken once)."""
        if "session" in request.scope:
            return cast("list[str]", request.session.pop(_MESSAGES, []))
        message = request.query_params.get(_MESSAGES)
        return [message] if message else []

    def transition_url(self, request: Request, name: str, obj: object) -> str:
        """The URL of transition ``name``'s page for ``obj``."""
        return str(
            request.url_for(
                f"admin:view-{self.identity}-transition_page", transition=name, pk=str(get_object_identifier(obj))
            )
        )

    # Applying ------------------------------------------------------------------

    @expose("/transition/{transition}/{pk:path}", methods=["GET", "POST"])
    async def transition_page(self, request: Request) -> Response:
        """GET: the form or confirmation of a transition; POST: apply it, then back to the detail view."""
        name = str(request.path_params["transition"])
        pk = str(request.path_params["pk"])
        transition = self._transition(name)
        actor = self.actor(request)
        formdata: FormData | None = await request.form() if request.method == "POST" else None
        details = str(request.url_for("admin:details", identity=self.identity, pk=pk))

        def work(session: Session) -> tuple[int, dict[str, object]]:
            obj = self._load(session, pk)
            bound = cast("BoundTransition[Any, Any]", getattr(self.transitions(actor=merged_actor(session, actor)), name))
            member = current_member(obj, transition.key)
            page: dict[str, object] = {
                "transition_title": str(bound.title),
                "object_label": f"{self.name} {pk}",
                "state_title": "(none)" if member is None else str(member.title),
                "state_value": "" if member is None else str(member.value),
                "details_url": details,
                "form": None,
                "plan": [],
                "reasons": [],
                "stale": None,
                "message": None,
            }
            if formdata is not None and formdata.get(_STATE_FIELD) != page["state_value"]:
                page["stale"] = stale_message(obj)
                return 409, page
            verdict = bound.check(obj)
            if not verdict:
                page["reasons"] = [r.message for r in verdict.reasons]
                return 403, page
            form = bound.form(obj, formdata) if transition._form is not None else None
            page["form"] = form
            if transition.chains:
                page["plan"] = plan_entries(bound, obj)
            if formdata is None:
                return 200, page
            try:
                applied = bound(obj, form=form) if form is not None else bound(obj)
                session.commit()
            except TransitionDataInvalid:
                session.rollback()
                return 400, page  # the bound form holds the field errors
            except TransitionNotAllowed as error:
                session.rollback()
                page["reasons"] = [r.message for r in error.verdict.reasons]
                return 403, page
            except ConcurrentTransitionError:
                session.rollback()
                page["stale"] = stale_message(obj)
                return 409, page
            now = current_member(obj, transition.key)
            steps = len(applied.steps)
            page["message"] = f"{bound.title}: {self.name} {pk} is now {'(none)' if now is None else now.title}" + (
                f" ({steps} steps)" if steps > 1 else ""
            )
            return 303, page

        status, page = await self._in_session(work)
        if status == 303:
            return self._redirect_with_message(request, details, str(page["message"]))
        context: dict[str, Any] = {
            **page,
            "model_view": self,
            "title": self.name,
            "state_field": _STATE_FIELD,
            "action_url": str(request.url),
        }
        return await self._render(request, self.transition_template, context, status)

    @action(name="apply-transition", label="Apply a transition", add_in_detail=False)
    async def choose_bulk_transition(self, request: Request) -> Response:
        """The list action: choose a transition for the selected rows (``?pks=``)."""
        pks = request.query_params.get("pks", "")
        keys = self._keys(pks)
        actor = self.actor(request)

        def work(session: Session) -> list[tuple[str, str, int, bool]]:
            registry = self.transitions(actor=merged_actor(session, actor))
            objects = [obj for obj in (self._get(session, key) for key in keys) if obj is not None]
            choices: list[tuple[str, str, int, bool]] = []
            for transition in registry.transitions():
                if transition.after is not None:
                    continue
                bound = cast("BoundTransition[Any, Any]", getattr(registry, transition.name))
                able = sum(1 for obj in objects if bound.check(obj))
                choices.append((transition.name, str(bound.title), able, transition._form is None))
            return choices

        choices = await self._in_session(work) if keys else []
        context: dict[str, Any] = {
            "model_view": self,
            "title": self.name,
            "pks": pks,
            "selected": len(keys),
            "choices": choices,
            "outcome": None,
            "apply_url": str(request.url_for(f"admin:view-{self.identity}-apply_to_selected")),
            "list_url": str(request.url_for("admin:list", identity=self.identity)),
        }
        return await self._render(request, self.bulk_template, context, 200)

    @expose("/transition-selected", methods=["POST"])
    async def apply_to_selected(self, request: Request) -> Response:
        """Apply the chosen transition to the selected rows and report what moved."""
        formdata = await request.form()
        pks = str(formdata.get("pks") or "")
        transition = self._transition(str(formdata.get("transition") or ""))
        if transition._form is not None:
            raise HTTPException(400, f"{transition.name} needs a form: apply it from each row's page")
        keys = self._keys(pks)
        actor = self.actor(request)

        def work(session: Session) -> BulkOutcome:
            return bulk_apply(session, self.transitions(actor=merged_actor(session, actor)), transition, keys)

        outcome = await self._in_session(work)
        context: dict[str, Any] = {
            "model_view": self,
            "title": self.name,
            "pks": pks,
            "selected": len(keys),
            "choices": [],
            "outcome": outcome,
            "apply_url": "",
            "list_url": str(request.url_for("admin:list", identity=self.identity)),
        }
        return await self._render(request, self.bulk_template, context, 200)

    # Helpers --------------------------------------------------------------------

    def _transition(self, name: str) -> Transition[Any]:
        for transition in self.transitions.transitions():
            if transition.name == name and transition.after is None:
                return transition
        raise HTTPException(404, f"{self.transitions.__name__} has no transition {name!r}")

    def _key(self, pk: str) -> tuple[object, ...]:
        values: tuple[object, ...] = object_identifier_values(pk, self.model)  # pyright: ignore[reportUnknownVariableType]  (untyped tuple)
        return values

    def _keys(self, pks: str) -> list[tuple[object, ...]]:
        return [self._key(part) for part in pks.split(",") if part]

    def _get(self, session: Session, key: tuple[object, ...]) -> object | None:
        return cast("object | None", session.get(self.model, key[0] if len(key) == 1 else key))

    def _load(self, session: Session, pk: str) -> object:
        obj = self._get(session, self._key(pk))
        if obj is None:
            raise HTTPException(404, f"no {self.name} {pk}")
        return obj

    async def _in_session(self, work: Callable[[Session], _R]) -> _R:
        """Run ``work`` with a sync ``Session`` of the view's session maker (``run_sync`` for an async one)."""
        maker: Any = self.session_maker  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  (SQLAdmin's sessionmaker union)
        if self.is_async:
            async with maker() as session:
                return cast("_R", await session.run_sync(work))

        def run() -> _R:
            with maker() as session:
                return work(cast(Session, session))

        return await anyio.to_thread.run_sync(run)

    def _redirect_with_message(self, request: Request, url: str, message: str) -> Response:
        if "session" in request.scope:
            request.session.setdefault(_MESSAGES, []).append(message)
            return RedirectResponse(url, status_code=303)
        return RedirectResponse(f"{url}?{_MESSAGES}={quote(message)}", status_code=303)

    async def _render(self, request: Request, template: str, context: dict[str, Any], status: int) -> Response:
        response: Response = await self.templates.TemplateResponse(request, template, context, status_code=status)  # pyright: ignore[reportUnknownMemberType]
        return response
