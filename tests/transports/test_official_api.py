"""Where the adapters meet `livekit.rtc`'s API by name: held against the official SDK's classes.

Two gaps found this way are closed here: `LocalParticipant.stream_text(sender_identity=)` on
every adapter, and `.info` (a read-only property, as in `livekit.rtc`) on the threaded
adapter's stream readers and writers. The behaviour of `sender_identity` runs over the memory
transport: the server honours the override only for agents, so for anyone else the stream
arrives from the real identity; an agent asking for another identity is refused, because the
core sends every stream as the local participant.
"""

from __future__ import annotations

import inspect
import threading
from types import ModuleType
from typing import Any

import anyio
import anyio.to_thread
import pytest
from livekit import rtc

from lkproto.models import ParticipantKind
from lkproto.transports import _blocking, _streams, threaded
from lkproto.transports import anyio as lk_anyio
from lkproto.transports import trio as lk_trio
from lkproto.transports.testing import MemoryServer

pytestmark = pytest.mark.timeout(30)

ADAPTERS = [lk_anyio, lk_trio, threaded]
STREAM_CLASSES = ["TextStreamReader", "ByteStreamReader", "TextStreamWriter", "ByteStreamWriter"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("module", ADAPTERS, ids=lambda m: m.__name__)
def test_stream_text_takes_every_parameter_of_the_official_one(module: ModuleType) -> None:
    official = inspect.signature(rtc.LocalParticipant.stream_text).parameters
    ours = inspect.signature(module.LocalParticipant.stream_text).parameters
    assert [name for name in official if name not in ours] == []
    assert {n: (ours[n].kind, ours[n].default) for n in official} == {
        n: (p.kind, p.default) for n, p in official.items()
    }
    assert ours["sender_identity"].default is None


@pytest.mark.parametrize("module", ADAPTERS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("name", STREAM_CLASSES)
def test_stream_readers_and_writers_have_info_like_the_official_ones(
    module: ModuleType, name: str
) -> None:
    assert isinstance(inspect.getattr_static(getattr(rtc, name), "info"), property)
    assert isinstance(inspect.getattr_static(getattr(module, name), "info"), property)


def _infos() -> tuple[_streams.TextStreamInfo, _streams.ByteStreamInfo]:
    text = _streams.TextStreamInfo(
        stream_id="t1", mime_type="text/plain", topic="chat", timestamp=1, size=None
    )
    data = _streams.ByteStreamInfo(
        stream_id="b1", mime_type="image/png", topic="files", timestamp=2, size=3, name="f.png"
    )
    return text, data


def test_threaded_readers_and_writers_show_the_async_objects_info_read_only() -> None:
    text, data = _infos()
    io = _blocking.IoThread()  # never started: .info needs no I/O thread

    def ignore(*_: object) -> None:
        return None

    objects: list[tuple[Any, object]] = [
        (threaded.TextStreamReader(io, _streams.TextStreamReader(text, "a", ignore, ignore)), text),
        (threaded.ByteStreamReader(io, _streams.ByteStreamReader(data, "a", ignore, ignore)), data),
        (threaded.TextStreamWriter(io, _streams.TextStreamWriter(None, text)), text),
        (threaded.ByteStreamWriter(io, _streams.ByteStreamWriter(None, data)), data),
    ]
    for blocking, info in objects:
        assert blocking.info is info
        with pytest.raises(AttributeError):
            blocking.info = info


# -- sender_identity over the memory transport ------------------------------------------------


async def _stream_text_as(server: MemoryServer, kind: ParticipantKind, sender: str | None) -> Any:
    """alice (of `kind`) streams "hi" to bob with `sender_identity=sender`; what bob got."""
    alice, bob = lk_anyio.Room(), lk_anyio.Room()
    got: list[tuple[str, str]] = []
    done = anyio.Event()

    async def on_text(reader: lk_anyio.TextStreamReader, identity: str) -> None:
        got.append((identity, await reader.read_all()))
        done.set()

    bob.register_text_stream_handler("t", on_text)
    await bob.connect(server.url, server.token("bob"))
    await alice.connect(server.url, server.token("alice", kind=kind))
    try:
        writer = await alice.local_participant.stream_text(topic="t", sender_identity=sender)
        await writer.write("hi")
        await writer.aclose()
        with anyio.fail_after(10):
            await done.wait()
        return got
    finally:
        await alice.disconnect()
        await bob.disconnect()


@pytest.mark.anyio
@pytest.mark.parametrize("sender", [None, "alice", "someone-else"])
async def test_stream_text_with_sender_identity_arrives_from_the_real_sender(
    sender: str | None,
) -> None:
    async with MemoryServer(update_interval=0) as server:
        got = await _stream_text_as(server, ParticipantKind.STANDARD, sender)
    assert got == [("alice", "hi")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("sender", "seen"), [(None, "alice"), ("alice", "alice"), ("user", "user")]
)
async def test_an_agent_streams_text_on_behalf_of_another_participant(
    sender: str | None, seen: str
) -> None:
    """The server keeps an agent's claimed sender on text streams (and only an agent's)."""
    async with MemoryServer(update_interval=0) as server:
        got = await _stream_text_as(server, ParticipantKind.AGENT, sender)
    assert got == [(seen, "hi")]


@pytest.mark.anyio
async def test_stream_text_refuses_a_sender_identity_that_is_not_a_str() -> None:
    async with MemoryServer(update_interval=0) as server:
        alice = lk_anyio.Room()
        await alice.connect(server.url, server.token("alice"))
        try:
            with pytest.raises(TypeError, match="sender_identity must be str or None, not int"):
                await alice.local_participant.stream_text(topic="t", sender_identity=7)  # type: ignore[arg-type]
            conn = alice.connection
            assert conn is not None and conn.open_stream_ids == ()  # nothing was sent
        finally:
            await alice.disconnect()


@pytest.mark.anyio
async def test_the_threaded_stream_text_takes_sender_identity() -> None:
    async with MemoryServer(update_interval=0) as server:

        def work() -> tuple[list[tuple[str, str]], str]:
            got: list[tuple[str, str]] = []
            arrived = threading.Event()

            def on_text(reader: threaded.TextStreamReader, identity: str) -> None:
                got.append((identity, reader.read_all()))
                arrived.set()

            with threaded.Room() as alice, threaded.Room() as bob:
                bob.register_text_stream_handler("t", on_text)
                bob.connect(server.url, server.token("bob"), threaded.RoomOptions())
                alice.connect(server.url, server.token("alice"), threaded.RoomOptions())
                with alice.local_participant.stream_text(topic="t", sender_identity="x") as w:
                    w.write("hi")
                assert arrived.wait(10)
                return got, w.info.topic

        with anyio.fail_after(20):
            assert await anyio.to_thread.run_sync(work) == ([("alice", "hi")], "t")
