"""Hypothesis state machine over one DataTrackManager: both roles, a fake server answering
(or not) at arbitrary times, remote publishers coming, going and reconnecting, packets in
any order, resumes and full reconnects.

Invariants, after every step:
- every publish resolves once (`DataTrackPublished` or `DataTrackPublishFailed`); a published
  track ends at most once, and is republished only while it lives;
- every subscription starts (`DataTrackSubscribed`) only while pending and ends at most once;
- pulled frames carry exactly the payloads pushed on their track, in order; every received
  frame is one a remote publisher sent;
- queued frames and bytes stay within their bounds and agree with what was pushed and pulled;
- a routed subscriber handle always belongs to an active subscription;
- after `handle_timer(now)`, `get_timer()` is None or later than `now`;
and at teardown, after `disconnected()`, every publish, track and subscription ended and no
deadline is left.
"""

from __future__ import annotations

from collections import deque

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

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
    Packetizer,
    PushFrameError,
    RemoteDataTrackPublished,
    RemoteDataTrackSidChanged,
    RemoteDataTrackUnpublished,
    SendDataTrackSignal,
    SessionPhase,
    SubscriptionState,
)
from lkproto.errors import LocalProtocolError

BOUNDS = {
    "publish_timeout": 2.0,
    "subscribe_timeout": 2.0,
    "max_queued_frames": 3,
    "max_queued_bytes": 900,
    "max_packets_per_frame": 8,
    "max_published_tracks": 4,
    "max_remote_tracks": 5,
    "mtu": 60,
}
PUBLISHERS = ("bob", "carol")
DELAYS = st.sampled_from([0.0, 0.0, 0.1, 0.1, 0.5, 1.0, 1.99, 2.0, 5.0])
RARELY = st.integers(0, 4).map(lambda n: n == 0)  # True one time in five
REASONS = st.sampled_from([2, 3, 6, 7, 8, 9, 10, 11, 0, 42])


class DataTrackMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = DataTrackManager(**BOUNDS)  # type: ignore[arg-type]
        self.now = 0.0
        self.m.joined("me", [], now=self.now)
        # publishing
        self.requests: list[int] = []  # handles with a publish request out, oldest first
        self.resolved: dict[int, str] = {}  # handle -> "published" | "failed"
        self.live: set[int] = set()  # published and not yet ended
        self.ended: set[int] = set()
        self.queues: dict[int, deque[DataTrackFrame]] = {}
        # discovery and subscriptions
        self.sessions = {p: 0 for p in PUBLISHERS}
        self.listed: dict[str, set[int]] = {}  # the handles each publisher lists
        self.remote: dict[str, str] = {}  # sid -> publisher, as the events said
        self.subs: dict[str, str] = {}  # sid -> "pending" | "active"
        self.sent_payloads: set[bytes] = set()
        self.packetizers: dict[int, Packetizer] = {}
        self.counter = 0

    # -- checking every output --------------------------------------------------------------

    def take(self, *, after_timer: bool = False) -> list[DataTrackOutput]:
        outputs = self.m.drain()
        for out in outputs:
            self.check(out)
        if after_timer:
            deadline = self.m.get_timer()
            assert deadline is None or deadline > self.now
        return outputs

    def check(self, out: DataTrackOutput) -> None:
        if isinstance(out, SendDataTrackSignal):
            assert self.m.phase is SessionPhase.JOINED or self.m.phase is SessionPhase.RESUMING
            if out.request.HasField("publish_data_track_request"):
                self.requests.append(out.request.publish_data_track_request.pub_handle)
        elif isinstance(out, DataTrackPublished):
            assert out.pub_handle not in self.resolved
            self.resolved[out.pub_handle] = "published"
            self.live.add(out.pub_handle)
            self.queues[out.pub_handle] = deque()
        elif isinstance(out, DataTrackPublishFailed):
            assert out.pub_handle not in self.resolved
            self.resolved[out.pub_handle] = "failed"
            assert out.exception().reason is out.reason
        elif isinstance(out, DataTrackRepublished):
            assert out.pub_handle in self.live
        elif isinstance(out, DataTrackUnpublished):
            assert out.pub_handle in self.live, out
            self.live.discard(out.pub_handle)
            self.ended.add(out.pub_handle)
            self.queues.pop(out.pub_handle)
        elif isinstance(out, RemoteDataTrackPublished):
            assert out.info.sid not in self.remote
            self.remote[out.info.sid] = out.publisher_identity
        elif isinstance(out, RemoteDataTrackSidChanged):
            assert self.remote.pop(out.previous_sid) == out.publisher_identity
            self.remote[out.info.sid] = out.publisher_identity
            if out.previous_sid in self.subs:
                self.subs[out.info.sid] = self.subs.pop(out.previous_sid)
        elif isinstance(out, RemoteDataTrackUnpublished):
            assert self.remote.pop(out.sid) == out.publisher_identity
            assert out.sid not in self.subs  # its subscription ended first
        elif isinstance(out, DataTrackSubscribed):
            assert self.subs.get(out.sid) == "pending"
            self.subs[out.sid] = "active"
        elif isinstance(out, DataTrackSubscriptionEnded):
            if out.sid in self.remote:
                assert out.active == (self.subs.pop(out.sid) == "active")
            else:  # subscribe() to an unknown track
                assert not out.active and out.sid not in self.subs
        elif isinstance(out, DataTrackFrameReceived):
            assert out.sid in self.subs
            assert out.frame.payload in self.sent_payloads
        else:
            assert isinstance(
                out, DataTrackFrameDropped | DataTrackPacketDropped | DataTrackSignalIgnored
            )

    def call(self, fn: object, *args: object, **kwargs: object) -> object:
        """A verb: it may be refused with LocalProtocolError, never anything else."""
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except LocalProtocolError as exc:
            return exc

    # -- time -------------------------------------------------------------------------------

    @rule(delay=DELAYS)
    def tick(self, delay: float) -> None:
        self.now += delay
        self.m.handle_timer(self.now)
        self.take(after_timer=True)

    # -- publishing -------------------------------------------------------------------------

    @rule(name=st.sampled_from(["a", "b", "c"]), e2ee=st.booleans())
    def publish(self, name: str, e2ee: bool) -> None:
        handle = self.call(self.m.publish_data_track, name=name, now=self.now, uses_e2ee=e2ee)
        if isinstance(handle, int):
            assert handle not in self.resolved and handle not in self.ended
        self.take()

    @precondition(lambda self: self.requests)
    @rule(index=st.integers(0, 7), refuse=RARELY, reason=REASONS)
    def server_answers(self, index: int, refuse: bool, reason: int) -> None:
        handle = self.requests.pop(index % len(self.requests))
        message = spb.SignalResponse()
        if not refuse:
            self.counter += 1
            info = tpb.DataTrackInfo(pub_handle=handle, sid=f"DTR_me{self.counter}", name="n")
            message.publish_data_track_response.info.CopyFrom(info)
        else:
            message.request_response.reason = reason  # type: ignore[assignment]
            message.request_response.publish_data_track.pub_handle = handle
        self.m.receive_signal(message, now=self.now)
        self.take()

    @rule(index=st.integers(0, 6), local=st.booleans(), now=RARELY)
    def unpublish(self, index: int, local: bool, now: bool) -> None:
        if not now:
            return
        live = sorted(self.live)
        handle = live[index % len(live)] if live and index else index
        if local:
            self.call(self.m.unpublish_data_track, handle, now=self.now)
        else:
            response = tpb.UnpublishDataTrackResponse(info=tpb.DataTrackInfo(pub_handle=handle))
            self.m.unpublish_response_received(response, now=self.now)
        self.take()

    @rule(index=st.integers(0, 6), size=st.integers(0, 500), stamp=st.none() | st.integers(0, 9))
    def push(self, index: int, size: int, stamp: int | None) -> None:
        live = sorted(self.live)
        handle = live[index % len(live)] if live and index else index + 1
        self.counter += 1
        frame = DataTrackFrame(self.counter.to_bytes(4, "big") * (size // 4 + 1), stamp)
        info = self.m.local_info(handle)
        e2ee = E2eeExtension(1, bytes(12)) if info is not None and info.uses_e2ee else None
        try:
            self.m.try_push(handle, frame, now=self.now, e2ee=e2ee)
        except PushFrameError as exc:
            assert exc.frame is frame
        except LocalProtocolError:
            pass
        else:
            self.queues[handle].append(frame)
        self.take()

    @rule(limit=st.none() | st.integers(0, 3))
    def pull(self, limit: int | None) -> None:
        for send in self.m.frames_to_send(max_frames=limit):
            packets = [DataTrackPacket.decode(p) for p in send.packets]
            assert all(len(p) <= BOUNDS["mtu"] for p in send.packets)
            expected = self.queues[send.pub_handle].popleft()
            assert b"".join(p.payload for p in packets) == expected.payload
            assert {p.user_timestamp for p in packets} == {expected.user_timestamp}
            assert {p.frame_number for p in packets} == {send.frame_number}
        self.take()

    # -- remote publishers ------------------------------------------------------------------

    @rule(
        publisher=st.sampled_from(PUBLISHERS),
        handles=st.sets(st.integers(1, 3)),
        change=RARELY,
        gone=RARELY,
        new_session=RARELY,
        stale=RARELY,
    )
    def participant_update(
        self,
        publisher: str,
        handles: set[int],
        change: bool,
        gone: bool,
        new_session: bool,
        stale: bool,
    ) -> None:
        if change or publisher not in self.listed:
            self.listed[publisher] = handles
        handles = self.listed[publisher]
        if new_session:
            self.sessions[publisher] += 1
        session = self.sessions[publisher]
        self.counter += 1
        version = 0 if stale else self.counter
        info = ppb.ParticipantInfo(
            sid=f"PA_{publisher}{session}",
            identity=publisher,
            version=version,
            state=ppb.ParticipantInfo.DISCONNECTED if gone else ppb.ParticipantInfo.ACTIVE,
            data_tracks=[
                tpb.DataTrackInfo(pub_handle=h, sid=f"DTR_{publisher}{h}s{session}", name=f"t{h}")
                for h in sorted(handles)
            ],
        )
        self.m.participants_updated([info], now=self.now)
        self.take()

    @precondition(lambda self: self.remote)
    @rule(index=st.integers(0, 9), unknown=RARELY)
    def subscribe(self, index: int, unknown: bool) -> None:
        sids = sorted(self.remote)
        sid = sids[index % len(sids)] if sids and not unknown else f"DTR_unknown{index}"
        if self.m.phase is SessionPhase.JOINED and sid in self.remote and sid not in self.subs:
            self.subs[sid] = "pending"
        self.call(self.m.subscribe, sid, now=self.now)
        self.take()

    @precondition(lambda self: self.remote)
    @rule(index=st.integers(0, 9), now=RARELY)
    def unsubscribe(self, index: int, now: bool) -> None:
        if not now:
            return
        sid = sorted(self.remote)[index % len(self.remote)]
        self.m.unsubscribe(sid, now=self.now)
        self.take()

    @precondition(lambda self: self.subs)
    @rule(
        picks=st.lists(st.tuples(st.integers(0, 9), st.integers(1, 6)), max_size=4),
        unsolicited=RARELY,
    )
    def handles_snapshot(self, picks: list[tuple[int, int]], unsolicited: bool) -> None:
        snapshot = tpb.DataTrackSubscriberHandles()
        sids = sorted(self.remote) if unsolicited else sorted(self.subs)
        for index, handle in picks:
            snapshot.sub_handles[handle].track_sid = sids[index % len(sids)]
        self.m.subscriber_handles_received(snapshot, now=self.now)
        self.take()

    @precondition(lambda self: self.subs)
    @rule(first=st.integers(1, 5))
    def server_maps_every_subscription(self, first: int) -> None:
        """What the server does: a full snapshot of the subscriptions it has."""
        snapshot = tpb.DataTrackSubscriberHandles()
        for offset, sid in enumerate(sorted(self.subs)):
            snapshot.sub_handles[first + offset].track_sid = sid
        self.m.subscriber_handles_received(snapshot, now=self.now)
        self.take()

    @precondition(lambda self: self.m._by_handle)
    @rule(
        index=st.integers(0, 9),
        stray=RARELY,
        size=st.integers(1, 300),
        order=st.randoms(use_true_random=False),
        lose=RARELY,
    )
    def remote_frame(self, index: int, stray: bool, size: int, order: object, lose: bool) -> None:
        routed = sorted(self.m._by_handle)
        handle = index % 6 + 1 if stray else routed[index % len(routed)]
        packetizer = self.packetizers.setdefault(handle, Packetizer(handle, mtu=60))
        self.counter += 1
        payload = self.counter.to_bytes(4, "big") * (size // 4 + 1)
        self.sent_payloads.add(payload)
        packets = packetizer.packetize(payload, timestamp=1)
        order.shuffle(packets)  # type: ignore[attr-defined]
        if lose and len(packets) > 1:
            packets.pop()
        for packet in packets:
            self.m.receive_packet(packet.encode(), now=self.now)
        self.take()

    @rule(data=st.binary(max_size=40), now=RARELY)
    def garbage(self, data: bytes, now: bool) -> None:
        if not now:
            return
        self.m.receive_packet(data, now=self.now)
        self.take()

    # -- the session ------------------------------------------------------------------------

    @precondition(lambda self: self.m.phase is not SessionPhase.CLOSED)
    @rule(full=st.booleans(), now=RARELY)
    def interrupted(self, full: bool, now: bool) -> None:
        if not now:
            return
        if self.call(self.m.reconnecting, full=full, now=self.now) is None and full:
            self.requests.clear()
            for queue in self.queues.values():
                queue.clear()
        self.take()

    @precondition(lambda self: self.m.phase is SessionPhase.RESUMING)
    @rule()
    def resumed(self) -> None:
        self.m.resumed(now=self.now)
        self.take()

    @precondition(lambda self: self.m.phase is SessionPhase.REJOINING)
    @rule(keep=st.sets(st.sampled_from(PUBLISHERS)))
    def rejoined(self, keep: set[str]) -> None:
        others = [
            ppb.ParticipantInfo(
                sid=f"PA_{p}{self.sessions[p]}",
                identity=p,
                data_tracks=[
                    tpb.DataTrackInfo(pub_handle=info.pub_handle, sid=info.sid, name=info.name)
                    for publisher, info in self.m.remote_tracks
                    if publisher == p
                ],
            )
            for p in sorted(keep)
        ]
        self.m.joined("me", others, now=self.now)
        self.take()

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def bounds_and_bookkeeping_agree(self) -> None:
        m = self.m
        assert m.queued_bytes == sum(len(f.payload) for q in self.queues.values() for f in q), (
            "queued bytes disagree with what was pushed and not pulled"
        )
        assert m.queued_bytes <= BOUNDS["max_queued_bytes"]
        for handle, queue in self.queues.items():
            assert m.queued_frames(handle) == len(queue) <= BOUNDS["max_queued_frames"]
        assert self.live == {h for h in range(1, 70) if m.is_published(h)}
        assert len(self.remote) <= BOUNDS["max_remote_tracks"]
        assert {info.sid for _, info in m.remote_tracks} == set(self.remote)
        for sid, state in self.subs.items():
            assert m.subscription_state(sid).value == state
        for sid in self.remote:
            handle = m.subscriber_handle(sid)
            if handle is not None:
                assert m.subscription_state(sid) is SubscriptionState.ACTIVE
        for remote in m._remote.values():
            if remote.depacketizer is not None:
                assert len(remote.depacketizer.partial_frames) <= remote.max_partial_frames

    def teardown(self) -> None:
        self.m.disconnected(now=self.now)
        self.take()
        assert not self.live and not self.subs and not self.remote
        allocated = self.m._last_handle
        assert set(self.resolved) == set(range(1, allocated + 1))
        assert self.m.get_timer() is None and self.m.queued_bytes == 0


TestDataTrackMachine = DataTrackMachine.TestCase
TestDataTrackMachine.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
