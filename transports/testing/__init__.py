"""`lkproto.transports.testing`: test your LiveKit app against a room in memory.

    from lkproto.transports.anyio import Room
    from lkproto.transports.testing import MemoryServer

    async with MemoryServer() as server:          # every Room in this context joins it
        room = Room()
        await room.connect(server.url, server.token("alice"))

- `MemoryServer` serves an `lkproto.testing.MemoryRoom` to `lkproto.transports.anyio` and
  `lkproto.transports.trio` Rooms with no network (see transports/testing/_memory.py for
  how), and
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
- The pytest fixtures are in `lkproto.transports.pytest_plugin` (this package's
  `pytest_plugin` module, under its stable short name).
"""

from __future__ import annotations

from lkproto.testing import DroppedPacket, Link, MemoryRoom

from ._clock import VirtualTimeLoop
from ._memory import MemoryServer

__all__ = ["DroppedPacket", "Link", "MemoryRoom", "MemoryServer", "VirtualTimeLoop"]
