"""lkproto.transports: adapters that give the sans-I/O core sockets and peer connections.

This folder is installed as ``lkproto.transports``; there is no top-level
``transports`` package.
"""

from __future__ import annotations

__all__: list[str] = []
