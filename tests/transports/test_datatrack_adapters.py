"""Data tracks on every adapter: the `livekit.rtc` names held against the official SDK, and the
behaviour over the memory transport (no server), plus the aiortc peer's lossy sending.

The real-server proofs are in tests/e2e/test_datatracks.py; here a MemoryServer plays the
server (lkproto.testing.MemoryRoom), so the tests are fast and exact.
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

from lkproto import Config
from lkproto import commands as cmd
from lkproto.datatracks import (
    DataTrackFrame,
    PublishDataTrackError,
    PublishDataTrackErrorReason,
    PushFrameError,
    PushFrameErrorReason,
    SubscribeDataTrackError,
    SubscribeDataTrackErrorReason,
    SubscriptionState,
)
from lkproto.models import Channel
from lkproto.transports import _aiortc, threaded
from lkproto.transports import anyio as lk_anyio
from lkproto.transports import trio as lk_trio
from lkproto.transports.testing import MemoryServer

pytestmark = pytest.mark.timeout(60)

ADAPTERS = [lk_anyio, lk_trio, threaded]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- the livekit.rtc names ------------------------------------------------------------------------


def _params(fn: Any) -> dict[str, tuple[Any, Any]]:
    return {
        n: (p.kind, p.default) for n, p in inspect.signature(fn).parameters.items() if n != "self"
    }


@pytest.mark.parametrize("module", ADAPTERS, ids=lambda m: m.__name__)
def test_the_data_track_api_has_the_official_names_and_signatures(module: ModuleType) -> None:
    assert _params(module.LocalParticipant.publish_data_track) == _params(
        rtc.LocalParticipant.publish_data_track
    )
    for cls in ("LocalDataTrack", "RemoteDataTrack"):
        ours, theirs = getattr(module, cls), getattr(rtc, cls)
        assert isinstance(inspect.getattr_static(ours, "info"), property)
        for name in ("is_published",):
            assert _params(getattr(ours, name)) == _params(getattr(theirs, name))
    assert _params(module.LocalDataTrack.try_push) == _params(rtc.LocalDataTrack.try_push)
    assert _params(module.RemoteDataTrack.subscribe) == _params(rtc.RemoteDataTrack.subscribe)
    assert _params(module.RemoteDataTrack.set_pipeline_options) == _params(
        rtc.RemoteDataTrack.set_pipeline_options
    )
    assert isinstance(
        inspect.getattr_static(module.RemoteDataTrack, "publisher_identity"), property
    )
    for name in ("read", "close"):
        assert hasattr(module.DataTrackStream, name)
    for name in ("DataTrackFrame", "DataTrackInfo", "PushFrameError", "SubscribeDataTrackError"):
        assert getattr(module, name) is not None and name in module.__all__
    assert module.PublishDataTrackError is PublishDataTrackError
    # The async adapters' unpublish is a coroutine as livekit.rtc's; the threaded one blocks.
    unpublish = module.LocalDataTrack.unpublish
    assert inspect.iscoroutinefunction(unpublish) is (module is not threaded)
    frame = module.DataTrackFrame(payload=b"x", user_timestamp=3)
    assert (frame.payload, frame.user_timestamp) == (b"x", 3)
    info = rtc.DataTrackInfo(sid="DTR_1", name="n", uses_e2ee=False)
    ours = module.DataTrackInfo(sid="DTR_1", name="n", uses_e2ee=False)
    assert (ours.sid, ours.name, ours.uses_e2ee) == (info.sid, info.name, info.uses_e2ee)


# -- over the memory transport --------------------------------------------------------------------


async def _connected(server: MemoryServer, *names: str, **grants: object) -> list[lk_anyio.Room]:
    rooms = []
    for name in names:
        room = lk_anyio.Room()
        await room.connect(server.url, server.token(name, **grants))  # type: ignore[arg-type]
        rooms.append(room)
    return rooms


@pytest.mark.anyio
async def test_publish_subscribe_frames_and_unpublish_over_the_memory_transport() -> None:
    async with MemoryServer(update_interval=0) as server:
        bob = lk_anyio.Room()
        published: list[lk_anyio.RemoteDataTrack] = []
        unpublished: list[str] = []
        bob.on("data_track_published", published.append)
        bob.on("data_track_unpublished", unpublished.append)
        await bob.connect(server.url, server.token("bob"))
        (alice,) = await _connected(server, "alice")
        try:
            track = await alice.local_participant.publish_data_track(name="pose")
            assert track.info.sid == "DTR_1" and track.is_published()
            assert repr(track) == "LocalDataTrack(sid=DTR_1, name=pose)"
            with anyio.fail_after(5):
                while not published:
                    await anyio.sleep(0.01)
            remote = published[0]
            assert (remote.info.name, remote.publisher_identity) == ("pose", "alice")
            assert "publisher_identity=alice" in repr(remote)
            one, two = remote.subscribe(), remote.subscribe()  # one subscription for both
            assert one.track is remote
            await _active(bob, remote.info.sid)
            track.try_push(DataTrackFrame(b"a" * 40_000, user_timestamp=9))
            with anyio.fail_after(5):
                assert await one.read() == DataTrackFrame(b"a" * 40_000, 9)
                assert await anext(two) == DataTrackFrame(b"a" * 40_000, 9)
            await two.aclose()
            track.try_push(DataTrackFrame(b"b"))
            with anyio.fail_after(5):
                assert await one.read() == DataTrackFrame(b"b")
            await track.unpublish()
            assert not track.is_published()
            with anyio.fail_after(5):
                assert [f async for f in one] == []  # a normal end
                while not unpublished:
                    await anyio.sleep(0.01)
            assert unpublished == ["DTR_1"] and not remote.is_published()
            assert await one.read() is None
            with pytest.raises(PushFrameError) as gone:
                track.try_push(DataTrackFrame(b"late"))
            assert gone.value.reason is PushFrameErrorReason.TRACK_UNPUBLISHED
            late = remote.subscribe()  # the track is gone: the stream ends at once
            with pytest.raises(SubscribeDataTrackError) as error:
                await late.read()
            assert error.value.reason is SubscribeDataTrackErrorReason.UNPUBLISHED
        finally:
            await alice.disconnect()
            await bob.disconnect()


@pytest.mark.anyio
async def test_a_reader_more_than_buffer_size_behind_loses_the_oldest() -> None:
    async with MemoryServer(update_interval=0) as server:
        bob, alice = await _connected(server, "bob", "alice")
        try:
            track = await alice.local_participant.publish_data_track(name="pose")
            with anyio.fail_after(5):
                while not bob._session.datatracks.remote:
                    await anyio.sleep(0.01)
            (remote,) = bob._session.datatracks.remote.values()
            stream = remote.subscribe(buffer_size=3)
            default = remote.subscribe()
            assert default._buffer_size == Config().data_track_buffer_size == 16
            await default.aclose()
            await _active(bob, remote.info.sid)
            for n in range(10):
                track.try_push(DataTrackFrame(bytes([n])))
            with anyio.fail_after(5):  # all ten delivered to the stream, which keeps three
                while stream.dropped + len(stream._frames) < 10:
                    await anyio.sleep(0.01)
            assert [f.payload async for f in _take(stream, 3)] == [b"\x07", b"\x08", b"\x09"]
            assert stream.dropped == 7
            zero = remote.subscribe(buffer_size=0)  # clamped to 1, as livekit.rtc
            assert zero._buffer_size == 1
            zero.close()
            stream.close()
        finally:
            await alice.disconnect()
            await bob.disconnect()


async def _active(room: lk_anyio.Room, sid: str) -> None:
    """Wait until `room`'s subscription to `sid` has its handle: frames reach it from now."""
    conn = room.connection
    assert conn is not None
    with anyio.fail_after(5):
        while conn.data_track_subscription(sid) is not SubscriptionState.ACTIVE:
            await anyio.sleep(0.01)


async def _take(stream: Any, count: int) -> Any:
    for _ in range(count):
        with anyio.fail_after(5):
            yield await stream.read()


@pytest.mark.anyio
async def test_refusals_wrong_types_and_the_end_of_the_room() -> None:
    async with MemoryServer(update_interval=0) as server:
        (mute,) = await _connected(server, "mute", can_publish_data=False)
        (alice,) = await _connected(server, "alice")
        try:
            with pytest.raises(PublishDataTrackError) as refused:
                await mute.local_participant.publish_data_track(name="x")
            assert refused.value.reason is PublishDataTrackErrorReason.NOT_ALLOWED
            with pytest.raises(TypeError, match="name must be str"):
                await alice.local_participant.publish_data_track(name=7)  # type: ignore[arg-type]
            track = await alice.local_participant.publish_data_track(name="pose")
            with pytest.raises(TypeError, match="frame must be a DataTrackFrame"):
                track.try_push(b"raw")  # type: ignore[arg-type]
            with anyio.fail_after(5):
                while not mute._session.datatracks.remote:
                    await anyio.sleep(0.01)
            (remote,) = mute._session.datatracks.remote.values()
            with pytest.raises(TypeError, match="buffer_size must be an int"):
                remote.subscribe(buffer_size="3")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="buffer_size must not be negative"):
                remote.subscribe(buffer_size=-1)
            with pytest.raises(TypeError, match="max_partial_frames must be an int"):
                remote.set_pipeline_options(max_partial_frames=1.5)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="max_partial_frames must not be negative"):
                remote.set_pipeline_options(max_partial_frames=-1)
            remote.set_pipeline_options(max_partial_frames=4)
            stream = remote.subscribe()
            # A publish cancelled while it waits is withdrawn.
            with anyio.move_on_after(0):
                await alice.local_participant.publish_data_track(name="cancelled")
            await mute.disconnect()
            with pytest.raises(SubscribeDataTrackError) as ended:
                await stream.read()
            assert ended.value.reason is SubscribeDataTrackErrorReason.DISCONNECTED
            await alice.disconnect()
            assert not track.is_published()
            with pytest.raises(PushFrameError):
                track.try_push(DataTrackFrame(b"after"))
            await track.unpublish()  # nothing to do
            after = remote.subscribe()
            with pytest.raises(SubscribeDataTrackError):
                await after.read()
            remote.set_pipeline_options(max_partial_frames=2)  # nothing to do
        finally:
            await alice.disconnect()
            await mute.disconnect()


@pytest.mark.anyio
async def test_the_threaded_adapter_blocks_with_the_same_names() -> None:
    async with MemoryServer(update_interval=0) as server:

        def work() -> tuple[list[bytes], bool, bool]:
            found = threading.Event()
            tracks: list[threaded.RemoteDataTrack] = []

            def on_published(track: threaded.RemoteDataTrack) -> None:
                tracks.append(track)
                found.set()

            with threaded.Room() as alice, threaded.Room() as bob:
                bob.on("data_track_published", on_published)
                bob.connect(server.url, server.token("bob"), threaded.RoomOptions())
                alice.connect(server.url, server.token("alice"), threaded.RoomOptions())
                track = alice.local_participant.publish_data_track(name="pose")
                assert track.info.name == "pose" and track.is_published()
                assert found.wait(10)
                remote = tracks[0]
                assert remote.publisher_identity == "alice" and remote.is_published()
                assert "pose" in repr(remote) and "pose" in repr(track)
                remote.set_pipeline_options(max_partial_frames=2)
                with remote.subscribe(buffer_size=8) as stream:
                    conn = bob.connection
                    assert conn is not None
                    for _ in range(500):  # until the subscription has its handle
                        if conn.data_track_subscription(remote.info.sid).name == "ACTIVE":
                            break
                        threading.Event().wait(0.01)
                    for n in range(3):
                        track.try_push(DataTrackFrame(bytes([n]), user_timestamp=n))
                    got = []
                    for _ in range(3):
                        frame = stream.read()
                        assert frame is not None and frame.user_timestamp == frame.payload[0]
                        got.append(frame.payload)
                    track.unpublish()
                    rest = [f.payload for f in stream]  # ends normally
                    assert stream.dropped == 0
                with pytest.raises(TypeError):
                    track.try_push(b"raw")  # type: ignore[arg-type]
            # Disconnected: nothing more to read or do.
            assert stream.read() is None
            stream.close()
            track.unpublish()
            with pytest.raises(PushFrameError):
                track.try_push(DataTrackFrame(b"late"))
            return got + rest, track.is_published(), remote.is_published()

        with anyio.fail_after(30):
            got, local_published, remote_published = await anyio.to_thread.run_sync(work)
        assert got == [b"\x00", b"\x01", b"\x02"]
        assert not local_published and not remote_published


# -- the aiortc peer's lossy sending --------------------------------------------------------------


class _Channel:
    def __init__(self) -> None:
        self.readyState = "open"
        self.bufferedAmount = 0
        self.bufferedAmountLowThreshold = 8 * 1024
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        if self.readyState != "open":
            raise ConnectionError("closed")
        self.sent.append(data)


class _Listener:
    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def _frame(number: int) -> cmd.SendDataTrackFrame:
    return cmd.SendDataTrackFrame(
        pub_handle=1, sid="DTR_1", frame_number=number, packets=(b"%d-a" % number, b"%d-b" % number)
    )


def test_the_aiortc_peer_sends_below_the_low_mark_and_keeps_only_the_newest_frame() -> None:
    peer = _aiortc.AiortcPeer(_Listener())
    peer.submit(_frame(0))  # no channel yet: dropped
    assert peer.data_track_frames_dropped == 1
    channel = _Channel()
    peer._send[Channel.DATA_TRACK] = channel  # type: ignore[assignment]
    peer.submit(_frame(1))
    assert channel.sent == [b"1-a", b"1-b"]  # a whole frame, at once
    channel.bufferedAmount = 8 * 1024 + 1  # backed up: frames wait, the newest wins
    peer.submit(_frame(2))
    peer.submit(_frame(3))
    assert channel.sent == [b"1-a", b"1-b"] and peer.data_track_frames_dropped == 2
    assert _aiortc.PENDING_FRAMES == 1
    channel.bufferedAmount = 0
    peer._data_track_drained()  # what the channel's "bufferedamountlow" does
    peer._data_track_drained()  # nothing more waits
    assert channel.sent == [b"1-a", b"1-b", b"3-a", b"3-b"]
    channel.readyState = "closing"
    peer.submit(_frame(4))
    assert peer.data_track_frames_dropped == 3
    channel.readyState = "open"
    channel.send = lambda data: (_ for _ in ()).throw(ConnectionError("broken"))  # type: ignore[method-assign]
    peer.submit(_frame(5))
    assert peer.data_track_frames_dropped == 4
