"""pytest fixtures for testing LiveKit apps against an in-memory room (no server, no network).

Enable them with `pytest_plugins = ["lkproto.transports.pytest_plugin"]` in your top-level
conftest.py. They need pytest's anyio plugin (installed with anyio): mark tests with
`@pytest.mark.anyio`.

- `memory_server`: a running `lkproto.transports.testing.MemoryServer`; every Room your code
  connects during the test (asyncio, trio, or threaded, any URL) joins its room. Tune the
  room by overriding `memory_room_options` (e.g. `{"update_interval": 0}`).
- `memory_room`: that server's `lkproto.testing.MemoryRoom`: its `participants`, `dropped`
  packets and `now`. To act on it as the server (faults, `leave`, `update_participant`, ...),
  use `with memory_server.control() as room: ...`.
- `memory_token`: `memory_token("alice", can_publish_data=False, ...)` mints a token for it.
- The clock is the event loop's. For virtual time (timeouts pass at once), override
  `anyio_backend` with `virtual_asyncio()` or `virtual_trio()` from this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from . import MemoryRoom, MemoryServer, VirtualTimeLoop

__all__ = [
    "memory_room",
    "memory_room_options",
    "memory_server",
    "memory_token",
    "virtual_asyncio",
    "virtual_trio",
]


def virtual_asyncio() -> tuple[str, dict[str, object]]:
    """An `anyio_backend` value: asyncio on a virtual clock (`VirtualTimeLoop`)."""
    return ("asyncio", {"loop_factory": VirtualTimeLoop})


def virtual_trio() -> tuple[str, dict[str, object]]:
    """An `anyio_backend` value: trio on `MockClock(autojump_threshold=0)` (a fresh one)."""
    import trio.testing

    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@pytest.fixture
def memory_room_options() -> dict[str, object]:
    """Keyword arguments for the MemoryRoom (`name`, `update_interval`, ...)."""
    return {}


@pytest.fixture
async def memory_server(memory_room_options: dict[str, object]) -> AsyncIterator[MemoryServer]:
    async with MemoryServer(**memory_room_options) as server:
        yield server


@pytest.fixture
def memory_room(memory_server: MemoryServer) -> MemoryRoom:
    return memory_server.room


@pytest.fixture
def memory_token(memory_server: MemoryServer) -> Callable[..., str]:
    return memory_server.token
