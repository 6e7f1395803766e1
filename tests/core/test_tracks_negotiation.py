"""The single-PC offer/answer queue, deterministically (protocol-reference-2 3.1; findings F3.3,
F3.5, F3.6, F3.8, F5.3).

Offer bytes by hand: SignalRequest.offer is field 1 (tag 0a); SessionDescription type 1, sdp
2, id 3.
"""

from __future__ import annotations

import pytest
from test_tracks_support import T0, Driver, answer, commands, manager, msr, sent

from lkproto._pb import signal_pb2 as spb
from lkproto.errors import LocalProtocolError
from lkproto.tracks import (
    AddTransceiver,
    AnswerDropped,
    ApplyAnswer,
    CreateTrackOffer,
    Direction,
    MediaSectionsLimited,
    NegotiationState,
    NegotiationTimedOut,
    SendTrackSignal,
    SlotRole,
    TrackKind,
    TrackManager,
    TrackSignalIgnored,
)

# SessionDescription{type "offer", sdp "offer-1", id 1}
OFFER_1 = bytes.fromhex("0a 12 0a 05 6f 66 66 65 72 12 07 6f 66 66 65 72 2d 31 18 01")


def negotiation(m: TrackManager) -> NegotiationState:
    return m.negotiation  # read afresh: mypy narrows `m.negotiation` after an assert


def recv(slot: int, kind: TrackKind = TrackKind.AUDIO) -> AddTransceiver:
    return AddTransceiver(slot=slot, kind=kind, direction=Direction.RECVONLY)


def in_flight(m: TrackManager) -> Driver:
    """Create offer 1 (for nothing but the data channels) and leave it unanswered."""
    m.request_offer(now=T0)
    driver = Driver(m)
    driver.run(m.drain())
    assert sent(m.drain()) == [OFFER_1]
    assert m.negotiation is NegotiationState.OFFERING
    return driver


def test_the_requirement_adds_exactly_that_many_receive_slots_then_offers() -> None:
    m = manager()
    m.receive_signal(msr(2, 1), now=T0)
    assert m.drain() == [
        recv(1),
        recv(2),
        recv(3, TrackKind.VIDEO),
        CreateTrackOffer(offer_id=1),
    ]
    assert m.offer_in_flight == 1
    assert m.negotiation is NegotiationState.CREATING
    m.offer_created(1, "offer-1", slot_mids={1: "1", 2: "2", 3: "3"}, now=T0)
    assert sent(m.drain()) == [OFFER_1]
    assert negotiation(m) is NegotiationState.OFFERING
    assert [(s.slot, s.role, s.mid) for s in m.slots] == [
        (1, SlotRole.RECV, "1"),
        (2, SlotRole.RECV, "2"),
        (3, SlotRole.RECV, "3"),
    ]


def test_a_zero_requirement_still_renegotiates_f3_3() -> None:
    m = manager()
    m.receive_signal(msr(0, 0), now=T0)
    assert m.drain() == [CreateTrackOffer(offer_id=1)]
    assert m.slots == ()  # never pre-add


def test_requirements_during_an_outstanding_offer_wait_for_its_answer_f3_5() -> None:
    m = manager()
    in_flight(m)
    m.receive_signal(msr(1), now=T0)
    m.receive_signal(msr(0, 1), now=T0)
    m.receive_signal(msr(0, 0), now=T0)
    assert m.drain() == []  # never a second offer while one is in flight
    m.receive_signal(answer(1), now=T0)
    assert m.drain() == [ApplyAnswer(offer_id=1, sdp="answer-1")]
    assert m.negotiation is NegotiationState.APPLYING
    m.remote_description_applied(1, now=T0)
    assert m.drain() == [recv(1), recv(2, TrackKind.VIDEO), CreateTrackOffer(offer_id=2)]


def test_the_requirement_repeated_after_an_answer_is_not_added_twice() -> None:
    """livekit-server recounts its unmatched transceivers with every answer and asks for all
    of them again: slots the server has not seen in an answered offer cover that request."""
    m = manager()
    driver = in_flight(m)
    m.receive_signal(msr(1, 1), now=T0)  # for the server's new transceivers A and V
    m.receive_signal(answer(1), now=T0)  # offer 1 had no slot for them ...
    m.receive_signal(msr(1, 1), now=T0)  # ... so it asks again, right after the answer
    m.receive_signal(msr(1), now=T0)  # and once more for another new track
    assert m.drain() == [ApplyAnswer(offer_id=1, sdp="answer-1")]
    m.remote_description_applied(1, now=T0)
    out = m.drain()
    assert out == [recv(1), recv(2, TrackKind.VIDEO), recv(3), CreateTrackOffer(offer_id=2)]
    driver.run(out)
    m.drain()
    m.receive_signal(answer(2, {"1": "TR_a", "2": "TR_v", "3": "TR_b"}), now=T0)
    m.receive_signal(msr(0, 0), now=T0)  # all matched: nothing is asked again
    m.remote_description_applied(2, now=T0)
    assert m.drain() == [
        ApplyAnswer(offer_id=2, sdp="answer-2"),
        CreateTrackOffer(offer_id=3),
    ]
    assert len(m.slots) == 3


def test_a_requirement_repeated_while_the_slots_are_in_flight_is_covered() -> None:
    m = manager()
    driver = in_flight(m)
    m.receive_signal(msr(1), now=T0)
    m.receive_signal(answer(1), now=T0)
    m.remote_description_applied(1, now=T0)
    driver.run(m.drain())  # offer 2 carries slot 1: the server has not seen it yet
    m.drain()
    m.receive_signal(msr(1), now=T0)  # the repeat that followed answer 1
    m.receive_signal(answer(7), now=T0)  # a stray answer past our offers: credits nothing
    m.receive_signal(answer(2, {"1": "TR_a"}), now=T0)
    m.remote_description_applied(2, now=T0)
    m.receive_signal(msr(1), now=T0)  # a new track: slot 1 is taken, a new slot is needed
    assert m.drain() == [
        AnswerDropped(answer_id=7, outstanding_offer_id=2),
        ApplyAnswer(offer_id=2, sdp="answer-2"),  # the repeat caused no offer of its own
        recv(2),
        CreateTrackOffer(offer_id=3),
    ]


def test_answers_for_other_offers_are_dropped_and_reported() -> None:
    m = manager()
    m.receive_signal(answer(3), now=T0)
    assert m.drain() == [AnswerDropped(answer_id=3, outstanding_offer_id=None)]
    in_flight(m)
    m.receive_signal(answer(7), now=T0)
    assert m.drain() == [AnswerDropped(answer_id=7, outstanding_offer_id=1)]
    assert m.negotiation is NegotiationState.OFFERING


def test_an_answer_without_id_is_taken_for_the_offer_in_flight() -> None:
    m = manager()
    in_flight(m)
    m.receive_signal(answer(0), now=T0)  # a server that does not echo the id
    assert m.drain() == [ApplyAnswer(offer_id=1, sdp="answer-0")]


def test_stale_adapter_reports_change_nothing() -> None:
    m = manager()
    m.offer_created(1, "x", slot_mids={}, now=T0)
    m.remote_description_applied(1, now=T0)
    assert m.drain() == [
        TrackSignalIgnored(reason="stale-offer", detail="offer 1 is not being created"),
        TrackSignalIgnored(reason="stale-apply", detail="no answer to offer 1 is being applied"),
    ]
    assert m.negotiation is NegotiationState.IDLE


@pytest.mark.parametrize(
    ("offer_id", "mids", "text"),
    [
        ("1", {1: "1"}, "offer_id must be int"),
        (1, {9: "1"}, "no transceiver for slot 9"),
        (1, {"1": "1"}, "no transceiver for slot '1'"),
        (1, {1: 1}, "slot 1: mid must be a str"),
        (1, {1: ""}, "slot 1: mid must be a str"),
        (1, {1: "1", 2: "1"}, "mid '1' names two slots"),
        (1, {1: "1"}, "slot 2 has no mid"),
        (1, [(1, "1")], "slot_mids must be Mapping"),
    ],
)
def test_bad_offer_reports_are_refused(offer_id: object, mids: object, text: str) -> None:
    m = manager()
    m.receive_signal(msr(2), now=T0)
    m.drain()
    with pytest.raises(LocalProtocolError, match=text):
        m.offer_created(offer_id, "o", slot_mids=mids, now=T0)  # type: ignore[arg-type]
    assert m.negotiation is NegotiationState.CREATING
    assert [s.mid for s in m.slots] == ["", ""]


def test_a_mid_may_not_change() -> None:
    m = manager()
    m.receive_signal(msr(1), now=T0)
    driver = Driver(m)
    driver.settle()
    m.request_offer(now=T0)
    m.drain()
    with pytest.raises(LocalProtocolError, match="slot 1 had mid '1', not '5'"):
        m.offer_created(2, "o", slot_mids={1: "5"}, now=T0)
    m.offer_created(2, "o", slot_mids={}, now=T0)  # known mids need not be repeated
    assert m.negotiation is NegotiationState.OFFERING


def test_an_unanswered_offer_is_replaced_after_the_negotiation_timeout() -> None:
    m = manager()
    in_flight(m)
    assert m.get_timer() == T0 + 15.0
    m.handle_timer(T0 + 14.9)
    assert m.drain() == []
    m.handle_timer(T0 + 15.0)
    assert m.drain() == [NegotiationTimedOut(offer_id=1), CreateTrackOffer(offer_id=2)]
    m.offer_created(2, "offer-2", slot_mids={}, now=T0 + 15)
    m.drain()
    m.receive_signal(answer(1), now=T0 + 16)
    assert m.drain() == [AnswerDropped(answer_id=1, outstanding_offer_id=2)]
    m.receive_signal(answer(2), now=T0 + 16)
    assert m.drain() == [ApplyAnswer(offer_id=2, sdp="answer-2")]
    assert m.get_timer() is None


def test_an_offer_outstanding_across_a_resume_is_offered_again_f5_3() -> None:
    m = manager()
    in_flight(m)
    m.reconnecting(full=False, now=T0 + 1)
    assert m.get_timer() is None
    m.receive_signal(msr(1), now=T0 + 1)  # no offer while resuming
    assert m.drain() == []
    m.resumed(now=T0 + 2)
    assert m.drain() == [recv(1), CreateTrackOffer(offer_id=2)]
    m.offer_created(2, "offer-2", slot_mids={1: "1"}, now=T0 + 2)
    m.drain()
    m.receive_signal(answer(1), now=T0 + 2)  # the lost answer, had it come
    m.receive_signal(answer(2, {"1": "TR_b"}), now=T0 + 2)
    assert m.drain() == [
        AnswerDropped(answer_id=1, outstanding_offer_id=2),
        ApplyAnswer(offer_id=2, sdp="answer-2"),
    ]


def test_an_offer_created_during_a_resume_goes_out_after_it() -> None:
    m = manager()
    m.request_offer(now=T0)
    assert m.drain() == [CreateTrackOffer(offer_id=1)]
    m.reconnecting(full=False, now=T0)
    m.offer_created(1, "offer-1", slot_mids={}, now=T0)
    assert m.drain() == []  # held back with the other requests
    assert m.get_timer() is None
    m.resumed(now=T0 + 1)
    assert sent(m.drain()) == [OFFER_1]
    assert m.offer_in_flight == 1  # sent after the resume: not offered again
    assert m.get_timer() == T0 + 1 + 15.0


def test_an_answer_arriving_during_a_resume_is_applied() -> None:
    m = manager()
    in_flight(m)
    m.reconnecting(full=False, now=T0)
    m.receive_signal(answer(1), now=T0)
    assert m.drain() == [ApplyAnswer(offer_id=1, sdp="answer-1")]
    m.resumed(now=T0)
    assert m.drain() == []
    m.remote_description_applied(1, now=T0)
    assert m.negotiation is NegotiationState.IDLE


def test_requirements_are_bounded_per_message_and_in_total() -> None:
    m = manager(max_slots_per_requirement=2, max_receive_slots=3)
    m.receive_signal(msr(3, 2), now=T0)
    out = m.drain()
    assert out[0] == MediaSectionsLimited(
        needed_audios=3, needed_videos=2, added_audios=2, added_videos=0
    )
    assert commands(out) == [recv(1), recv(2), CreateTrackOffer(offer_id=1)]
    driver = Driver(m)
    driver.run(out)
    driver.settle()
    m.receive_signal(msr(1, 1), now=T0)
    out = m.drain()
    assert out[0] == MediaSectionsLimited(
        needed_audios=1, needed_videos=1, added_audios=1, added_videos=0
    )
    driver.run(out)
    driver.settle()
    m.receive_signal(msr(0, 1), now=T0)
    # nothing could be added: no offer, or the server's repeat would start an endless loop
    assert m.drain() == [
        MediaSectionsLimited(needed_audios=0, needed_videos=1, added_audios=0, added_videos=0)
    ]
    assert m.offer_in_flight is None
    assert sum(s.role is SlotRole.RECV for s in m.slots) == 3


def test_request_offer_is_idempotent_while_one_is_in_flight() -> None:
    m = manager()
    m.request_offer(now=T0)
    m.request_offer(now=T0)
    assert m.drain() == [CreateTrackOffer(offer_id=1)]
    with pytest.raises(LocalProtocolError, match="now must be a finite number"):
        m.request_offer(now=None)  # type: ignore[arg-type]


def test_nothing_to_negotiate_makes_no_offer() -> None:
    m = manager()
    Driver(m).settle()
    assert m.drain() == []
    assert m.offer_in_flight is None


def test_answers_are_ignored_outside_the_session() -> None:
    m = TrackManager(id_factory=lambda: "c")
    m.receive_signal(answer(1), now=T0)
    m.receive_signal(msr(1), now=T0)
    assert m.drain() == []
    sd = spb.SignalResponse(offer=spb.SessionDescription(type="offer", sdp="x", id=1))
    m.joined("me", [], now=T0)
    m.receive_signal(sd, now=T0)  # the server never offers in single-PC mode (F3.1)
    assert m.drain() == []
    assert not any(isinstance(o, SendTrackSignal) for o in m.drain())
