"""Audio, video, end-to-end encryption and data tracks between lkproto and the Go SDK
(`server-sdk-go` v2.19.0, on pion), through a real livekit-server, proven by content.

The Go participant is `lkproto-go-peer` (peers/go), driven through `harness.gopeer`. Every
test runs once per lkproto adapter (harness/adapters.py) and checks both directions. pion
encodes and decodes nothing, so the Go peer moves encoded frames between files and tracks:
- audio: Go publishes a 660 Hz tone the harness encoded as Opus in Ogg (PyAV, libopus),
  looping; lkproto subscribes and measures the frequency of what it decodes (harness/audio.py
  `Capture`). lkproto publishes 440 Hz; the Go peer writes the Opus RTP it receives into an
  Ogg file (pion's oggwriter), which the harness decodes (PyAV) and measures the same way;
- video: Go publishes the colour pattern (a colour a second, harness/video.py `COLOURS`)
  encoded as VP8 in IVF, looping; lkproto reads each picture's centre colour. lkproto
  publishes the pattern at 640x360; the Go peer writes the VP8 RTP into an IVF file (pion's
  ivfwriter, from the first keyframe), which the harness decodes and checks as the other media
  tests do (`Seen.check_pattern`: size, frame count, colours in order);
- end-to-end encryption: the Go SDK encrypts data packets (AES-GCM, the shared passphrase
  through PBKDF2 as every SDK derives it), RPC and data streams included; both sides connect
  with the same passphrase and exchange a packet, a text stream and an RPC each way, and a
  participant without the key (an anyio Room recording its data channel's raw packets) gets
  only encrypted envelopes from both, with none of the plaintext. With a wrong key on lkproto's
  side nothing is read either way (lkproto reports what it drops), and once the key is right
  the next packets cross both ways. The Go SDK encrypts no VP8
  (its frame cryptor knows H.264, H.265 and Opus) and lkproto encrypts no media at all, so
  there is no encrypted media to test;
- data tracks: the Go SDK v2.19.0 has none (no publish, no subscribe, no `_data_track`
  channel; it ignores `ParticipantInfo.data_tracks`). The boundary test shows an lkproto
  data track beside the Go peer: another lkproto participant reads its frames, the Go peer
  receives nothing from them and its data packets still cross both ways.

Measurement windows are wall-time sleeps (media is real time); everything else waits on
events. The media tests are `heavy` (harness/phases.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.audio import Capture
from harness.gopeer import (
    GoPeer,
    gopeer_fixture,  # noqa: F401 (the `gopeer` fixture)
    read_ivf,
    read_ogg,
    unb64,
    write_ivf_pattern,
    write_ogg_tone,
)
from harness.media import media_for
from harness.recorder import Recorder
from harness.taps import eavesdropper, envelopes
from harness.video import (
    COLOURS,
    Seen,
    fill_window,
    lk_module,
    play_pattern,
    publish_video,
    watching,
)
from lkproto import events as ev
from lkproto.transports import anyio as lk_anyio
from lkproto.transports.anyio import (
    E2EEOptions,
    EncryptionState,
    KeyProviderOptions,
    Room,
    RoomOptions,
    RpcInvocationData,
    RtcConfiguration,
    TextStreamReader,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]

LK, GO = "lk", "go"
KEY = "lkproto and the Go SDK share this passphrase"
GO_SIZE = (320, 180)  # what the Go peer publishes (the harness encodes it once per module)


class Files:
    def __init__(self, root: Path) -> None:
        self.tone = root / "tone-660.ogg"
        self.pattern = root / "pattern.ivf"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """The media the Go peer publishes: 2 s of 660 Hz (Opus, Ogg), the six-colour pattern
    (VP8, IVF, 320x180, 15 fps); it loops both."""
    made = Files(tmp_path_factory.mktemp("go-media"))
    write_ogg_tone(made.tone, 660, 2.0)
    write_ivf_pattern(made.pattern, COLOURS, size=GO_SIZE, fps=15)
    return made


def room_options(confinement: Any, key: str | None = None, auto_subscribe: bool = True) -> Any:
    encryption = None if key is None else E2EEOptions(KeyProviderOptions(shared_key=key.encode()))
    return RoomOptions(
        auto_subscribe=auto_subscribe,
        rtc_config=RtcConfiguration(host_addresses=[confinement.host]),
        encryption=encryption,
    )


async def both_joined(
    room: Any, peer: GoPeer, server: Any, make_token: Any, options: Any, key: str | None = None
) -> None:
    """The Go peer joins first, then our Room, which finds it there."""
    joined = await peer.connect(server.url, make_token(GO), e2ee_key=key)
    assert joined["participants"] == []
    with anyio.fail_after(30):
        await room.connect(server.url, make_token(LK), options)
    assert list(room.remote_participants) == [GO]


async def hear(seconds: float, capture: Capture, loud: float) -> None:
    """A fresh window of at least `seconds` on `capture`, extended (by up to 8 s, free when
    the tone is heard: it plays on) until it was loud for `loud` seconds (test_audio.py)."""
    capture.clear()
    await anyio.sleep(seconds)
    with anyio.move_on_after(8.0):
        while capture.loud_seconds() < loud:
            await anyio.sleep(0.1)


async def go_records(peer: GoPeer, sid: str, path: Path, seconds: float) -> dict[str, Any]:
    """The Go peer subscribes to track `sid` and records it into `path` for `seconds` from
    the first bytes of media in the file (for video, its first keyframe)."""
    await peer.do("record", sid=sid, path=str(path))
    subscribed = await peer.wait_event("track_subscribed", lambda f: f["sid"] == sid)
    assert "error" not in subscribed, subscribed
    headers = path.stat().st_size  # the file's headers, written before any media
    with anyio.fail_after(10):
        while path.stat().st_size <= headers:
            await anyio.sleep(0.1)
    await anyio.sleep(seconds)  # the measurement window: real time
    return await peer.do("stop_record", sid=sid)


# -- audio ---------------------------------------------------------------------------------------


@pytest.mark.heavy("media")  # real time: the media lane, first call on the CPU (harness/phases.py)
async def test_a_tone_each_way_is_heard_at_its_frequency(
    livekit_server: Any,
    make_token: Any,
    confinement: Any,
    gopeer: GoPeer,
    files: Files,
    tmp_path: Path,
) -> None:
    room = Room()
    media = media_for(room)
    events = Recorder(room, "track_subscribed", "track_unpublished")
    try:
        await both_joined(room, gopeer, livekit_server, make_token, room_options(confinement))

        # lkproto -> Go: 440 Hz; the Go peer records the Opus RTP into an Ogg file.
        source = media.source(48000, 1)
        publication = await media.publish(source, "lk-tone")
        sid = publication.sid
        async with media.playing(source, 440):
            published = await gopeer.wait_event("track_published", lambda f: f["sid"] == sid)
            assert (published["identity"], published["name"], published["kind"]) == (
                LK,
                "lk-tone",
                "audio",
            )
            recorded = await go_records(gopeer, sid, tmp_path / "from-lk.ogg", 2.0)
        subscribed = gopeer.of("track_subscribed")[0]
        assert (subscribed["identity"], subscribed["mime"].lower()) == (LK, "audio/opus")
        theirs = read_ogg(tmp_path / "from-lk.ogg")
        print(f"go heard {theirs.summary()} from {recorded['packets']} RTP packets")
        assert theirs.loud_seconds() >= 1.2, theirs.summary()
        assert abs(theirs.frequency() - 440) <= 5, theirs.summary()

        # Go -> lkproto: 660 Hz from the Ogg file the harness encoded.
        go_sid = (await gopeer.do("publish_file", path=str(files.tone), name="go-tone"))["sid"]
        assert go_sid.startswith("TR_A")
        (track, pub, participant) = (await events.wait_for(lambda: events.of("track_subscribed")))[
            0
        ]
        assert (pub.sid, pub.name, participant.identity) == (go_sid, "go-tone", GO)
        ours = Capture()
        async with media.recording(media.stream(track, 48000, 1), ours):
            await hear(1.0, ours, loud=0.8)
        assert ours.loud_seconds() >= 0.8, ours.summary()
        assert abs(ours.frequency() - 660) <= 5, ours.summary()

        # Each side unpublishes; the other sees it.
        await media.unpublish(sid)
        await gopeer.wait_event("track_unpublished", lambda f: f["sid"] == sid)
        await gopeer.do("unpublish", sid=go_sid)
        gone = await events.wait_for(lambda: events.of("track_unpublished"))
        assert gone == [(pub, participant)]
        assert room.remote_participants[GO].track_publications == {}
    finally:
        await room.disconnect()


# -- video ---------------------------------------------------------------------------------------


@pytest.mark.heavy("media")  # real time: the media lane, first call on the CPU (harness/phases.py)
async def test_a_colour_pattern_each_way_arrives_in_order(
    livekit_server: Any,
    make_token: Any,
    confinement: Any,
    gopeer: GoPeer,
    files: Files,
    tmp_path: Path,
) -> None:
    room = Room()
    events = Recorder(room, "track_subscribed")
    ours = Seen()
    try:
        await both_joined(room, gopeer, livekit_server, make_token, room_options(confinement))
        module = lk_module(room)

        # lkproto -> Go: 640x360, recorded by the Go peer as IVF from its first keyframe.
        source = module.VideoSource(640, 360)
        publication = await publish_video(room, source, "lk-cam")
        sid = publication.sid
        path = tmp_path / "from-lk.ivf"
        # (The pattern plays on while Go publishes: a threaded application's capture thread
        # cannot be interrupted, so it runs its 12 s out.)
        async with anyio.create_task_group() as tg:
            tg.start_soon(play_pattern, room, source, 12.0)
            await gopeer.wait_event("track_published", lambda f: f["sid"] == sid)
            recorded = await go_records(gopeer, sid, path, 3.0)
            subscribed = gopeer.of("track_subscribed")[0]
            assert (subscribed["identity"], subscribed["mime"].lower()) == (LK, "video/vp8")
            theirs = read_ivf(path)
            print(f"go recorded {recorded['packets']} RTP packets:", end=" ")
            print(theirs.check_pattern(15, 3.0, size=(640, 360)))

            # Go -> lkproto: the pattern the harness encoded, 320x180.
            width, height = GO_SIZE
            go = await gopeer.do(
                "publish_file", path=str(files.pattern), name="go-cam", width=width, height=height
            )
            assert go["sid"].startswith("TR_V")
            subscribed_here = await events.wait_for(lambda: events.of("track_subscribed"))
            (track, pub, participant) = subscribed_here[0]
            assert (pub.sid, pub.name, participant.identity) == (go["sid"], "go-cam", GO)
            stream = module.VideoStream(track, format=module.VideoBufferType.RGBA)
            async with watching(room, stream, ours):
                with anyio.fail_after(10):  # the first keyframe (the file has one a second)
                    while not ours.snapshot():
                        await anyio.sleep(0.1)
                ours.clear()
                await fill_window(ours.snapshot, 15, 3.0)
            print(ours.check_pattern(15, 3.0, size=GO_SIZE))
            await gopeer.do("unpublish", sid=go["sid"])
            tg.cancel_scope.cancel()
    finally:
        await room.disconnect()


# -- end-to-end encryption -----------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_encrypted_data_text_and_rpc_both_ways_and_eve_reads_none(
    livekit_server: Any, make_token: Any, confinement: Any, gopeer: GoPeer
) -> None:
    room = Room()
    inbox: list[tuple[Any, ...]] = []
    changed = anyio.Event()

    def add(*item: Any) -> None:
        inbox.append(item)
        changed.set()

    async def on_text(reader: TextStreamReader, identity: str) -> None:
        add("text", identity, reader.info.topic, await reader.read_all())

    def echo(data: RpcInvocationData) -> str:
        add("rpc", data.caller_identity, data.payload)
        return "lk echoes " + data.payload

    room.register_text_stream_handler("secret-text", on_text)
    room.local_participant.register_rpc_method("echo", echo)
    room.on("data_received", lambda p: add("data", p.participant.identity, p.data, p.topic))
    await gopeer.do("register_text", topic="secret-text")
    await gopeer.do("register_rpc", method="echo", mode="echo")
    secrets = {
        LK: ("lk's secret packet ✓", "lk's secret text 😀", "lk's secret call"),
        GO: ("go's secret packet ✓", "go's secret text 😀", "go's secret call"),
    }
    eve: lk_anyio.Room | None = None
    try:
        options = room_options(confinement, key=KEY, auto_subscribe=False)
        await both_joined(room, gopeer, livekit_server, make_token, options, key=KEY)
        eve, raw = await eavesdropper(livekit_server.url, make_token("eve"), confinement.host)
        me = room.local_participant

        # lkproto -> Go: a packet, a text stream, an RPC (echoed by the Go peer).
        await me.publish_data(secrets[LK][0].encode(), topic="secret")
        await me.send_text(secrets[LK][1], topic="secret-text")
        with anyio.fail_after(30):
            reply = await me.perform_rpc(
                destination_identity=GO, method="echo", payload=secrets[LK][2]
            )
        assert reply == secrets[LK][2]
        data = await gopeer.wait_event("data", lambda f: f["topic"] == "secret")
        assert (data["sender"], unb64(data["payload"])) == (LK, secrets[LK][0].encode())
        text = await gopeer.wait_event("text")
        assert (text["sender"], text["topic"], text["text"]) == (LK, "secret-text", secrets[LK][1])
        invoked = await gopeer.wait_event("rpc_invoked")
        assert (invoked["caller"], invoked["payload"]) == (LK, secrets[LK][2])

        # Go -> lkproto, the same three.
        await gopeer.publish_data(secrets[GO][0].encode(), topic="secret")
        await gopeer.do("send_text", text=secrets[GO][1], topic="secret-text")
        result = await gopeer.do(
            "perform_rpc", timeout=20, destination=LK, method="echo", payload=secrets[GO][2]
        )
        assert result["payload"] == "lk echoes " + secrets[GO][2]
        with anyio.fail_after(15):
            while len(inbox) < 3:
                changed = anyio.Event()
                await changed.wait()
        assert sorted(inbox, key=repr) == sorted(
            [
                ("data", GO, secrets[GO][0].encode(), "secret"),
                ("text", GO, "secret-text", secrets[GO][1]),
                ("rpc", GO, secrets[GO][2]),
            ],
            key=repr,
        )

        # Eve got each sender's broadcasts (the packet, then the text stream's packets), each
        # an encrypted envelope marked GCM (1), with none of the plaintext. (The RPCs are
        # addressed, so the server never forwards them to her.)
        with anyio.fail_after(10):
            while not all(len(envelopes(raw).get(who, [])) >= 2 for who in (LK, GO)):
                await anyio.sleep(0.05)
        seen = envelopes(raw)
        assert sorted(seen) == [GO, LK]
        for who in (LK, GO):
            kinds = {p.WhichOneof("value") for p in seen[who]}
            assert kinds == {"encrypted_packet"}, (who, kinds)
            types = {p.encrypted_packet.encryption_type for p in seen[who]}
            assert types == {1}, (who, types)
        everything = b"".join(raw)
        plain = [t.encode() for texts in secrets.values() for t in texts]
        assert [p for p in plain if p in everything] == []
        assert gopeer.of("data_other") == []
    finally:
        if eve is not None:
            await eve.disconnect()
        await room.disconnect()


async def test_a_wrong_key_reads_nothing_both_ways_and_the_right_key_recovers(
    livekit_server: Any, make_token: Any, confinement: Any, gopeer: GoPeer
) -> None:
    """lkproto joins with another passphrase than the Go peer's. Go -> lkproto: reported
    (`e2ee_state_changed` DECRYPTION_FAILED, `PacketDropped("decryption_failed")`), not
    delivered; lkproto -> Go: the Go SDK drops it. With the right key set, the next packets
    arrive both ways and, the reliable channel being ordered, the earlier ones never will."""
    room = Room()
    inbox = Recorder(room, "data_received", "e2ee_state_changed")
    dropped: list[ev.PacketDropped] = []
    try:
        options = room_options(confinement, key="not " + KEY, auto_subscribe=False)
        await both_joined(room, gopeer, livekit_server, make_token, options, key=KEY)
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for event in room.events():
                    if isinstance(event, ev.PacketDropped):
                        dropped.append(event)

            tg.start_soon(watch)
            await gopeer.publish_data(b"unreadable from go")
            (who, state) = (await inbox.wait_for(lambda: inbox.of("e2ee_state_changed")))[0]
            assert (who.identity, state) == (GO, EncryptionState.DECRYPTION_FAILED)
            await room.local_participant.publish_data(b"unreadable from lk")
            room.e2ee_manager.key_provider.set_shared_key(KEY.encode(), 0)
            await room.local_participant.publish_data(b"readable from lk")
            await gopeer.wait_event("data")
            assert [unb64(f["payload"]) for f in gopeer.of("data")] == [b"readable from lk"]
            await gopeer.publish_data(b"readable from go")
            await inbox.wait_for(lambda: inbox.of("data_received"))
            assert [(p.participant.identity, p.data) for (p,) in inbox.of("data_received")] == [
                (GO, b"readable from go")
            ]
            assert [(p.identity, s) for p, s in inbox.of("e2ee_state_changed")] == [
                (GO, EncryptionState.DECRYPTION_FAILED),
                (GO, EncryptionState.OK),
            ]
            tg.cancel_scope.cancel()
        assert [(d.reason, d.participant_identity) for d in dropped] == [("decryption_failed", GO)]
        assert gopeer.of("data_other") == []
    finally:
        await room.disconnect()


# -- data tracks: the Go SDK has none --------------------------------------------------------------


async def test_an_lkproto_data_track_beside_the_go_peer_which_has_no_data_tracks(
    livekit_server: Any, make_token: Any, confinement: Any, gopeer: GoPeer
) -> None:
    """lkproto publishes a data track; a second lkproto participant (an anyio Room: a vantage
    point) subscribes and reads a frame, proving the track live. The Go peer, whose SDK has
    no data tracks, is told of nothing it reports, receives nothing from the frames, and its
    data packets still cross both ways afterwards."""
    room = Room()
    seen = Recorder(room, "data_received")
    witness = lk_anyio.Room()
    published = Recorder(witness, "data_track_published")
    try:
        await both_joined(
            room,
            gopeer,
            livekit_server,
            make_token,
            room_options(confinement, auto_subscribe=False),
        )
        await witness.connect(
            livekit_server.url, make_token("lk2"), room_options(confinement, auto_subscribe=False)
        )
        track = await room.local_participant.publish_data_track(name="lk-sensor")
        assert track.info.sid.startswith("DTR_")
        (remote,) = (await published.wait_for(lambda: published.of("data_track_published")))[0]
        assert (remote.info.sid, remote.publisher_identity) == (track.info.sid, LK)
        stream = remote.subscribe(buffer_size=16)
        frames: list[bytes] = []
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:

                async def read() -> None:
                    async for frame in stream:
                        frames.append(bytes(frame.payload))
                        tg.cancel_scope.cancel()

                tg.start_soon(read)
                n = 0
                while not frames:  # lossy frames: pushed until the subscription is in place
                    track.try_push(lk_module(room).DataTrackFrame(b"frame %d" % n))
                    n += 1
                    await anyio.sleep(0.1)
        assert frames[0].startswith(b"frame ")

        # The Go peer: data packets both ways, and nothing else came to it.
        await room.local_participant.publish_data(b"after the frames", topic="t")
        got = await gopeer.wait_event("data", lambda f: f["topic"] == "t")
        assert (got["sender"], unb64(got["payload"])) == (LK, b"after the frames")
        await gopeer.publish_data(b"go still talks", topic="t")
        (packet,) = (await seen.wait_for(lambda: seen.of("data_received")))[0]
        assert (packet.participant.identity, packet.data) == (GO, b"go still talks")
        reported = {name for name, _ in gopeer.records}
        assert reported <= {"ready", "result", "joined", "data", "participant_connected"}, reported
        assert [f for f in gopeer.of("data") if f["topic"] != "t"] == []
        await track.unpublish()
    finally:
        await witness.disconnect()
        await room.disconnect()
