"""lkproto: a sans-I/O implementation of the LiveKit client protocol.

The core under ``lkproto`` does no I/O, reads no clock and draws no randomness:
bytes and ``now`` go in, events and commands come out. The adapters that own
sockets and WebRTC peer connections live in ``lkproto.transports``.
"""

from __future__ import annotations

from lkproto._version import __version__

__all__ = ["__version__"]
