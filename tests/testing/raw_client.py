"""A bare client of a MemoryRoom: SignalRequests and DataPackets written by hand.

For the server-rule tests: it joins through `MemoryRoom.accept` exactly as a memory transport
does, records every SignalResponse, close and data packet it receives (parsed), and lets a
test send anything, well-formed or not. Test code only.
"""

from __future__ import annotations

import base64
import zlib
from urllib.parse import urlencode

from lkproto import Channel
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto.testing import MemoryRoom, PeerLink, Rejected, SignalLink, Unreachable, ice_ufrag


def v1_target(request: spb.JoinRequest | None = None, *, gzip: bool = False) -> str:
    request = request or join_request()
    raw = request.SerializeToString()
    wrapped = spb.WrappedJoinRequest(
        compression=spb.WrappedJoinRequest.GZIP if gzip else spb.WrappedJoinRequest.NONE,
        join_request=_gzip(raw) if gzip else raw,
    )
    param = base64.urlsafe_b64encode(wrapped.SerializeToString()).decode()
    return "/rtc/v1?" + urlencode({"join_request": param})


def v0_target(**params: str) -> str:
    return "/rtc?" + urlencode(params)


def resume_target(sid: str, *, protocol: int = 17, reason: int = 1) -> str:
    """`/rtc/v1` with a join request asking to resume participant `sid` (D.8 step 2)."""
    request = join_request(protocol, reconnect=True, participant_sid=sid, reconnect_reason=reason)
    return v1_target(request)


def join_request(protocol: int = 17, client_protocol: int = 2, **kwargs: object) -> spb.JoinRequest:
    return spb.JoinRequest(
        client_info=ppb.ClientInfo(
            sdk=ppb.ClientInfo.PYTHON,
            protocol=protocol,
            client_protocol=client_protocol,
            capabilities=[ppb.ClientInfo.CAP_COMPRESSION_DEFLATE_RAW],
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=31)
    return c.compress(data) + c.flush()


class RawClient:
    def __init__(
        self,
        room: MemoryRoom,
        identity: str = "",
        *,
        token: str | None = None,
        target: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        **grants: object,
    ) -> None:
        self.room = room
        self.identity = identity
        self.signals: list[spb.SignalResponse] = []
        self.closes: list[int | None] = []
        self.data: list[tuple[Channel, dpb.DataPacket]] = []
        self.raw: list[bytes] = []
        self.track_packets: list[bytes] = []  # what arrived on `_data_track`
        self.peer_closes = 0
        self.peer_failures = 0
        self.media: list[tuple[str, object]] = []  # (our m-line, frame) forwarded to us
        self.peer: PeerLink | None = None
        if token is None:
            token = room.token(identity, **grants)  # type: ignore[arg-type]
        if headers is None:
            headers = [("Authorization", f"Bearer {token}")]
        result = room.accept(target or v1_target(), headers, self)
        self.rejected = result if isinstance(result, Rejected | Unreachable) else None
        self.link: SignalLink | None = (
            None if isinstance(result, Rejected | Unreachable) else result
        )
        room.run_until_idle()

    # -- SignalEndpoint / PeerEndpoint -----------------------------------------------------------

    def signal_received(self, data: bytes) -> None:
        self.signals.append(spb.SignalResponse.FromString(data))

    def signal_closed(self, code: int | None) -> None:
        self.closes.append(code)

    def data_received(self, channel: Channel, data: bytes) -> None:
        if channel is Channel.DATA_TRACK:
            self.track_packets.append(data)
            return
        self.raw.append(data)
        self.data.append((channel, dpb.DataPacket.FromString(data)))

    def peer_closed(self) -> None:
        self.peer_closes += 1

    def peer_failed(self) -> None:
        self.peer_failures += 1

    def media_received(self, mid: str, payload: object) -> None:
        self.media.append((mid, payload))

    # -- acting ----------------------------------------------------------------------------------

    def send(self, **message: object) -> None:
        assert self.link is not None
        self.link.send(spb.SignalRequest(**message).SerializeToString())  # type: ignore[arg-type]
        self.room.run_until_idle()

    def connect(self, sdp: str = "v=0\r\n") -> RawClient:
        """Offer (`sdp`), take the server's answer, bring the peer connection up."""
        self.send(offer=spb.SessionDescription(type="offer", sdp=sdp))
        answers = [s.answer for s in self.signals if s.WhichOneof("message") == "answer"]
        self.peer = self.room.connect_peer(ice_ufrag(answers[-1].sdp) or "", self)
        assert self.peer is not None
        self.room.run_until_idle()
        return self

    def close(self) -> None:
        """Hang up the signal socket (the peer connection stays)."""
        assert self.link is not None
        self.link.close()
        self.link = None
        self.room.run_until_idle()

    def publish(self, packet: dpb.DataPacket | bytes, channel: Channel = Channel.RELIABLE) -> None:
        assert self.peer is not None
        data = packet if isinstance(packet, bytes) else packet.SerializeToString()
        self.peer.send(channel, data)
        self.room.run_until_idle()

    # -- reading ---------------------------------------------------------------------------------

    def kinds(self) -> list[str]:
        return [str(s.WhichOneof("message")) for s in self.signals]

    def take(self) -> list[spb.SignalResponse]:
        out, self.signals = self.signals, []
        return out

    def take_data(self) -> list[tuple[Channel, dpb.DataPacket]]:
        out, self.data = self.data, []
        self.raw.clear()
        return out

    def updates(self) -> list[list[tuple[str, int, int]]]:
        """Each ParticipantUpdate received, as [(identity, state, version)]."""
        return [
            [(p.identity, int(p.state), p.version) for p in s.update.participants]
            for s in self.signals
            if s.WhichOneof("message") == "update"
        ]
