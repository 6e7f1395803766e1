"""Shared helpers of the media-track manager's tests (no tests of its own).

We are "me"; "bob" (PA_bob) publishes remote tracks. A `Driver` plays the adapter: it
carries out the transceiver commands on a fake peer connection that hands out mids "1", "2",
... in creation order (mid "0" is the data channel, as with aiortc, F3.4), reports each
offer with the mids of every transceiver, and applies answers on request.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.tracks import (
    AddTransceiver,
    ApplyAnswer,
    CreateTrackOffer,
    NegotiationState,
    SendTrackSignal,
    SetSendSource,
    SetTransceiverDirection,
    TrackManager,
    TrackOutput,
)

T0 = 100.0
COMMANDS = (AddTransceiver, SetTransceiverDirection, SetSendSource, CreateTrackOffer, ApplyAnswer)


def audio_info(sid: str, name: str = "mic", *, muted: bool = False) -> tpb.TrackInfo:
    return tpb.TrackInfo(sid=sid, type=tpb.AUDIO, name=name, source=tpb.MICROPHONE, muted=muted)


def video_info(sid: str, name: str = "cam", *, muted: bool = False) -> tpb.TrackInfo:
    return tpb.TrackInfo(
        sid=sid, type=tpb.VIDEO, name=name, source=tpb.CAMERA, muted=muted, width=640, height=360
    )


def person(
    identity: str,
    tracks: Iterable[tpb.TrackInfo] = (),
    *,
    sid: str = "",
    version: int = 1,
    gone: bool = False,
) -> ppb.ParticipantInfo:
    return ppb.ParticipantInfo(
        sid=sid or f"PA_{identity}",
        identity=identity,
        version=version,
        state=ppb.ParticipantInfo.DISCONNECTED if gone else ppb.ParticipantInfo.ACTIVE,
        tracks=list(tracks),
    )


def update(*people: ppb.ParticipantInfo) -> spb.SignalResponse:
    return spb.SignalResponse(update=ppb.ParticipantUpdate(participants=list(people)))


def msr(audios: int = 0, videos: int = 0) -> spb.SignalResponse:
    requirement = spb.MediaSectionsRequirement(num_audios=audios, num_videos=videos)
    return spb.SignalResponse(media_sections_requirement=requirement)


def answer(offer_id: int, mapping: Mapping[str, str] | None = None) -> spb.SignalResponse:
    sd = spb.SessionDescription(
        type="answer", sdp=f"answer-{offer_id}", id=offer_id, mid_to_track_id=mapping or {}
    )
    return spb.SignalResponse(answer=sd)


def published(cid: str, sid: str, info: tpb.TrackInfo | None = None) -> spb.SignalResponse:
    track = info if info is not None else audio_info(sid)
    return spb.SignalResponse(track_published=tpb.TrackPublishedResponse(cid=cid, track=track))


def refused(cid: str, reason: int, message: str = "") -> spb.SignalResponse:
    response = spb.RequestResponse(
        reason=reason,  # type: ignore[arg-type]
        message=message,
        add_track=tpb.AddTrackRequest(cid=cid, name="mic"),
    )
    return spb.SignalResponse(request_response=response)


def sent(outputs: Iterable[TrackOutput]) -> list[bytes]:
    return [o.data for o in outputs if isinstance(o, SendTrackSignal)]


def commands(outputs: Iterable[TrackOutput]) -> list[TrackOutput]:
    return [o for o in outputs if isinstance(o, COMMANDS)]


def events(outputs: Iterable[TrackOutput]) -> list[TrackOutput]:
    return [o for o in outputs if not isinstance(o, (SendTrackSignal, *COMMANDS))]


def manager(*others: ppb.ParticipantInfo, **kwargs: object) -> TrackManager:
    numbers = itertools.count(1)
    m = TrackManager(id_factory=lambda: f"c{next(numbers)}", **kwargs)  # type: ignore[arg-type]
    m.joined("me", others, now=T0)
    return m


class Driver:
    """The adapter side: a fake peer connection's transceivers and mids."""

    def __init__(self, m: TrackManager) -> None:
        self.m = m
        self.mids: dict[int, str] = {}  # slot -> mid
        self.pending: list[int] = []  # slots added since the last offer: no mid yet
        self.next_mid = 1

    def run(self, outputs: Iterable[TrackOutput], *, now: float = T0) -> None:
        """Carry out transceiver commands and offers (answers are the test's to give)."""
        for out in outputs:
            if isinstance(out, AddTransceiver):
                self.pending.append(out.slot)
            elif isinstance(out, CreateTrackOffer):
                for slot in self.pending:
                    self.mids[slot] = str(self.next_mid)
                    self.next_mid += 1
                self.pending.clear()
                self.m.offer_created(
                    out.offer_id, f"offer-{out.offer_id}", slot_mids=dict(self.mids), now=now
                )

    def settle(
        self, mapping: Mapping[str, str] | None = None, *, now: float = T0
    ) -> list[TrackOutput]:
        """Answer the offer in flight with `mapping`, apply it, and run what follows until
        nothing is in flight; returns every output seen."""
        seen: list[TrackOutput] = []
        for _ in range(50):
            outputs = self.m.drain()
            seen += outputs
            self.run(outputs, now=now)
            seen += self.m.drain()
            if self.m.negotiation is NegotiationState.OFFERING:
                offer_id = self.m.offer_in_flight
                assert offer_id is not None
                self.m.receive_signal(answer(offer_id, mapping), now=now)
                seen += self.m.drain()
            if self.m.negotiation is NegotiationState.IDLE:
                return seen
            assert self.m.negotiation is NegotiationState.APPLYING, "an offer nobody created"
            offer_id = self.m.offer_in_flight
            assert offer_id is not None
            self.m.remote_description_applied(offer_id, now=now)
        raise AssertionError("the negotiation did not settle in 50 rounds")
