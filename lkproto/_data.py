"""Data packets on the `_reliable` and `_lossy` channels: framing, sequencing, replay, de-dup.

Theory of operation (protocol-reference A.1-A.7):
- Every reliable packet (user data sent reliably, DTMF, RPC and data stream packets)
  shares one sequence space. `DataPacket.sequence` starts at 1 and increments per packet; the
  server drops a packet whose sequence is not above the last one it saw from us, so a number
  is consumed only once the packet is certain to be sent (after the size check). Lossy packets
  carry sequence 0.
- A message bigger than the channel limit can abort the SCTP association, so the limit,
  min(`Config.max_data_message_size`, the remote `a=max-message-size`), is checked before
  sending; over it is a `DataPacketTooLargeError` and nothing else changes. A multi-packet
  send (a data stream) is checked whole, size and queue room, before any of it is sent.
- Sent reliable packets are kept in a replay buffer bounded by `Config.replay_buffer_bytes`
  (oldest evicted). On a resume the server reports `ReconnectResponse.last_message_seq`; the
  buffer is trimmed to the packets after it, which are re-sent in order before anything newer.
- The buffer is also trimmed as packets reach the server: each `SendDataPacket` carries its
  sequence (0 for lossy packets), and the adapter, once the server's SCTP stack has
  cumulatively acknowledged the last chunk of that message (RFC 9260 section 6.2: the SACK's
  cumulative TSN ack), reports `reliable_delivered(sequence)`: the server holds every
  reliable packet up to it, so none of them will ever be replayed (a resume's
  `last_message_seq` would name them, and a full reconnect carries over only what the server
  lacks). Without such reports (an adapter that cannot see SACKs) the byte bound alone
  applies. A report is taken only while the reliable channel is open and for a sequence
  already issued: one from the association a full reconnect replaced (sequencing restarts
  at 1) arrives, if at all, before the new channel opens, and must not trim the new session.
- While a channel is not open, packets wait in a per-channel queue bounded by
  `Config.max_queued_send_bytes` instead of failing (a send-before-ready race every other SDK
  shipped).
- Packets received on the reliable channel are de-duplicated per sender SID by sequence (a
  resume can replay packets we already have); lossy ones never are (unordered, never
  replayed, and their sequence must not advance the reliable state). An entry is forgotten
  after `Config.dedup_ttl` seconds without traffic, and at most `Config.max_dedup_senders`
  senders are tracked.
- Encoding and decoding sit side by side: `user_packet`, `dtmf_packet` and
  `transcription_packet` build what `DataSender` sends; `DataReceiver` turns what arrives into
  events. It parses, de-duplicates, then dispatches on the packet's `value` oneof through two
  tables: `routes`, where other parts claim the kinds they handle (the streams and RPC glue
  claims stream and RPC packets; data tracks or E2EE would claim theirs), and `DECODERS`, the
  literal table of kinds that become one event each (user data, DTMF, transcriptions, chat,
  and the reports for encrypted and empty packets). Any other kind is reported as
  `PacketDropped(reason="unsupported")`: a malformed or unknown packet is never fatal.
- End-to-end encryption plugs in at two seams (`_encryption.Encryption`): `DataSender.seal`
  turns each stamped packet into what is actually sent (so the size check, the queue and the
  replay buffer all see the encrypted bytes), and `DataReceiver.filter` takes every packet
  after de-duplication and hands it to `DataReceiver.dispatch` (decrypted, now or once its
  sender's ratchets are derived) with the `Encryption.Type` it arrived under.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from lkproto import events as ev
from lkproto._context import Context
from lkproto._pb import data_pb2 as dpb
from lkproto.commands import SendDataPacket
from lkproto.config import Config
from lkproto.e2ee import EncryptionType
from lkproto.errors import DataPacketTooLargeError, LocalProtocolError
from lkproto.models import Channel

__all__ = [
    "DECODERS",
    "DataReceiver",
    "DataSender",
    "Deduplicator",
    "PacketFilter",
    "PacketRoute",
    "Seal",
    "dtmf_packet",
    "transcription_packet",
    "user_packet",
]

KIND_RELIABLE = 0
KIND_LOSSY = 1

#: What turns a stamped packet into the one sent (E2EE), given the verb's name for errors.
Seal = Callable[[dpb.DataPacket, str], dpb.DataPacket]


class DataSender:
    """Assigns sequence numbers, enforces the size limit, queues and replays."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.next_sequence = 1
        self._replay: deque[tuple[int, bytes]] = deque()
        self._replay_bytes = 0
        self._queued: dict[Channel, deque[tuple[int, bytes]]] = {
            Channel.RELIABLE: deque(),
            Channel.LOSSY: deque(),
        }
        self._queued_bytes = 0
        self._open: set[Channel] = set()
        self.remote_max_message_size = 0  # 0 = unknown / no limit from the SDP
        self.seal: Seal | None = None  # E2EE: what is sent instead of the stamped packet

    @property
    def max_message_size(self) -> int:
        remote = self.remote_max_message_size
        limit = self.config.max_data_message_size
        return min(limit, remote) if remote > 0 else limit

    def encode(
        self, packet: dpb.DataPacket, *, reliable: bool, call: str
    ) -> tuple[Channel, bytes, int]:
        """Stamp kind and the next sequence, serialize, check the size. Changes nothing.

        Returns (channel, bytes, sequence); pass them to `send`, which consumes the sequence.
        """
        sequence = self.next_sequence if reliable else 0
        return (
            (Channel.RELIABLE if reliable else Channel.LOSSY),
            self._stamp(packet, reliable=reliable, sequence=sequence, call=call),
            sequence,
        )

    def publish(self, packet: dpb.DataPacket, *, reliable: bool, call: str) -> list[SendDataPacket]:
        """`encode` then `send`: the commands to send one packet now (or [] if queued)."""
        channel, data, sequence = self.encode(packet, reliable=reliable, call=call)
        return self.send(channel, data, sequence=sequence, call=call)

    def _stamp(self, packet: dpb.DataPacket, *, reliable: bool, sequence: int, call: str) -> bytes:
        packet.kind = KIND_RELIABLE if reliable else KIND_LOSSY  # type: ignore[assignment]
        packet.sequence = sequence
        if self.seal is not None:
            packet = self.seal(packet, call)
        data = packet.SerializeToString()
        if len(data) > self.max_message_size:
            raise DataPacketTooLargeError(size=len(data), limit=self.max_message_size, call=call)
        return data

    def _check_room(self, channel: Channel, nbytes: int, call: str) -> bool:
        """Whether sending on `channel` must queue; raises if the queue has no room for it."""
        must_queue = channel not in self._open or bool(self._queued[channel])
        if must_queue and self._queued_bytes + nbytes > self.config.max_queued_send_bytes:
            raise LocalProtocolError(
                f"{call}: the {channel.value} channel is not open and its send queue is full "
                f"({self._queued_bytes} bytes queued, {nbytes} more would pass the limit of "
                f"{self.config.max_queued_send_bytes})",
                call=call,
                state="channel not open",
            )
        return must_queue

    def send(
        self, channel: Channel, data: bytes, *, sequence: int, call: str
    ) -> list[SendDataPacket]:
        """Commands to send `data` now, or [] if it was queued behind a closed channel.

        Raises `LocalProtocolError` (changing nothing) if it would have to queue and the queue is
        full. Otherwise a reliable packet's sequence number is consumed here.
        """
        must_queue = self._check_room(channel, len(data), call)
        if sequence > 0:
            assert sequence == self.next_sequence, "encode() and send() must pair up"
            self.next_sequence += 1
            self._remember(sequence, data)
        if not must_queue:
            return [SendDataPacket(channel=channel, data=data, sequence=sequence)]
        self._queued[channel].append((sequence, data))
        self._queued_bytes += len(data)
        return []

    def send_reliable(
        self, packets: Sequence[dpb.DataPacket], *, call: str
    ) -> list[SendDataPacket]:
        """Send `packets` on the reliable channel, in order, all or nothing.

        For a data stream (header, chunks, trailer) or an RPC v2 stream: every packet is
        stamped and size-checked, and the queue's room checked for all of them together,
        before any sequence number is consumed, so a stream is never sent in part. Raises
        `DataPacketTooLargeError` or `LocalProtocolError`, changing nothing.
        """
        base = self.next_sequence
        encoded = [
            self._stamp(packet, reliable=True, sequence=base + offset, call=call)
            for offset, packet in enumerate(packets)
        ]
        self._check_room(Channel.RELIABLE, sum(len(data) for data in encoded), call)
        out: list[SendDataPacket] = []
        for offset, data in enumerate(encoded):
            out += self.send(Channel.RELIABLE, data, sequence=base + offset, call=call)
        return out

    def _remember(self, sequence: int, data: bytes) -> None:
        self._replay.append((sequence, data))
        self._replay_bytes += len(data)
        while self._replay_bytes > self.config.replay_buffer_bytes and self._replay:
            _, old = self._replay.popleft()
            self._replay_bytes -= len(old)

    def channel_opened(self, channel: Channel) -> list[SendDataPacket]:
        """The channel is open: flush what waited for it, in order."""
        self._open.add(channel)
        out = [
            SendDataPacket(channel=channel, data=d, sequence=seq)
            for seq, d in self._queued[channel]
        ]
        self._queued_bytes -= sum(len(d) for _, d in self._queued[channel])
        self._queued[channel].clear()
        return out

    def channel_closed(self, channel: Channel) -> None:
        self._open.discard(channel)

    def reliable_delivered(self, sequence: int) -> None:
        """The server has every reliable packet up to and including `sequence` (the adapter saw
        its SCTP message cumulatively acknowledged): none of them needs replaying.

        Ignored while the reliable channel is not open and for a sequence not yet issued
        (an acknowledgement from the association a full reconnect replaced).
        """
        if Channel.RELIABLE not in self._open or sequence >= self.next_sequence:
            return
        self._drop_through(sequence)

    def _drop_through(self, sequence: int) -> None:
        """Forget the replay entries up to and including `sequence`."""
        replay = self._replay
        while replay and replay[0][0] <= sequence:
            _, old = replay.popleft()
            self._replay_bytes -= len(old)

    def resume(self, last_message_seq: int) -> list[SendDataPacket]:
        """After a resume: drop what the server has, then replay the rest before anything new.

        Reliable packets queued while disconnected are behind the replay in the same channel
        queue, so "every send waits its turn" holds. Returns the packets to send now if the
        reliable channel is open; otherwise they are queued.
        """
        self._drop_through(last_message_seq)
        # Every sequenced packet, queued or sent, is in the replay buffer unless evicted by its
        # byte bound (oldest first); merge both and send in sequence order.
        replayed = {seq for seq, _ in self._replay}
        queue = self._queued[Channel.RELIABLE]
        kept = [(seq, d) for seq, d in queue if seq not in replayed and seq > last_message_seq]
        self._queued_bytes -= sum(len(d) for _, d in queue)
        queue.clear()
        queue.extend(sorted([*self._replay, *kept]))
        self._queued_bytes += sum(len(d) for _, d in queue)
        if Channel.RELIABLE in self._open:
            return self.channel_opened(Channel.RELIABLE)
        return []

    def unacknowledged(self, last_message_seq: int) -> list[bytes]:
        """The sent (or queued) reliable packets after `last_message_seq`, oldest first."""
        return [data for seq, data in self._replay if seq > last_message_seq]

    def unsent(self) -> list[bytes]:
        """The reliable packets still queued (never handed to a channel), oldest first."""
        return [data for _, data in self._queued[Channel.RELIABLE]]

    def reset(self) -> None:
        """A full reconnect: a new session, so sequencing and replay start over."""
        self.next_sequence = 1
        self._replay.clear()
        self._replay_bytes = 0
        for queue in self._queued.values():
            queue.clear()
        self._queued_bytes = 0
        self._open.clear()

    @property
    def replay_sequences(self) -> list[int]:
        return [seq for seq, _ in self._replay]

    @property
    def replay_bytes(self) -> int:
        """Bytes of packets in the replay buffer (at most `Config.replay_buffer_bytes`)."""
        return self._replay_bytes


class Deduplicator:
    """Drops reliable packets already seen from a sender SID (by sequence), with a TTL."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._last: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def is_duplicate(self, sender_sid: str, sequence: int, now: float) -> bool:
        if sequence <= 0 or not sender_sid:
            return False  # unsequenced: lossy, server-originated or an old server (F.4)
        entry = self._last.get(sender_sid)
        if entry is not None and now - entry[1] <= self.config.dedup_ttl and sequence <= entry[0]:
            return True
        self._last[sender_sid] = (sequence, now)
        self._last.move_to_end(sender_sid)
        while len(self._last) > self.config.max_dedup_senders:
            self._last.popitem(last=False)
        return False

    def receive_states(self) -> dict[str, int]:
        """`SyncState.datachannel_receive_states`: the last sequence per sender SID."""
        return {sid: seq for sid, (seq, _) in self._last.items()}

    def forget(self, sender_sid: str) -> None:
        self._last.pop(sender_sid, None)

    def reset(self) -> None:
        self._last.clear()


# -- encoding ---------------------------------------------------------------------------------


def user_packet(
    payload: bytes, *, identity: str, destinations: Sequence[str], topic: str | None
) -> dpb.DataPacket:
    """A user data packet (`UserPacket`), addressed in both the packet and the user part."""
    # Built in place: keyword construction of the two messages costs four times as much,
    # and this runs for every `publish_data`.
    packet = dpb.DataPacket()
    user = packet.user
    user.SetInParent()  # `user` even when every field of it is empty
    user.payload = payload
    user.participant_identity = identity
    if destinations:
        user.destination_identities.extend(destinations)
        packet.destination_identities.extend(destinations)
    if topic is not None:
        user.topic = topic
    return packet


def dtmf_packet(code: int, digit: str, destinations: Sequence[str]) -> dpb.DataPacket:
    return dpb.DataPacket(
        sip_dtmf=dpb.SipDTMF(code=code, digit=digit), destination_identities=destinations
    )


def transcription_packet(
    transcribed_participant_identity: str,
    track_id: str,
    segments: Sequence[ev.TranscriptionSegment],
) -> dpb.DataPacket:
    return dpb.DataPacket(
        transcription=dpb.Transcription(
            transcribed_participant_identity=transcribed_participant_identity,
            track_id=track_id,
            segments=[
                dpb.TranscriptionSegment(
                    id=s.id,
                    text=s.text,
                    start_time=s.start_time,
                    end_time=s.end_time,
                    final=s.final,
                    language=s.language,
                )
                for s in segments
            ],
        )
    )


# -- decoding ---------------------------------------------------------------------------------


def _user(packet: dpb.DataPacket, sender: str, channel: Channel, encryption: int) -> ev.Event:
    user = packet.user
    return ev.DataReceived(
        payload=user.payload,
        participant_identity=sender or user.participant_identity,
        participant_sid=packet.participant_sid or user.participant_sid,
        topic=user.topic if user.HasField("topic") else None,
        channel=channel,
        destination_identities=tuple(packet.destination_identities)
        or tuple(user.destination_identities),
        encryption_type=EncryptionType(encryption),
    )


def _dtmf(packet: dpb.DataPacket, sender: str, channel: Channel, encryption: int) -> ev.Event:
    return ev.SipDtmfReceived(
        code=packet.sip_dtmf.code, digit=packet.sip_dtmf.digit, participant_identity=sender
    )


def _transcription(
    packet: dpb.DataPacket, sender: str, channel: Channel, encryption: int
) -> ev.Event:
    t = packet.transcription
    return ev.TranscriptionReceived(
        participant_identity=sender,
        transcribed_participant_identity=t.transcribed_participant_identity,
        track_id=t.track_id,
        segments=tuple(
            ev.TranscriptionSegment(
                id=s.id,
                text=s.text,
                start_time=s.start_time,
                end_time=s.end_time,
                final=s.final,
                language=s.language,
            )
            for s in t.segments
        ),
    )


def _chat(packet: dpb.DataPacket, sender: str, channel: Channel, encryption: int) -> ev.Event:
    c = packet.chat_message
    return ev.ChatMessageReceived(
        participant_identity=sender,
        id=c.id,
        timestamp=c.timestamp,
        message=c.message,
        edit_timestamp=c.edit_timestamp if c.HasField("edit_timestamp") else None,
        deleted=c.deleted,
        generated=c.generated,
    )


def _encrypted(packet: dpb.DataPacket, sender: str, channel: Channel, encryption: int) -> ev.Event:
    return ev.PacketDropped(
        reason="encrypted",
        channel=channel,
        detail="E2EE is not configured",
        participant_identity=sender,
    )


def _empty(packet: dpb.DataPacket, sender: str, channel: Channel, encryption: int) -> ev.Event:
    return ev.PacketDropped(reason="empty", channel=channel, participant_identity=sender)


def _unsupported(
    packet: dpb.DataPacket, sender: str, channel: Channel, encryption: int
) -> ev.Event:
    kind = packet.WhichOneof("value")
    return ev.PacketDropped(
        reason="unsupported", channel=channel, detail=kind or "", participant_identity=sender
    )


#: Packet kinds (`DataPacket.value`, None for a packet without one) that become one event:
#: (packet, sender identity, channel, the `Encryption.Type` it arrived under) -> the event.
DECODERS: dict[str | None, Callable[[dpb.DataPacket, str, Channel, int], ev.Event]] = {
    "user": _user,
    "sip_dtmf": _dtmf,
    "transcription": _transcription,
    "chat_message": _chat,
    "encrypted_packet": _encrypted,
    None: _empty,
}

#: A part's handler for the packet kinds it claims: (packet, sender identity, channel, now,
#: the `Encryption.Type` it arrived under: 0 in clear, 1 decrypted from AES-GCM).
PacketRoute = Callable[[dpb.DataPacket, str, Channel, float, int], None]
#: What takes every packet after de-duplication when set (E2EE): (packet, channel, now). It
#: hands each on to `DataReceiver.dispatch`, at once or later, or drops it with an event.
PacketFilter = Callable[[dpb.DataPacket, Channel, float], None]


class DataReceiver:
    """Decodes data channel messages into events, or hands them to the part that claimed
    their kind. Never raises for what a peer sent."""

    __slots__ = ("_ctx", "_dedup", "filter", "routes")

    def __init__(self, ctx: Context, dedup: Deduplicator) -> None:
        self._ctx = ctx
        self._dedup = dedup
        self.routes: dict[str, PacketRoute] = {}
        self.filter: PacketFilter | None = None

    def receive(self, data: bytes, *, channel: Channel, now: float) -> None:
        events = self._ctx.events
        try:
            packet = dpb.DataPacket.FromString(bytes(data))
        except Exception as exc:  # DecodeError and friends: never crash on peer input
            events.append(ev.PacketDropped(reason="malformed", channel=channel, detail=str(exc)))
            return
        # Only the reliable channel is de-duplicated: it is ordered and replayed on a resume.
        # The lossy one is unordered, so "not above the last" would drop reordered packets,
        # and a sequence stamped on a lossy packet must not hide the sender's next reliable
        # ones (client-sdk-js shares one state for both channels; client-sdk-flutter does not).
        if channel is Channel.RELIABLE and self._dedup.is_duplicate(
            packet.participant_sid, packet.sequence, now
        ):
            events.append(
                ev.PacketDropped(
                    reason="duplicate",
                    channel=channel,
                    detail=f"sequence {packet.sequence}",
                    participant_identity=packet.participant_identity,
                )
            )
            return
        if self.filter is not None:
            self.filter(packet, channel, now)
        else:
            self.dispatch(packet, channel, now)

    def dispatch(
        self, packet: dpb.DataPacket, channel: Channel, now: float, encryption: int = 0
    ) -> None:
        """Hand a parsed, de-duplicated (and decrypted) packet to its route or decoder."""
        kind = packet.WhichOneof("value")
        sender = packet.participant_identity
        route = self.routes.get(kind) if kind is not None else None
        if route is not None:
            route(packet, sender, channel, now, encryption)
            return
        event = DECODERS.get(kind, _unsupported)(packet, sender, channel, encryption)
        self._ctx.events.append(event)
