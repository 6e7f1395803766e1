"""An adversarial participant, built from lkproto's own pieces, for the hostile-peer e2e tests.

The adversary joins like any client: it is an ordinary `lkproto.transports.anyio.Room`, so the
server sees a normal participant with a normal token. Once joined it stops using the core for
data and writes hand-crafted `DataPacket` bytes (built with the generated modules in
`lkproto._pb`) straight onto its own data channels, through the room's peer port:
`Room._session.peer.submit(SendDataPacket(...))`, the very call the shared pump makes for the core's
packets. That bypasses everything the core would check when sending (sequencing, the size
limit, stream and RPC framing), which is the point. Nothing in `transports/` is modified.

What the server does to those packets decides what can reach a victim. Facts from
livekit-server v1.13.5 (`pkg/rtc/participant.go`, `handleReceivedDataMessage`), each checked
by a test in `tests/e2e/test_adversarial_peer.py`:
- `DataPacket.participant_sid` is always overwritten with the sender's own sid.
- `DataPacket.participant_identity` is overwritten with the sender's identity (or "" for a
  hidden sender), and so are `UserPacket.participant_identity`/`participant_sid`. Exception:
  an *agent* participant keeps the identity it wrote on a text stream header and on a chat
  message (agents publish transcriptions on a user's behalf); its chunks and trailers are
  still overwritten.
- A reliable packet whose `sequence` is > 0 and not above the last one seen from that sender
  is dropped ("received out of order reliable data packet"); sequence 0 is never checked, and
  lossy packets are never checked. So duplicates and reordering reach a victim only with
  sequence 0 (reliable) or on the lossy channel.
- Transcriptions from non-agents and `metrics` packets are not forwarded.
- Each reliable packet is forwarded with its sequence unchanged.

The adversary numbers its reliable packets itself (`next_sequence`), starting above whatever
its core used, so the server accepts them; `send(..., sequence=n)` forces a number.
"""

from __future__ import annotations

import contextlib
import uuid
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio

from lkproto import commands as cmd
from lkproto._pb import data_pb2 as dpb
from lkproto.models import Channel
from lkproto.transports.anyio import Room, RoomOptions

__all__ = [
    "Adversary",
    "byte_header",
    "chunk",
    "deflate",
    "new_id",
    "rpc_ack",
    "rpc_request",
    "rpc_response",
    "text_header",
    "trailer",
    "user_packet",
    "zero_bomb",
]

_RELIABLE, _LOSSY = 0, 1  # DataPacket.Kind
_DEFLATE_RAW = 1  # DataStream.CompressionType


def deflate(data: bytes) -> bytes:
    """`data` as one raw RFC 1951 stream (wbits=-15), what DEFLATE_RAW streams carry."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def zero_bomb(size: int, *, piece: int = 1 << 20) -> bytes:
    """Raw deflate of `size` zero bytes, built piecewise (a 64 MB bomb never exists inflated,
    not even here): about 1/1030 of `size` on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(piece)
    out = [packer.compress(zeros) for _ in range(size // piece)]
    out.append(packer.compress(bytes(size % piece)))
    out.append(packer.flush())
    return b"".join(out)


def _header(
    stream_id: str,
    topic: str,
    *,
    total_length: int | None,
    inline: bytes | None,
    compressed: bool,
    attributes: Mapping[str, str] | None,
) -> dpb.DataStream.Header:
    header = dpb.DataStream.Header(
        stream_id=stream_id,
        topic=topic,
        timestamp=0,
        attributes=dict(attributes or {}),
    )
    if total_length is not None:
        header.total_length = total_length
    if inline is not None:
        header.inline_content = inline
    if compressed:
        header.compression = _DEFLATE_RAW  # type: ignore[assignment]
    return header


def text_header(
    stream_id: str,
    topic: str,
    *,
    total_length: int | None = None,
    inline: bytes | None = None,
    compressed: bool = False,
    attributes: Mapping[str, str] | None = None,
    identity: str = "",
) -> dpb.DataPacket:
    """A text stream header packet (`identity` is what the sender claims to be)."""
    header = _header(
        stream_id,
        topic,
        total_length=total_length,
        inline=inline,
        compressed=compressed,
        attributes=attributes,
    )
    header.mime_type = "text/plain"
    header.text_header.CopyFrom(dpb.DataStream.TextHeader())
    return dpb.DataPacket(participant_identity=identity, stream_header=header)


def byte_header(
    stream_id: str,
    topic: str,
    *,
    total_length: int | None = None,
    inline: bytes | None = None,
    compressed: bool = False,
    name: str = "blob",
    identity: str = "",
) -> dpb.DataPacket:
    """A byte stream header packet."""
    header = _header(
        stream_id,
        topic,
        total_length=total_length,
        inline=inline,
        compressed=compressed,
        attributes=None,
    )
    header.mime_type = "application/octet-stream"
    header.byte_header.CopyFrom(dpb.DataStream.ByteHeader(name=name))
    return dpb.DataPacket(participant_identity=identity, stream_header=header)


def chunk(stream_id: str, index: int, content: bytes, *, identity: str = "") -> dpb.DataPacket:
    return dpb.DataPacket(
        participant_identity=identity,
        stream_chunk=dpb.DataStream.Chunk(stream_id=stream_id, chunk_index=index, content=content),
    )


def trailer(stream_id: str, reason: str = "", *, identity: str = "") -> dpb.DataPacket:
    return dpb.DataPacket(
        participant_identity=identity,
        stream_trailer=dpb.DataStream.Trailer(stream_id=stream_id, reason=reason),
    )


def user_packet(
    payload: bytes, *, topic: str | None = None, identity: str = "", sid: str = ""
) -> dpb.DataPacket:
    """A UserPacket claiming `identity`/`sid` in both the packet and the UserPacket."""
    user = dpb.UserPacket(payload=payload, participant_identity=identity, participant_sid=sid)
    if topic is not None:
        user.topic = topic
    return dpb.DataPacket(participant_identity=identity, participant_sid=sid, user=user)


def rpc_request(
    request_id: str,
    method: str,
    payload: str = "",
    *,
    response_timeout_ms: int = 10_000,
    version: int = 1,
    identity: str = "",
) -> dpb.DataPacket:
    request = dpb.RpcRequest(
        id=request_id,
        method=method,
        payload=payload,
        response_timeout_ms=response_timeout_ms,
        version=version,
    )
    return dpb.DataPacket(participant_identity=identity, rpc_request=request)


def rpc_ack(request_id: str, *, identity: str = "") -> dpb.DataPacket:
    return dpb.DataPacket(participant_identity=identity, rpc_ack=dpb.RpcAck(request_id=request_id))


def rpc_response(
    request_id: str,
    payload: str | None = None,
    *,
    error: tuple[int, str] | None = None,
    identity: str = "",
) -> dpb.DataPacket:
    response = dpb.RpcResponse(request_id=request_id)
    if error is not None:
        response.error.CopyFrom(dpb.RpcError(code=error[0], message=error[1]))
    else:
        response.payload = payload or ""
    return dpb.DataPacket(participant_identity=identity, rpc_response=response)


class Adversary:
    """A joined lkproto Room that sends raw DataPackets. Build it with `Adversary.joined`."""

    def __init__(self, room: Room, *, target: Sequence[str] = ()) -> None:
        self.room = room
        #: Default `destination_identities` of every packet (the victim): keeps the flood
        #: away from the other participants, whose job is to be the control.
        self.target = tuple(target)
        conn = room.connection
        assert conn is not None
        # Above anything the core sent, so the server's "sequence > last" check passes.
        self._sequence = conn.next_sequence + 1000
        #: Packets handed to the data channel, per channel.
        self.sent: dict[Channel, int] = {Channel.RELIABLE: 0, Channel.LOSSY: 0}

    @classmethod
    @contextlib.asynccontextmanager
    async def joined(
        cls,
        url: str,
        token: str,
        options: RoomOptions,
        *,
        target: Sequence[str] = (),
        room: Room | None = None,
    ) -> AsyncIterator[Adversary]:
        room = room or Room()
        await room.connect(url, token, options)
        try:
            adversary = cls(room, target=target)
            await adversary.wait_channel(Channel.LOSSY)
            yield adversary
        finally:
            await room.disconnect()

    # -- identity ------------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return self.room.local_participant.identity

    @property
    def sid(self) -> str:
        return self.room.local_participant.sid

    @property
    def max_message_size(self) -> int:
        """The largest message the channel takes (min of ours and the server's SCTP limit)."""
        conn = self.room.connection
        assert conn is not None
        return conn.max_data_message_size

    def next_sequence(self) -> int:
        """Consume and return the next reliable sequence number."""
        self._sequence += 1
        return self._sequence

    # -- sending -------------------------------------------------------------------------------

    async def wait_channel(self, channel: Channel, timeout: float = 15) -> None:
        """Wait (bounded) until our sending `channel` is open."""
        with anyio.fail_after(timeout):
            while channel not in self.room._session.channels_open:
                await anyio.sleep(0.02)

    async def send(
        self,
        packet: dpb.DataPacket,
        *,
        channel: Channel = Channel.RELIABLE,
        sequence: int | None = None,
        destinations: Sequence[str] | None = None,
    ) -> int:
        """Stamp `packet` (kind, sequence, destinations) and send it raw; returns the sequence.

        Reliable packets get the next sequence unless `sequence` forces one (0 included);
        lossy packets carry 0 unless forced. Destinations default to `target`.
        """
        if sequence is None:
            sequence = self.next_sequence() if channel is Channel.RELIABLE else 0
        packet.kind = _RELIABLE if channel is Channel.RELIABLE else _LOSSY  # type: ignore[assignment]
        packet.sequence = sequence
        if not packet.destination_identities:
            packet.destination_identities.extend(
                self.target if destinations is None else destinations
            )
        await self.send_bytes(packet.SerializeToString(), channel=channel)
        return sequence

    async def send_bytes(self, data: bytes, *, channel: Channel = Channel.RELIABLE) -> None:
        """Write `data` as one data channel message, then wait while the channel is backed up.

        Refuses messages over the channel limit: one would abort the SCTP association (the
        victim never sees it; the adversary's own connection would be the casualty).
        """
        if len(data) > self.max_message_size:
            raise ValueError(f"{len(data)} bytes: over the {self.max_message_size}-byte limit")
        if channel not in self.room._session.channels_open:
            raise RuntimeError(f"the adversary's {channel.value} channel is not open")
        peer = self.room._session.peer
        assert peer is not None
        peer.submit(cmd.SendDataPacket(channel=channel, data=data))
        self.sent[channel] += 1
        await self.room._session.wait_writable(channel)

    async def drain(self, timeout: float = 10) -> None:
        """Wait (bounded) until everything sent was acknowledged by the server."""
        peer = self.room._session.peer
        assert peer is not None
        await peer.drain(timeout)


def new_id() -> str:
    return uuid.uuid4().hex
