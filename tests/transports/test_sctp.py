"""transports/_sctp.py: ordered SCTP messages are delivered by SSN whatever their TSN order.

livekit-server (pion) can send SSN n+1 with a lower TSN than SSN n when several goroutines
write to one participant's channel at once (issue 26: 100 participants broadcasting). aiortc's
own `InboundStream` then delivers nothing more on that stream; the first test pins that
upstream behaviour, so it fails (and says so) if an aiortc release fixes it.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

from aiortc import rtcsctptransport as sctp
from hypothesis import given
from hypothesis import strategies as st

import lkproto.transports._aiortc  # noqa: F401 - installs the fix, as every adapter does
from lkproto.transports._sctp import OrderedInboundStream

B, E, U = sctp.SCTP_DATA_FIRST_FRAG, sctp.SCTP_DATA_LAST_FRAG, sctp.SCTP_DATA_UNORDERED
PPID = 53  # WebRTC binary


def chunk(tsn: int, ssn: int, data: bytes, flags: int = B | E, stream: int = 1) -> sctp.DataChunk:
    return sctp.DataChunk(flags, struct.pack("!LHHL", tsn, stream, ssn, PPID) + data)


def feed(stream: sctp.InboundStream, *chunks: sctp.DataChunk) -> list[bytes]:
    """Add the chunks one at a time, as the association does, collecting what is delivered."""
    out: list[bytes] = []
    for c in chunks:
        stream.add_chunk(c)
        out += [data for _, _, data in stream.pop_messages()]
    return out


def upstream_stream() -> sctp.InboundStream:
    """aiortc's own class (the fix replaced the module's name, not the class)."""
    return OrderedInboundStream.__mro__[1]()  # type: ignore[no-any-return]


def test_aiortc_alone_stalls_on_an_ssn_sent_with_a_later_tsn() -> None:
    stream = upstream_stream()
    assert type(stream) is not OrderedInboundStream
    # Seen on the wire: SSN 1 at TSN 10, then SSN 0 at TSN 11; nothing is ever delivered.
    assert feed(stream, chunk(10, 1, b"second"), chunk(11, 0, b"first")) == []
    assert feed(stream, chunk(12, 2, b"third")) == []
    assert len(stream.reassembly) == 3


def test_the_fix_delivers_them_in_ssn_order() -> None:
    stream = OrderedInboundStream()
    assert feed(stream, chunk(10, 1, b"second"), chunk(11, 0, b"first")) == [b"first", b"second"]
    assert feed(stream, chunk(12, 2, b"third")) == [b"third"]
    assert stream.reassembly == []
    assert stream.sequence_number == 3


def test_aiortc_creates_the_fixed_stream_for_every_association() -> None:
    assert sctp.InboundStream is OrderedInboundStream
    association = SimpleNamespace(_inbound_streams={})
    created = sctp.RTCSctpTransport._get_inbound_stream(association, 1)  # type: ignore[arg-type]
    assert type(created) is OrderedInboundStream


def test_a_fragmented_message_waits_for_its_missing_fragment() -> None:
    stream = OrderedInboundStream()
    # SSN 1 complete at TSNs 10-11; SSN 0 starts at TSN 12, its end (13) not yet here.
    got = feed(stream, chunk(10, 1, b"b1", B), chunk(11, 1, b"b2", E), chunk(12, 0, b"a1", B))
    assert got == []
    assert feed(stream, chunk(13, 0, b"a2", E)) == [b"a1a2", b"b1b2"]
    assert stream.reassembly == []


def test_a_gap_inside_the_due_message_holds_the_later_ones() -> None:
    stream = OrderedInboundStream()
    # SSN 0 at TSNs 10, _, 12 (middle missing), SSN 1 complete at 13.
    got = feed(stream, chunk(10, 0, b"a", B), chunk(12, 0, b"c", E), chunk(13, 1, b"next", B | E))
    assert got == []
    assert feed(stream, chunk(11, 0, b"b", 0)) == [b"abc", b"next"]


def test_unordered_and_stale_messages_are_delivered_at_once() -> None:
    stream = OrderedInboundStream()
    stream.sequence_number = 5
    got = feed(
        stream,
        chunk(20, 9, b"later", B | E),  # ordered, not due: waits
        chunk(21, 0, b"u", B | E | U),  # unordered: at once
        chunk(22, 3, b"stale", B | E),  # an SSN already passed: at once, as aiortc does
    )
    assert got == [b"u", b"stale"]
    assert stream.sequence_number == 5
    assert [c.tsn for c in stream.reassembly] == [20]


def test_an_unordered_message_missing_its_middle_is_skipped_not_blocking() -> None:
    stream = OrderedInboundStream()
    got = feed(stream, chunk(30, 0, b"x", B | U), chunk(32, 0, b"z", E | U), chunk(33, 0, b"ok"))
    assert got == [b"ok"]
    assert [c.tsn for c in stream.reassembly] == [30, 32]


def test_ssns_wrap_around() -> None:
    stream = OrderedInboundStream()
    stream.sequence_number = 0xFFFF
    assert feed(stream, chunk(1, 0, b"after"), chunk(2, 0xFFFF, b"last")) == [b"last", b"after"]
    assert stream.sequence_number == 1


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[list[bytes]], list[int], list[int]]:
    """Messages (SSN order) of 1-3 fragments, the order their TSNs were assigned in, and the
    order their chunks arrive in."""
    messages = draw(
        st.lists(st.lists(st.binary(min_size=1, max_size=3), min_size=1, max_size=3), max_size=8)
    )
    tsn_order = draw(st.permutations(range(len(messages))))
    total = sum(len(m) for m in messages)
    arrival = draw(st.permutations(range(total)))
    return messages, list(tsn_order), list(arrival)


@given(schedules(), st.integers(min_value=0, max_value=0xFFFF))
def test_any_tsn_assignment_and_arrival_delivers_every_message_once_in_ssn_order(
    schedule: tuple[list[list[bytes]], list[int], list[int]], first_ssn: int
) -> None:
    messages, tsn_order, arrival = schedule
    chunks: list[sctp.DataChunk] = []
    tsn = 1000
    for index in tsn_order:  # each message's fragments take consecutive TSNs (RFC 9260 6.9)
        fragments = messages[index]
        for k, data in enumerate(fragments):
            flags = (B if k == 0 else 0) | (E if k == len(fragments) - 1 else 0)
            chunks.append(chunk(tsn, (first_ssn + index) & 0xFFFF, data, flags))
            tsn += 1
    stream = OrderedInboundStream()
    stream.sequence_number = first_ssn
    got = feed(stream, *(chunks[i] for i in arrival))
    assert got == [b"".join(m) for m in messages]
    assert stream.reassembly == []
    assert stream.sequence_number == (first_ssn + len(messages)) & 0xFFFF
