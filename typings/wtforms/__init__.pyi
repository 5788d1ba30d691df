# Minimal stubs for WTForms (which ships no type information): only what
# statetype.forms uses is spelled out; every other name is Any.
from typing import Any

from wtforms.fields import Field as Field, SelectField as SelectField
from wtforms.form import BaseForm as BaseForm, Form as Form

def __getattr__(name: str) -> Any: ...
