from typing import Any

from wtforms.fields.choices import SelectField as SelectField, SelectFieldBase as SelectFieldBase
from wtforms.fields.core import Field as Field

def __getattr__(name: str) -> Any: ...
