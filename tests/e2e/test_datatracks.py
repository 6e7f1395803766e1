"""Data tracks through a real livekit-server 1.13.5, with the official SDK as the other side.

Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded: see
harness/adapters.py). Frames carry a payload that names its size and number and a user
timestamp, so every frame that arrives is checked byte for byte against what was sent.

The server itself drops data-track packets while a subscriber's channel is backed up (field
notes, "Data tracks through livekit-server 1.13.5"): a 196 KB frame is 13 packets sent at
once, and between two official SDKs 0 of 20 arrive at 4-10 Hz. So large frames are sent
slowly, one at a time until one arrives, and the assertion is exactness (each frame that
arrives is one that was sent, whole, once, with its timestamp), not a delivery ratio;
benchmarks/bench_datatracks.py measures the ratios beside the official SDK's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from livekit import rtc

from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.announce import announce
from harness.official import OfficialLoop, OfficialPeer
from harness.peer_records import Record
from harness.recorder import Recorder
from harness.taps import FrameReader
from lkproto.datatracks import PublishDataTrackErrorReason, SubscribeDataTrackErrorReason
from lkproto.transports.anyio import (
    DataTrackFrame,
    PublishDataTrackError,
    PushFrameError,
    Room,
    RoomOptions,
    RpcInvocationData,
    SimulateScenario,
    SubscribeDataTrackError,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(150)]

SMALL = (100, 8 * 1024)
LARGE = 196 * 1024
TS0 = 1_700_000_000_000  # user timestamps: unix milliseconds, as the SDKs use them


def payload(size: int, n: int) -> bytes:
    head = f"{size}/{n}/".encode()
    return (head + bytes(range(256)) * (size // 256 + 1))[:size]


def stamp(size: int, n: int) -> int:
    return TS0 + size * 1000 + n


def sent_frames(sizes: tuple[int, ...], count: int) -> dict[bytes, int]:
    return {payload(s, n): stamp(s, n) for s in sizes for n in range(count)}


async def official(loop: OfficialLoop, url: str, token: str) -> OfficialPeer:
    peer = OfficialPeer(loop)
    await peer.connect(url, token)
    return peer


def official_frames(records: list[Record], sid: str) -> list[tuple[bytes, int | None]]:
    return [(a[1], a[2]) for name, a in records if name == "frame" and a[0] == sid]


async def seen_within(
    peer: OfficialPeer, predicate: Callable[[list[Record]], object], timeout: float
) -> bool:
    """Whether `predicate(records)` holds within `timeout` seconds (no exception)."""
    try:
        await peer.wait_for(lambda r: predicate(r) or None, timeout=timeout)
    except TimeoutError:
        return False
    return True


async def until_official_receives(
    peer: OfficialPeer, sid: str, push: Callable[[int], None], *, every: float, tries: int
) -> None:
    """Push probe frames (`push(n)`) until the official subscriber has one: its
    subscription is then in place."""
    for n in range(tries):
        push(n)
        if await seen_within(peer, lambda r: official_frames(r, sid), every):
            return
    raise TimeoutError(f"the official subscriber never received a frame of {sid}")


async def lk_sends(
    track: Any, peer: OfficialPeer, sid: str, size: int, *, count: int, rate: float, want: int
) -> list[tuple[bytes, int | None]]:
    """Push up to `count` frames of `size` at `rate` Hz from lkproto, stopping once the
    official subscriber has `want` of them; return those it has."""

    def got() -> list[tuple[bytes, int | None]]:
        return [f for f in official_frames(peer.records, sid) if len(f[0]) == size]

    for n in range(count):
        track.try_push(DataTrackFrame(payload(size, n), user_timestamp=stamp(size, n)))
        if await seen_within(peer, lambda r: len(got()) >= want, 1 / rate):
            break
    await seen_within(peer, lambda r: len(got()) >= count, 1)  # stragglers
    return got()


def official_pushes(sizes: tuple[int, ...], count: int, rate: float) -> Callable[[Any], Any]:
    """What the official publisher does on its loop: `count` frames of each size at `rate`."""

    async def send(track: rtc.LocalDataTrack) -> None:
        for size in sizes:
            for n in range(count):
                frame = rtc.DataTrackFrame(payload=payload(size, n), user_timestamp=stamp(size, n))
                with contextlib.suppress(rtc.PushFrameError):  # counted as not delivered
                    track.try_push(frame)
                await asyncio.sleep(1 / rate)

    return send


# -- both directions, three sizes, unpublish -----------------------------------------------------


@pytest.mark.heavy("media")  # real time: the media lane, first call on the CPU (harness/phases.py)
async def test_frames_of_every_size_cross_both_ways_with_timestamps_and_unpublish_is_seen(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    peer = await official(official_loop, livekit_server.url, make_token("official"))
    room = Room()
    seen = Recorder(room, "data_track_published", "data_track_unpublished")
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        await announce(livekit_server, room.name, "lk")  # at once, not on the 3 s tick
        await peer.wait_for(lambda r: ("joined", ("lk",)) in r)

        # lkproto publishes; the official SDK subscribes.
        track = await room.local_participant.publish_data_track(name="lk-sensor")
        sid = track.info.sid
        assert sid.startswith("DTR_") and track.info.name == "lk-sensor"
        assert not track.info.uses_e2ee and track.is_published()
        await peer.wait_for(lambda r: ("data_track_published", (sid, "lk-sensor", "lk")) in r)
        await peer.subscribe_data_track(sid)

        def probe(n: int) -> None:
            track.try_push(DataTrackFrame(b"probe" + bytes([n]), user_timestamp=n))

        await until_official_receives(peer, sid, probe, every=0.3, tries=40)
        sent = sent_frames(SMALL, 10) | sent_frames((LARGE,), 40)  # up to 15 and 40 sent
        arrived = {}
        for size in SMALL:
            for frame in await lk_sends(track, peer, sid, size, count=10, rate=20, want=10):
                arrived[frame[0]] = frame[1]
        large = await lk_sends(track, peer, sid, LARGE, count=15, rate=1, want=1)
        received = [f for f in official_frames(peer.records, sid) if not f[0].startswith(b"probe")]
        assert len(received) == len({p for p, _ in received}), "a frame arrived twice"
        for data, user_timestamp in received:
            assert sent.get(data) == user_timestamp, f"a {len(data)}-byte frame is not as sent"
        assert {len(p) for p, _ in received} == {*SMALL, LARGE}, "a size never arrived"
        assert large, "no 196 KB frame arrived"

        await track.unpublish()
        assert not track.is_published()
        await peer.wait_for(lambda r: ("data_track_unpublished", (sid,)) in r)
        with pytest.raises(PushFrameError):
            track.try_push(DataTrackFrame(b"late"))

        # The official SDK publishes; lkproto subscribes.
        async def publish(r: rtc.Room) -> rtc.LocalDataTrack:
            return await r.local_participant.publish_data_track(name="official-sensor")

        theirs: rtc.LocalDataTrack = await peer.do(publish)
        remote = (await seen.wait_for(lambda: seen.of("data_track_published")))[0][0]
        assert remote.info.sid == theirs.info.sid and remote.info.name == "official-sensor"
        assert remote.publisher_identity == "official" and remote.is_published()
        reader = FrameReader(remote.subscribe(buffer_size=64))  # a slow reader loses none
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            for n in range(100):  # probes until the subscription is in place
                await peer.do(lambda r, n=n: _push(theirs, b"probe" + bytes([n]), n))
                if await reader.within(lambda: bool(reader.frames), 0.3):
                    break
            await peer.do(lambda r: official_pushes(SMALL, 10, 20)(theirs), timeout=30)
            for n in range(40):  # large frames one at a time, until one arrives (15: short twice)
                frame = rtc.DataTrackFrame(
                    payload=payload(LARGE, n), user_timestamp=stamp(LARGE, n)
                )
                await peer.do(lambda r, f=frame: _push_frame(theirs, f))
                if await reader.within(
                    lambda: any(len(f.payload) == LARGE for f in reader.frames), 1
                ):
                    break
            await reader.within(lambda: False, 1)  # stragglers
            frames = [f for f in reader.frames if not f.payload.startswith(b"probe")]
            assert len(frames) == len({f.payload for f in frames}), "a frame arrived twice"
            for frame in frames:
                assert sent.get(frame.payload) == frame.user_timestamp, "not as sent"
            assert {len(f.payload) for f in frames} == {*SMALL, LARGE}, "a size never arrived"

            await peer.do(lambda r: theirs.unpublish())
            gone = await seen.wait_for(lambda: seen.of("data_track_unpublished"))
            assert gone == [(theirs.info.sid,)]
            with anyio.fail_after(10):
                await reader.ended.wait()
            assert reader.error is None  # unpublished after frames flowed: a normal end
            assert not remote.is_published()
    finally:
        await room.disconnect()
        await peer.disconnect()


def got_or_ended(reader: FrameReader) -> bool:
    return bool(reader.frames) or reader.ended.is_set()


async def _push_frame(track: rtc.LocalDataTrack, frame: rtc.DataTrackFrame) -> None:
    with contextlib.suppress(rtc.PushFrameError):
        track.try_push(frame)


async def _push(track: rtc.LocalDataTrack, data: bytes, user_timestamp: int) -> None:
    with contextlib.suppress(rtc.PushFrameError):  # e.g. republishing: "queue full"
        track.try_push(rtc.DataTrackFrame(payload=data, user_timestamp=user_timestamp))


# -- a late joiner; refusals -------------------------------------------------------------------


async def test_a_late_joiner_subscribes_and_refusals_carry_the_documented_errors(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    peer = await official(official_loop, livekit_server.url, make_token("official"))
    theirs: rtc.LocalDataTrack = await peer.do(
        lambda r: r.local_participant.publish_data_track(name="sensor")
    )

    async def allow_all(r: rtc.Room, allowed: bool) -> None:
        # livekit.rtc 1.2 aborts the process if `allowed_track_sids` names a data track, so
        # the permission is all or nothing here.
        r.local_participant.set_track_subscription_permissions(allow_all_participants=allowed)

    await peer.do(lambda r: allow_all(r, False))
    room = Room()
    seen = Recorder(room, "data_track_published")
    try:
        # A late joiner without canPublishData: it sees the track published before it came.
        await room.connect(livekit_server.url, make_token("late", can_publish_data=False), options)
        remote = (await seen.wait_for(lambda: seen.of("data_track_published")))[0][0]
        assert remote.info.sid == theirs.info.sid and remote.info.name == "sensor"
        assert remote.publisher_identity == "official"

        with pytest.raises(PublishDataTrackError) as refused:
            await room.local_participant.publish_data_track(name="mine")
        assert refused.value.reason is PublishDataTrackErrorReason.NOT_ALLOWED

        denied = FrameReader(remote.subscribe())
        async with anyio.create_task_group() as tg:
            tg.start_soon(denied.run)
            with anyio.fail_after(15):
                await denied.ended.wait()
        assert isinstance(denied.error, SubscribeDataTrackError)
        assert denied.error.reason is SubscribeDataTrackErrorReason.NOT_ALLOWED

        # Allowed now. The permission reaches the server on its own time: a subscription
        # that still meets the old one is refused again, and subscribing is tried again.
        await peer.do(lambda r: allow_all(r, True))
        frames: list[DataTrackFrame] = []
        counter = iter(range(10**6))
        for _ in range(10):
            reader = FrameReader(remote.subscribe())
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader.run)
                for _ in range(10):
                    n = next(counter)
                    await peer.do(lambda r, n=n: _push(theirs, payload(100, n), stamp(100, n)))
                    if await reader.within(functools.partial(got_or_ended, reader), 0.3):
                        break
                frames = list(reader.frames)
                reader.stream.close()
            if frames:
                break
        assert frames, "no frame arrived once subscribing was allowed"
        sent = sent_frames((100,), next(counter))
        assert all(sent.get(f.payload) == f.user_timestamp for f in frames)
    finally:
        await room.disconnect()
        await peer.disconnect()


# -- resume and full reconnect of the publisher ----------------------------------------------


async def test_frames_flow_again_after_the_publisher_resumes_and_fully_reconnects(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    """lkproto publishes to an official subscriber and to a second lkproto room. After a
    resume and after a full reconnect (a new session replacing the old one, which the server
    does not announce as a departure to clients of protocol > 11) both keep receiving on the
    streams they opened; the full reconnect gives the track a new SID that both follow."""
    peer = await official(official_loop, livekit_server.url, make_token("official"))
    room, watcher = Room(), Room()
    seen = Recorder(room, "reconnecting", "reconnected", timeout=30)
    published = Recorder(watcher, "data_track_published", "data_track_unpublished")
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        await watcher.connect(livekit_server.url, make_token("watcher"), options)
        await announce(livekit_server, room.name, "lk")  # at once, not on the 3 s tick
        await peer.wait_for(lambda r: ("joined", ("lk",)) in r)
        track = await room.local_participant.publish_data_track(name="pose")
        first_sid = track.info.sid
        await peer.wait_for(lambda r: ("data_track_published", (first_sid, "pose", "lk")) in r)
        await peer.subscribe_data_track(first_sid)
        remote = (await published.wait_for(lambda: published.of("data_track_published")))[0][0]
        reader = FrameReader(remote.subscribe())
        counter = iter(range(10**6))

        def push(_: int = 0) -> int:
            n = next(counter)
            with contextlib.suppress(PushFrameError):  # republishing after the full reconnect
                track.try_push(DataTrackFrame(payload(100, n), user_timestamp=stamp(100, n)))
            return n

        def numbers(frames: list[bytes]) -> list[int]:
            return [int(data.split(b"/")[1]) for data in frames]

        async def both_receive(since: int) -> None:
            """Push until both subscribers have a frame numbered `since` or later."""

            def official_has(records: list[Record]) -> bool:
                got = numbers([d for d, _ in official_frames(records, first_sid)])
                return any(n >= since for n in got)

            def watcher_has() -> bool:
                return any(n >= since for n in numbers([f.payload for f in reader.frames]))

            for _ in range(150):
                push()
                if await seen_within(peer, official_has, 0.1) and await reader.within(
                    watcher_has, 0.1
                ):
                    return
            raise TimeoutError(f"frames from {since} on did not reach both subscribers")

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            await both_receive(0)

            # A resume: the same track, the same SID, the same subscriptions.
            await room.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT)
            await seen.wait_for(lambda: seen.of("reconnected"))
            await both_receive(push())
            assert track.info.sid == first_sid and track.is_published()

            # A full reconnect: republished (same handle and name) under a new SID.
            await room.simulate_scenario(SimulateScenario.FULL_RECONNECT)
            await seen.wait_for(lambda: len(seen.of("reconnected")) >= 2 or None)
            with anyio.fail_after(15):
                while track.info.sid == first_sid:
                    await anyio.sleep(0.05)
            assert track.is_published() and track.info.name == "pose"
            await both_receive(push())  # nobody resubscribed by hand
            assert remote.info.sid == track.info.sid and remote.is_published()
            assert published.of("data_track_unpublished") == []  # the same track, moved
            assert ("data_track_unpublished", (first_sid,)) not in peer.records
            assert not reader.ended.is_set()
            sent = sent_frames((100,), next(counter))
            received = official_frames(peer.records, first_sid)  # recorded under its first SID
            assert all(sent.get(data) == ts for data, ts in received)
            assert all(sent.get(f.payload) == f.user_timestamp for f in reader.frames)
            reader.stream.close()
    finally:
        await room.disconnect()
        await watcher.disconnect()
        await peer.disconnect()


async def test_an_official_publishers_resume_keeps_the_stream_and_its_full_reconnect_is_a_leave(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    """livekit.rtc 1.2's full reconnect leaves (a `leave` the server announces as a departure,
    CLIENT_INITIATED) and joins again: every subscriber, official ones too, sees its track
    unpublished and a new one published. Its resume keeps the stream."""
    peer = await official(official_loop, livekit_server.url, make_token("official"))
    theirs: rtc.LocalDataTrack = await peer.do(
        lambda r: r.local_participant.publish_data_track(name="telemetry")
    )
    room = Room()
    seen = Recorder(room, "data_track_published", "data_track_unpublished", timeout=30)
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        remote = (await seen.wait_for(lambda: seen.of("data_track_published")))[0][0]
        first_sid = remote.info.sid
        reader = FrameReader(remote.subscribe())
        counter = iter(range(10**6))

        async def until_received(reader: FrameReader, count: int) -> None:
            for _ in range(150):
                n = next(counter)
                await peer.do(lambda r, n=n: _push(theirs, payload(100, n), stamp(100, n)))
                if await reader.within(lambda: len(reader.frames) >= count, 0.2):
                    return
            raise TimeoutError("no frame arrived")

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run)
            await until_received(reader, 1)
            await peer.do(
                lambda r: r.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_SIGNAL_RECONNECT)
            )
            await peer.wait_for(lambda r: ("reconnected", ()) in r, timeout=30)
            await until_received(reader, len(reader.frames) + 1)  # the same stream
            assert remote.info.sid == first_sid and not reader.ended.is_set()

            await peer.do(
                lambda r: r.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_FULL_RECONNECT)
            )
            gone = await seen.wait_for(lambda: seen.of("data_track_unpublished"))
            assert gone == [(first_sid,)]
            with anyio.fail_after(10):
                await reader.ended.wait()
            assert reader.error is None and not remote.is_published()
            again = (await seen.wait_for(lambda: seen.of("data_track_published")[1:]))[0][0]
            assert again.info.name == "telemetry" and again.info.sid != first_sid
            second = FrameReader(again.subscribe())
            tg.start_soon(second.run)
            await until_received(second, 1)
            sent = sent_frames((100,), next(counter))
            frames = reader.frames + second.frames
            assert all(sent.get(f.payload) == f.user_timestamp for f in frames)
            second.stream.close()
    finally:
        await room.disconnect()
        await peer.disconnect()


# -- everything else keeps working while a data track runs at full rate ------------------------


@pytest.mark.heavy("media")  # real time: the media lane, first call on the CPU (harness/phases.py)
async def test_data_packets_rpc_and_streams_work_while_a_data_track_runs_at_full_rate(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    peer = await official(official_loop, livekit_server.url, make_token("official"))

    async def serve(r: rtc.Room) -> None:
        async def echo(data: rtc.RpcInvocationData) -> str:
            return data.payload.upper()

        r.local_participant.register_rpc_method("echo", echo)

        async def on_text(reader: rtc.TextStreamReader, identity: str) -> None:
            peer._record("text", identity, await reader.read_all())

        def handler(reader: rtc.TextStreamReader, identity: str) -> None:
            peer.spawn(on_text(reader, identity))

        r.register_text_stream_handler("notes", handler)

    await peer.do(serve)
    room = Room()
    answered: list[str] = []

    async def on_rpc(data: RpcInvocationData) -> str:
        answered.append(data.payload)
        return "pong"

    room.local_participant.register_rpc_method("ping", on_rpc)
    try:
        await room.connect(livekit_server.url, make_token("lk"), options)
        await announce(livekit_server, room.name, "lk")  # at once, not on the 3 s tick
        await peer.wait_for(lambda r: ("joined", ("lk",)) in r)
        track = await room.local_participant.publish_data_track(name="firehose")
        sid = track.info.sid
        await peer.wait_for(lambda r: ("data_track_published", (sid, "firehose", "lk")) in r)
        await peer.subscribe_data_track(sid)
        pushed = 0
        stop = anyio.Event()

        async def firehose() -> None:  # 8 KB frames as fast as the room takes them
            nonlocal pushed
            while not stop.is_set():
                track.try_push(
                    DataTrackFrame(payload(8192, pushed), user_timestamp=stamp(8192, pushed))
                )
                pushed += 1
                await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(firehose)
            lp = room.local_participant
            await lp.publish_data(b"reliable while streaming", topic="t")
            await lp.publish_data(b"lossy while streaming", reliable=False, topic="t")
            result = await lp.perform_rpc(
                destination_identity="official", method="echo", payload="while", response_timeout=10
            )
            await lp.send_text("a note while streaming", topic="notes")
            answer = await peer.do(
                lambda r: r.local_participant.perform_rpc(
                    destination_identity="lk", method="ping", payload="ping"
                )
            )
            await peer.wait_for(lambda r: any(n == "text" for n, _ in r))
            await peer.wait_for(
                lambda r: ("data", ("lk", b"reliable while streaming", "t", 1)) in r
            )
            await peer.wait_for(lambda r: len(official_frames(r, sid)) >= 20 or None)
            stop.set()
        assert result == "WHILE" and answer == "pong" and answered == ["ping"]
        assert peer.of("text") == [("lk", "a note while streaming")]
        received = official_frames(peer.records, sid)
        sent = sent_frames((8192,), pushed)
        assert all(sent.get(data) == ts for data, ts in received)
        assert pushed > len(received)  # the room dropped frames rather than queue them
    finally:
        await room.disconnect()
        await peer.disconnect()
