"""End-to-end encrypted data between lkproto and the official SDK, through a real server.

Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded). Both
sides connect with `RoomOptions(encryption=E2EEOptions(KeyProviderOptions(shared_key=...)))`
(PBKDF2, the default everywhere). Proven here, with exact contents:
- both ways: `publish_data`, `send_text` of 300 000 characters, `send_file` of 5 MiB (sha256),
  RPC v2 (lk, client_protocol 2) and RPC v1 (lk1, client_protocol 0);
- what the server forwards carries no plaintext: a third participant without the key ("eve",
  an anyio Room) records the raw `DataPacket`s its data channel delivers; it gets the
  broadcasts (at least half a file's worth from each sender: on a loaded machine not all
  of it reaches her in time), every one an `encrypted_packet`, and none of the plaintext bytes
  (RPC packets are addressed to one participant, so the server never forwards them to eve;
  their encryption is the official peer reading them, and tests/core/test_connection_e2ee.py);
- a wrong key on one side: nothing decrypts either way, lk reports it (`e2ee_state_changed`
  DECRYPTION_FAILED and `PacketDropped("decryption_failed")` with the participant), nothing
  crashes, and after `set_shared_key` with the right key the next messages arrive. Reliable
  ordering makes "the next one arrived, the earlier one never will" exact, with no sleeps.
- data tracks: each side publishes (encrypted without being asked: `uses_e2ee` on both
  sides) and reads the other's frames exactly (one packet, 8 KiB, three packets). With the
  wrong key lk reports each frame it cannot read (`DataTrackFrameDropped(DECRYPTION_FAILED)`
  and `e2ee_state_changed`), the official SDK reads none of lk's, and after `set_shared_key`
  the next frames arrive both ways. Frames are lossy (no retransmission): probes are pushed
  until one arrives, and what arrives is checked byte for byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from livekit import rtc

# Every test runs once per adapter: the fixtures swap this module's `Room` for the adapter
# under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.announce import announce
from harness.official import OfficialLoop, OfficialPeer
from harness.peer_records import Record
from harness.recorder import Recorder
from harness.server import LiveKitServer
from harness.taps import FrameReader, record_raw_data
from lkproto import Config
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto.datatracks import FrameDropReason
from lkproto.transports import anyio as lk_anyio
from lkproto.transports.anyio import (
    DataTrackFrame,
    E2EEOptions,
    EncryptionState,
    KeyProviderOptions,
    Room,
    RoomOptions,
    RtcConfiguration,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(180)]

KEY = b"lkproto e2ee interop key"
WRONG = b"a key nobody else has"
TEXT = ("lkproto → 官方 E2EE 😀 ñ; " * 13_000)[:300_000]  # 300 000 characters, 1-4 bytes each
FILE_SIZE = 5 * 1024 * 1024
ENCRYPTED_KINDS = {
    "user",
    "chat_message",
    "rpc_request",
    "rpc_ack",
    "rpc_response",
    "stream_header",
    "stream_chunk",
    "stream_trailer",
}


def options(host: str, key: bytes | None) -> RoomOptions:
    encryption = None if key is None else E2EEOptions(KeyProviderOptions(shared_key=key))
    return RoomOptions(
        auto_subscribe=False,
        rtc_config=RtcConfiguration(host_addresses=[host]),
        encryption=encryption,
    )


async def official(loop: OfficialLoop, url: str, token: str, key: bytes) -> OfficialPeer:
    """An official participant with E2EE, recording data, text, files and RPC calls."""
    peer = OfficialPeer(loop)
    encryption = rtc.E2EEOptions(key_provider_options=rtc.KeyProviderOptions(shared_key=key))
    await peer.connect(url, token, encryption=encryption)

    async def register(room: rtc.Room) -> None:
        def on_text(reader: rtc.TextStreamReader, identity: str) -> None:
            async def read() -> None:
                text = await reader.read_all()
                peer._record("text", identity, reader.info.topic, text)

            peer.spawn(read())

        def on_file(reader: rtc.ByteStreamReader, identity: str) -> None:
            async def read() -> None:
                digest, size = hashlib.sha256(), 0
                async for chunk in reader:
                    digest.update(chunk)
                    size += len(chunk)
                peer._record("file", identity, reader.info.name, size, digest.hexdigest())

            peer.spawn(read())

        async def echo(data: rtc.RpcInvocationData) -> str:
            peer._record("rpc", data.caller_identity, data.payload)
            return f"official echoes {data.payload}"

        room.register_text_stream_handler("e2ee-text", on_text)
        room.register_byte_stream_handler("e2ee-files", on_file)
        room.local_participant.register_rpc_method("e2ee-echo", echo)

    await peer.do(register)
    return peer


class Inbox:
    """What an lkproto Room received, awaited without polling (callbacks of the threaded
    adapter arrive on the test's loop through the facade)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []
        self._changed = anyio.Event()

    def add(self, *item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(
        self, predicate: Callable[[list[tuple[Any, ...]]], bool], timeout: float = 60
    ) -> None:
        """Until `predicate` holds; at once an AssertionError if a stream failed, which no
        wait would mend."""
        with anyio.fail_after(timeout):
            while not predicate(self.items):
                assert not self.of("failed"), self.items
                self._changed = anyio.Event()
                await self._changed.wait()

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [item[1:] for item in self.items if item[0] == kind]


def handlers(room: Room, inbox: Inbox) -> None:
    async def on_text(reader: Any, identity: str) -> None:
        try:
            inbox.add("text", identity, reader.info.topic, await reader.read_all())
        except Exception as exc:
            inbox.add("failed", identity, reader.info.topic, repr(exc))
            raise

    async def on_file(reader: Any, identity: str) -> None:
        digest, size = hashlib.sha256(), 0
        try:
            async for chunk in reader:
                digest.update(chunk)
                size += len(chunk)
        except Exception as exc:
            inbox.add("failed", identity, reader.info.name, repr(exc))
            raise
        inbox.add("file", identity, reader.info.name, size, digest.hexdigest())

    async def echo(data: Any) -> str:
        inbox.add("rpc", data.caller_identity, data.payload)
        return f"lk echoes {data.payload}"

    room.register_text_stream_handler("e2ee-text", on_text)
    room.register_byte_stream_handler("e2ee-files", on_file)
    room.local_participant.register_rpc_method("e2ee-echo", echo)
    room.on("data_received", lambda p: inbox.add("data", p.participant.identity, p.data, p.topic))
    room.on("e2ee_state_changed", lambda p, state: inbox.add("state", p.identity, state))


async def eavesdropper(url: str, token: str, host: str) -> tuple[lk_anyio.Room, list[bytes]]:
    """A participant without the key that records every raw data channel message."""
    eve = lk_anyio.Room()
    await eve.connect(url, token, options(host, None))
    return eve, record_raw_data(eve)


def no_key_in(texts: list[str]) -> list[str]:
    """The texts that show a key, as text, repr or hex."""
    shapes = [form for key in (KEY, WRONG) for form in (key.decode(), repr(key), key.hex())]
    return [text for text in texts if any(shape in text for shape in shapes)]


async def knows(server: LiveKitServer, room: str, peer: OfficialPeer, *identities: str) -> None:
    """Wait until `peer` has seen each of `identities` join, which the server announces at once
    (harness/announce.py), not on its next 3 s tick."""
    await announce(server, room, *identities)
    for identity in identities:
        await peer.wait_for(lambda r, i=identity: ("joined", (i,)) in r)


@pytest.mark.heavy("bulk")  # bulk transfer: the bulk lane (harness/phases.py)
async def test_encrypted_data_streams_and_rpc_cross_both_ways_and_eve_reads_none(
    livekit_server: Any,
    make_token: Any,
    confinement: Any,
    official_loop: OfficialLoop,
    tmp_path: Path,
) -> None:
    url, host = livekit_server.url, confinement.host
    files = {}
    for name in ("from-lk.bin", "from-official.bin"):
        data = os.urandom(FILE_SIZE)
        (tmp_path / name).write_bytes(data)
        files[name] = (data, hashlib.sha256(data).hexdigest())
    eve, raw = await eavesdropper(url, make_token("eve"), host)
    interruptions: list[str] = []  # eve's raw tap is on her first session only
    eve.on("reconnecting", lambda: interruptions.append("eve reconnecting"))
    peer = await official(official_loop, url, make_token("official"), KEY)
    lk, lk1 = Room(), Room(config=Config(client_protocol=0))  # lk1 speaks RPC v1
    inbox, inbox1 = Inbox(), Inbox()
    handlers(lk, inbox)
    handlers(lk1, inbox1)
    try:
        await lk.connect(url, make_token("lk"), options(host, KEY))
        await lk1.connect(url, make_token("lk1"), options(host, KEY))
        await knows(livekit_server, lk.name, peer, "lk", "lk1", "eve")

        # publish_data, both ways
        await lk.local_participant.publish_data(b"lk's secret datum", topic="e2ee-topic")
        await peer.do(
            lambda r: r.local_participant.publish_data(
                b"official's secret datum", topic="e2ee-topic"
            )
        )
        got = await peer.wait_for(lambda r: [a for n, a in r if n == "data"])
        assert got == [
            ("lk", b"lk's secret datum", "e2ee-topic", int(rtc.DataPacketKind.KIND_RELIABLE))
        ]
        await inbox.wait(lambda items: bool([i for i in items if i[0] == "data"]))
        assert inbox.of("data") == [("official", b"official's secret datum", "e2ee-topic")]

        # send_text of 300 000 characters, both ways
        info = await lk.local_participant.send_text(TEXT, topic="e2ee-text")
        assert info.topic == "e2ee-text"
        got = await peer.wait_for(lambda r: [a for n, a in r if n == "text"], 90)
        assert got == [("lk", "e2ee-text", TEXT)]
        await peer.do(lambda r: r.local_participant.send_text(TEXT[::-1], topic="e2ee-text"), 90)
        await inbox.wait(lambda items: bool([i for i in items if i[0] == "text"]), 90)
        assert inbox.of("text") == [("official", "e2ee-text", TEXT[::-1])]

        # send_file of 5 MiB, both ways
        await lk.local_participant.send_file(tmp_path / "from-lk.bin", topic="e2ee-files")
        got = await peer.wait_for(lambda r: [a for n, a in r if n == "file"], 90)
        assert got == [("lk", "from-lk.bin", FILE_SIZE, files["from-lk.bin"][1])]
        source = str(tmp_path / "from-official.bin")
        await peer.do(lambda r: r.local_participant.send_file(source, topic="e2ee-files"), 90)
        await inbox.wait(lambda items: bool([i for i in items if i[0] == "file"]), 90)
        digest = files["from-official.bin"][1]
        assert inbox.of("file") == [("official", "from-official.bin", FILE_SIZE, digest)]

        # lk1 got every stream too. It asks only after they drained: the reliable channel
        # is ordered, so an RPC ack queued behind 10 MiB still in flight to a loaded lk1
        # arrives after the 7 s ack timeout, as it would for any SDK (a CI run saw
        # "Connection timeout" there).
        await inbox1.wait(lambda items: len([i for i in items if i[0] == "file"]) == 2, 120)
        assert sorted(inbox1.of("file")) == [
            ("lk", "from-lk.bin", FILE_SIZE, files["from-lk.bin"][1]),
            ("official", "from-official.bin", FILE_SIZE, files["from-official.bin"][1]),
        ]

        # RPC v2 (lk) and v1 (lk1), both ways
        for room, name in ((lk, "lk"), (lk1, "lk1")):
            with anyio.fail_after(30):
                answer = await room.local_participant.perform_rpc(
                    destination_identity="official", method="e2ee-echo", payload=f"{name} asks"
                )
            assert answer == f"official echoes {name} asks"

            async def call(r: rtc.Room, name: str = name) -> str:
                return await r.local_participant.perform_rpc(
                    destination_identity=name, method="e2ee-echo", payload=f"official asks {name}"
                )

            assert await peer.do(call) == f"lk echoes official asks {name}"
        assert inbox.of("rpc") == [("official", "official asks lk")]
        assert inbox1.of("rpc") == [("official", "official asks lk1")]
        assert peer.of("rpc") == [("lk", "lk asks"), ("lk1", "lk1 asks")]
        assert lk.remote_participants["official"].info.client_protocol >= 1  # so v2 to it
        assert lk1.local_participant.info.client_protocol == 0  # so v1 both ways

        # What eve got: the broadcasts, all encrypted, none of the plaintext. Eve reads as
        # fast as her share of the machine allows: wait (bounded) for the last of it. On a
        # loaded machine not all of it reached her within the wait (7.4 to 11.0 of 11.1 MB
        # after 60 s in CI runs; why is not established: eve is only a vantage point). So
        # the check is that half a file's worth from each sender went past her, and that
        # none of what did is plaintext.
        def carried_to_eve() -> dict[str, int]:
            carried: dict[str, int] = {}
            for data in raw:
                packet = dpb.DataPacket.FromString(data)
                size = len(packet.encrypted_packet.encrypted_value)
                carried[packet.participant_identity] = (
                    carried.get(packet.participant_identity, 0) + size
                )
            return carried

        with anyio.move_on_after(60):
            while sum(carried_to_eve().values()) <= 2 * FILE_SIZE + 2 * len(TEXT):
                await anyio.sleep(0.2)
        packets = [dpb.DataPacket.FromString(data) for data in raw]
        senders = {p.participant_identity for p in packets}
        assert {"lk", "official"} <= senders
        kinds = {(p.participant_identity, p.WhichOneof("value")) for p in packets}
        assert ("lk", "encrypted_packet") in kinds and ("official", "encrypted_packet") in kinds
        assert not {k for s, k in kinds if s in ("lk", "official")} & ENCRYPTED_KINDS
        carried = carried_to_eve()
        # most of a file went past eve
        assert carried.get("lk", 0) > FILE_SIZE // 2, (carried, interruptions)
        assert carried.get("official", 0) > FILE_SIZE // 2, (carried, interruptions)
        everything = b"".join(raw)
        secrets = [b"secret datum", b"e2ee-topic", b"e2ee-text", b"e2ee-files", b"from-lk.bin"]
        secrets += [TEXT[i : i + 16].encode() for i in range(0, len(TEXT), 9973)]
        for data, _ in files.values():
            secrets += [data[i : i + 32] for i in range(0, FILE_SIZE, 65_537)]
        assert [s for s in secrets if s in everything] == []
        assert eve.connection_state == lk_anyio.ConnectionState.CONN_CONNECTED
    finally:
        await lk.disconnect()
        await lk1.disconnect()
        await eve.disconnect()
        await peer.disconnect()


async def test_a_wrong_key_reads_nothing_reports_it_and_the_right_key_recovers(
    livekit_server: Any,
    make_token: Any,
    confinement: Any,
    official_loop: OfficialLoop,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="lkproto")
    url, host = livekit_server.url, confinement.host
    peer = await official(official_loop, url, make_token("official"), KEY)
    lk = Room()
    inbox = Inbox()
    handlers(lk, inbox)
    dropped: list[ev.PacketDropped] = []
    try:
        await lk.connect(url, make_token("lk"), options(host, WRONG))
        await knows(livekit_server, lk.name, peer, "lk")
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for event in lk.events():
                    if isinstance(event, ev.PacketDropped):
                        dropped.append(event)

            tg.start_soon(watch)
            # official -> lk with the wrong key: reported, not delivered
            await peer.do(lambda r: r.local_participant.publish_data(b"unreadable 1"))
            await inbox.wait(lambda items: bool([i for i in items if i[0] == "state"]), 30)
            assert inbox.of("state") == [("official", EncryptionState.DECRYPTION_FAILED)]
            # lk -> official with the wrong key: the official SDK drops it
            await lk.local_participant.publish_data(b"unreadable 2")
            # the right key; the next messages arrive, both ways, the earlier ones never
            lk.e2ee_manager.key_provider.set_shared_key(KEY, 0)
            await lk.local_participant.publish_data(b"readable 2")
            got = await peer.wait_for(lambda r: [a[1] for n, a in r if n == "data"], 30)
            assert got == [b"readable 2"]
            await peer.do(lambda r: r.local_participant.publish_data(b"readable 1"))
            await inbox.wait(lambda items: bool([i for i in items if i[0] == "data"]), 30)
            assert inbox.of("data") == [("official", b"readable 1", "")]
            assert inbox.of("state") == [
                ("official", EncryptionState.DECRYPTION_FAILED),
                ("official", EncryptionState.OK),
            ]
            tg.cancel_scope.cancel()
        assert [(d.reason, d.participant_identity) for d in dropped] == [
            ("decryption_failed", "official")
        ]
        assert "16 of 16 ratchets failed" in dropped[0].detail
        assert lk.isconnected() and lk.e2ee_manager.key_provider.export_shared_key(0) == KEY
        assert peer.of("data") == [("lk", b"readable 2", "", int(rtc.DataPacketKind.KIND_RELIABLE))]
        # No key in what lkproto logged, reported or shows in a repr.
        manager = lk.e2ee_manager
        shown = [r.getMessage() for r in caplog.records if r.name.startswith("lkproto")]
        shown += [repr(d) for d in dropped] + [repr(manager.key_provider), repr(manager.options)]
        assert len(shown) >= 3 and no_key_in(shown) == []
    finally:
        await lk.disconnect()
        await peer.disconnect()


# -- data tracks ------------------------------------------------------------------------------

FRAME_SIZES = (100, 8 * 1024, 40_000)  # one packet, one full-ish packet, three packets
TS0 = 1_700_000_000_000


def frame_payload(size: int, n: int) -> bytes:
    head = f"secret frame {size}/{n}/".encode()
    return (head + bytes(range(256)) * (size // 256 + 1))[:size]


def official_frames(records: list[Record], sid: str) -> list[tuple[bytes, int | None]]:
    return [(a[1], a[2]) for name, a in records if name == "frame" and a[0] == sid]


async def seen_within(peer: OfficialPeer, predicate: Callable[[], bool], timeout: float) -> bool:
    try:
        await peer.wait_for(lambda r: predicate() or None, timeout=timeout)
    except TimeoutError:
        return False
    return True


async def official_push(track: rtc.LocalDataTrack, data: bytes, user_timestamp: int) -> None:
    with contextlib.suppress(rtc.PushFrameError):  # lossy: counted as not delivered
        track.try_push(rtc.DataTrackFrame(payload=data, user_timestamp=user_timestamp))


async def published_by_official(peer: OfficialPeer, name: str) -> rtc.LocalDataTrack:
    async def publish(r: rtc.Room) -> rtc.LocalDataTrack:
        return await r.local_participant.publish_data_track(name=name)

    track: rtc.LocalDataTrack = await peer.do(publish)
    return track


@pytest.mark.timeout(120)
async def test_encrypted_data_track_frames_cross_both_ways_exactly(
    livekit_server: Any, make_token: Any, confinement: Any, official_loop: OfficialLoop
) -> None:
    url, host = livekit_server.url, confinement.host
    peer = await official(official_loop, url, make_token("official"), KEY)
    lk = Room()
    seen = Recorder(lk, "data_track_published")
    try:
        await lk.connect(url, make_token("lk"), options(host, KEY))
        await knows(livekit_server, lk.name, peer, "lk")

        # lk publishes: encrypted, as the official SDK does in an encrypted room.
        track = await lk.local_participant.publish_data_track(name="lk-secure")
        sid = track.info.sid
        assert track.info.uses_e2ee
        await peer.wait_for(lambda r: ("data_track_published", (sid, "lk-secure", "lk")) in r)
        assert peer.data_tracks[sid].info.uses_e2ee
        await peer.subscribe_data_track(sid)
        sent: dict[bytes, int] = {}
        for size in FRAME_SIZES:
            for n in range(40):  # until the official SDK has read one of this size
                data = frame_payload(size, n)
                sent[data] = TS0 + n
                track.try_push(DataTrackFrame(data, user_timestamp=TS0 + n))
                if await seen_within(
                    peer,
                    lambda size=size: (
                        size in {len(p) for p, _ in official_frames(peer.records, sid)}
                    ),
                    0.3,
                ):
                    break
        got = official_frames(peer.records, sid)
        assert {len(p) for p, _ in got} == set(FRAME_SIZES), "a size never arrived"
        assert len(got) == len({p for p, _ in got}), "a frame arrived twice"
        assert [(len(p), ts) for p, ts in got if sent.get(p) != ts] == [], "not as sent"

        # The official SDK publishes: encrypted; lk reads the plain frames.
        theirs = await published_by_official(peer, "official-secure")
        assert theirs.info.uses_e2ee
        (remote,) = (await seen.wait_for(lambda: seen.of("data_track_published")))[0]
        assert (remote.info.sid, remote.publisher_identity) == (theirs.info.sid, "official")
        assert remote.info.uses_e2ee
        reader = FrameReader(remote.subscribe())
        theirs_sent: dict[bytes, int] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            for size in FRAME_SIZES:
                for n in range(40):
                    data = frame_payload(size, n)
                    theirs_sent[data] = TS0 + n
                    await peer.do(lambda r, d=data, n=n: official_push(theirs, d, TS0 + n))
                    if await reader.within(
                        lambda size=size: size in {len(f.payload) for f in reader.frames}, 0.3
                    ):
                        break
            tg.cancel_scope.cancel()
        frames = [(bytes(f.payload), f.user_timestamp) for f in reader.frames]
        assert {len(p) for p, _ in frames} == set(FRAME_SIZES), "a size never arrived"
        assert len(frames) == len({p for p, _ in frames}), "a frame arrived twice"
        assert [(len(p), ts) for p, ts in frames if theirs_sent.get(p) != ts] == []
        assert lk.isconnected()
    finally:
        await lk.disconnect()
        await peer.disconnect()


@pytest.mark.heavy("media")  # real-time data-track frames: the media lane (harness/phases.py)
@pytest.mark.timeout(120)
async def test_a_wrong_key_reads_no_data_track_frame_reports_it_and_the_right_key_recovers(
    livekit_server: Any, make_token: Any, confinement: Any, official_loop: OfficialLoop
) -> None:
    url, host = livekit_server.url, confinement.host
    peer = await official(official_loop, url, make_token("official"), KEY)
    lk = Room()
    inbox = Inbox()
    lk.on("e2ee_state_changed", lambda p, state: inbox.add("state", p.identity, state))
    seen = Recorder(lk, "data_track_published")
    dropped: list[ev.DataTrackFrameDropped] = []
    try:
        await lk.connect(url, make_token("lk"), options(host, WRONG))
        await knows(livekit_server, lk.name, peer, "lk")
        theirs = await published_by_official(peer, "official-secure")
        (remote,) = (await seen.wait_for(lambda: seen.of("data_track_published")))[0]
        assert remote.info.uses_e2ee
        track = await lk.local_participant.publish_data_track(name="lk-secure")
        sid = track.info.sid
        await peer.wait_for(lambda r: ("data_track_published", (sid, "lk-secure", "lk")) in r)
        await peer.subscribe_data_track(sid)
        reader = FrameReader(remote.subscribe())
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for event in lk.events():
                    if isinstance(event, ev.DataTrackFrameDropped):
                        dropped.append(event)

            tg.start_soon(watch)
            tg.start_soon(reader.run)
            # official -> lk, wrong key: each frame is reported, none is read.
            for n in range(40):
                await peer.do(lambda r, n=n: official_push(theirs, frame_payload(100, n), n))
                if await reader.within(lambda: len(dropped) >= 2, 0.3):
                    break
            assert len(dropped) >= 2 and reader.frames == []
            assert {(d.sid, d.publisher_identity, d.reason) for d in dropped} == {
                (theirs.info.sid, "official", FrameDropReason.DECRYPTION_FAILED)
            }
            assert "16 of 16 ratchets failed" in dropped[0].detail
            assert inbox.of("state") == [("official", EncryptionState.DECRYPTION_FAILED)]
            # lk -> official, wrong key: pushed, never read.
            for n in range(3):
                track.try_push(DataTrackFrame(frame_payload(100, n), user_timestamp=n))

            # The right key: the next frames arrive both ways, exactly.
            lk.e2ee_manager.key_provider.set_shared_key(KEY, 0)
            for n in range(100, 140):
                track.try_push(DataTrackFrame(frame_payload(100, n), user_timestamp=n))
                if await seen_within(peer, lambda: bool(official_frames(peer.records, sid)), 0.3):
                    break
            got = official_frames(peer.records, sid)
            assert got and all(p == frame_payload(100, ts) and ts >= 100 for p, ts in got)  # type: ignore[operator]
            for n in range(100, 140):
                await peer.do(lambda r, n=n: official_push(theirs, frame_payload(100, n), n))
                if await reader.within(lambda: bool(reader.frames), 0.3):
                    break
            assert reader.frames, "no frame arrived after the right key was set"
            assert all(
                bytes(f.payload) == frame_payload(100, f.user_timestamp) for f in reader.frames
            )

            # The right key recovered lk's reading: its state for the official SDK is OK again.
            # (Checked here: once lk's key is wrong again below, a frame of the official SDK's
            # still in flight fails at lk, so the last state may be DECRYPTION_FAILED, run G.)
            with anyio.fail_after(5):
                while inbox.of("state")[-1:] != [("official", EncryptionState.OK)]:
                    await anyio.sleep(0.05)

            # With the official subscription now proven, lk's wrong key again: nothing read.
            # (Frames pushed under the right key may still be in flight: only those pushed
            # from now on, stamped 200 and up, must never be read.)
            lk.e2ee_manager.key_provider.set_shared_key(WRONG, 0)
            for n in range(200, 203):
                track.try_push(DataTrackFrame(frame_payload(100, n), user_timestamp=n))
                await anyio.sleep(0.2)  # lossy frames: no event says "not delivered"
            assert not await seen_within(
                peer,
                lambda: any((t or 0) >= 200 for _, t in official_frames(peer.records, sid)),
                1.5,
            )
            tg.cancel_scope.cancel()
        assert lk.isconnected()
    finally:
        await lk.disconnect()
        await peer.disconnect()
