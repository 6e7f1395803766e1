"""The pytest fixtures of `lkproto.transports.testing`, under their stable name: enable them with
`pytest_plugins = ["lkproto.transports.pytest_plugin"]` in your top-level conftest.py. They
live in `lkproto.transports.testing.pytest_plugin` (see there); this module only names them.
"""

from __future__ import annotations

from .testing.pytest_plugin import (
    memory_room,
    memory_room_options,
    memory_server,
    memory_token,
    virtual_asyncio,
    virtual_trio,
)

__all__ = [
    "memory_room",
    "memory_room_options",
    "memory_server",
    "memory_token",
    "virtual_asyncio",
    "virtual_trio",
]
