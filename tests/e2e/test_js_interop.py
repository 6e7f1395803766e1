"""lkproto against the JavaScript reference client, `livekit-client` 2.23.0 in headless Chromium.

The JS participant is a page of one browser shared by the module (harness/jspeer.py; the
tests run one at a time on one xdist worker, `xdist_group`), driven through its small API
(peers/js/src/page.ts). Every test runs once per lkproto adapter (harness/adapters.py) and
checks both directions with exact contents: who is in the room, attributes, metadata and
names, data packets (bytes, topic, reliability, destinations), RPC (success, application
errors, built-in errors, our caller's timeout, payloads over v1's 15 KiB, which v2 carries as
data streams) and text and byte streams (sha256). Not checked: a JS caller's timeout, which
livekit-client clamps to at least 8 s (too slow for this suite; lkproto's callee side of it is
tested against the official SDK).

livekit-client's own behaviour, as observed here and asserted where it shows:
- it advertises client_protocol 2 (RPC v2, data streams v2 with compression), so lkproto
  speaks v2 to it; but it takes a remote's protocol from the server's announcement of that
  participant, so until then it treats us as protocol 0: it answers our v2 request in v1
  (a reply over 15 KiB fails with 1504) and sends us v1 requests and uncompressed streams.
  The tests send the large payloads once it knows us;
- it reports every received data packet's encryption type, 0 (NONE) for ours;
- it reports the size of an empty text stream (our header's `total_length` 0) as missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.jspeer import JsBrowser, JsPeer, browser_fixture
from harness.recorder import Recorder
from lkproto.transports.anyio import (
    ByteStreamReader,
    DataPacketKind,
    Room,
    RoomOptions,
    RpcError,
    RpcInvocationData,
    RtcConfiguration,
    TextStreamReader,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.timeout(60),
    pytest.mark.xdist_group("js-peer"),  # one browser for the module, on one worker
]

LK, JS = "lk", "js"
E = RpcError.ErrorCode
BIG = 100 * 1024  # bytes of UTF-8: far over RPC v1's 15 KiB, so v2 carries it as a stream
# Mixed scripts (1- to 4-byte UTF-8), so stream chunk boundaries fall inside characters.
TEXT = "漢字かな交じり文 😀👩‍👩‍👧 naïve café ASCII 0123456789 ✓ " * 1500


def big_text(nbytes: int) -> str:
    """Exactly `nbytes` of UTF-8 mixing 1-, 2-, 3- and 4-byte characters."""
    unit = "lkproto → JS RPC v2 😀 ñ; "
    text = unit * (nbytes // len(unit.encode()) + 1)
    cut = text.encode()[: nbytes - 8].decode("utf-8", "ignore")
    return cut + "x" * (nbytes - len(cut.encode()))


browser = browser_fixture("js-peer")


@pytest.fixture
def options(confinement: Any) -> RoomOptions:
    return RoomOptions(
        auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[confinement.host])
    )


class Inbox:
    """What our Room's stream handlers read, with an awaitable condition."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []
        self._changed: anyio.Event | None = None

    def add(self, *item: Any) -> None:
        self.items.append(item)
        if self._changed is not None:
            self._changed.set()

    async def wait(self, count: int, timeout: float = 30) -> list[tuple[Any, ...]]:
        with anyio.fail_after(timeout):
            while len(self.items) < count:
                self._changed = anyio.Event()
                await self._changed.wait()
        return self.items


@pytest.fixture
def session(
    livekit_server: Any, make_token: Any, options: RoomOptions, browser: JsBrowser
) -> Callable[..., contextlib.AbstractAsyncContextManager[tuple[JsPeer, Room]]]:
    """`async with session(room, prepare)`: the JS peer joins first and `prepare(js)` registers
    its handlers, then our `room` joins (so it knows the JS peer from its join response). The
    JS peer learns of us only when the server announces us, some 2-3 s later: tests send
    from our side first, then `await knows_us(js)`. Both leave, and the page closes, on exit."""

    @contextlib.asynccontextmanager
    async def open_session(
        room: Room, prepare: Callable[[JsPeer], Any] | None = None
    ) -> AsyncIterator[tuple[JsPeer, Room]]:
        js = await browser.open()
        try:
            assert await js.connect(livekit_server.url, make_token(JS)) == []
            if prepare is not None:
                await prepare(js)
            await room.connect(livekit_server.url, make_token(LK), options)
            assert list(room.remote_participants) == [JS]
            yield js, room
            assert js.of("page_error") == []
        finally:
            await room.disconnect()
            await js.close()

    return open_session


async def knows_us(js: JsPeer) -> None:
    await js.wait_for(lambda r: ("participant_connected", (LK,)) in r)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_join_leave_attributes_metadata_and_name_both_ways(
    livekit_server: Any, make_token: Any, options: RoomOptions, browser: JsBrowser
) -> None:
    """Two JS peers and two of our Rooms, so that the server's announcements (2-3 s each)
    overlap: js1 is there before us, js2 comes after; we and js1 change our attributes,
    metadata and names; then js2 and our second Room leave at once, and each side sees the
    other's departure."""
    first, second = await browser.open(), await browser.open()
    room, other = Room(), Room()
    seen = Recorder(
        room,
        "participant_connected",
        "participant_disconnected",
        "participant_attributes_changed",
        "participant_metadata_changed",
        "participant_name_changed",
    )
    try:
        token = make_token("js1", can_update_own_metadata=True)
        assert await first.connect(livekit_server.url, token) == []
        await room.connect(
            livekit_server.url, make_token(LK, can_update_own_metadata=True), options
        )
        await other.connect(livekit_server.url, make_token("lk2"), options)
        assert list(room.remote_participants) == ["js1"]
        assert sorted(other.remote_participants) == ["js1", LK]
        assert sorted(await second.connect(livekit_server.url, make_token("js2"))) == [
            "js1",
            LK,
            "lk2",
        ]
        await seen.wait_for(
            lambda: [p for (p,) in seen.of("participant_connected") if p.identity == "js2"]
        )
        assert room.remote_participants["js2"].identity == "js2"
        await first.wait_for(lambda r: len([1 for n, _ in r if n == "participant_connected"]) >= 3)
        assert sorted(first.of("participant_connected")) == [("js2",), (LK,), ("lk2",)]
        assert sorted(await first.remotes()) == ["js2", LK, "lk2"]

        # Attributes, metadata and name, lkproto -> JS (the page records its own changes too).
        me = room.local_participant
        await me.set_attributes({"mood": "curious ✓"})
        await me.set_metadata("lk-meta ü")
        await me.set_name("Lk Proto")
        await first.wait_for(lambda r: ("name", (LK, "Lk Proto")) in r)
        await first.wait_for(lambda r: ("metadata", (LK, "lk-meta ü")) in r)
        assert [a for a in first.of("attributes") if a[0] == LK] == [
            (LK, {"mood": "curious ✓"}, {"mood": "curious ✓"})
        ]
        assert await first.remote(LK) == ({"mood": "curious ✓"}, "lk-meta ü", "Lk Proto")
        # JS -> lkproto.
        await first.set_attributes({"seen": "yes"})
        await first.set_metadata("js-meta")
        await first.set_name("Js One")
        for name in (
            "participant_attributes_changed",
            "participant_metadata_changed",
            "participant_name_changed",
        ):
            await seen.wait_for(lambda name=name: len(seen.of(name)) >= 2)  # type: ignore[misc]
        js1 = room.remote_participants["js1"]
        assert seen.of("participant_attributes_changed") == [
            ({"mood": "curious ✓"}, me),
            ({"seen": "yes"}, js1),
        ]
        assert seen.of("participant_metadata_changed") == [
            (me, "", "lk-meta ü"),
            (js1, "", "js-meta"),
        ]
        assert seen.of("participant_name_changed") == [(me, "", "Lk Proto"), (js1, "", "Js One")]
        assert (js1.attributes, js1.metadata, js1.name) == ({"seen": "yes"}, "js-meta", "Js One")

        await second.disconnect()
        await other.disconnect()
        left = await seen.wait_for(
            lambda: [p for (p,) in seen.of("participant_disconnected") if p.identity == "js2"]
        )
        assert [p.identity for p in left] == ["js2"]
        await first.wait_for(lambda r: ("participant_disconnected", ("lk2",)) in r)
        await first.wait_for(lambda r: ("participant_disconnected", ("js2",)) in r)
        assert sorted(room.remote_participants) == ["js1"]
        assert sorted(await first.remotes()) == [LK]
        assert first.of("page_error") == second.of("page_error") == []
    finally:
        await room.disconnect()
        await other.disconnect()
        await first.close()
        await second.close()


async def test_data_packets_reliable_and_lossy_with_topics_and_destinations_both_ways(
    session: Any,
) -> None:
    room = Room()
    seen = Recorder(room, "data_received")
    payload = bytes(range(256)) * 4 + "ünïcödé ✓".encode()
    async with session(room) as (js, room):
        me = room.local_participant
        # lkproto -> JS: targeted, to someone else (the server filters it), lossy, plain.
        await me.publish_data(payload, topic="t1", destination_identities=[JS])
        await me.publish_data(b"to nobody", topic="t1", destination_identities=["nobody"])
        await me.publish_data(b"lossy to all", reliable=False, topic="t2")
        await me.publish_data(b"marker")
        await js.wait_for(lambda r: [a for n, a in r if n == "data" and a[1] == b"marker"])
        await js.wait_for(lambda r: len([1 for n, _ in r if n == "data"]) >= 3)
        # (sender, bytes, topic, kind, encryption type): livekit-client reports an unencrypted
        # packet as encryption type 0 (NONE), and a packet without a topic with none (null).
        assert sorted(js.of("data")) == sorted(
            [
                (LK, b"lossy to all", "t2", "lossy", 0),
                (LK, b"marker", None, "reliable", 0),
                (LK, payload, "t1", "reliable", 0),
            ]
        )
        # The reliable channel is ordered, so "to nobody" (sent between the two) was filtered.
        assert [a[1] for a in js.of("data") if a[3] == "reliable"] == [payload, b"marker"]

        # JS -> lkproto, the same four.
        await js.publish_data(payload, topic="hello", destinations=[LK])
        await js.publish_data(b"to nobody", destinations=["nobody"])
        await js.publish_data(b"lossy", reliable=False, topic="fast")
        await js.publish_data(b"end")
        await seen.wait_for(lambda: [p for (p,) in seen.of("data_received") if p.data == b"end"])
        await seen.wait_for(lambda: len(seen.of("data_received")) >= 3)
        got = [
            (p.participant.identity, p.data, p.topic, p.kind) for (p,) in seen.of("data_received")
        ]
        assert sorted(got, key=lambda g: g[1]) == sorted(
            [
                (JS, b"end", "", DataPacketKind.KIND_RELIABLE),
                (JS, b"lossy", "fast", DataPacketKind.KIND_LOSSY),
                (JS, payload, "hello", DataPacketKind.KIND_RELIABLE),
            ],
            key=lambda g: g[1],
        )
        assert [g[1] for g in got if g[3] == DataPacketKind.KIND_RELIABLE] == [payload, b"end"]
        assert seen.of("data_received")[0][0].participant is room.remote_participants[JS]


async def test_rpc_success_errors_timeout_and_large_payloads_both_ways(session: Any) -> None:
    room = Room()
    invoked: list[tuple[str, str, str, float]] = []

    def record(data: RpcInvocationData) -> None:
        invoked.append((data.method, data.caller_identity, data.payload, data.response_timeout))

    def echo(data: RpcInvocationData) -> str:
        record(data)
        return "lk echoes: " + data.payload

    def fail(data: RpcInvocationData) -> str:
        record(data)
        raise RpcError(4242, "custom failure ✗ from lk", '{"why": "ünïcödé"}')

    def explode(data: RpcInvocationData) -> str:
        raise ValueError("a secret detail that must not cross")

    room.local_participant.register_rpc_method("echo", echo)
    room.local_participant.register_rpc_method("fail", fail)
    room.local_participant.register_rpc_method("explode", explode)

    async def prepare(js: JsPeer) -> None:
        await js.register_rpc("echo", prefix="js echoes: ")
        await js.register_rpc("fail", error=(4243, "custom failure ✗ from js", "data ✓"))
        await js.register_rpc("explode", throw_plain=True)
        await js.register_rpc("slow", prefix="too late: ", delay=4)

    big = big_text(BIG)
    async with session(room, prepare) as (js, room):

        async def call(method: str, payload: str) -> str:
            with anyio.fail_after(30):
                return await room.local_participant.perform_rpc(
                    destination_identity=JS, method=method, payload=payload
                )

        async def raises(method: str) -> tuple[int, str, str | None]:
            with pytest.raises(RpcError) as info:
                await call(method, "x")
            return int(info.value.code), info.value.message, info.value.data

        # lkproto -> JS. Until the server announces us, livekit-client does not know our
        # protocol and would answer a v2 request in v1, where a reply over 15 KiB fails (1504):
        # the large call waits for that.
        assert await call("echo", "héllo from lk 👋") == "js echoes: héllo from lk 👋"
        assert await raises("fail") == (4243, "custom failure ✗ from js", "data ✓")
        assert await raises("explode") == (
            E.APPLICATION_ERROR,
            "Application error in method handler",
            None,
        )
        assert await raises("missing") == (
            E.UNSUPPORTED_METHOD,
            "Method not supported at destination",
            None,
        )
        # Our 2 s deadline passes while the JS handler waits 4 s: 1502, on time. Its late
        # answer (to a request we forgot) is dropped; the next calls get their own answers.
        start = anyio.current_time()
        with pytest.raises(RpcError) as info:
            await room.local_participant.perform_rpc(
                destination_identity=JS, method="slow", payload="x", response_timeout=2
            )
        elapsed = anyio.current_time() - start
        assert (info.value.code, info.value.message) == (E.RESPONSE_TIMEOUT, "Response timeout")
        assert 1.9 <= elapsed < 3.5
        await knows_us(js)
        assert await call("echo", big) == "js echoes: " + big
        # The JS handler was told our default response timeout, 15 s, in milliseconds, and
        # for the slow call JS's own minimum, max(2 s, 8 s). (The page reports an invocation
        # asynchronously, so the last may come after its reply.)
        await js.wait_for(lambda r: len([1 for n, _ in r if n == "rpc_invoked"]) >= 5)
        assert js.of("rpc_invoked") == [
            ("echo", LK, "héllo from lk 👋", 15000),
            ("fail", LK, "x", 15000),
            ("explode", LK, "x", 15000),
            ("slow", LK, "x", 8000),
            ("echo", LK, big, 15000),
        ]

        # JS -> lkproto (it knows us now, so it picks RPC v2 from our advertised protocol).
        assert await js.perform_rpc(LK, "echo", "héllo from js 👋") == (
            "lk echoes: héllo from js 👋",
            None,
        )
        assert await js.perform_rpc(LK, "echo", big) == ("lk echoes: " + big, None)
        assert await js.perform_rpc(LK, "fail", "x") == (
            None,
            (4242, "custom failure ✗ from lk", '{"why": "ünïcödé"}'),
        )
        reply, error = await js.perform_rpc(LK, "explode", "x")
        assert (reply, error) == (None, (1500, "Application error in method handler", None))
        assert await js.perform_rpc(LK, "missing", "x") == (
            None,
            (1400, "Method not supported at destination", None),
        )
        # livekit-client tells the handler its response timeout (15 s by default).
        assert invoked == [
            ("echo", JS, "héllo from js 👋", 15.0),
            ("echo", JS, big, 15.0),
            ("fail", JS, "x", 15.0),
        ]


async def test_text_and_byte_streams_with_sha256_both_ways(session: Any, tmp_path: Path) -> None:
    room = Room()
    inbox = Inbox()

    async def on_text(reader: TextStreamReader, identity: str) -> None:
        info = reader.info
        text = await reader.read_all()
        inbox.add("text", identity, info.topic, dict(info.attributes), info.size, text)

    async def on_bytes(reader: ByteStreamReader, identity: str) -> None:
        digest, size = hashlib.sha256(), 0
        async for chunk in reader:
            digest.update(chunk)
            size += len(chunk)
        info = reader.info
        inbox.add("bytes", identity, info.name, info.topic, info.size, size, digest.hexdigest())

    room.register_text_stream_handler("chat", on_text)
    room.register_byte_stream_handler("files", on_bytes)

    async def prepare(js: JsPeer) -> None:
        await js.on_text("chat")
        await js.on_bytes("files")

    blob = os.urandom(300 * 1024)  # several chunks
    source = tmp_path / "from-lk.bin"
    source.write_bytes(blob)
    async with session(room, prepare) as (js, room):
        me = room.local_participant
        # lkproto -> JS: a long text with attributes, an empty text, a file.
        sent = await me.send_text(
            TEXT, topic="chat", destination_identities=[JS], attributes={"k": "ü ✓"}
        )
        await me.send_text("", topic="chat")
        await me.send_file(source, topic="files", destination_identities=[JS])
        texts = await js.wait_for(lambda r: (t := [a for n, a in r if n == "text"])[1:] and t)
        # (sender, topic, attributes, text, stream id, size): our header carries the UTF-8
        # size, 0 for the empty text, which livekit-client reports as missing (null).
        assert sorted(texts, key=lambda t: len(t[3])) == [
            (LK, "chat", {}, "", texts[0][4] if texts[0][3] == "" else texts[1][4], None),
            (LK, "chat", {"k": "ü ✓"}, TEXT, sent.stream_id, len(TEXT.encode())),
        ]
        (got,) = await js.wait_for(lambda r: [a for n, a in r if n == "bytes"])
        assert got[:5] == (LK, "from-lk.bin", "files", len(blob), sha256(blob))
        assert js.of("text_error") == js.of("bytes_error") == []

        # JS -> lkproto, once it knows us (it compresses text for a data streams v2 peer).
        await knows_us(js)
        back = blob[::-1]
        await js.send_text(TEXT, topic="chat", destinations=[LK], attributes={"k": "ü ✓"})
        await js.send_text("", topic="chat")
        await js.send_file("from-js.bin", back, topic="files", destinations=[LK])
        items = await inbox.wait(3)
        assert sorted(items, key=repr) == sorted(
            [
                ("text", JS, "chat", {"k": "ü ✓"}, len(TEXT.encode()), TEXT),
                ("text", JS, "chat", {}, 0, ""),
                ("bytes", JS, "from-js.bin", "files", len(back), len(back), sha256(back)),
            ],
            key=repr,
        )
