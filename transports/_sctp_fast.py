"""aiortc's SCTP association with bundling, no idle scans of the sent queue, and delayed SACK.

Theory of operation (aiortc 1.16's `RTCSctpTransport`, subclassed; see `_sctp.install`):

- **Bundling (RFC 9260 sections 6.10 and 6.1).** aiortc sends every chunk in a packet of its
  own ("no bundling for now"), so a 100-byte message costs an SCTP header, a CRC32c, a DTLS
  record, a `sendto` and, at the peer, a SACK. `_transmit` here decides chunk by chunk exactly
  as aiortc does (FORWARD TSN first; retransmissions while the flight size is under the
  burst-limited congestion window, the first fast retransmission whatever the window; aiortc
  counts user data bytes and does not look at the peer's rwnd, and neither does this), but
  for the window of new chunks (see "Max.Burst" below), and the packing changes: the chunks
  it decides to send are concatenated, in that order, into packets of at most aiortc's
  `SCTP_MAX_PACKET_LENGTH` (1,189 bytes with the common header, its path MTU budget for
  DTLS over UDP over IPv6). A full-size DATA chunk still goes alone. Only DATA and
  FORWARD TSN are bundled (RFC 3758 section 3.5 allows FORWARD TSN with DATA, and the
  receiver processes a packet's chunks in order); every other chunk (INIT, COOKIE ECHO,
  SACK, HEARTBEAT ACK, RE-CONFIG, ABORT, SHUTDOWN*) goes alone as before. T3 is started and
  restarted at the same decisions as in aiortc (RFC 9260 section 6.3.2), microseconds before
  the packet leaves instead of just after.
- **Max.Burst for retransmissions only; cwnd decays when idle (RFC 9260 sections 6.1 D and
  7.2.1).** aiortc sends new chunks while `flight size < min(flight size + Max.Burst, cwnd)`,
  Max.Burst being 4 MTU, so a 15 KiB message (14 chunks) left in four bursts, each after a
  SACK round trip, however large the window; pion (livekit-server, the Go SDK) limits only
  its loss-recovery bursts (pion/sctp 1.11). New chunks here go while `flight size < cwnd`.
  What Max.Burst guards against is a sender that, after a quiet spell, releases a window it
  earned long ago; for that the window decays as section 7.2.1 says (aiortc does not): per
  RTO with no new DATA sent, `cwnd = max(cwnd / 2, 4 MTU)` (never raised: aiortc starts at
  3 MTU), applied when the flight size is 0 and data is about to go. cwnd itself still grows
  only while fully used and collapses on T3 as in aiortc. Retransmissions keep aiortc's
  burst limit.
- **Asking for an immediate SACK (RFC 7053).** A receiver may delay its SACK for a lone
  packet by up to 200 ms (pion does; RFC 9260 section 6.2). With fewer, fuller packets a
  burst more often ends on such a packet while the congestion window is full, and the
  sender then idles until the delayed SACK. When a transmission leaves the window full or
  has nothing more to send, its last DATA chunk carries the I bit (flag 0x08: "SACK me at
  once"), which pion honours and a receiver that does not know it ignores (aiortc does).
- **Filling packets (`_data_channel_flush`).** aiortc hands one queued message to the
  association at a time and transmits it at once, so bundling alone would still send one
  message per packet. The flush here moves messages from the channel queue while their bytes
  fit the room the window leaves (a message that does not fit whole
  goes too, its tail waits in the association's queue as in aiortc), then transmits once;
  with no room (the window is full, so data is in flight) it waits for the next SACK, where
  aiortc would move one more message to the association's queue to wait there instead.
  What stays queued is still counted in the channel's `bufferedAmount`, as before, so
  back-pressure is unchanged. `_data_channel_send`
  schedules one flush for any number of messages sent before it runs (aiortc schedules one
  task per message), and a SACK that empties the association's queue flushes the channel
  queue again (aiortc waited for the next send).
- **No idle scans (`_transmit`).** aiortc walks the whole sent queue for chunks marked for
  retransmission on every call; a chunk is only marked by a SACK with gap blocks (the fast
  retransmit rule, RFC 9260 section 7.2.4) or by T3's expiry (section 6.3.3), so the walk is
  done only after one of those and until a walk finds nothing more to send.
- **Receiving in order (`_mark_received`).** For the next TSN with no gap open, the
  cumulative TSN just advances; aiortc sorted and rebuilt its gap and duplicate sets for
  every chunk.
- **TSNs wrap (RFC 9260 section 1.6: serial number arithmetic modulo 2**32).** aiortc walks
  the TSNs received out of order, and builds a SACK's gap blocks, in `sorted()` order, as
  plain integers. Once that set holds TSNs on both sides of the wrap (a chunk lost or
  reordered among the last ones below 2**32), 0, 1, ... sort before 2**32 - 1: the walk stops
  at once, the cumulative TSN never advances again (every later chunk only grows the set),
  and the gap blocks go out of order. The initial TSN is random (section 5.1), so a long
  association meets the wrap at a random point. Here the cumulative TSN advances by looking
  up the next TSN in the set (`_lk_advance_cumulative_tsn`, also after a FORWARD TSN), and
  gap blocks are built from offsets to the cumulative TSN (`_lk_send_sack`), which order
  correctly across the wrap; otherwise the rules (what counts as a duplicate, when reported
  duplicates are dropped) are aiortc's.
- **Delayed SACK (RFC 9260 section 6.2).** A receiver should acknowledge at least every
  second packet carrying DATA, within 200 ms of a chunk's arrival, and at once when it sees a
  gap or a duplicate. aiortc acknowledges every such packet. Here a packet that leaves a gap,
  fills the gaps the last SACK reported (so the sender learns at once, section 6.7), reports
  a duplicate or is the second unacknowledged one is acknowledged at once; otherwise
  the SACK goes out when the event loop next runs its ready callbacks (well under 200 ms),
  so packets read back to back share a SACK.

- **Receiving a whole message (`_receive_data_chunk`, `lk_readers`).** aiortc puts every DATA
  chunk in its stream's reassembly list, scans it twice (`pop_messages`), and hands each
  message through three coroutines to pyee, which calls the channel's "message" listeners.
  A chunk that is a whole message (B and E flags) and due at once (unordered, or the
  stream's next SSN) on a stream with nothing waiting to be reassembled, and no stream reset
  waiting for its TSN, is marked received and delivered here without the list; a binary
  message for a channel with an entry in `lk_readers` goes to that callable instead of the
  listeners (`AiortcPeer._read` registers one per channel it reads). Everything else
  (fragments, SSNs not yet due or stale, a stream's first chunk, text, empty messages, DCEP)
  goes aiortc's way (with `_sctp.OrderedInboundStream`).
- **Delivery reports (`lk_tag_last_message`, `lk_on_delivered`).** The session's core keeps
  every sent reliable packet for a replay until the server has it (lkproto/_data.py). The
  server's SCTP stack saying so is the SACK's cumulative TSN ack (RFC 9260 section 6.2): a
  message whose last chunk's TSN it covers has arrived whole, and so has everything sent
  before it. A message is tagged (an int, the packet's sequence) right after
  `RTCDataChannel.send` queued it; the flush that hands it to `_send` notes its last TSN
  (nothing suspends while the flush holds `_transmit`, so `_local_tsn` minus one is it), and
  a SACK that covers noted TSNs calls `lk_on_delivered` once with the highest tag among them.
  aiortc's own transport (the fallback for an untested aiortc) has none of this: messages
  are then never reported, and the core's byte bound alone limits its replay buffer.

Every method overridden here is listed in `REQUIRED`, checked with aiortc's version by
`_sctp.install` before the class is put in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from struct import pack

from aiortc import RTCDataChannel
from aiortc import rtcsctptransport as _sctp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.utils import uint32_gt, uint32_gte
from google_crc32c import value as crc32c  # aiortc's own CRC32c (RFC 9260 appendix A)

__all__ = ["REQUIRED", "FastSctpTransport"]

_HEADER = _sctp.SCTP_COMMON_HEADER_LENGTH
_BUDGET = _sctp.SCTP_MAX_PACKET_LENGTH - _HEADER  # bytes of chunks in one packet
_MTU = _sctp.USERDATA_MAX_LENGTH  # aiortc's unit for cwnd and burst
_SACK_IMMEDIATELY = 0x08  # DATA chunk flag "I" (RFC 7053 section 4.1)
_WHOLE = _sctp.SCTP_DATA_FIRST_FRAG | _sctp.SCTP_DATA_LAST_FRAG  # B and E: one-chunk message
_UNORDERED = _sctp.SCTP_DATA_UNORDERED

REQUIRED: dict[str, tuple[str, ...]] = {
    # module names this class reads
    "module": (
        "RTCSctpTransport",
        "InboundStream",
        "DataChunk",
        "ForwardTsnChunk",
        "SackChunk",
        "crc32c",  # google_crc32c's, which `_Packet` imports itself
        "SCTP_COMMON_HEADER_LENGTH",
        "SCTP_MAX_PACKET_LENGTH",
        "USERDATA_MAX_LENGTH",
        "WEBRTC_DCEP",
        "WEBRTC_STRING",
        "WEBRTC_STRING_EMPTY",
        "WEBRTC_BINARY",
        "WEBRTC_BINARY_EMPTY",
        "SCTP_DATA_FIRST_FRAG",
        "SCTP_DATA_LAST_FRAG",
        "SCTP_DATA_UNORDERED",
    ),
    # methods overridden or called
    "methods": (
        "_transmit",
        "_send",
        "_send_sack",
        "_data_channel_flush",
        "_data_channel_send",
        "_receive_sack_chunk",
        "_t3_expired",
        "_t3_start",
        "_t3_restart",
        "_transmit_reconfig",
        "_flight_size_increase",
        "_handle_data",
        "_mark_received",
        "_receive_forward_tsn_chunk",
        "_receive_data_chunk",
        "_data_channel_receive",
        "_send_chunk",
    ),
    # attributes `RTCSctpTransport.__init__` sets that this class reads or writes
    "attributes": (
        "_advertised_rwnd",
        "_association_state",
        "_cwnd",
        "_data_channel_id",
        "_data_channel_queue",
        "_data_channels",
        "_fast_recovery_exit",
        "_fast_recovery_transmit",
        "_last_received_tsn",
        "_last_sacked_tsn",
        "_local_tsn",
        "_flight_size",
        "_forward_tsn_chunk",
        "_inbound_streams",
        "_local_port",
        "_outbound_queue",
        "_reconfig_deferred",
        "_rto",
        "_remote_max_message_size",
        "_remote_port",
        "_remote_verification_tag",
        "_sack_duplicates",
        "_sack_misordered",
        "_sack_needed",
        "_sent_queue",
        "_t3_handle",
    ),
}
"""What the fast path relies on in `aiortc.rtcsctptransport` (checked before installing)."""


_QueueItem = tuple[RTCDataChannel, int, bytes]  # a data channel queue item: (channel, PPID, data)


class _Packet:
    """Chunks bundled into SCTP packets of at most `_BUDGET` bytes after the common header."""

    __slots__ = ("_association", "_last_data", "_parts", "_size", "packets")

    def __init__(self, association: FastSctpTransport) -> None:
        self._association = association
        self._parts: list[bytes] = []
        self._size = 0
        self._last_data = -1  # index in `_parts` of the last DATA chunk, if not flushed
        self.packets = 0

    async def add(self, chunk: _sctp.Chunk) -> None:
        data = bytes(chunk)  # padded to a multiple of 4 (RFC 9260 section 3.2)
        if self._size + len(data) > _BUDGET:
            await self.flush()
        if isinstance(chunk, _sctp.DataChunk):
            self._last_data = len(self._parts)
        self._parts.append(data)
        self._size += len(data)

    def ask_sack_immediately(self) -> None:
        """Set the I bit (RFC 7053) of the last DATA chunk, if it has not left yet."""
        if self._last_data >= 0:
            part = self._parts[self._last_data]
            self._parts[self._last_data] = (
                part[:1] + bytes([part[1] | _SACK_IMMEDIATELY]) + part[2:]
            )

    async def flush(self) -> None:
        if not self._parts:
            return
        a = self._association
        body = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        self._last_data = -1
        header = pack("!HHL", a._local_port, a._remote_port, a._remote_verification_tag)
        checksum = crc32c(header + b"\x00\x00\x00\x00" + body)
        self.packets += 1
        await a.transport._send_data(header + pack("<L", checksum) + body)


class FastSctpTransport(_sctp.RTCSctpTransport):
    """aiortc's `RTCSctpTransport` sending bundled packets (see the module docstring)."""

    def __init__(self, transport: RTCDtlsTransport, port: int = 5000) -> None:
        super().__init__(transport, port)
        self._lk_hold = False  # set while a flush queues messages: `_transmit` waits for it
        self._lk_retransmit_pending = False  # a SACK with gaps or T3 may have marked chunks
        self._lk_flush_scheduled = False
        self._lk_last_data_sent: float | None = None  # time.time() of the last new DATA sent
        self._lk_unacked_packets = 0  # packets with DATA received since our last SACK
        self._lk_gaps_reported = False  # our last SACK had gap blocks
        self._lk_sack_handle: asyncio.Handle | None = None
        self._lk_tasks: set[asyncio.Future[None]] = set()  # kept until done (asyncio holds
        # only weak references to tasks)
        self._lk_log: Callable[..., None] = lambda *args: None
        if _sctp.logger.isEnabledFor(logging.DEBUG):
            self._lk_log = _sctp.logger.debug
        self.lk_on_delivered: Callable[[int], None] | None = None
        """Called with the highest tag of the messages a SACK newly acknowledged whole."""
        self._lk_tags: dict[int, tuple[_QueueItem, int]] = {}  # id(queued item): (it, tag)
        self._lk_tagged_tsns: deque[tuple[int, int]] = deque()  # (last TSN, tag), TSN order
        self.lk_readers: dict[RTCDataChannel, Callable[[bytes], None]] = {}
        """Per channel, what takes its binary messages instead of its "message" listeners."""

    # -- delivery reports -------------------------------------------------------------------

    def lk_tag_last_message(self, tag: int) -> None:
        """Report `tag` through `lk_on_delivered` once the peer has acknowledged, cumulatively,
        the message `RTCDataChannel.send` queued last (call it right after that send)."""
        if self._data_channel_queue:
            item = self._data_channel_queue[-1]
            self._lk_tags[id(item)] = (item, tag)  # the item is held: its id stays unique

    def _lk_note_tsn(self, item: _QueueItem) -> None:
        """`item` was just handed to `_send`: note its last TSN if it is tagged."""
        tagged = self._lk_tags.pop(id(item), None)
        if tagged is not None and tagged[0] is item:
            last_tsn = (self._local_tsn - 1) & 0xFFFFFFFF
            self._lk_tagged_tsns.append((last_tsn, tagged[1]))

    def _lk_report_delivered(self) -> None:
        noted = self._lk_tagged_tsns
        acked = self._last_sacked_tsn
        best: int | None = None
        while noted and uint32_gte(acked, noted[0][0]):
            tag = noted.popleft()[1]
            best = tag if best is None else max(best, tag)
        callback = self.lk_on_delivered
        if best is not None and callback is not None:
            try:
                callback(best)
            except Exception:  # never break the association over a report
                _sctp.logger.exception("lkproto: a delivery report failed")

    # -- sending ----------------------------------------------------------------------------

    def _data_channel_send(self, channel: RTCDataChannel, data: bytes | str) -> None:
        # aiortc's encoding (RFC 8831 section 6.6: empty messages are one zero byte with their
        # own PPID) and size check, then one flush task for however many messages are queued.
        if data == "":
            pp_id, user_data = _sctp.WEBRTC_STRING_EMPTY, b"\x00"
        elif isinstance(data, str):
            pp_id, user_data = _sctp.WEBRTC_STRING, data.encode("utf8")
        elif data == b"":
            pp_id, user_data = _sctp.WEBRTC_BINARY_EMPTY, b"\x00"
        else:
            pp_id, user_data = _sctp.WEBRTC_BINARY, data
        limit = self._remote_max_message_size
        if limit and len(user_data) > limit:
            raise ValueError(
                f"Cannot send message of {len(user_data)} bytes, the remote party "
                f"only supports messages up to {limit} bytes"
            )
        channel._addBufferedAmount(len(user_data))
        self._data_channel_queue.append((channel, pp_id, user_data))
        if not self._lk_flush_scheduled:
            self._lk_flush_scheduled = True
            self._lk_spawn(self._lk_scheduled_flush())

    def _lk_spawn(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._lk_tasks.add(task)
        task.add_done_callback(self._lk_tasks.discard)

    async def _lk_scheduled_flush(self) -> None:
        self._lk_flush_scheduled = False
        await self._data_channel_flush()

    def _lk_room(self) -> int:
        """Bytes `_transmit` would send now as new data (its window, see the docstring)."""
        if not self._flight_size:
            self._lk_decay_idle_cwnd(time.time())
        return self._cwnd - self._flight_size

    def _lk_decay_idle_cwnd(self, now: float) -> None:
        """RFC 9260 section 7.2.1: per RTO without new data sent, cwnd = max(cwnd/2, 4 MTU)
        (never raised: aiortc starts at 3 MTU). Idempotent for one `now`."""
        last = self._lk_last_data_sent
        if last is None:
            return
        rtos = int((now - last) / self._rto)
        if rtos <= 0:
            return
        self._lk_last_data_sent = last + rtos * self._rto
        cwnd, floor = self._cwnd, min(self._cwnd, 4 * _MTU)
        for _ in range(min(rtos, 32)):
            cwnd = max(cwnd // 2, floor)
        self._cwnd = cwnd

    async def _data_channel_flush(self) -> None:
        if self._association_state != self.State.ESTABLISHED:
            return
        queue = self._data_channel_queue
        while queue and not self._outbound_queue:
            room = self._lk_room()
            if room <= 0:
                break  # data is in flight: its SACK (or T3) flushes again
            self._lk_hold = True
            try:
                while True:  # nothing in here suspends: `_send` queues while held
                    item = queue.popleft()
                    channel, protocol, user_data = item
                    stream_id = channel.id
                    if stream_id is None:
                        stream_id = self._data_channel_id
                        assert stream_id is not None  # set by `start`
                        while stream_id in self._data_channels:
                            stream_id += 2
                        self._data_channels[stream_id] = channel
                        channel._setId(stream_id)
                    if protocol == _sctp.WEBRTC_DCEP:
                        await self._send(stream_id, protocol, user_data)
                    else:
                        lifetime = channel.maxPacketLifeTime
                        await self._send(
                            stream_id,
                            protocol,
                            user_data,
                            expiry=time.time() + lifetime / 1000 if lifetime else None,
                            max_retransmits=channel.maxRetransmits,
                            ordered=channel.ordered,
                        )
                        if self._lk_tags:
                            self._lk_note_tsn(item)
                        channel._addBufferedAmount(-len(user_data))
                    room -= len(user_data)
                    if room <= 0 or not queue:
                        break
            finally:
                self._lk_hold = False
            await self._transmit()
        await self._transmit_reconfig()

    async def _transmit(self) -> None:
        if self._lk_hold:
            return  # the flush that holds it transmits once its messages are queued
        packet = _Packet(self)
        if self._forward_tsn_chunk is not None:
            self._lk_log("> %s", self._forward_tsn_chunk)
            await packet.add(self._forward_tsn_chunk)
            self._forward_tsn_chunk = None
            if not self._t3_handle:
                self._t3_start()

        burst = (2 if self._fast_recovery_exit is not None else 4) * _MTU
        cwnd = min(self._flight_size + burst, self._cwnd)

        if self._lk_retransmit_pending:
            self._lk_retransmit_pending = False
            earliest = True
            for chunk in self._sent_queue:
                if chunk._retransmit:
                    if self._fast_recovery_transmit:
                        self._fast_recovery_transmit = False
                    elif self._flight_size >= cwnd:
                        self._lk_retransmit_pending = True  # the rest waits for room
                        packet.ask_sack_immediately()  # the window is full
                        await packet.flush()
                        return
                    self._flight_size_increase(chunk)
                    chunk._misses = 0
                    chunk._retransmit = False
                    chunk._sent_count += 1
                    self._lk_log("> %s", chunk)
                    await packet.add(chunk)
                    if earliest:
                        self._t3_restart()  # the earliest outstanding TSN is resent
                earliest = False

        now = time.time()
        if self._outbound_queue and not self._flight_size:
            self._lk_decay_idle_cwnd(now)
        while self._outbound_queue and self._flight_size < self._cwnd:
            self._lk_last_data_sent = now
            chunk = self._outbound_queue.popleft()
            self._sent_queue.append(chunk)
            self._flight_size_increase(chunk)
            chunk._sent_count += 1
            chunk._sent_time = now
            self._lk_log("> %s", chunk)
            await packet.add(chunk)
            if not self._t3_handle:
                self._t3_start()
        if self._flight_size >= self._cwnd or not (
            self._outbound_queue or self._data_channel_queue
        ):
            packet.ask_sack_immediately()  # nothing more goes until a SACK: no delayed one
        await packet.flush()

    async def _receive_sack_chunk(self, chunk: _sctp.SackChunk) -> None:
        if chunk.gaps:
            self._lk_retransmit_pending = True  # chunks may reach three misses
        await super()._receive_sack_chunk(chunk)
        if self._lk_tagged_tsns:
            self._lk_report_delivered()
        # aiortc flushed before transmitting; what the SACK made room for goes now.
        if self._data_channel_queue and not self._outbound_queue:
            await self._data_channel_flush()

    def _t3_expired(self) -> None:
        self._lk_retransmit_pending = True  # every outstanding chunk is marked
        super()._t3_expired()

    # -- acknowledging ----------------------------------------------------------------------

    def _mark_received(self, tsn: int) -> bool:
        # The common case, the next TSN with no gap open, without aiortc's sort and filters.
        last = self._last_received_tsn
        if last is not None and not self._sack_misordered and tsn == (last + 1) & 0xFFFFFFFF:
            self._last_received_tsn = tsn
            if self._sack_duplicates:  # reported ones at or below the new cumulative TSN go
                self._sack_duplicates = [d for d in self._sack_duplicates if uint32_gt(d, tsn)]
            return False
        if last is None:  # before the INIT: aiortc's (it cannot happen after the handshake)
            return super()._mark_received(tsn)
        if uint32_gte(last, tsn) or tsn in self._sack_misordered:
            self._sack_duplicates.append(tsn)
            return True
        self._sack_misordered.add(tsn)
        self._lk_advance_cumulative_tsn()
        return False

    def _lk_advance_cumulative_tsn(self) -> None:
        """Advance the cumulative TSN over the TSNs received beyond it, modulo 2**32, and
        forget what it now covers (as aiortc does, reported duplicates at or below it too)."""
        misordered = self._sack_misordered
        last = self._last_received_tsn
        assert last is not None  # set from the peer's INIT or INIT ACK before any DATA
        following = (last + 1) & 0xFFFFFFFF
        while following in misordered:
            last, following = following, (following + 1) & 0xFFFFFFFF
        self._last_received_tsn = last
        self._sack_misordered = {tsn for tsn in misordered if uint32_gt(tsn, last)}
        self._sack_duplicates = [tsn for tsn in self._sack_duplicates if uint32_gt(tsn, last)]

    async def _receive_forward_tsn_chunk(self, chunk: _sctp.ForwardTsnChunk) -> None:
        # aiortc's advances past the chunk's TSN, then walks what lies beyond in plain integer
        # order, which stops short across the wrap; the walk here finishes it.
        await super()._receive_forward_tsn_chunk(chunk)
        self._lk_advance_cumulative_tsn()

    # -- delivering ---------------------------------------------------------------------------

    async def _receive_data_chunk(self, chunk: _sctp.DataChunk) -> None:
        # The common case, a whole message (one chunk) that is due at once on a stream with
        # nothing waiting to be reassembled, goes straight to its channel; anything else
        # (fragments, an SSN not yet due or a stale one, a stream's first chunk, a reset
        # waiting for this TSN) takes aiortc's way through the reassembly queue.
        flags = chunk.flags
        stream = self._inbound_streams.get(chunk.stream_id)
        if (
            flags & _WHOLE == _WHOLE
            and stream is not None
            and not stream.reassembly
            and self._reconfig_deferred is None
            and (flags & _UNORDERED or chunk.stream_seq == stream.sequence_number)
        ):
            self._sack_needed = True
            if self._mark_received(chunk.tsn):
                return  # a duplicate
            if not flags & _UNORDERED:
                stream.sequence_number = (stream.sequence_number + 1) & 0xFFFF
            await self._data_channel_receive(chunk.stream_id, chunk.protocol, chunk.user_data)
            return
        await super()._receive_data_chunk(chunk)

    async def _data_channel_receive(self, stream_id: int, pp_id: int, data: bytes) -> None:
        # A binary message for a channel with a reader (`lk_readers`) goes to it directly;
        # the rest (DCEP, text, empty messages, channels without one) as in aiortc.
        if pp_id == _sctp.WEBRTC_BINARY:
            channel = self._data_channels.get(stream_id)
            reader = self.lk_readers.get(channel) if channel is not None else None
            if reader is not None:
                reader(data)
                return
        await super()._data_channel_receive(stream_id, pp_id, data)

    async def _lk_send_sack(self) -> None:
        """A SACK (RFC 9260 section 3.3.4) whose gap blocks are ordered and merged by their
        offset from the cumulative TSN, so TSNs past the wrap come after those before it."""
        last = self._last_received_tsn
        assert last is not None  # a SACK follows DATA, after the handshake
        gaps: list[list[int]] = []
        for offset in sorted((tsn - last) & 0xFFFFFFFF for tsn in self._sack_misordered):
            if gaps and gaps[-1][1] + 1 == offset:
                gaps[-1][1] = offset
            else:
                gaps.append([offset, offset])
        sack = _sctp.SackChunk()
        sack.cumulative_tsn = last
        sack.advertised_rwnd = max(0, self._advertised_rwnd)
        sack.duplicates = self._sack_duplicates[:]
        sack.gaps = [(start, end) for start, end in gaps]
        await self._send_chunk(sack)
        self._sack_duplicates.clear()
        self._sack_needed = False

    async def _send_sack(self) -> None:
        self._lk_unacked_packets += 1
        if (
            self._lk_unacked_packets >= 2
            or self._sack_duplicates
            or self._sack_misordered
            or self._lk_gaps_reported  # this packet filled them: say so at once
            or self._association_state != self.State.ESTABLISHED
        ):
            await self._lk_sack_now()
        elif self._lk_sack_handle is None:
            self._lk_sack_handle = asyncio.get_running_loop().call_soon(self._lk_sack_due)

    async def _lk_sack_now(self) -> None:
        if self._lk_sack_handle is not None:
            self._lk_sack_handle.cancel()
            self._lk_sack_handle = None
        self._lk_unacked_packets = 0
        self._lk_gaps_reported = bool(self._sack_misordered)
        await self._lk_send_sack()

    def _lk_sack_due(self) -> None:
        self._lk_sack_handle = None
        if self._sack_needed and self._association_state == self.State.ESTABLISHED:
            self._lk_spawn(self._lk_sack_deferred())

    async def _lk_sack_deferred(self) -> None:
        if self._sack_needed and self._association_state == self.State.ESTABLISHED:
            with contextlib.suppress(ConnectionError):  # DTLS closed meanwhile: nothing to ack
                await self._lk_sack_now()
