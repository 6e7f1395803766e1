"""Packetizer and depacketizer (protocol-reference-2 1.6): the upstream unit cases (rust-sdks
`local/packetizer.rs`, `remote/depacketizer.rs`), the order tolerance and bounds of ours, and
Hypothesis: any frame split and delivered in any order within the frame comes back whole, and
no packet sequence makes the depacketizer raise or pass its bounds.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lkproto.datatracks import (
    AssembledFrame,
    DataTrackPacket,
    Depacketizer,
    DroppedFrame,
    E2eeExtension,
    FrameDropReason,
    FrameMarker,
    Packetizer,
)

M = FrameMarker
D = FrameDropReason
IV = E2eeExtension(9, b"\x11" * 12)


def pkt(
    marker: FrameMarker,
    sequence: int,
    frame: int = 7,
    payload: bytes = b"",
    **fields: object,
) -> DataTrackPacket:
    return DataTrackPacket(
        marker=marker,
        handle=5,
        sequence=sequence,
        frame_number=frame,
        timestamp=fields.pop("timestamp", 1000),  # type: ignore[arg-type]
        payload=payload or bytes((sequence & 0xFF,)) * 3,
        **fields,  # type: ignore[arg-type]
    )


def frames(outputs: list[AssembledFrame | DroppedFrame]) -> list[AssembledFrame]:
    return [o for o in outputs if isinstance(o, AssembledFrame)]


# -- packetizer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "mtu", "sizes"),
    [
        (0, 1_024, []),  # rust "zero_payload"
        (128, 1_024, [140]),  # rust "single_packet"
        (20_480, 1_024, [1_024] * 20 + [20_480 - 20 * 1_012 + 12]),  # rust "multi_packet"
        (40_960, 16_000, [16_000, 16_000, 40_960 - 2 * 15_988 + 12]),  # rust mtu 16 000
    ],
)
def test_packet_count_and_sizes(size: int, mtu: int, sizes: list[int]) -> None:
    packetizer = Packetizer(0x8811, mtu=mtu)
    packets = packetizer.packetize(b"\xab" * size, timestamp=5)
    assert [len(p.encode()) for p in packets] == sizes
    assert [p.sequence for p in packets] == list(range(len(sizes)))
    assert {p.frame_number for p in packets} <= {0}
    assert {p.handle for p in packets} <= {0x8811}
    assert b"".join(p.payload for p in packets) == b"\xab" * size
    assert packetizer.frame_number == 1  # an empty frame still takes a frame number (Rust)


def test_markers_single_start_inter_final() -> None:
    packetizer = Packetizer(1, mtu=52)  # 40 payload bytes per plain packet
    assert [p.marker for p in packetizer.packetize(b"x" * 40, timestamp=0)] == [M.SINGLE]
    assert [p.marker for p in packetizer.packetize(b"x" * 41, timestamp=0)] == [M.START, M.FINAL]
    assert [p.marker for p in packetizer.packetize(b"x" * 161, timestamp=0)] == [
        M.START,
        M.INTER,
        M.INTER,
        M.INTER,
        M.FINAL,
    ]


def test_every_packet_of_a_frame_carries_the_same_extensions_and_timestamp() -> None:
    packetizer = Packetizer(3)
    packets = packetizer.packetize(b"z" * 40_000, timestamp=77, user_timestamp=1234, e2ee=IV)
    assert len(packets) == 3  # 15 960 payload bytes per packet with both extensions
    assert [len(p.payload) for p in packets] == [15_960, 15_960, 8_080]
    assert {(p.timestamp, p.user_timestamp, p.e2ee) for p in packets} == {(77, 1234, IV)}
    assert packetizer.max_payload(user_timestamp=True, e2ee=True) == 15_960
    assert packetizer.max_payload(user_timestamp=False, e2ee=False) == 15_988
    assert packetizer.packet_count(32_000, user_timestamp=False, e2ee=False) == 3  # rust pipeline


def test_counters_start_at_zero_and_wrap() -> None:
    packetizer = Packetizer(1, mtu=41)  # 29 payload bytes per packet
    assert (packetizer.sequence, packetizer.frame_number) == (0, 0)
    packetizer.sequence, packetizer.frame_number = 0xFFFE, 0xFFFF
    first = packetizer.packetize(b"a" * 59, timestamp=0)
    second = packetizer.packetize(b"d", timestamp=0)
    assert [(p.sequence, p.frame_number) for p in first] == [
        (0xFFFE, 0xFFFF),
        (0xFFFF, 0xFFFF),
        (0, 0xFFFF),
    ]
    assert [(p.sequence, p.frame_number) for p in second] == [(1, 0)]


def test_bad_values_consume_nothing() -> None:
    packetizer = Packetizer(1)
    with pytest.raises(ValueError):
        packetizer.packetize(b"x", timestamp=0, user_timestamp=-1)
    with pytest.raises(ValueError):
        packetizer.packetize(b"x", timestamp=2**32)
    with pytest.raises(TypeError):
        packetizer.packetize("x", timestamp=0)  # type: ignore[arg-type]
    assert (packetizer.sequence, packetizer.frame_number) == (0, 0)


def test_the_clock_runs_at_90_khz_from_the_base_and_never_goes_back() -> None:
    packetizer = Packetizer(1, epoch=10.0, timestamp_base=1_000)
    assert packetizer.clock(10.0) == 1_000
    assert packetizer.clock(11.0) == 91_000
    assert packetizer.clock(10.5) == 91_000  # earlier: held at the previous value
    assert packetizer.clock(11.5) == 136_000


def test_the_clock_wraps_at_32_bits() -> None:
    packetizer = Packetizer(1, timestamp_base=2**32 - 100)
    assert packetizer.clock(0.01) == 800  # 900 ticks later, past the wrap: still "later"
    assert packetizer.clock(0.0) == 800


@pytest.mark.parametrize(
    "kwargs",
    [
        {"handle": 0},
        {"handle": 65536},
        {"handle": True},
        {"mtu": 40},
        {"epoch": float("nan")},
        {"timestamp_base": -1},
        {"timestamp_base": 2**32},
    ],
)
def test_packetizer_arguments_are_checked(kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {"handle": 1}
    values.update(kwargs)
    handle = values.pop("handle")
    with pytest.raises(ValueError):
        Packetizer(handle, **values)  # type: ignore[arg-type]


# -- depacketizer: the upstream cases ---------------------------------------------------------


def test_single_packet() -> None:
    out = Depacketizer().push(pkt(M.SINGLE, 4, payload=b"hello", user_timestamp=9, e2ee=IV))
    assert out == [
        AssembledFrame(frame_number=7, payload=b"hello", timestamp=1000, user_timestamp=9, e2ee=IV)
    ]


@pytest.mark.parametrize("inter", [0, 8, 126])
def test_multi_packet_up_to_the_buffer_limit(inter: int) -> None:
    depacketizer = Depacketizer()
    start = 65_500  # crosses the sequence wrap for the larger cases
    outputs = depacketizer.push(pkt(M.START, start, user_timestamp=5, timestamp=9))
    for i in range(1, inter + 1):
        outputs += depacketizer.push(pkt(M.INTER, (start + i) & 0xFFFF))
    outputs += depacketizer.push(pkt(M.FINAL, (start + inter + 1) & 0xFFFF))
    expected = b"".join(bytes(((start + i) & 0xFF,)) * 3 for i in range(inter + 2))
    assert outputs == [
        AssembledFrame(frame_number=7, payload=expected, timestamp=9, user_timestamp=5)
    ]
    assert depacketizer.partial_frames == ()


def test_interrupted_by_a_new_frame() -> None:
    depacketizer = Depacketizer()
    assert depacketizer.push(pkt(M.START, 1, frame=7)) == []
    assert depacketizer.push(pkt(M.START, 3, frame=8)) == [
        DroppedFrame(
            frame_number=7,
            reason=D.INTERRUPTED,
            received=1,
            expected=None,
            detail="interrupted by frame 8",
        )
    ]
    assert depacketizer.partial_frames == (8,)


def test_incomplete_is_reported_when_the_frame_gives_way() -> None:
    """Rust reports Incomplete at the FINAL; ours waits, since the middle packets may still
    come on the unordered channel, and reports when a newer frame evicts it."""
    depacketizer = Depacketizer()
    depacketizer.push(pkt(M.START, 10))
    assert depacketizer.push(pkt(M.FINAL, 13)) == []
    assert depacketizer.push(pkt(M.SINGLE, 14, frame=8)) == [
        DroppedFrame(
            frame_number=7,
            reason=D.INCOMPLETE,
            received=2,
            expected=4,
            detail="interrupted by frame 8",
        ),
        AssembledFrame(frame_number=8, payload=b"\x0e" * 3, timestamp=1000),
    ]


def test_a_frame_whose_start_never_came_is_an_unknown_frame() -> None:
    depacketizer = Depacketizer()
    assert depacketizer.push(pkt(M.INTER, 2)) == []
    assert depacketizer.push(pkt(M.FINAL, 3)) == []
    dropped = depacketizer.push(pkt(M.START, 9, frame=8))
    assert dropped == [
        DroppedFrame(
            frame_number=7,
            reason=D.UNKNOWN_FRAME,
            received=2,
            expected=None,
            detail="interrupted by frame 8",
        )
    ]


def test_multiple_frames_in_a_row() -> None:
    depacketizer = Depacketizer()
    sequence = 0
    for number in range(10):
        outputs = []
        for marker in (M.START, M.INTER, M.FINAL):
            outputs += depacketizer.push(pkt(marker, sequence, frame=number))
            sequence += 1
        assert [type(o) for o in outputs] == [AssembledFrame]


def test_a_duplicate_sequence_replaces_the_earlier_payload() -> None:
    depacketizer = Depacketizer()
    depacketizer.push(pkt(M.START, 1, payload=b"\xab" * 3))
    depacketizer.push(pkt(M.INTER, 1, payload=b"\xcd" * 3))
    assert depacketizer.buffered_packets == 1
    (frame,) = depacketizer.push(pkt(M.FINAL, 2, payload=b"\xef" * 3))
    assert isinstance(frame, AssembledFrame)
    assert frame.payload == b"\xcd" * 3 + b"\xef" * 3


def test_two_partial_frames_assemble_concurrently() -> None:
    depacketizer = Depacketizer(max_partial_frames=2)
    assert depacketizer.push(pkt(M.START, 0, frame=1)) == []
    assert depacketizer.push(pkt(M.START, 100, frame=2)) == []
    assert [f.frame_number for f in frames(depacketizer.push(pkt(M.FINAL, 1, frame=1)))] == [1]
    assert [f.frame_number for f in frames(depacketizer.push(pkt(M.FINAL, 101, frame=2)))] == [2]


def test_a_third_frame_at_capacity_evicts_the_oldest() -> None:
    depacketizer = Depacketizer(max_partial_frames=2)
    depacketizer.push(pkt(M.START, 0, frame=1))
    depacketizer.push(pkt(M.START, 100, frame=2))
    out = depacketizer.push(pkt(M.START, 200, frame=3))
    assert [(d.frame_number, d.reason) for d in out if isinstance(d, DroppedFrame)] == [
        (1, D.INTERRUPTED)
    ]
    assert depacketizer.partial_frames == (2, 3)


def test_a_single_at_capacity_evicts_the_oldest() -> None:
    depacketizer = Depacketizer(max_partial_frames=2)
    depacketizer.push(pkt(M.START, 0, frame=1))
    depacketizer.push(pkt(M.START, 100, frame=2))
    out = depacketizer.push(pkt(M.SINGLE, 300, frame=3))
    assert [(type(o).__name__, o.frame_number) for o in out] == [
        ("DroppedFrame", 1),
        ("AssembledFrame", 3),
    ]
    assert depacketizer.partial_frames == (2,)


# -- depacketizer: order tolerance and the rules of ours --------------------------------------


def test_any_order_within_the_frame() -> None:
    """The channel is unordered: FINAL and INTER before START still make the frame (Rust and
    JS would drop them as UnknownFrame). Extensions and timestamp come from the START."""
    depacketizer = Depacketizer()
    assert depacketizer.push(pkt(M.FINAL, 4, user_timestamp=1)) == []
    assert depacketizer.push(pkt(M.INTER, 3)) == []
    assert depacketizer.push(pkt(M.START, 2, user_timestamp=8, timestamp=55)) == [
        AssembledFrame(
            frame_number=7,
            payload=b"\x02" * 3 + b"\x03" * 3 + b"\x04" * 3,
            timestamp=55,
            user_timestamp=8,
        )
    ]


def test_late_and_duplicated_packets_of_an_ended_frame_evict_nothing() -> None:
    depacketizer = Depacketizer()
    depacketizer.push(pkt(M.SINGLE, 1, frame=1))
    depacketizer.push(pkt(M.START, 2, frame=2))
    late = depacketizer.push(pkt(M.SINGLE, 1, frame=1))
    assert late == [
        DroppedFrame(
            frame_number=1,
            reason=D.UNKNOWN_FRAME,
            received=1,
            detail="a packet of a frame that already ended (late or duplicated)",
        )
    ]
    assert depacketizer.partial_frames == (2,)  # the frame in progress survives
    assert frames(depacketizer.push(pkt(M.FINAL, 3, frame=2)))[0].frame_number == 2
    assert depacketizer.push(pkt(M.INTER, 2, frame=2))[0].reason is D.UNKNOWN_FRAME


def test_a_reused_frame_number_restarts_the_frame() -> None:
    depacketizer = Depacketizer()
    depacketizer.push(pkt(M.START, 10))
    depacketizer.push(pkt(M.INTER, 11))
    out = depacketizer.push(pkt(M.START, 50))
    assert out == [
        DroppedFrame(
            frame_number=7,
            reason=D.INTERRUPTED,
            received=2,
            detail="its frame number was reused",
        )
    ]
    depacketizer.push(pkt(M.FINAL, 60))
    out = depacketizer.push(pkt(M.FINAL, 61))  # a second, different FINAL
    assert out == [
        DroppedFrame(
            frame_number=7,
            reason=D.INCOMPLETE,
            received=2,
            expected=11,
            detail="its frame number was reused",
        )
    ]
    assert depacketizer.partial_frames == (7,)


def test_a_single_reusing_a_partial_frame_number_drops_the_partial() -> None:
    depacketizer = Depacketizer(max_partial_frames=2)
    depacketizer.push(pkt(M.START, 1, frame=1))
    depacketizer.push(pkt(M.START, 5, frame=2))
    out = depacketizer.push(pkt(M.SINGLE, 9, frame=2))
    assert [(type(o).__name__, o.frame_number) for o in out] == [
        ("DroppedFrame", 2),
        ("AssembledFrame", 2),
    ]
    assert depacketizer.partial_frames == (1,)


def test_more_distinct_packets_than_the_bound_drop_the_frame() -> None:
    depacketizer = Depacketizer(max_packets_per_frame=4)
    for sequence in range(4):
        assert depacketizer.push(pkt(M.INTER, sequence)) == []
    assert depacketizer.push(pkt(M.INTER, 2)) == []  # a duplicate is not one more
    assert depacketizer.push(pkt(M.INTER, 9)) == [
        DroppedFrame(
            frame_number=7,
            reason=D.BUFFER_FULL,
            received=4,
            detail="5 packets, over the 4 a frame may have",
        )
    ]
    assert depacketizer.partial_frames == ()


def test_a_span_longer_than_the_bound_is_dropped_at_once() -> None:
    depacketizer = Depacketizer(max_packets_per_frame=4)
    depacketizer.push(pkt(M.START, 0xFFFE))
    assert depacketizer.push(pkt(M.FINAL, 3)) == [  # 0xFFFE..3 wraps: 6 packets
        DroppedFrame(
            frame_number=7,
            reason=D.BUFFER_FULL,
            received=2,
            expected=6,
            detail="6 packets, over the 4 a frame may have",
        )
    ]


def test_lowering_max_partial_frames_evicts_at_once_and_reset_forgets() -> None:
    depacketizer = Depacketizer(max_partial_frames=3)
    for number in (1, 2, 3):
        depacketizer.push(pkt(M.START, number * 10, frame=number))
    out = depacketizer.set_max_partial_frames(1)
    assert [(d.frame_number, d.detail) for d in out] == [
        (1, "max_partial_frames was lowered"),
        (2, "max_partial_frames was lowered"),
    ]
    assert depacketizer.max_partial_frames == 1
    assert [d.frame_number for d in depacketizer.reset("handle changed")] == [3]
    assert depacketizer.remembered_frames == 0
    assert frames(depacketizer.push(pkt(M.SINGLE, 1, frame=1)))  # forgotten: accepted again
    with pytest.raises(ValueError):
        depacketizer.set_max_partial_frames(0)


def test_remembered_frame_numbers_are_bounded() -> None:
    depacketizer = Depacketizer(max_remembered_frames=4)
    for number in range(6):
        depacketizer.push(pkt(M.SINGLE, number, frame=number))
    assert depacketizer.remembered_frames == 4
    assert frames(depacketizer.push(pkt(M.SINGLE, 0, frame=0)))  # 0 was forgotten
    assert not frames(depacketizer.push(pkt(M.SINGLE, 5, frame=5)))  # 5 is remembered


@pytest.mark.parametrize(
    "kwargs",
    [{"max_partial_frames": 0}, {"max_packets_per_frame": 0}, {"max_remembered_frames": True}],
)
def test_depacketizer_bounds_are_checked(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Depacketizer(**kwargs)


# -- Hypothesis -------------------------------------------------------------------------------


@st.composite
def shuffled_frames(draw: st.DrawFn) -> tuple[list[bytes], list[DataTrackPacket], int]:
    mtu = draw(st.integers(41, 120))
    packetizer = Packetizer(5, mtu=mtu)
    packetizer.sequence = draw(st.integers(0, 0xFFFF))
    packetizer.frame_number = draw(st.integers(0, 0xFFFF))
    payloads = draw(st.lists(st.binary(min_size=1, max_size=600), min_size=1, max_size=4))
    stream: list[DataTrackPacket] = []
    for payload in payloads:
        user_timestamp = draw(st.none() | st.integers(0, 2**64 - 1))
        e2ee = draw(st.none() | st.just(IV))
        packets = packetizer.packetize(
            payload,
            timestamp=draw(st.integers(0, 2**32 - 1)),
            user_timestamp=user_timestamp,
            e2ee=e2ee,
        )
        stream += draw(st.permutations(packets))
    return payloads, stream, mtu


@settings(max_examples=300, deadline=None)
@given(shuffled_frames())
def test_frames_split_and_shuffled_within_the_frame_come_back_whole(
    case: tuple[list[bytes], list[DataTrackPacket], int],
) -> None:
    payloads, stream, _ = case
    depacketizer = Depacketizer(max_packets_per_frame=1000)
    outputs = [out for packet in stream for out in depacketizer.push(packet)]
    assert [type(o) for o in outputs] == [AssembledFrame] * len(payloads)
    assert [o.payload for o in outputs] == payloads
    firsts = [p for p in stream if p.is_start]
    assert [(o.user_timestamp, o.e2ee) for o in outputs] == [
        (p.user_timestamp, p.e2ee) for p in firsts
    ]
    assert depacketizer.partial_frames == ()


packet_soup = st.lists(
    st.builds(
        pkt,
        st.sampled_from(FrameMarker),
        st.integers(0, 12) | st.integers(0xFFF8, 0xFFFF),
        frame=st.integers(0, 5),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(packet_soup, st.integers(1, 3), st.integers(1, 6), st.integers(1, 4))
def test_any_packets_never_raise_nor_pass_a_bound(
    packets: list[DataTrackPacket], partials: int, per_frame: int, remembered: int
) -> None:
    depacketizer = Depacketizer(
        max_partial_frames=partials,
        max_packets_per_frame=per_frame,
        max_remembered_frames=remembered,
    )
    for packet in packets:
        for out in depacketizer.push(packet):
            assert isinstance(out, AssembledFrame | DroppedFrame)
            if isinstance(out, DroppedFrame):
                assert out.reason is not D.MISSING_E2EE
        assert len(depacketizer.partial_frames) <= partials
        assert all(len(p.payloads) <= per_frame for p in depacketizer._partials.values())
        assert depacketizer.remembered_frames <= remembered
