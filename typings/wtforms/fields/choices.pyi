from collections.abc import Callable, Sequence
from typing import Any

from wtforms.fields.core import Field

class SelectFieldBase(Field):
    def iter_choices(self) -> Any: ...

class SelectField(SelectFieldBase):
    coerce: Callable[[Any], Any]
    choices: Any
    validate_choice: bool
    def __init__(
        self,
        label: str | None = None,
        validators: Sequence[Any] | None = None,
        coerce: Callable[[Any], Any] = ...,
        choices: Any = None,
        validate_choice: bool = True,
        **kwargs: Any,
    ) -> None: ...

def __getattr__(name: str) -> Any: ...
