"""Frames to packets and back: the data-track packetizer and depacketizer, without I/O.

Theory of operation (protocol-reference-2 1.6; rust-sdks `local/packetizer.rs`,
`remote/depacketizer.rs`, client-sdk-js `packetizer.ts`, `depacketizer.ts`):

- Packetizer, one per published track. A frame becomes ceil(len / (mtu - header)) packets of
  at most `mtu` bytes (16 000 by default, Rust `TRANSPORT_MTU`: under the data channel's
  message limit). All packets of a frame share the frame number, the timestamp and the same
  extensions (the E2EE IV and the user timestamp are repeated on each); each takes the next
  sequence number. Markers: SINGLE for one packet, else START, INTER..., FINAL. Sequence and
  frame counters start at 0 and wrap at 2^16. An empty frame yields no packets but still
  consumes a frame number (Rust and JS both number the frame first). The 90 kHz timestamp is
  `timestamp_base` + (now - epoch) · 90 000, wrapping at 2^32 and forced monotonic in
  wrap-around order (Rust `Clock`); the SDKs draw the base at random, here it is injected.
- Depacketizer, one per subscription. A SINGLE packet is a frame at once. Other packets are
  gathered per frame number in a partial frame; the frame is complete when its START and
  FINAL are known and every sequence number between them (wrapping at 2^16) is present, in
  whatever order they arrived: the `_data_track` channel is unordered, so a frame is
  reassembled even when its START is not first or its FINAL not last. Rust and JS are
  stricter (a packet before its START is dropped as UnknownFrame, a FINAL before the middle
  completes nothing); the loss outcomes for in-order delivery are the same. Extensions and
  the timestamp come from the START packet. A duplicate sequence number replaces the earlier
  payload (the latest wins, as in Rust and JS) and does not count twice.
- Bounds, each reported as a `DroppedFrame`, never raised:
  - `max_partial_frames` (default 1, the SDKs' default, Python's
    `set_pipeline_options(max_partial_frames=...)`): a packet of a new frame number, or a
    SINGLE, while that many partial frames are held evicts the oldest. The reason says how far
    it got: UNKNOWN_FRAME (its START never arrived), INTERRUPTED (START but no FINAL) or
    INCOMPLETE (both, with a gap).
  - `max_packets_per_frame` (128, Rust/JS `MAX_BUFFER_PACKETS`): one more distinct packet,
    or a START..FINAL span longer than that, drops the frame (BUFFER_FULL). The largest frame
    an official receiver reassembles is therefore 128 x 15 960 bytes (both extensions).
  - `max_remembered_frames` (64, ours): frame numbers of frames that completed or were
    dropped are remembered, so that a late or duplicated packet of one is dropped at once
    (UNKNOWN_FRAME) instead of opening a partial frame that would evict the frame in progress.
    Frame numbers come back only after 65 536 frames.
  - A START or FINAL that disagrees with the one already held for its frame number means the
    number was reused (a publisher restart, or garbage): the old partial frame is dropped and
    the packet begins a new one.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict

import attrs

from lkproto._datatrack_packet import (
    MAX_HEADER_SIZE,
    TIMESTAMP_RATE,
    DataTrackPacket,
    E2eeExtension,
    FrameMarker,
    header_size,
    to_bytes,
)
from lkproto._repr import plain_repr

__all__ = [
    "DEFAULT_MAX_PACKETS_PER_FRAME",
    "DEFAULT_MAX_PARTIAL_FRAMES",
    "DEFAULT_MAX_REMEMBERED_FRAMES",
    "TRANSPORT_MTU",
    "AssembledFrame",
    "Depacketizer",
    "DroppedFrame",
    "FrameDropReason",
    "Packetizer",
]

TRANSPORT_MTU = 16_000
DEFAULT_MAX_PARTIAL_FRAMES = 1
DEFAULT_MAX_PACKETS_PER_FRAME = 128
DEFAULT_MAX_REMEMBERED_FRAMES = 64
_U16, _U32 = 0xFFFF, 0xFFFF_FFFF


def _positive(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int of at least {minimum}: {value!r}")
    return value


class Packetizer:
    """Cuts one track's frames into packets (module docstring). Not thread-safe."""

    def __init__(
        self,
        handle: int,
        *,
        mtu: int = TRANSPORT_MTU,
        epoch: float = 0.0,
        timestamp_base: int = 0,
    ) -> None:
        """Args:
        handle: the track's `pub_handle`, 1..65535.
        mtu: the largest packet, header included; above 40 so that every header fits.
        epoch: the `now` at which the timestamp equals `timestamp_base`.
        timestamp_base: the timestamp at `epoch`, u32 (the SDKs draw it at random).

        Raises ValueError for a value out of range.
        """
        if isinstance(handle, bool) or not isinstance(handle, int) or not 0 < handle <= _U16:
            raise ValueError(f"handle must be in 1..65535: {handle!r}")
        self.handle = handle
        self.mtu = _positive("mtu", mtu, MAX_HEADER_SIZE + 1)
        if not math.isfinite(epoch):
            raise ValueError(f"epoch must be a finite number: {epoch!r}")
        self.epoch = float(epoch)
        if not isinstance(timestamp_base, int) or not 0 <= timestamp_base <= _U32:
            raise ValueError(f"timestamp_base must be a u32: {timestamp_base!r}")
        self._base = timestamp_base
        self._previous = timestamp_base
        #: The sequence number of the next packet.
        self.sequence = 0
        #: The frame number of the next frame.
        self.frame_number = 0

    def clock(self, now: float) -> int:
        """The 90 kHz timestamp for `now`, never before the previous one (wrap-aware)."""
        ticks = math.floor((now - self.epoch) * TIMESTAMP_RATE + 0.5)
        stamp = (self._base + ticks) & _U32
        if (stamp - self._previous) & _U32 >= 0x8000_0000:  # before it, in wrap-around order
            stamp = self._previous
        self._previous = stamp
        return stamp

    def max_payload(self, *, user_timestamp: bool, e2ee: bool) -> int:
        """Payload bytes per packet for a frame with these extensions."""
        return self.mtu - header_size(user_timestamp=user_timestamp, e2ee=e2ee)

    def packet_count(self, size: int, *, user_timestamp: bool, e2ee: bool) -> int:
        """How many packets a frame of `size` bytes needs (0 for an empty frame)."""
        return -(-size // self.max_payload(user_timestamp=user_timestamp, e2ee=e2ee))

    def packetize(
        self,
        payload: bytes | bytearray | memoryview,
        *,
        timestamp: int,
        user_timestamp: int | None = None,
        e2ee: E2eeExtension | None = None,
    ) -> list[DataTrackPacket]:
        """The packets of one frame, in order; `timestamp` is usually `clock(now)`.

        Consumes one frame number and one sequence number per packet. Raises TypeError or
        ValueError (consuming nothing) for a payload that is not bytes-like or an extension or
        timestamp out of range.
        """
        data = to_bytes(payload)
        step = self.max_payload(user_timestamp=user_timestamp is not None, e2ee=e2ee is not None)
        count = -(-len(data) // step)
        # Build the first packet before touching a counter, so bad values change nothing.
        template = DataTrackPacket(
            marker=FrameMarker.SINGLE,
            handle=self.handle,
            sequence=self.sequence,
            frame_number=self.frame_number,
            timestamp=timestamp,
            user_timestamp=user_timestamp,
            e2ee=e2ee,
        )
        self.frame_number = (self.frame_number + 1) & _U16
        packets: list[DataTrackPacket] = []
        for index in range(count):
            if count == 1:
                marker = FrameMarker.SINGLE
            elif index == 0:
                marker = FrameMarker.START
            elif index == count - 1:
                marker = FrameMarker.FINAL
            else:
                marker = FrameMarker.INTER
            packets.append(
                attrs.evolve(
                    template,
                    marker=marker,
                    sequence=self.sequence,
                    payload=data[index * step : (index + 1) * step],
                )
            )
            self.sequence = (self.sequence + 1) & _U16
        return packets


class FrameDropReason(enum.Enum):
    """Why a frame was not delivered (Rust/JS `DepacketizerDropReason`, plus ours)."""

    INTERRUPTED = "interrupted"  #: evicted by a newer frame: START seen, FINAL not yet
    UNKNOWN_FRAME = "unknown_frame"  #: its START never arrived, or the frame already ended
    BUFFER_FULL = "buffer_full"  #: more packets than `max_packets_per_frame`
    INCOMPLETE = "incomplete"  #: START and FINAL seen, a packet between them missing
    MISSING_E2EE = "missing_e2ee"  #: (manager) no E2EE extension on an encrypted track
    #: (session) an encrypted frame that did not decrypt with the publisher's key
    DECRYPTION_FAILED = "decryption_failed"
    #: (session) no room to hold an encrypted frame while its key's ratchets are derived
    E2EE_BACKLOG = "e2ee_backlog"


@attrs.frozen(kw_only=True)
@plain_repr
class AssembledFrame:
    """A complete frame: the payload, and what its START (or SINGLE) packet carried."""

    frame_number: int
    payload: bytes = attrs.field(repr=lambda p: f"<{len(p)} B>")
    timestamp: int
    user_timestamp: int | None = None
    e2ee: E2eeExtension | None = None


@attrs.frozen(kw_only=True)
@plain_repr
class DroppedFrame:
    """A frame that will not be delivered; `received` packets of it were held (`expected`
    when both its START and FINAL were seen)."""

    frame_number: int
    reason: FrameDropReason
    received: int = 0
    expected: int | None = None
    detail: str = ""


DepacketizerOutput = AssembledFrame | DroppedFrame


@attrs.define
@plain_repr
class _Partial:
    start: int | None = None
    end: int | None = None
    payloads: dict[int, bytes] = attrs.Factory(dict)
    timestamp: int = 0
    user_timestamp: int | None = None
    e2ee: E2eeExtension | None = None

    def span(self) -> int | None:
        if self.start is None or self.end is None:
            return None
        return ((self.end - self.start) & _U16) + 1


class Depacketizer:
    """Reassembles one subscription's frames (module docstring). Never raises for packets."""

    def __init__(
        self,
        *,
        max_partial_frames: int = DEFAULT_MAX_PARTIAL_FRAMES,
        max_packets_per_frame: int = DEFAULT_MAX_PACKETS_PER_FRAME,
        max_remembered_frames: int = DEFAULT_MAX_REMEMBERED_FRAMES,
    ) -> None:
        """Raises ValueError for a bound below 1."""
        self._max_partial_frames = _positive("max_partial_frames", max_partial_frames)
        self.max_packets_per_frame = _positive("max_packets_per_frame", max_packets_per_frame)
        self.max_remembered_frames = _positive("max_remembered_frames", max_remembered_frames)
        self._partials: dict[int, _Partial] = {}  # insertion order: oldest first
        self._ended: OrderedDict[int, None] = OrderedDict()

    @property
    def max_partial_frames(self) -> int:
        """Frames reassembled at once (a new one evicts the oldest partial frame)."""
        return self._max_partial_frames

    @property
    def partial_frames(self) -> tuple[int, ...]:
        """Frame numbers being assembled, oldest first."""
        return tuple(self._partials)

    @property
    def buffered_packets(self) -> int:
        """Packets held in partial frames."""
        return sum(len(p.payloads) for p in self._partials.values())

    @property
    def remembered_frames(self) -> int:
        """Ended frame numbers remembered now (their late packets are dropped)."""
        return len(self._ended)

    def set_max_partial_frames(self, value: int) -> list[DroppedFrame]:
        """Change the bound; partial frames over it are evicted at once, oldest first."""
        self._max_partial_frames = _positive("max_partial_frames", value)
        out: list[DroppedFrame] = []
        while len(self._partials) > self._max_partial_frames:
            out.append(self._evict_oldest("max_partial_frames was lowered"))
        return out

    def reset(self, detail: str = "reset") -> list[DroppedFrame]:
        """Drop every partial frame (reported) and forget every ended frame number."""
        out = [self._evict_oldest(detail) for _ in range(len(self._partials))]
        self._ended.clear()
        return out

    def push(self, packet: DataTrackPacket) -> list[DepacketizerOutput]:
        """Take one packet; returns the frames it dropped (first) and completed (last)."""
        number = packet.frame_number
        partial = self._partials.get(number)
        if partial is None and number in self._ended:
            detail = "a packet of a frame that already ended (late or duplicated)"
            return [
                DroppedFrame(
                    frame_number=number,
                    reason=FrameDropReason.UNKNOWN_FRAME,
                    received=1,
                    detail=detail,
                )
            ]
        out: list[DepacketizerOutput] = []
        if packet.marker is FrameMarker.SINGLE:
            if partial is not None:
                del self._partials[number]
                out.append(self._dropped(number, partial, "its frame number was reused"))
            out += self._make_room(number)
            self._end(number)
            out.append(
                AssembledFrame(
                    frame_number=number,
                    payload=packet.payload,
                    timestamp=packet.timestamp,
                    user_timestamp=packet.user_timestamp,
                    e2ee=packet.e2ee,
                )
            )
            return out
        if partial is None:
            out += self._make_room(number)
            partial = self._partials[number] = _Partial()
        elif (packet.is_start and partial.start not in (None, packet.sequence)) or (
            packet.is_final and partial.end not in (None, packet.sequence)
        ):
            del self._partials[number]
            out.append(self._dropped(number, partial, "its frame number was reused"))
            partial = self._partials[number] = _Partial()
        out += self._add(number, partial, packet)
        return out

    # -- internals --------------------------------------------------------------------------

    def _add(
        self, number: int, partial: _Partial, packet: DataTrackPacket
    ) -> list[DepacketizerOutput]:
        sequence = packet.sequence
        if sequence not in partial.payloads and len(partial.payloads) >= self.max_packets_per_frame:
            return [self._drop_full(number, partial, len(partial.payloads) + 1)]
        partial.payloads[sequence] = packet.payload
        if packet.is_start:
            partial.start = sequence
            partial.timestamp = packet.timestamp
            partial.user_timestamp = packet.user_timestamp
            partial.e2ee = packet.e2ee
        if packet.is_final:
            partial.end = sequence
        span = partial.span()
        if span is None:
            return []
        if span > self.max_packets_per_frame:
            return [self._drop_full(number, partial, span)]
        assert partial.start is not None
        sequences = [(partial.start + i) & _U16 for i in range(span)]
        if len(partial.payloads) < span or any(s not in partial.payloads for s in sequences):
            return []
        del self._partials[number]
        self._end(number)
        frame = AssembledFrame(
            frame_number=number,
            payload=b"".join(partial.payloads[s] for s in sequences),
            timestamp=partial.timestamp,
            user_timestamp=partial.user_timestamp,
            e2ee=partial.e2ee,
        )
        return [frame]

    def _drop_full(self, number: int, partial: _Partial, packets: int) -> DroppedFrame:
        del self._partials[number]
        self._end(number)
        return DroppedFrame(
            frame_number=number,
            reason=FrameDropReason.BUFFER_FULL,
            received=len(partial.payloads),
            expected=partial.span(),
            detail=f"{packets} packets, over the {self.max_packets_per_frame} a frame may have",
        )

    def _make_room(self, number: int) -> list[DroppedFrame]:
        out: list[DroppedFrame] = []
        while len(self._partials) >= self._max_partial_frames:
            out.append(self._evict_oldest(f"interrupted by frame {number}"))
        return out

    def _evict_oldest(self, why: str) -> DroppedFrame:
        oldest = next(iter(self._partials))
        return self._dropped(oldest, self._partials.pop(oldest), why)

    def _dropped(self, number: int, partial: _Partial, why: str) -> DroppedFrame:
        """Report a partial frame removed before completing, by how far it got."""
        self._end(number)
        if partial.start is None:
            reason = FrameDropReason.UNKNOWN_FRAME
        elif partial.end is None:
            reason = FrameDropReason.INTERRUPTED
        else:
            reason = FrameDropReason.INCOMPLETE
        return DroppedFrame(
            frame_number=number,
            reason=reason,
            received=len(partial.payloads),
            expected=partial.span(),
            detail=why,
        )

    def _end(self, number: int) -> None:
        self._ended[number] = None
        self._ended.move_to_end(number)
        while len(self._ended) > self.max_remembered_frames:
            self._ended.popitem(last=False)
