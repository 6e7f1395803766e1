"""`lkproto.transports.testing`: test your LiveKit app against a room in memory.

    from lkproto.transports.anyio import Room
    from lkproto.transports.testing import MemoryServer

    async with MemoryServer() as server:          # every Room in this context joins it
        room = Room()
        await room.connect(server.url, server.token("alice"))

- `MemoryServer` serves an `lkproto.testing.MemoryRoom` to `lkproto.transports.anyio` and
  `lkproto.transports.trio` Rooms with no network (see transports/_memory.py for how), and
  to `lkproto.transports.threaded` Rooms on any thread: the connector is a context variable,
  and anyio carries the caller's context into a worker thread (`anyio.to_thread`) and into
  the threaded Room's I/O loop (its portal). From a thread you started yourself, wrap the
  code in `with server.installed():`.
- Virtual time. The room runs on the event loop's clock. Make that clock virtual and the
  timeouts in your code (RPC 7 s / 15 s, your own) pass in milliseconds of real time:
  on trio, `trio.testing.MockClock(autojump_threshold=0)`; on asyncio, `VirtualTimeLoop`
  (`anyio_backend = ("asyncio", {"loop_factory": VirtualTimeLoop})` with pytest's anyio
  plugin). Both jump the clock to the next deadline whenever every task is waiting, so they
  suit tests with no real I/O: a real socket or a worker thread would see time leap.
- Faults, as the server: `with server.control() as room:` then `room.disconnect("bob",
  duration=20)` (a network cut), `room.fail_peer("bob")`, `room.drop_signal("bob")`,
  `room.restart(graceful=False, downtime=5)` (a crash), `room.leave(...)`. The Rooms resume
  or rejoin as against livekit-server, and `room.upgrades` records each attempt.
- The pytest fixtures are in `lkproto.transports.pytest_plugin`.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lkproto.testing import DroppedPacket, Link, MemoryRoom

from ._memory import MemoryServer

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["DroppedPacket", "Link", "MemoryRoom", "MemoryServer", "VirtualTimeLoop"]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0


class _AutojumpSelector(selectors.BaseSelector):
    """A selector that, when nothing is ready, jumps the clock over the wait instead."""

    def __init__(self, clock: _Clock) -> None:
        self._inner = selectors.DefaultSelector()
        self._clock = clock

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: object = None
    ) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: object = None
    ) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled: only another thread can wake us
            return self._inner.select(None)
        self._clock.now += timeout
        return []

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose clock starts at 0 and jumps to the next timer whenever
    nothing is ready: `await asyncio.sleep(3600)` returns at once, with `loop.time()` an
    hour later. For tests without real I/O (e.g. against a `MemoryServer`)."""

    def __init__(self) -> None:
        self._virtual = _Clock()
        super().__init__(_AutojumpSelector(self._virtual))

    def time(self) -> float:
        return self._virtual.now
