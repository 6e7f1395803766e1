"""Hypothesis state machine over one TrackManager, its fake peer connection and a careless
server: publications, requirements, offers, answers (fresh, stale, arbitrary maps), updates,
subscription wishes, resumes, full reconnects and time, in any order.

Invariants, after every step:
- at most one offer in flight: a new `CreateTrackOffer` only once the previous one was
  applied, timed out, lost in a resume (F5.3) or dropped with its peer connection; offer ids
  count up by one; every `ApplyAnswer` is for the offer the peer connection set last (F3.5);
- transceiver commands come only right before a `CreateTrackOffer`, for slots that exist;
  no slot is ever removed while the peer connection lives, and slot numbers are never reused;
- every bound slot's sid is what the last applied answer maps its mid to; every announced
  subscription (`TrackSubscribed` not yet undone) is on a slot bound to that sid, one slot per
  sid and one sid per slot, and matches `subscribed_slot`;
- receive slots stay within `max_receive_slots`; a send slot is SENDONLY exactly when it
  carries a source, which is a published publication of ours, on one slot only;
- every publication resolves at most once; `get_timer()` is never in the past;
and at teardown, `disconnected()` withdraws every announced subscription and resolves every
publication exactly once.
"""

from __future__ import annotations

import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.tracks import (
    AddTransceiver,
    ApplyAnswer,
    CreateTrackOffer,
    Direction,
    LocalTrackPublished,
    LocalTrackPublishFailed,
    LocalTrackRepublished,
    LocalTrackRepublishing,
    LocalTrackState,
    LocalTrackUnpublished,
    NegotiationState,
    NegotiationTimedOut,
    SendTrackSignal,
    SessionPhase,
    SetSendSource,
    SetTransceiverDirection,
    SlotRole,
    TrackKind,
    TrackManager,
    TrackOutput,
    TrackSubscribed,
    TrackUnsubscribed,
)

REMOTE_SIDS = ["TR_r1", "TR_r2", "TR_r3", "TR_r4"]
TRANSCEIVER_COMMANDS = (AddTransceiver, SetSendSource, SetTransceiverDirection)
MAX_RECV = 8


class TracksMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        numbers = itertools.count(1)
        self.m = TrackManager(
            id_factory=lambda: f"c{next(numbers)}",
            max_local_publications=4,
            max_receive_slots=MAX_RECV,
            max_slots_per_requirement=3,
        )
        self.now = 0.0
        self.bob_tracks: list[str] = []
        self.bob_version = 1
        self.m.joined("me", [self.bob()], now=self.now)
        # the fake peer connection
        self.mids: dict[int, str] = {}  # slot -> mid ("" until an offer gave it one)
        self.directions: dict[int, Direction] = {}  # slot -> transceiver.direction
        self.offered: dict[int, dict[int, Direction]] = {}  # offer id -> directions in it
        self.negotiated: dict[int, Direction] = {}  # slot -> direction of the last applied
        self.next_mid = 1
        self.pending_offer: int | None = None  # CreateTrackOffer not yet carried out
        self.local_offer: int | None = None  # the offer set as local description last
        self.pending_apply: int | None = None  # ApplyAnswer not yet carried out
        self.sent_offer: int | None = None  # the offer id last sent on the signal
        # the model
        self.last_offer_id = 0
        self.offer_open = False
        self.lost_in_resume = False
        self.slots_ever: set[int] = set()
        self.slots_this_pc: set[int] = set()
        self.announced: dict[str, int] = {}
        self.live: set[str] = set()  # the current cid of every unresolved publication
        self.eager_adapter = False
        self.eager_server = False
        self.take()

    @initialize(eager_adapter=st.booleans(), eager_server=st.booleans())
    def choose_peers(self, eager_adapter: bool, eager_server: bool) -> None:
        """An eager adapter creates each offer and applies each answer at once, as a real
        one does; an eager server answers each offer at once, binding the tracks we want to
        free receive slots as the SFU does. Lazy ones let anything happen in between
        (requirements, updates, resumes, reconnects, arbitrary or stale answers)."""
        self.eager_adapter = eager_adapter
        self.eager_server = eager_server

    def bob(self) -> ppb.ParticipantInfo:
        tracks = [tpb.TrackInfo(sid=s, type=tpb.AUDIO) for s in self.bob_tracks]
        return ppb.ParticipantInfo(
            sid="PA_bob", identity="bob", version=self.bob_version, tracks=tracks
        )

    # -- outputs ------------------------------------------------------------------------

    def take(self) -> None:
        while True:
            outputs = self.m.drain()
            self.check_batch(outputs)
            for out in outputs:
                self.observe(out)
            if self.eager_adapter and self.pending_offer is not None:
                self.carry_out_offer()
            elif (
                self.eager_server
                and self.m.phase is SessionPhase.JOINED
                and self.m.negotiation is NegotiationState.OFFERING
                and self.sent_offer is not None
                and self.sent_offer == self.m.offer_in_flight
            ):
                self.send_answer(self.sent_offer, self.server_map())
            elif self.eager_adapter and self.pending_apply is not None:
                self.carry_out_apply()
            else:
                return

    def server_map(self) -> dict[str, str]:
        """What the SFU would map: keep the bindings of tracks still listed and wanted,
        bind the other wanted tracks to free receive slots."""
        recv_mids = [s.mid for s in self.m.slots if s.role is SlotRole.RECV and s.mid]
        wanted = [sid for sid in self.bob_tracks if self.m.wants_subscription(sid)]
        mapping = {
            mid: sid
            for mid, sid in self.m.applied_mid_to_track_id.items()
            if mid in recv_mids and sid in wanted
        }
        free = [mid for mid in recv_mids if mid not in mapping]
        for sid in wanted:
            if sid not in mapping.values() and free:
                mapping[free.pop(0)] = sid
        return mapping

    def send_answer(self, offer_id: int, mapping: dict[str, str]) -> None:
        sd = spb.SessionDescription(type="answer", sdp="a", id=offer_id, mid_to_track_id=mapping)
        self.m.receive_signal(spb.SignalResponse(answer=sd), now=self.now)

    def check_batch(self, outputs: list[TrackOutput]) -> None:
        for i, out in enumerate(outputs):
            if isinstance(out, TRANSCEIVER_COMMANDS):
                follower = outputs[i + 1] if i + 1 < len(outputs) else None
                assert isinstance(follower, (*TRANSCEIVER_COMMANDS, CreateTrackOffer)), outputs

    def observe(self, out: TrackOutput) -> None:
        if isinstance(out, AddTransceiver):
            assert out.slot not in self.slots_ever
            self.slots_ever.add(out.slot)
            self.slots_this_pc.add(out.slot)
            self.mids[out.slot] = ""
            self.directions[out.slot] = out.direction
        elif isinstance(out, SetSendSource | SetTransceiverDirection):
            assert out.slot in self.mids
            if isinstance(out, SetTransceiverDirection):
                self.directions[out.slot] = out.direction
            elif out.source_cid is not None:
                # a new track on a used m-line only once the server saw it inactive (F4.6)
                assert self.negotiated.get(out.slot) is Direction.INACTIVE
        elif isinstance(out, CreateTrackOffer):
            assert not self.offer_open, "a second offer while one is in flight"
            assert out.offer_id == self.last_offer_id + 1
            self.last_offer_id = out.offer_id
            self.offer_open = True
            self.pending_offer = out.offer_id
        elif isinstance(out, ApplyAnswer):
            assert out.offer_id == self.local_offer, "an answer for another local offer"
            self.pending_apply = out.offer_id
        elif isinstance(out, NegotiationTimedOut):
            self.offer_open = False
        elif isinstance(out, SendTrackSignal) and out.request.HasField("offer"):
            assert out.request.offer.id == self.local_offer
            self.sent_offer = out.request.offer.id
        elif isinstance(out, TrackSubscribed):
            sid = out.info.sid
            assert sid not in self.announced
            assert out.slot not in self.announced.values()
            self.announced[sid] = out.slot
        elif isinstance(out, TrackUnsubscribed):
            assert self.announced.pop(out.sid) == out.slot
        elif isinstance(out, LocalTrackPublishFailed | LocalTrackUnpublished):
            self.live.remove(out.cid)  # a KeyError would be a second resolution
        elif isinstance(out, LocalTrackRepublishing):
            self.live.remove(out.previous_cid)
            self.live.add(out.cid)
        elif isinstance(out, LocalTrackPublished | LocalTrackRepublished):
            assert out.cid in self.live

    # -- application ----------------------------------------------------------------------

    @precondition(lambda self: self.m.phase is SessionPhase.JOINED)
    @rule(video=st.booleans())
    def publish(self, video: bool) -> None:
        if len(self.m.local_cids) >= 4:
            return
        if video:
            cid = self.m.publish(TrackKind.VIDEO, name="v", now=self.now, width=64, height=64)
        else:
            cid = self.m.publish(TrackKind.AUDIO, name="a", now=self.now)
        self.live.add(cid)
        self.take()

    @rule(index=st.integers(0, 3))
    def unpublish(self, index: int) -> None:
        cids = self.m.local_cids
        if cids:
            assert self.m.unpublish(cids[index % len(cids)], now=self.now)
            self.take()

    @precondition(lambda self: self.m.phase is not SessionPhase.CLOSED)
    @rule(index=st.integers(0, 3), muted=st.booleans())
    def mute(self, index: int, muted: bool) -> None:
        cids = self.m.local_cids
        if cids:
            self.m.set_muted(cids[index % len(cids)], muted, now=self.now)
            self.take()

    @precondition(lambda self: self.m.phase is not SessionPhase.CLOSED)
    @rule(sid=st.sampled_from(REMOTE_SIDS), subscribed=st.sampled_from([True, True, False]))
    def set_subscribed(self, sid: str, subscribed: bool) -> None:
        self.m.set_subscribed(sid, subscribed, now=self.now)
        self.take()

    @precondition(lambda self: self.m.phase is not SessionPhase.CLOSED)
    @rule()
    def request_offer(self) -> None:
        self.m.request_offer(now=self.now)
        self.take()

    # -- the server -----------------------------------------------------------------------

    @rule(index=st.integers(0, 3), accept=st.booleans(), code=st.sampled_from([2, 4, 5, 6]))
    def answer_publish(self, index: int, accept: bool, code: int) -> None:
        cids = self.m.local_cids
        if not cids:
            return
        cid = cids[index % len(cids)]
        if accept:
            track = tpb.TrackInfo(sid=f"TR_{cid}", type=tpb.AUDIO)
            message = spb.SignalResponse(
                track_published=tpb.TrackPublishedResponse(cid=cid, track=track)
            )
        else:
            response = spb.RequestResponse(
                reason=code,  # type: ignore[arg-type]
                add_track=tpb.AddTrackRequest(cid=cid),
            )
            message = spb.SignalResponse(request_response=response)
        self.m.receive_signal(message, now=self.now)
        self.take()

    @rule(index=st.integers(0, 3))
    def server_unpublish(self, index: int) -> None:
        cids = self.m.local_cids
        if cids:
            sid = f"TR_{cids[index % len(cids)]}"
            gone = tpb.TrackUnpublishedResponse(track_sid=sid)
            self.m.receive_signal(spb.SignalResponse(track_unpublished=gone), now=self.now)
            self.take()

    @rule(audios=st.integers(0, 2), videos=st.integers(0, 1))
    def media_sections(self, audios: int, videos: int) -> None:
        requirement = spb.MediaSectionsRequirement(num_audios=audios, num_videos=videos)
        self.m.receive_signal(
            spb.SignalResponse(media_sections_requirement=requirement), now=self.now
        )
        self.take()

    @precondition(lambda self: self.sent_offer is not None)
    @rule(
        stale=st.sampled_from([False, False, False, True]),
        picks=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=4),
        apply=st.booleans(),
    )
    def answer(self, stale: bool, picks: list[tuple[int, int]], apply: bool) -> None:
        """Answer the last offer sent (or the one before), mapping mostly receive mids to
        mostly listed tracks, and perhaps let the adapter apply it at once."""
        assert self.sent_offer is not None
        offer_id = self.sent_offer - 1 if stale else self.sent_offer
        recv_mids = [s.mid for s in self.m.slots if s.role is SlotRole.RECV and s.mid]
        mids = recv_mids or sorted(mid for mid in self.mids.values() if mid)
        sids = self.bob_tracks + REMOTE_SIDS[:1]
        mapping = {mids[i % len(mids)]: sids[j % len(sids)] for i, j in picks} if mids else {}
        self.send_answer(offer_id, mapping)
        self.take()
        if apply and self.pending_apply is not None:
            self.apply_answer()

    @rule(tracks=st.sets(st.sampled_from(REMOTE_SIDS)), gone=st.sampled_from([False] * 4 + [True]))
    def remote_update(self, tracks: set[str], gone: bool) -> None:
        self.bob_version += 1
        self.bob_tracks = [] if gone else sorted(tracks)
        info = self.bob()
        if gone:
            info.state = ppb.ParticipantInfo.DISCONNECTED
        self.m.receive_signal(
            spb.SignalResponse(update=ppb.ParticipantUpdate(participants=[info])), now=self.now
        )
        self.take()

    # -- the adapter ----------------------------------------------------------------------

    @precondition(lambda self: self.pending_offer is not None)
    @rule()
    def create_offer(self) -> None:
        self.carry_out_offer()
        self.take()

    def carry_out_offer(self) -> None:
        offer_id = self.pending_offer
        assert offer_id is not None
        self.pending_offer = None
        for slot, mid in self.mids.items():
            if not mid:
                self.mids[slot] = str(self.next_mid)
                self.next_mid += 1
        self.local_offer = offer_id
        self.offered[offer_id] = dict(self.directions)
        self.m.offer_created(offer_id, "o", slot_mids=dict(self.mids), now=self.now)

    @precondition(lambda self: self.pending_apply is not None)
    @rule()
    def apply_answer(self) -> None:
        self.carry_out_apply()
        self.take()

    def carry_out_apply(self) -> None:
        offer_id = self.pending_apply
        assert offer_id is not None
        self.pending_apply = None
        self.offer_open = False
        self.negotiated.update(self.offered.pop(offer_id))
        self.m.remote_description_applied(offer_id, now=self.now)

    @rule()
    def stale_reports(self) -> None:
        self.m.offer_created(0, "o", slot_mids={}, now=self.now)
        self.m.remote_description_applied(0, now=self.now)
        self.take()

    # -- the session and time ----------------------------------------------------------------

    @precondition(lambda self: self.m.phase in (SessionPhase.JOINED, SessionPhase.RESUMING))
    @rule(resume=st.booleans())
    def interrupt(self, resume: bool) -> None:
        if self.m.negotiation is NegotiationState.OFFERING:
            self.lost_in_resume = True
        self.m.reconnecting(full=False, now=self.now)
        self.take()
        if resume:
            self.resumed()

    @precondition(lambda self: self.m.phase is SessionPhase.RESUMING)
    @rule()
    def resumed(self) -> None:
        if self.lost_in_resume and self.m.negotiation is NegotiationState.OFFERING:
            self.offer_open = False  # its answer went to the old signal connection (F5.3)
            self.sent_offer = None
        self.lost_in_resume = False
        self.m.resumed(now=self.now)
        self.take()

    @precondition(lambda self: self.m.phase is not SessionPhase.CLOSED)
    @rule(rejoin=st.sampled_from([True, True, True, False]))
    def full_reconnect(self, rejoin: bool) -> None:
        self.m.reconnecting(full=True, now=self.now)
        self.take()
        assert self.m.slots == ()
        assert self.announced == {}
        self.mids.clear()
        self.directions.clear()
        self.offered.clear()
        self.negotiated.clear()
        self.next_mid = 1
        self.pending_offer = self.local_offer = self.pending_apply = self.sent_offer = None
        self.offer_open = False
        self.lost_in_resume = False
        self.slots_this_pc.clear()
        if rejoin:
            self.rejoin()

    @precondition(lambda self: self.m.phase is SessionPhase.REJOINING)
    @rule()
    def rejoin(self) -> None:
        self.m.joined("me", [self.bob()], now=self.now)
        self.take()

    @rule(delta=st.sampled_from([0.5, 5.0, 10.0, 15.0]))
    def tick(self, delta: float) -> None:
        self.now += delta
        self.m.handle_timer(self.now)
        self.take()

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def one_offer_in_flight(self) -> None:
        in_flight = self.m.offer_in_flight
        assert (in_flight is None) == (self.m.negotiation is NegotiationState.IDLE)
        if in_flight is not None:
            assert in_flight == self.last_offer_id

    @invariant()
    def slots_are_never_removed(self) -> None:
        current = [s.slot for s in self.m.slots]
        assert len(current) == len(set(current))
        assert self.slots_this_pc <= set(current)

    @invariant()
    def bindings_follow_the_last_applied_answer(self) -> None:
        applied = self.m.applied_mid_to_track_id
        by_slot = {s.slot: s for s in self.m.slots}
        for slot in by_slot.values():
            if slot.bound_sid:
                assert slot.role is SlotRole.RECV
                assert applied[slot.mid] == slot.bound_sid
        for sid, slot_id in self.announced.items():
            assert by_slot[slot_id].bound_sid == sid
            assert self.m.subscribed_slot(sid) == slot_id
        for sid in REMOTE_SIDS:
            if sid not in self.announced:
                assert self.m.subscribed_slot(sid) is None

    @invariant()
    def slots_are_bounded_and_consistent(self) -> None:
        slots = self.m.slots
        assert sum(s.role is SlotRole.RECV for s in slots) <= MAX_RECV
        sources = [s.source_cid for s in slots if s.source_cid is not None]
        assert len(sources) == len(set(sources))
        for s in slots:
            if s.role is SlotRole.SEND:
                assert (s.direction is Direction.SENDONLY) == (s.source_cid is not None)
                if s.source_cid is not None:
                    assert self.m.local_state(s.source_cid) is LocalTrackState.PUBLISHED
            else:
                assert s.direction is Direction.RECVONLY

    @invariant()
    def publications_resolve_at_most_once(self) -> None:
        assert self.live == set(self.m.local_cids)

    @invariant()
    def timer_is_never_in_the_past(self) -> None:
        timer = self.m.get_timer()
        assert timer is None or timer > self.now

    def teardown(self) -> None:
        self.m.disconnected(now=self.now)
        self.take()
        assert self.announced == {}
        assert self.live == set()
        assert self.m.local_cids == ()
        assert self.m.get_timer() is None


TracksMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
test_tracks_machine = TracksMachine.TestCase


class MediaSectionsMachine(RuleBasedStateMachine):
    """The receive-slot count against a model of livekit-server 1.13.5's requirement logic
    (`transport.go`): a new server transceiver without an m-line is asked for as a delta
    (`sendUnmatchedMediaRequirement`), and with every answer the server recounts the ones
    still unmatched and asks for all of them again (`createAndSendAnswer`). Messages reach us
    in order, whenever `deliver` says; the adapter is eager.

    Invariants: we never hold more receive slots of a kind than the server has transceivers
    of it (no pre-add, no double count), and once everything is delivered and negotiated,
    exactly as many (every transceiver got its m-line).
    """

    BOUND = 64  # max_receive_slots

    def __init__(self) -> None:
        super().__init__()
        self.m = TrackManager(
            id_factory=lambda: "c", max_receive_slots=self.BOUND, max_slots_per_requirement=2
        )
        self.deliveries = 0
        self.m.joined("me", [], now=0.0)
        self.transceivers: dict[TrackKind, int] = dict.fromkeys(TrackKind, 0)
        self.matched: dict[TrackKind, int] = dict.fromkeys(TrackKind, 0)
        self.asked: dict[TrackKind, int] = dict.fromkeys(TrackKind, 0)  # since the last answer
        self.seen: set[str] = set()  # mids the server has matched or refused
        self.outbox: list[spb.SignalResponse] = []
        self.mids: dict[int, str] = {}
        self.next_mid = 1
        self.m.request_offer(now=0.0)
        self.take()

    def unmatched(self, kind: TrackKind) -> int:
        return self.transceivers[kind] - self.matched[kind]

    def take(self) -> None:
        for out in self.m.drain():
            if isinstance(out, AddTransceiver):
                self.mids[out.slot] = ""
            elif isinstance(out, CreateTrackOffer):
                for slot, mid in self.mids.items():
                    if not mid:
                        self.mids[slot] = str(self.next_mid)
                        self.next_mid += 1
                self.m.offer_created(out.offer_id, "o", slot_mids=dict(self.mids), now=0.0)
                self.take()
            elif isinstance(out, SendTrackSignal) and out.request.HasField("offer"):
                self.server_receives_offer(out.request.offer.id)
            elif isinstance(out, ApplyAnswer):
                self.m.remote_description_applied(out.offer_id, now=0.0)
                self.take()

    def server_receives_offer(self, offer_id: int) -> None:
        kinds = {s.mid: s.kind for s in self.m.slots if s.role is SlotRole.RECV and s.mid}
        for mid in sorted(kinds, key=int):
            if mid not in self.seen:
                self.seen.add(mid)
                if self.unmatched(kinds[mid]):
                    self.matched[kinds[mid]] += 1
        self.asked = dict.fromkeys(TrackKind, 0)
        sd = spb.SessionDescription(type="answer", sdp="a", id=offer_id)
        self.outbox.append(spb.SignalResponse(answer=sd))
        self.ask(force=False)

    def ask(self, *, force: bool) -> None:
        delta = {k: self.unmatched(k) - self.asked[k] for k in TrackKind}
        for kind in TrackKind:
            self.asked[kind] += delta[kind]
        if force or any(delta.values()):
            requirement = spb.MediaSectionsRequirement(
                num_audios=delta[TrackKind.AUDIO], num_videos=delta[TrackKind.VIDEO]
            )
            self.outbox.append(spb.SignalResponse(media_sections_requirement=requirement))

    @rule(video=st.booleans(), force=st.booleans())
    def server_subscribes_us(self, video: bool, force: bool) -> None:
        self.transceivers[TrackKind.VIDEO if video else TrackKind.AUDIO] += 1
        self.ask(force=force)

    @rule(force=st.just(True))
    def server_renegotiates(self, force: bool) -> None:
        self.ask(force=force)

    @precondition(lambda self: bool(self.outbox))
    @rule(count=st.integers(1, 3))
    def deliver(self, count: int) -> None:
        for _ in range(count):
            if self.outbox:
                self.deliveries += 1
                self.m.receive_signal(self.outbox.pop(0), now=0.0)
                self.take()

    @invariant()
    def never_more_slots_than_the_server_needs(self) -> None:
        for kind in TrackKind:
            slots = sum(1 for s in self.m.slots if s.role is SlotRole.RECV and s.kind is kind)
            assert slots <= self.transceivers[kind], (kind, slots, self.transceivers)

    def teardown(self) -> None:
        self.deliveries = 0
        while self.outbox:
            self.deliver(3)
            assert self.deliveries < 200, "the negotiation does not settle"
        assert self.m.negotiation is NegotiationState.IDLE
        slots = {
            kind: sum(1 for s in self.m.slots if s.role is SlotRole.RECV and s.kind is kind)
            for kind in TrackKind
        }
        assert slots == self.matched
        if sum(slots.values()) < self.BOUND:  # then every transceiver got its m-line
            assert slots == self.transceivers


class BoundedMediaSectionsMachine(MediaSectionsMachine):
    """The same at a bound of 3 receive slots: the rest fail, but the queue settles."""

    BOUND = 3


MediaSectionsMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_media_sections_machine = MediaSectionsMachine.TestCase
BoundedMediaSectionsMachine.TestCase.settings = MediaSectionsMachine.TestCase.settings
test_bounded_media_sections_machine = BoundedMediaSectionsMachine.TestCase
