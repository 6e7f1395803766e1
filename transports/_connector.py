"""Where a Room's connections come from, replaceable for tests (`lkproto.testing`).

By default a Room dials the signal server over TCP (TLS for `wss://`) and runs WebRTC with
aiortc. A `Connector` installed in the `CONNECTOR` context variable replaces both for every
Room that connects within that context: `connect()` reads it once and keeps it for the
session. This is how an in-memory room serves unchanged application code.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol

import anyio.abc

from lkproto.models import IceServer

from ._media import MediaRouter
from ._ports import PeerListener, PeerPort
from ._rtc_config import IcePolicy

__all__ = ["CONNECTOR", "Connector"]


class Connector(Protocol):
    async def dial(self, host: str, port: int, tls: bool) -> anyio.abc.ByteStream:
        """Open the signal connection's byte stream (the Room speaks WebSocket over it)."""
        ...

    def make_peer(
        self,
        listener: PeerListener,
        *,
        host_addresses: list[str] | None,
        ice_servers: list[IceServer],
        media: MediaRouter | None = None,
        ice_policy: IcePolicy | None = None,
    ) -> PeerPort:
        """The peer-connection side for one session, reporting to `listener`, carrying media
        through `media`."""
        ...


CONNECTOR: ContextVar[Connector | None] = ContextVar("lkproto_connector", default=None)
