"""The pytest fixtures of `lkproto.transports.pytest_plugin`, used as an application would
(conftest.py brings them in here)."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from lkproto.testing import MemoryRoom
from lkproto.transports.anyio import Room
from lkproto.transports.pytest_plugin import virtual_asyncio, virtual_trio
from lkproto.transports.testing import MemoryServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture(params=[virtual_asyncio, virtual_trio], ids=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param()


async def test_the_fixtures_give_a_room_its_participants_and_the_clock(
    memory_server: MemoryServer, memory_room: MemoryRoom, memory_token: Callable[..., str]
) -> None:
    alice, bob = Room(), Room()
    arrived = anyio.Event()
    alice.on("participant_connected", lambda p: arrived.set())
    start = anyio.current_time()
    await alice.connect("wss://my-app.example", memory_token("alice"))
    await bob.connect("wss://my-app.example", memory_token("bob", can_publish_data=False))
    assert sorted(memory_room.participants) == ["alice", "bob"]
    assert not memory_room.participants["bob"].permissions.can_publish_data
    with anyio.fail_after(10):
        await arrived.wait()
    assert anyio.current_time() - start == 3.0  # the update tick, on the virtual clock
    assert sorted(alice.remote_participants) == ["bob"]
    with memory_server.control() as room:
        room.leave("bob")
    await bob.disconnect()
    await alice.disconnect()
    assert dict(memory_room.participants) == {}


@pytest.mark.parametrize("memory_room_options", [{"name": "lobby", "update_interval": 0}])
async def test_room_options(memory_room: MemoryRoom, memory_token: Callable[..., str]) -> None:
    room = Room()
    await room.connect("ws://x", memory_token("alice"))
    assert (room.name, memory_room.name) == ("lobby", "lobby")
    await room.disconnect()
