"""Fuzz target `datatracks`: `lkproto.datatracks.DataTrackManager`, mostly its receive path.

One input drives one manager (small bounds, `BOUNDS`), joined as "me" in a room where "bob"
publishes DTR_b1 (handle 1) and the encrypted DTR_b2 (handle 2). Operations (`OPS`):

- `packet`: raw bytes on `_data_track` (`receive_packet`): the depacketizer's whole surface,
  reached once a seed subscribed (`subscribe` then `handles`);
- `frame`: a frame built from a few bytes (`sel flags seed | payload`): packetized for a
  routed subscriber handle (or a stray one) with a 60-byte MTU, optionally with extensions,
  one packet lost, a packet duplicated, and the packets delivered in an order drawn from
  `seed`;
- `signal`: a raw `SignalResponse` (`receive_signal`): participant updates, publish and
  unpublish responses, subscriber handles, request responses, anything else;
- `update`, `handles`, `answer`: the same messages built from a few bytes (a publisher's
  listing with new sessions and stale versions; a handle snapshot; the server's answer to a
  pending publish request);
- verbs: `publish`, `unpublish`, `push`, `pull`, `subscribe`, `unsubscribe`, `pipeline`; time:
  `timer`; the session: `reconnect` (resume or full), `resumed`, `rejoin`, `disconnect`.

The invariant (after every operation, in the spirit of `_invariants`): a remote input never
raises and a verb raises only `LocalProtocolError`; every output is a documented value; each
publish resolves once, a published track ends at most once; subscriptions start only while
pending and end once; frames pulled carry exactly the payloads pushed on their track, in
order; received frames carry only payloads a publisher sent (or that raw packets made);
queued frames and bytes, remote tracks and partial frames stay within their bounds; a routed
handle belongs to an active subscription; after `handle_timer(now)` no deadline is in the
past. At the end the session is
disconnected and everything must have ended.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from google.protobuf.message import DecodeError

from fuzz._framing import TICK, Record, encode, text
from fuzz._invariants import check, local_call, remote_call
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.datatracks import (
    DataTrackFrame,
    DataTrackFrameDropped,
    DataTrackFrameReceived,
    DataTrackManager,
    DataTrackOutput,
    DataTrackPacket,
    DataTrackPacketDropped,
    DataTrackPublished,
    DataTrackPublishFailed,
    DataTrackRepublished,
    DataTrackSignalIgnored,
    DataTrackSubscribed,
    DataTrackSubscriptionEnded,
    DataTrackUnpublished,
    E2eeExtension,
    FrameMarker,
    Packetizer,
    PushFrameError,
    RemoteDataTrackPublished,
    RemoteDataTrackSidChanged,
    RemoteDataTrackUnpublished,
    SendDataTrackSignal,
    SessionPhase,
    SubscriptionState,
)

__all__ = ["BOUNDS", "OPS", "DataTracks", "seeds"]

BOUNDS: dict[str, Any] = {
    "publish_timeout": 2.0,
    "subscribe_timeout": 2.0,
    "max_queued_frames": 3,
    "max_queued_bytes": 2_000,
    "max_partial_frames": 1,
    "max_packets_per_frame": 8,
    "max_remembered_frames": 6,
    "max_published_tracks": 3,
    "max_remote_tracks": 6,
    "mtu": 60,
}
PUBLISHERS = ("bob", "carol", "dave")
IV = E2eeExtension(3, b"\x5a" * 12)

OPS = (
    "packet",
    "frame",
    "signal",
    "update",
    "handles",
    "answer",
    "publish",
    "unpublish",
    "push",
    "pull",
    "subscribe",
    "unsubscribe",
    "pipeline",
    "timer",
    "reconnect",
    "resumed",
    "rejoin",
    "disconnect",
)


def _bob() -> ppb.ParticipantInfo:
    return ppb.ParticipantInfo(
        sid="PA_bob",
        identity="bob",
        version=1,
        data_tracks=[
            tpb.DataTrackInfo(pub_handle=1, sid="DTR_b1", name="cursor"),
            tpb.DataTrackInfo(pub_handle=2, sid="DTR_b2", name="secret", encryption=1),
        ],
    )


class DataTracks:
    """One manager driven by operations, drained and checked after each."""

    def __init__(self) -> None:
        self.now = 0.0
        self.m = DataTrackManager(**BOUNDS)
        self.requests: list[int] = []  # publish requests awaiting an answer, oldest first
        self.resolved: set[int] = set()
        self.live: set[int] = set()
        self.queues: dict[int, deque[bytes]] = {}
        self.remote: dict[str, str] = {}  # sid -> publisher
        self.subs: dict[str, str] = {}  # sid -> "pending" | "active"
        self.sent_payloads: set[bytes] = set()
        self.raw_handles: set[int] = set()  # handles that raw `packet` operations used
        self.packetizers: dict[int, Packetizer] = {}
        self.sessions = dict.fromkeys(PUBLISHERS, 0)
        self.version = 1
        self.counter = 0
        self.outputs: list[DataTrackOutput] = []  # everything seen (tests read it)
        remote_call("joined", self.m.joined, "me", [_bob()], now=0.0)
        self.drain()

    # -- the invariant ----------------------------------------------------------------------

    def drain(self, *, after_timer: bool = False) -> None:
        for out in self.m.drain():
            self.outputs.append(out)
            self._check(out)
        m = self.m
        check(
            m.queued_bytes == sum(len(p) for q in self.queues.values() for p in q),
            f"queued bytes {m.queued_bytes} disagree with what was pushed and not pulled",
        )
        check(m.queued_bytes <= BOUNDS["max_queued_bytes"], "max_queued_bytes passed")
        for handle, queue in self.queues.items():
            check(
                m.queued_frames(handle) == len(queue) <= BOUNDS["max_queued_frames"],
                f"queued frames of {handle}: {m.queued_frames(handle)} != {len(queue)}",
            )
        check(len(self.remote) <= BOUNDS["max_remote_tracks"], "max_remote_tracks passed")
        check(
            {info.sid for _, info in m.remote_tracks} == set(self.remote),
            "remote tracks disagree with the events",
        )
        for sid, state in self.subs.items():
            check(m.subscription_state(sid).value == state, f"subscription {sid} is not {state}")
        for sid in self.remote:
            if m.subscriber_handle(sid) is not None:
                check(
                    m.subscription_state(sid) is SubscriptionState.ACTIVE,
                    f"a handle routes to {sid}, which is not actively subscribed",
                )
        for remote in m._remote.values():
            if remote.depacketizer is not None:
                partials = len(remote.depacketizer.partial_frames)
                check(partials <= remote.max_partial_frames, "max_partial_frames passed")
                check(
                    remote.depacketizer.remembered_frames <= BOUNDS["max_remembered_frames"],
                    "max_remembered_frames passed",
                )
        if after_timer:
            deadline = m.get_timer()
            check(deadline is None or deadline > self.now, f"timer {deadline} at {self.now}")

    def _check(self, out: DataTrackOutput) -> None:
        if isinstance(out, SendDataTrackSignal):
            check(self.m.phase is SessionPhase.JOINED, f"a request sent while {self.m.phase}")
            if out.request.HasField("publish_data_track_request"):
                self.requests.append(out.request.publish_data_track_request.pub_handle)
        elif isinstance(out, DataTrackPublished):
            check(out.pub_handle not in self.resolved, f"publish {out.pub_handle} resolved twice")
            self.resolved.add(out.pub_handle)
            self.live.add(out.pub_handle)
            self.queues[out.pub_handle] = deque()
        elif isinstance(out, DataTrackPublishFailed):
            check(out.pub_handle not in self.resolved, f"publish {out.pub_handle} resolved twice")
            self.resolved.add(out.pub_handle)
        elif isinstance(out, DataTrackRepublished):
            check(out.pub_handle in self.live, f"{out.pub_handle} republished while not live")
        elif isinstance(out, DataTrackUnpublished):
            check(out.pub_handle in self.live, f"{out.pub_handle} ended while not live")
            self.live.discard(out.pub_handle)
            self.queues.pop(out.pub_handle)
        elif isinstance(out, RemoteDataTrackPublished):
            check(out.info.sid not in self.remote, f"{out.info.sid} published twice")
            self.remote[out.info.sid] = out.publisher_identity
        elif isinstance(out, RemoteDataTrackSidChanged):
            check(self.remote.pop(out.previous_sid, None) == out.publisher_identity, "bad move")
            self.remote[out.info.sid] = out.publisher_identity
            if out.previous_sid in self.subs:
                self.subs[out.info.sid] = self.subs.pop(out.previous_sid)
        elif isinstance(out, RemoteDataTrackUnpublished):
            check(self.remote.pop(out.sid, None) == out.publisher_identity, "unknown unpublish")
            check(out.sid not in self.subs, f"{out.sid} unpublished while subscribed")
        elif isinstance(out, DataTrackSubscribed):
            check(self.subs.get(out.sid) == "pending", f"{out.sid} subscribed while not pending")
            self.subs[out.sid] = "active"
        elif isinstance(out, DataTrackSubscriptionEnded):
            if out.sid in self.subs:
                check(out.active == (self.subs.pop(out.sid) == "active"), "wrong active flag")
            else:
                check(not out.active and out.sid not in self.remote, f"{out.sid} ended twice")
        elif isinstance(out, DataTrackFrameReceived):
            check(out.sid in self.subs, f"a frame for {out.sid}, not subscribed")
            check(
                out.frame.payload in self.sent_payloads
                or self.m.subscriber_handle(out.sid) in self.raw_handles,
                "a frame nobody sent",
            )
        else:
            check(
                isinstance(
                    out, DataTrackFrameDropped | DataTrackPacketDropped | DataTrackSignalIgnored
                ),
                f"undocumented output {out!r}",
            )

    # -- driving ----------------------------------------------------------------------------

    def step(self, name: str, record: Record) -> None:
        self.now += record.dt * TICK
        deadline = self.m.get_timer()
        if deadline is not None and deadline <= self.now:  # as an adapter's sleep would
            remote_call("handle_timer", self.m.handle_timer, self.now)
            self.drain(after_timer=True)
        getattr(self, f"_{name}")(record.payload)
        self.drain(after_timer=name == "timer")

    def finish(self) -> None:
        remote_call("disconnected", self.m.disconnected, now=self.now)
        self.drain()
        check(not self.live and not self.subs and not self.remote, "something outlived the end")
        check(self.resolved == set(range(1, self.m._last_handle + 1)), "a publish never resolved")
        check(self.m.get_timer() is None and self.m.queued_bytes == 0, "state left after the end")

    def _receive(self, data: bytes | str) -> None:
        remote_call("receive_packet", self.m.receive_packet, data, now=self.now)

    # remote input

    def _packet(self, payload: bytes) -> None:
        if len(payload) >= 4:  # raw packets may make any frame on their handle
            self.raw_handles.add(int.from_bytes(payload[2:4], "big"))
        self._receive(payload)

    def _frame(self, payload: bytes) -> None:
        sel, flags, seed = (payload + b"\0\0\0")[:3]
        body = payload[3:] or b"\0"
        routed = sorted(self.m._by_handle)
        handle = routed[sel % len(routed)] if routed and not flags & 0x80 else sel % 8 + 1
        packetizer = self.packetizers.setdefault(handle, Packetizer(handle, mtu=60))
        self.sent_payloads.add(body)
        packets = packetizer.packetize(
            body,
            timestamp=seed,
            user_timestamp=seed if flags & 1 else None,
            e2ee=IV if flags & 2 else None,
        )
        order = list(packets)
        if flags & 4:
            random.Random(seed).shuffle(order)
        if flags & 8 and len(order) > 1:
            order.pop(seed % len(order))
        if flags & 16:
            order.append(order[seed % len(order)])
        if flags & 32:  # every packet loses its last byte: that frame is what arrives
            self.sent_payloads.add(b"".join(p.payload[:-1] for p in packets))
        for packet in order:
            self._receive(packet.encode() if not flags & 32 else packet.encode()[:-1])
        if flags & 64:
            self._receive(text(body))

    def _signal(self, payload: bytes) -> None:
        try:
            message = spb.SignalResponse.FromString(payload)
        except DecodeError:
            return  # parsing is the signal codec's job, fuzzed in the connection targets
        if message.WhichOneof("message") == "request_response":
            local = remote_call(
                "request_response_received",
                self.m.request_response_received,
                message.request_response,
                now=self.now,
            )
            check(isinstance(local, bool), "request_response_received returned no bool")
        else:
            remote_call("receive_signal", self.m.receive_signal, message, now=self.now)

    def _update(self, payload: bytes) -> None:
        """`sel flags | prefix`: publisher PUBLISHERS[sel % 3] lists the handles of bits 0-2 of
        flags, named "cursor", "secret", "pose" (handle 2 encrypted), with the rest of the
        payload prefixed; bit 3 DISCONNECTED, bit 4 a new session, bit 5 a stale version,
        bit 6 two entries (the old session's DISCONNECTED first)."""
        sel, flags = (payload + b"\0\0")[:2]
        publisher = PUBLISHERS[sel % len(PUBLISHERS)]
        if flags & 16:
            self.sessions[publisher] += 1
        session = self.sessions[publisher]
        self.version += 1
        info = ppb.ParticipantInfo(
            sid=f"PA_{publisher}{session}",
            identity=publisher,
            version=0 if flags & 32 else self.version,
            state=ppb.ParticipantInfo.DISCONNECTED if flags & 8 else ppb.ParticipantInfo.ACTIVE,
        )
        prefix = text(payload[2:])
        for handle, name in ((1, "cursor"), (2, "secret"), (3, "pose")):
            if flags & (1 << (handle - 1)):
                info.data_tracks.add(
                    pub_handle=handle,
                    sid=f"DTR_{publisher}{handle}s{session}",
                    name=prefix + name,
                    encryption=1 if handle == 2 else 0,  # type: ignore[arg-type]
                )
        infos = [info]
        if flags & 64:
            old = ppb.ParticipantInfo(
                sid=f"PA_{publisher}{session - 1}",
                identity=publisher,
                state=ppb.ParticipantInfo.DISCONNECTED,
            )
            infos.insert(0, old)
        remote_call("participants_updated", self.m.participants_updated, infos, now=self.now)

    def _handles(self, payload: bytes) -> None:
        """Pairs `handle sel`: subscriber handle (0-255) for the sel-th known SID; an empty
        payload maps every subscription as the server would."""
        snapshot = tpb.DataTrackSubscriberHandles()
        sids = sorted(self.subs) + sorted(self.remote) + ["DTR_stray"]
        if not payload:
            for offset, sid in enumerate(sorted(self.subs)):
                snapshot.sub_handles[offset + 1].track_sid = sid
        for i in range(0, len(payload) - 1, 2):
            snapshot.sub_handles[payload[i]].track_sid = sids[payload[i + 1] % len(sids)]
        remote_call(
            "subscriber_handles_received",
            self.m.subscriber_handles_received,
            snapshot,
            now=self.now,
        )

    def _answer(self, payload: bytes) -> None:
        """`sel reason | sid`: answer the sel-th pending publish request: accept (reason 0)
        or refuse with that RequestResponse reason; 255 answers a handle never asked."""
        if not self.requests:
            return
        sel, reason = (payload + b"\0\0")[:2]
        handle = self.requests.pop(sel % len(self.requests))
        if reason == 255:
            handle = sel + 1
        self.counter += 1
        message = spb.SignalResponse()
        if reason in (0, 255):
            sid = text(payload[2:]) or f"DTR_me{self.counter}"
            info = tpb.DataTrackInfo(pub_handle=handle, sid=sid, name="n")
            message.publish_data_track_response.info.CopyFrom(info)
        else:
            message.request_response.reason = reason % 16  # type: ignore[assignment]
            message.request_response.publish_data_track.pub_handle = handle
        remote_call("receive_signal", self.m.receive_signal, message, now=self.now)

    # verbs

    def _publish(self, payload: bytes) -> None:
        flags = payload[0] if payload else 0
        name = text(payload[1:]) if flags & 2 else "track"
        local_call(
            "publish_data_track",
            self.m.publish_data_track,
            name=name,
            now=self.now,
            uses_e2ee=bool(flags & 1),
        )

    def _live_handle(self, payload: bytes) -> int:
        live = sorted(self.live)
        sel = payload[0] if payload else 0
        return live[sel % len(live)] if live and sel < 200 else sel % 8

    def _unpublish(self, payload: bytes) -> None:
        handle = self._live_handle(payload)
        if payload[1:2] == b"\x01":
            response = tpb.UnpublishDataTrackResponse(info=tpb.DataTrackInfo(pub_handle=handle))
            remote_call(
                "unpublish_response_received",
                self.m.unpublish_response_received,
                response,
                now=self.now,
            )
        else:
            local_call("unpublish_data_track", self.m.unpublish_data_track, handle, now=self.now)

    def _push(self, payload: bytes) -> None:
        handle = self._live_handle(payload)
        flags = payload[1] if len(payload) > 1 else 0
        self.counter += 1
        body = self.counter.to_bytes(4, "big") + payload[2:] * (1 + (flags >> 4))
        frame = DataTrackFrame(body, flags & 7 if flags & 8 else None)
        info = self.m.local_info(handle)
        e2ee = IV if info is not None and info.uses_e2ee else None
        refused = local_call("try_push", self.m.try_push, handle, frame, now=self.now, e2ee=e2ee)
        if refused is None:
            self.queues[handle].append(body)
        elif isinstance(refused, PushFrameError):
            check(refused.frame is frame, "PushFrameError lost the frame")

    def _pull(self, payload: bytes) -> None:
        limit = payload[0] % 4 if payload else None
        sends = local_call("frames_to_send", self.m.frames_to_send, max_frames=limit)
        for send in sends:
            packets = [DataTrackPacket.decode(p) for p in send.packets]
            check(all(len(p) <= BOUNDS["mtu"] for p in send.packets), "a packet over the MTU")
            expected = self.queues[send.pub_handle].popleft()
            check(b"".join(p.payload for p in packets) == expected, "a pulled frame changed")
            check(len({(p.frame_number, p.timestamp) for p in packets}) == 1, "mixed frames")
            markers = [p.marker for p in packets]
            check(
                markers == [FrameMarker.SINGLE]
                or (markers[0] is FrameMarker.START and markers[-1] is FrameMarker.FINAL),
                f"bad markers {markers}",
            )

    def _subscribe(self, payload: bytes) -> None:
        sids = sorted(self.remote)
        sel = payload[0] if payload else 0
        sid = sids[sel % len(sids)] if sids and sel < 250 else f"DTR_unknown{sel}"
        if self.m.phase is SessionPhase.JOINED and sid in self.remote and sid not in self.subs:
            self.subs[sid] = "pending"
        local_call("subscribe", self.m.subscribe, sid, now=self.now)

    def _unsubscribe(self, payload: bytes) -> None:
        sids = sorted(self.remote) or ["DTR_none"]
        sid = sids[(payload[0] if payload else 0) % len(sids)]
        local_call("unsubscribe", self.m.unsubscribe, sid, now=self.now)

    def _pipeline(self, payload: bytes) -> None:
        sids = sorted(self.remote) or ["DTR_none"]
        sel, value = (payload + b"\0\0")[:2]
        local_call(
            "set_pipeline_options",
            self.m.set_pipeline_options,
            sids[sel % len(sids)],
            max_partial_frames=value % 5,
        )

    def _timer(self, payload: bytes) -> None:
        remote_call("handle_timer", self.m.handle_timer, self.now)

    def _reconnect(self, payload: bytes) -> None:
        full = bool(payload[:1] and payload[0] & 1)
        refused = local_call("reconnecting", self.m.reconnecting, full=full, now=self.now)
        if refused is None and full:
            self.requests.clear()
            for queue in self.queues.values():
                queue.clear()

    def _resumed(self, payload: bytes) -> None:
        local_call("resumed", self.m.resumed, now=self.now)

    def _rejoin(self, payload: bytes) -> None:
        """The join ending a full reconnect: bob (as at first) and, per bit of the payload's
        first byte, the others with the tracks they had."""
        keep = payload[0] if payload else 0
        others = [_bob()] if keep & 1 else []
        for bit, publisher in enumerate(PUBLISHERS[1:], start=1):
            if keep & (1 << bit):
                tracks = [i for p, i in self.m.remote_tracks if p == publisher]
                others.append(
                    ppb.ParticipantInfo(
                        identity=publisher,
                        sid=f"PA_{publisher}{self.sessions[publisher]}",
                        data_tracks=[
                            tpb.DataTrackInfo(pub_handle=i.pub_handle, sid=i.sid, name=i.name)
                            for i in tracks
                        ],
                    )
                )
        local_call("joined", self.m.joined, "me", others, now=self.now)

    def _disconnect(self, payload: bytes) -> None:
        remote_call("disconnected", self.m.disconnected, now=self.now)


# -- hand-made seeds --------------------------------------------------------------------------


def _op(name: str, payload: bytes = b"", dt: int = 0) -> Record:
    return Record(OPS.index(name), dt, payload)


def _signal_bytes(**fields: Any) -> bytes:
    return spb.SignalResponse(**fields).SerializeToString()


def seeds() -> dict[str, bytes]:
    """Hand-made inputs reaching each part of the manager; the corpus also holds seeds
    captured from real traffic (fuzz/capture_corpus.py, tests/e2e/test_datatracks.py)."""
    subscribe_b1 = [_op("subscribe", b"\x00"), _op("handles", b"")]
    vector = DataTrackPacket(
        marker=FrameMarker.FINAL,
        handle=1,
        sequence=0x4422,
        frame_number=0x4411,
        timestamp=0x44221188,
        e2ee=E2eeExtension(0xFA, b"\x3c" * 12),
        user_timestamp=0x4411221111118811,
        payload=b"\xfa" * 24,
    ).encode()
    malformed = [
        bytes((0x18, 0, 0, 1)) + bytes(7),  # too short
        bytes((0x38, 0, 0, 1)) + bytes(8),  # version 1
        bytes((0x18,)) + bytes(11),  # handle 0
        bytes((0x1C, 0, 0, 1)) + bytes(8),  # no extension words
        bytes((0x1C, 0, 0, 1)) + bytes(8) + b"\x00\x01",  # block past the packet
        bytes((0x1C, 0, 0, 1)) + bytes(8) + b"\x00\x00\x05\x03",  # extension past the block
    ]
    published = [_op("publish", b"\x00"), _op("answer", b"\x00\x00")]
    unpublished_1 = tpb.UnpublishDataTrackResponse(info=tpb.DataTrackInfo(pub_handle=1))
    accepted_1 = tpb.PublishDataTrackResponse(
        info=tpb.DataTrackInfo(pub_handle=1, sid="DTR_x", name="n")
    )
    refused_7 = spb.RequestResponse(
        reason=spb.RequestResponse.DUPLICATE_HANDLE,
        publish_data_track=tpb.PublishDataTrackRequest(pub_handle=7),
    )
    not_found_1 = spb.RequestResponse(
        reason=spb.RequestResponse.NOT_FOUND,
        unpublish_data_track=tpb.UnpublishDataTrackRequest(pub_handle=1),
    )
    entry = tpb.DataTrackSubscriberHandles.PublishedDataTrack(track_sid="DTR_b1")
    handles_b1 = tpb.DataTrackSubscriberHandles(sub_handles={3: entry})
    inputs: dict[str, list[Record]] = {
        "publish_push_pull": [
            *published,
            _op("push", b"\x00\x09" + b"p" * 70),
            _op("push", b"\x00\x00" + b"q"),
            _op("pull", b""),
            _op("unpublish", b"\x00"),
            _op("signal", _signal_bytes(unpublish_data_track_response=unpublished_1)),
        ],
        "publish_refusals": [
            _op("publish", b"\x02first"),
            _op("publish", b"\x02second"),
            _op("answer", b"\x00\x0a"),
            _op("answer", b"\x00\x02"),
            _op("publish", b"\x03secret"),
            _op("answer", b"\x00\x05"),
        ],
        "publish_timeout_late": [
            _op("publish", b"\x00"),
            _op("timer", b"", dt=40),
            _op("answer", b"\x00\x00"),
            _op("publish", b"\x00"),
            _op("unpublish", b"\xca"),  # cancel pending handle 2 (0xca % 8)
            _op("answer", b"\x00\x00"),
        ],
        "queue_full_and_server_unpublish": [
            *published,
            *[_op("push", b"\x00\x00" + b"z" * 10) for _ in range(5)],
            _op("pull", b"\x01"),
            _op("unpublish", b"\x00\x01"),
            _op("push", b"\x00\x00x"),
        ],
        "subscribe_frames": [
            *subscribe_b1,
            _op("frame", b"\x00\x05\x07" + b"hello data tracks, " * 8),
            _op("frame", b"\x00\x00\x00" + b"single"),
            _op("frame", b"\x00\x0c\x03" + b"lost and shuffled" * 6),
            _op("frame", b"\x00\x90\x00" + b"stray"),
            _op("unsubscribe", b"\x00"),
        ],
        "raw_packets": [
            *subscribe_b1,
            _op("packet", vector),
            _op("packet", bytes.fromhex("08 00 00 01 44 22 44 11 44 22 11 88")),
            *[_op("packet", raw) for raw in malformed],
        ],
        "encrypted_track": [
            _op("subscribe", b"\x01"),
            _op("handles", b""),
            _op("frame", b"\x00\x02\x01" + b"sealed" * 20),
            _op("frame", b"\x00\x00\x02" + b"plain"),
            _op("publish", b"\x01"),
            _op("answer", b"\x00\x00"),
            _op("push", b"\x00\x00" + b"ciphertext"),
            _op("pull", b""),
        ],
        "sid_reassigned": [
            *subscribe_b1,
            _op("update", b"\x00\x53"),  # bob, new session, with the old DISCONNECTED
            _op("handles", b""),
            _op("frame", b"\x00\x00\x00" + b"after the move"),
            _op("update", b"\x01\x07"),  # carol lists three tracks
            _op("update", b"\x01\x28"),  # carol, stale and gone
            _op("update", b"\x01\x08"),  # carol gone
        ],
        "resume": [
            *published,
            *subscribe_b1,
            _op("reconnect", b"\x00"),
            _op("push", b"\x00\x00during"),
            _op("unpublish", b"\x00"),
            _op("unsubscribe", b"\x00"),
            _op("resumed", b""),
            _op("pull", b""),
        ],
        "full_reconnect": [
            *published,
            _op("publish", b"\x00"),
            *subscribe_b1,
            _op("reconnect", b"\x01"),
            _op("push", b"\x00\x00refused"),
            _op("rejoin", b"\x01"),
            _op("answer", b"\x00\x00"),
            _op("handles", b""),
            _op("frame", b"\x00\x00\x00" + b"flows again"),
            _op("push", b"\x00\x00accepted"),
            _op("pull", b""),
        ],
        "pipeline_options": [
            *subscribe_b1,
            _op("pipeline", b"\x00\x03"),
            _op("frame", b"\x00\x08\x00" + b"a" * 100),
            _op("frame", b"\x00\x08\x01" + b"b" * 100),
            _op("pipeline", b"\x00\x00"),
            _op("frame", b"\x00\x14\x02" + b"c" * 200),
        ],
        "signals": [
            _op("publish", b"\x00"),
            _op("signal", _signal_bytes(update=ppb.ParticipantUpdate(participants=[_bob()]))),
            _op("signal", _signal_bytes(publish_data_track_response=accepted_1)),
            _op("signal", _signal_bytes(request_response=refused_7)),
            _op("signal", _signal_bytes(request_response=not_found_1)),
            _op("signal", _signal_bytes(data_track_subscriber_handles=handles_b1)),
            _op("signal", _signal_bytes(pong_resp=spb.Pong())),
        ],
        "disconnect": [
            *published,
            *subscribe_b1,
            _op("publish", b"\x00"),
            _op("disconnect", b""),
            _op("frame", b"\x00\x00\x00" + b"too late"),
            _op("answer", b"\x00\x00"),
            _op("publish", b"\x00"),
        ],
    }
    return {name: encode(records) for name, records in inputs.items()}
