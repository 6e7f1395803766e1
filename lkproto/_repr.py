"""One shared `__repr__` for lkproto's attrs classes, instead of one compiled per class.

attrs writes the source of each class's `__repr__`, `__init__`, `__eq__` and `__hash__` and
compiles it when the class is made. The repr is the largest of them (a recursion guard and an
f-string of every field): about half of the compile time, and compiling is most of what the
core's ~140 classes cost at import (issue 25, start-up: `import lkproto` ran about 20 ms of
repr compiles). `plain_repr`, put under the attrs decorator, gives the class this module's
`__repr__` before attrs sees it, so attrs (whose `auto_detect` keeps a class's own dunder)
compiles none. The text is what attrs writes: `Name(field=value!r, ...)` over the fields in
order, a field with `repr=False` left out, one with a callable `repr` shown through it, and
`...` for a value met again inside its own repr.
"""

from __future__ import annotations

import reprlib
from typing import TypeVar

import attrs

__all__ = ["plain_repr"]

C = TypeVar("C", bound=type)


@reprlib.recursive_repr()
def _repr(self: attrs.AttrsInstance) -> str:
    parts = []
    for field in attrs.fields(type(self)):
        show = field.repr
        if show is False:
            continue
        value = getattr(self, field.name)
        parts.append(f"{field.name}={repr(value) if show is True else show(value)}")
    name = type(self).__qualname__.rsplit(">.", 1)[-1]
    return f"{name}({', '.join(parts)})"


def plain_repr(cls: C) -> C:
    """Give `cls` the shared `__repr__` (unless it writes its own); goes below `@attrs.frozen`
    or `@attrs.define`."""
    if "__repr__" not in cls.__dict__:
        type.__setattr__(cls, "__repr__", _repr)
    return cls
