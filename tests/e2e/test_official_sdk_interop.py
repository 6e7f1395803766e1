"""Proof that the real world works here: two official-SDK participants on the harness server.

Each direction carries an RPC, a `send_text`, a `send_file` and a `publish_data`, and every
test asserts the exact contents that arrived. Later issues replace one side with lkproto.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from livekit import rtc

from harness.announce import announce

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(90)]


class Received:
    """Everything one participant received, with futures to await each item."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.rpc: asyncio.Future[rtc.RpcInvocationData] = loop.create_future()
        self.text: asyncio.Future[tuple[str, str, str]] = loop.create_future()
        self.file: asyncio.Future[tuple[str, str, bytes, str]] = loop.create_future()
        self.data: asyncio.Future[tuple[bytes, str, str]] = loop.create_future()


async def join(url: str, token: str, name: str) -> tuple[rtc.Room, Received]:
    room = rtc.Room()
    got = Received()

    async def on_rpc(data: rtc.RpcInvocationData) -> str:
        if not got.rpc.done():
            got.rpc.set_result(data)
        return f"{name} echoes: {data.payload}"

    async def read_text(reader: rtc.TextStreamReader, identity: str) -> None:
        text = await reader.read_all()
        got.text.set_result((identity, reader.info.topic, text))

    async def read_file(reader: rtc.ByteStreamReader, identity: str) -> None:
        chunks = [chunk async for chunk in reader]
        got.file.set_result((identity, reader.info.name, b"".join(chunks), reader.info.topic))

    tasks: set[asyncio.Task[None]] = set()

    def keep(task: asyncio.Task[None]) -> None:
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    room.register_text_stream_handler(
        "lk.test.chat", lambda r, who: keep(asyncio.create_task(read_text(r, who)))
    )
    room.register_byte_stream_handler(
        "lk.test.files", lambda r, who: keep(asyncio.create_task(read_file(r, who)))
    )

    @room.on("data_received")
    def on_data(packet: rtc.DataPacket) -> None:
        if not got.data.done():
            sender = packet.participant.identity if packet.participant else ""
            got.data.set_result((packet.data, sender, packet.topic or ""))

    await room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
    # The official SDK has no local participant (so no RPC registration) before connect.
    room.local_participant.register_rpc_method("lk.test.echo", on_rpc)
    return room, got


async def wait_for_remote(room: rtc.Room, identity: str, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while identity not in room.remote_participants:
            await asyncio.sleep(0.02)


async def exercise(
    sender: rtc.Room, name: str, receiver_identity: str, got: Received, tmp: Path
) -> None:
    """`sender` sends one of everything to `receiver_identity`; assert what `got` saw."""
    lp = sender.local_participant
    me = lp.identity

    reply = await lp.perform_rpc(
        destination_identity=receiver_identity,
        method="lk.test.echo",
        payload=f"ping from {me} ✓",
        response_timeout=10,
    )
    assert reply == f"{name} echoes: ping from {me} ✓"
    invocation = await asyncio.wait_for(got.rpc, 10)
    assert invocation.caller_identity == me
    assert invocation.payload == f"ping from {me} ✓"

    text = f"hello from {me} — ünïcödé " * 50
    await lp.send_text(text, topic="lk.test.chat", destination_identities=[receiver_identity])
    assert await asyncio.wait_for(got.text, 10) == (me, "lk.test.chat", text)

    blob = hashlib.sha256(me.encode()).digest() * 4096  # 128 KiB: several chunks
    path = tmp / f"from-{me}.bin"
    path.write_bytes(blob)
    await lp.send_file(str(path), topic="lk.test.files", destination_identities=[receiver_identity])
    sender_id, fname, content, topic = await asyncio.wait_for(got.file, 15)
    assert (sender_id, fname, topic) == (me, f"from-{me}.bin", "lk.test.files")
    assert content == blob

    payload = bytes(range(256)) + me.encode()
    await lp.publish_data(
        payload, reliable=True, topic="lk.test.data", destination_identities=[receiver_identity]
    )
    assert await asyncio.wait_for(got.data, 10) == (payload, me, "lk.test.data")


async def test_official_sdk_participants_exchange_everything_both_ways(
    livekit_server, make_token, room_name: str, tmp_path: Path
) -> None:
    alice, alice_got = await join(livekit_server.url, make_token("alice"), "alice")
    bob, bob_got = await join(livekit_server.url, make_token("bob"), "bob")
    try:
        # Announced to alice at once, not on the server's 3 s tick (harness/announce.py).
        await announce(livekit_server, room_name, "bob")
        await wait_for_remote(alice, "bob")
        await wait_for_remote(bob, "alice")
        await exercise(alice, "bob", "bob", bob_got, tmp_path)
        await exercise(bob, "alice", "alice", alice_got, tmp_path)
    finally:
        await alice.disconnect()
        await bob.disconnect()
