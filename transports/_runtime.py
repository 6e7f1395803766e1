"""What differs between the runtimes a session runs on, passed to it explicitly.

A `Session` (transports/_session.py) is written against anyio, which runs it on asyncio and
on trio alike: its loops, events, sleeps and cancel scopes are anyio's, so sleeping needs no
parameter. Three things do differ, and an adapter hands them over as a `Runtime`:
- `spawn`: where the session's tasks live. The anyio Room detaches them from the caller (a
  loop task on asyncio, a system task on trio); the trio Room can host them in a nursery of
  the caller's task (structured lifetime), shielded so that leaving still says goodbye.
- `make_peer`: the WebRTC side, given the session's `MediaRouter` (frames in and out). aiortc
  is asyncio-only: on asyncio it runs in the session's
  loop; on trio it runs in an asyncio loop on a helper thread (`AsyncioThreadBridge`).
- `dialer`: a custom way to open the signal connection's byte stream (the trio Room's
  `dialer=`), or None for TCP (TLS for `wss://`).
An installed `Connector` (the memory transport, transports/_connector.py) replaces the peer
and the default dialing for every session, whatever its runtime.

aiortc (and with it aioice, PyAV, numpy and the SCTP fix of transports/_sctp.py) is imported
by `aiortc_peer` and `bridged_peer`, when a session first needs a peer connection, never when
an adapter is imported (issue 25: they cost most of a process's start-up). A session's first
`connect()` imports it earlier, on a worker thread while the signal connection is set up
(`Session._install_peer`), so these find it loaded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Protocol, TypeAlias

import anyio.abc
import sniffio

from lkproto.models import IceServer

from ._media import MediaRouter
from ._ports import PeerListener, PeerPort
from ._rtc_config import IcePolicy

if TYPE_CHECKING:
    import asyncio

__all__ = ["AnyioRuntime", "Dial", "Runtime", "aiortc_peer", "bridged_peer"]

Dial: TypeAlias = Callable[[str, int, bool], Awaitable[anyio.abc.ByteStream]]
"""`dial(host, port, tls)`: open the signal connection's byte stream."""


class Runtime(Protocol):
    dialer: Dial | None

    def spawn(self, run: Callable[[], Coroutine[object, object, None]]) -> None:
        """Start `run()` (the session's body) detached from the caller; it ends by itself."""

    def make_peer(
        self,
        listener: PeerListener,
        *,
        host_addresses: list[str] | None,
        ice_servers: list[IceServer],
        media: MediaRouter | None = None,
        ice_policy: IcePolicy | None = None,
    ) -> PeerPort:
        """The peer-connection side for one session, reporting to `listener`."""
        ...


def aiortc_peer(
    listener: PeerListener,
    *,
    host_addresses: list[str] | None,
    ice_servers: list[IceServer],
    media: MediaRouter | None = None,
    ice_policy: IcePolicy | None = None,
) -> PeerPort:
    """aiortc in the running asyncio loop."""
    from ._aiortc import AiortcPeer  # aiortc's first import: here, not with the adapter

    return AiortcPeer(
        listener,
        host_addresses=host_addresses,
        ice_servers=ice_servers,
        media=media,
        ice_policy=ice_policy,
    )


def bridged_peer(
    listener: PeerListener,
    *,
    host_addresses: list[str] | None,
    ice_servers: list[IceServer],
    media: MediaRouter | None = None,
    ice_policy: IcePolicy | None = None,
) -> PeerPort:
    """aiortc in an asyncio loop on a helper thread, reporting back into this trio run."""
    import trio

    from ._asyncio_bridge import AsyncioThreadBridge  # imports aiortc (see the module doc)

    post = trio.lowlevel.current_trio_token().run_sync_soon
    return AsyncioThreadBridge(
        listener,
        post,
        host_addresses=host_addresses,
        ice_servers=ice_servers,
        media=media,
        ice_policy=ice_policy,
    )


class AnyioRuntime:
    """Whichever of asyncio and trio is running: tasks detached from the caller, aiortc in
    the loop (asyncio) or behind a thread bridge (trio), TCP dialing."""

    dialer: Dial | None = None

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None  # asyncio keeps only weak references

    def spawn(self, run: Callable[[], Coroutine[object, object, None]]) -> None:
        if sniffio.current_async_library() == "asyncio":
            import asyncio  # running, so imported already: not with the adapter (issue 25)

            self._task = asyncio.get_running_loop().create_task(run())
        else:
            import trio

            trio.lowlevel.spawn_system_task(run)

    def make_peer(
        self,
        listener: PeerListener,
        *,
        host_addresses: list[str] | None,
        ice_servers: list[IceServer],
        media: MediaRouter | None = None,
        ice_policy: IcePolicy | None = None,
    ) -> PeerPort:
        make = aiortc_peer if sniffio.current_async_library() == "asyncio" else bridged_peer
        return make(
            listener,
            host_addresses=host_addresses,
            ice_servers=ice_servers,
            media=media,
            ice_policy=ice_policy,
        )
