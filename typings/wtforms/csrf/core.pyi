from typing import Any

from wtforms.fields.core import Field

class CSRFTokenField(Field): ...

def __getattr__(name: str) -> Any: ...
