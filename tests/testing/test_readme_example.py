# test_weather.py: an RPC handler's timeout path, tested with no server, in milliseconds.
import time

import anyio
import pytest

from lkproto.transports.anyio import Room, RpcError, RpcInvocationData
from lkproto.transports.testing import MemoryServer, VirtualTimeLoop


# The application code under test, exactly as it runs in production.
def serve_weather(room: Room) -> None:
    @room.local_participant.register_rpc_method("get-weather")
    async def get_weather(data: RpcInvocationData) -> str:
        await anyio.sleep(20)  # a slow upstream API
        return "sunny"


async def ask_weather(room: Room) -> str:
    try:
        return await room.local_participant.perform_rpc(
            destination_identity="weather-agent",
            method="get-weather",
            payload="",
            response_timeout=10,
        )
    except RpcError as error:
        if error.code == RpcError.ErrorCode.RESPONSE_TIMEOUT:
            return "unknown (the weather agent is slow)"
        raise


# The test: a virtual clock, so the 10 s timeout passes at once.
@pytest.fixture
def anyio_backend() -> object:
    return ("asyncio", {"loop_factory": VirtualTimeLoop})


@pytest.mark.anyio
async def test_a_slow_weather_agent_times_out() -> None:
    started = time.monotonic()
    async with MemoryServer() as server:  # every Room joins this in-memory room
        agent, user = Room(), Room()
        serve_weather(agent)
        await agent.connect(server.url, server.token("weather-agent"))
        await user.connect(server.url, server.token("user"))

        asked = anyio.current_time()
        assert await ask_weather(user) == "unknown (the weather agent is slow)"
        assert anyio.current_time() - asked == 10.0  # ten seconds on the loop's clock...

        await user.disconnect()
        await agent.disconnect()
    assert time.monotonic() - started < 1.0  # ...and milliseconds of real time
