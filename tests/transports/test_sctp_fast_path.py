"""transports/_sctp_fast.py: bundled SCTP packets, delayed SACK, and the aiortc version pin.

Two associations talk over an in-memory stand-in for DTLS (`Net`): it drops, delays and so
reorders packets with a seeded generator, and delivers each side's packets one at a time on
a reader task, as aiortc's DTLS transport does. The event loop runs on virtual time
(`VirtualLoop`), so retransmission timers (RTO at least 1 s) cost nothing: a test covering
minutes of SCTP time runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import random
import selectors
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import aiortc
import pytest
from aiortc import RTCDataChannel, RTCDataChannelParameters, rtcpeerconnection
from aiortc import rtcsctptransport as sctp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lkproto.transports._aiortc  # noqa: F401 - installs the fast path, as every adapter does
from lkproto.transports import _sctp, _sctp_fast
from lkproto.transports._sctp_fast import FastSctpTransport

STOCK = sctp.RTCSctpTransport
CAPS = sctp.RTCSctpCapabilities(maxMessageSize=65536)
DATA, SACK, FWD = sctp.DataChunk.type, sctp.SackChunk.type, sctp.ForwardTsnChunk.type

# -- virtual time -------------------------------------------------------------------------------


class _InstantSelector(selectors.BaseSelector):
    """A selector that never waits: it moves the loop's clock to the next timer instead."""

    def __init__(self) -> None:
        self._keys: dict[int, selectors.SelectorKey] = {}
        self.loop: VirtualLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        assert self.loop is not None
        if timeout is None:
            raise RuntimeError("nothing scheduled: the test would wait forever")
        self.loop.now += timeout
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _InstantSelector()
        self.now = 0.0
        super().__init__(selector)
        selector.loop = self

    def time(self) -> float:
        return self.now


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        tasks = asyncio.all_tasks(loop)  # the readers, and any deferred SACK
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks))
        loop.close()


async def until(condition: Callable[[], bool], limit: float, step: float = 0.05) -> None:
    """Wait (virtual seconds) until `condition()` holds; fail after `limit`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {limit} virtual seconds")
        await asyncio.sleep(step)


# -- an in-memory DTLS transport ----------------------------------------------------------------


class FakeDtls:
    """What `RTCSctpTransport` uses of `RTCDtlsTransport`; packets go through `Net`."""

    def __init__(self, net: Net | None, role: str) -> None:
        self.state = "connected"
        self._role = role
        self._data_receiver: Any = None
        self.net = net
        self.sent: list[bytes] = []
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.peer: FakeDtls | None = None

    def _register_data_receiver(self, receiver: Any) -> None:
        self._data_receiver = receiver

    def _unregister_data_receiver(self, receiver: Any) -> None:
        self._data_receiver = None

    async def _send_data(self, data: bytes) -> None:
        self.sent.append(data)
        self.net.carry(self, data)

    async def read(self) -> None:
        while True:
            data = await self.inbox.get()
            if self._data_receiver is not None:
                await self._data_receiver._handle_data(data)


class Net:
    """Carries packets between two `FakeDtls`: drops a share of them, delays each by a
    random amount (so packets overtake each other), all drawn from one seeded generator."""

    def __init__(self, seed: int, drop: float = 0.0, jitter: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.drop = drop
        self.jitter = jitter
        self.lossy = False  # drops and jitter apply once the association is up
        self.last: dict[int, float] = {}  # per sender: when its last packet is due
        self.a = FakeDtls(self, "client")
        self.b = FakeDtls(self, "server")
        self.a.peer, self.b.peer = self.b, self.a
        self.tasks = [asyncio.ensure_future(t.read()) for t in (self.a, self.b)]

    def carry(self, source: FakeDtls, data: bytes) -> None:
        assert source.peer is not None
        loop = asyncio.get_running_loop()
        if self.lossy:
            if self.rng.random() < self.drop:
                return
            when = loop.time() + 0.005 + self.rng.random() * self.jitter
        else:  # in order: timers due at the same time may run in any order
            when = max(loop.time() + 0.005, self.last.get(id(source), 0.0) + 1e-6)
            self.last[id(source)] = when
        loop.call_at(when, source.peer.inbox.put_nowait, data)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()


def chunks_of(packet: bytes) -> list[sctp.Chunk]:
    return sctp.parse_packet(packet)[3]  # also checks the CRC32c


async def associate(
    net: Net,
    cls_a: type[sctp.RTCSctpTransport],
    cls_b: type[sctp.RTCSctpTransport],
    start_tsn: int | None = None,
) -> tuple[Any, Any]:
    """Two associations over `net`, established; `start_tsn` is a's first TSN if given."""
    a, b = cls_a(net.a), cls_b(net.b)  # type: ignore[arg-type]
    if start_tsn is not None:  # before the INIT, which announces it
        a._local_tsn = start_tsn
        a._last_sacked_tsn = a._advanced_peer_ack_tsn = sctp.tsn_minus_one(start_tsn)
    await a.start(CAPS, 5000)
    await b.start(CAPS, 5000)
    established = sctp.RTCSctpTransport.State.ESTABLISHED
    await until(lambda: established == a._association_state == b._association_state, 60)
    return a, b


def channel(association: Any, id: int, **options: Any) -> RTCDataChannel:
    params = RTCDataChannelParameters(label=f"c{id}", negotiated=True, id=id, **options)
    return RTCDataChannel(association, params, False)


def collect(ch: RTCDataChannel) -> list[bytes]:
    """Every message `ch` receives, in order: binary ones through the association's reader
    when it has readers (FastSctpTransport, read as `AiortcPeer._read` does), the rest
    through "message" listeners (a message that came both ways would be there twice)."""
    got: list[bytes] = []
    ch.on("message", got.append)
    readers = getattr(ch.transport, "lk_readers", None)
    if readers is not None:
        readers[ch] = got.append
    return got


def test_binary_messages_go_to_the_reader_the_rest_to_message_listeners() -> None:
    async def scenario() -> tuple[list[object], list[object], list[object], list[object]]:
        net = Net(seed=5)
        a, b = await associate(net, STOCK, FastSctpTransport)
        tx, rx = channel(a, 1), channel(b, 1)
        utx, urx = channel(a, 3, ordered=False), channel(b, 3)
        plain_tx, plain_rx = channel(a, 7), channel(b, 7)  # no reader: listeners get it all
        read: list[object] = []
        heard: list[object] = []
        unordered: list[object] = []
        b.lk_readers[rx] = read.append
        b.lk_readers[urx] = unordered.append
        rx.on("message", heard.append)
        urx.on("message", heard.append)
        plain: list[object] = []
        plain_rx.on("message", plain.append)
        big = bytes(range(256)) * 20  # 5,120 B: fragments, reassembled by aiortc's path
        for m in (b"one", "text", b"", big, b"two"):
            tx.send(m)
            plain_tx.send(m)
        utx.send(b"u1")
        utx.send(b"u2")
        await until(lambda: len(read) == 3 and len(heard) == 2 and len(plain) == 5, 60)
        await until(lambda: len(unordered) == 2, 60)
        net.close()
        return read, heard, unordered, plain

    read, heard, unordered, plain = run(scenario())
    assert read == [b"one", bytes(range(256)) * 20, b"two"]
    assert heard == ["text", b""]  # text and the empty message (its own PPID) as in aiortc
    assert sorted(unordered) == [b"u1", b"u2"]  # type: ignore[type-var]
    assert plain == [b"one", "text", b"", bytes(range(256)) * 20, b"two"]


# -- the pin and the fallback -------------------------------------------------------------------


def test_the_fast_path_is_installed_with_the_tested_aiortc() -> None:
    assert aiortc.__version__ in _sctp.TESTED_AIORTC
    assert _sctp.fast_path_problem() is None
    assert rtcpeerconnection.RTCSctpTransport is FastSctpTransport
    assert sctp.RTCSctpTransport is STOCK  # aiortc's own class is left as it is


@pytest.fixture
def reinstall(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """`install()` again (restored after the test), with the one-warning latch cleared."""
    monkeypatch.setattr(rtcpeerconnection, "RTCSctpTransport", FastSctpTransport)
    monkeypatch.setattr(_sctp, "_warned", False)
    monkeypatch.delenv("LKPROTO_SCTP_FAST_PATH", raising=False)
    return _sctp.install


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "lkproto.transports" and r.levelno == logging.WARNING
    ]


def test_an_untested_aiortc_gets_stock_sctp_and_one_warning(
    monkeypatch: pytest.MonkeyPatch,
    reinstall: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    reinstall()
    reinstall()
    assert rtcpeerconnection.RTCSctpTransport is STOCK
    assert sctp.InboundStream is _sctp.OrderedInboundStream  # the delivery fix stays
    assert warnings_of(caplog) == [
        "aiortc 1.17.0 is not one the SCTP fast path was tested with; "
        "using aiortc's own SCTP transport (slower for small messages)"
    ]


def test_a_missing_method_gets_stock_sctp(
    monkeypatch: pytest.MonkeyPatch,
    reinstall: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delattr(STOCK, "_t3_expired")
    reinstall()
    assert rtcpeerconnection.RTCSctpTransport is STOCK
    assert warnings_of(caplog) == [
        "aiortc 1.16.0 lacks what the SCTP fast path uses: _t3_expired; "
        "using aiortc's own SCTP transport (slower for small messages)"
    ]


def test_a_renamed_attribute_or_module_name_gets_stock_sctp(
    monkeypatch: pytest.MonkeyPatch, reinstall: Callable[[], None]
) -> None:
    required = dict(_sctp_fast.REQUIRED)
    required["attributes"] = (*required["attributes"], "_renamed_in_a_later_release")
    monkeypatch.setattr(_sctp_fast, "REQUIRED", required)
    monkeypatch.delattr(sctp, "USERDATA_MAX_LENGTH")
    assert _sctp.fast_path_problem() == (
        "aiortc 1.16.0 lacks what the SCTP fast path uses: "
        "USERDATA_MAX_LENGTH, _renamed_in_a_later_release"
    )
    reinstall()
    assert rtcpeerconnection.RTCSctpTransport is STOCK


def test_the_environment_can_ask_for_stock_sctp_without_a_warning(
    monkeypatch: pytest.MonkeyPatch,
    reinstall: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("LKPROTO_SCTP_FAST_PATH", "0")
    reinstall()
    assert rtcpeerconnection.RTCSctpTransport is STOCK
    assert warnings_of(caplog) == []
    monkeypatch.setenv("LKPROTO_SCTP_FAST_PATH", "1")
    reinstall()
    assert rtcpeerconnection.RTCSctpTransport is FastSctpTransport


# -- bundling -----------------------------------------------------------------------------------


async def _small_burst(cls: type[sctp.RTCSctpTransport]) -> tuple[list[bytes], list[bytes]]:
    """100 x 100 B sent back to back on a reliable channel; returns (received, packets)."""
    net = Net(seed=1)
    a, b = await associate(net, cls, STOCK)
    tx, rx = channel(a, 1), channel(b, 1)
    got = collect(rx)
    start = len(net.a.sent)
    messages = [bytes([i]) * 100 for i in range(100)]
    for m in messages:
        tx.send(m)
    await until(lambda: len(got) == len(messages), 60)
    net.close()
    return got, net.a.sent[start:]


def test_small_messages_queued_together_share_packets() -> None:
    got, packets = run(_small_burst(FastSctpTransport))
    assert got == [bytes([i]) * 100 for i in range(100)]
    per_packet = [sum(c.type == DATA for c in chunks_of(p)) for p in packets]
    assert sum(per_packet) == 100  # nothing resent on a clean link
    # 116-byte chunks (16 header + 100): 10 fit the 1,177 bytes after the common header.
    assert max(per_packet) == 10
    assert len([n for n in per_packet if n]) <= 12  # 11 seen: 10, 10, 10, 5 (cwnd), 10, ...
    assert max(len(p) for p in packets) <= sctp.SCTP_MAX_PACKET_LENGTH
    # The I bit (RFC 7053) only on the last chunk of a transmission that filled the window or
    # emptied the queue: 3,500 B sent of a 3,480 B window, then each SACK opens ~2 packets.
    i_bits = [
        [c.flags >> 3 & 1 for c in chunks_of(p) if c.type == DATA] for p in packets if p[12] == 0
    ]
    assert [sum(bits) for bits in i_bits] == [0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 1]
    assert all(bits[-1] or not any(bits) for bits in i_bits)


def test_stock_aiortc_sends_one_chunk_per_packet() -> None:
    """The baseline the fast path improves on (fails if aiortc starts bundling itself)."""
    got, packets = run(_small_burst(STOCK))
    assert len(got) == 100
    per_packet = [sum(c.type == DATA for c in chunks_of(p)) for p in packets]
    assert max(per_packet) == 1
    assert sum(per_packet) == 100


def test_a_full_size_chunk_goes_alone_and_fragments_keep_their_order() -> None:
    async def scenario() -> tuple[list[bytes], list[list[int]]]:
        net = Net(seed=2)
        a, b = await associate(net, FastSctpTransport, STOCK)
        tx, rx = channel(a, 1), channel(b, 1)
        got = collect(rx)
        start = len(net.a.sent)
        a._cwnd = 16 * sctp.USERDATA_MAX_LENGTH  # as after slow start: not the limit here
        big = (bytes(range(256)) * 11)[:2800]  # 3 fragments, the last 480 bytes
        tx.send(big)
        tx.send(b"small")
        await until(lambda: len(got) == 2, 60)
        net.close()
        sizes = [
            [len(c.user_data) for c in chunks_of(p) if isinstance(c, sctp.DataChunk)]
            for p in net.a.sent[start:]
        ]
        return got, [s for s in sizes if s]

    got, sizes = run(scenario())
    assert got == [(bytes(range(256)) * 11)[:2800], b"small"]
    full = sctp.USERDATA_MAX_LENGTH
    assert sizes == [[full], [full], [2800 - 2 * full, 5]]


async def _big_message(idle_rtos: float) -> tuple[list[bytes], list[tuple[float, int]], int]:
    """One 15,360-byte message (14 chunks) on a window of 32 MTU, the last new DATA having
    gone `idle_rtos` RTOs before; returns (received, [(time, I bit)] of each DATA packet
    sent, cwnd after the first transmission)."""
    net = Net(seed=4)
    a, b = await associate(net, FastSctpTransport, STOCK)
    tx, rx = channel(a, 1), channel(b, 1)
    got = collect(rx)
    a._cwnd = 32 * sctp.USERDATA_MAX_LENGTH  # as after slow start
    if idle_rtos:  # aiortc keeps its own time with time.time(), not the loop's
        a._lk_last_data_sent = time.time() - idle_rtos * a._rto
    loop = asyncio.get_running_loop()
    sent: list[tuple[float, int]] = []
    carry = net.a._send_data

    async def send_data(data: bytes) -> None:
        for c in chunks_of(data):
            if isinstance(c, sctp.DataChunk):
                sent.append((loop.time(), c.flags >> 3 & 1))
        await carry(data)

    net.a._send_data = send_data  # type: ignore[method-assign]
    tx.send(bytes(range(256)) * 60)
    await asyncio.sleep(0)  # the flush task runs: the first transmission
    await asyncio.sleep(0)
    cwnd = a._cwnd
    await until(lambda: len(got) == 1, 60)
    net.close()
    return got, sent, cwnd


def test_new_data_fills_the_window_in_one_transmission() -> None:
    """Max.Burst (4 packets) does not hold back new data: with a window for all 14 chunks
    they leave at once, where aiortc would wait for three SACK round trips."""
    got, sent, cwnd = run(_big_message(0))
    assert got == [bytes(range(256)) * 60]
    assert len(sent) == 14  # full-size chunks, one per packet, nothing resent
    assert {t for t, _ in sent} == {sent[0][0]}  # all before any SACK could come back
    assert [i for _, i in sent] == [0] * 13 + [1]  # I bit on the last: the queue is empty
    assert cwnd == 32 * sctp.USERDATA_MAX_LENGTH


def test_an_idle_window_halves_per_rto_down_to_4_mtu() -> None:
    """RFC 9260 section 7.2.1: after 2.5 RTOs without new data, 32 MTU -> 16 -> 8 MTU; after
    4.5, down to the 4 MTU floor; the first transmission is limited to that."""
    mtu = sctp.USERDATA_MAX_LENGTH
    for idle, window in ((2.5, 8), (4.5, 4)):
        got, sent, cwnd = run(_big_message(idle))
        assert got == [bytes(range(256)) * 60]
        assert cwnd == window * mtu
        first = [i for t, i in sent if t == sent[0][0]]
        assert first == [0] * (window - 1) + [1]  # the window is full: I bit on the last
        assert len(sent) == 14


# -- delayed SACK -------------------------------------------------------------------------------


def _data_packet(b: Any, tsn: int, ssn: int, payload: bytes) -> bytes:
    chunk = sctp.DataChunk(
        sctp.SCTP_DATA_FIRST_FRAG | sctp.SCTP_DATA_LAST_FRAG,
        struct.pack("!LHHL", tsn, 1, ssn, sctp.WEBRTC_BINARY) + payload,
    )
    return sctp.serialize_packet(5000, 5000, b._local_verification_tag, chunk)


def test_sack_every_second_packet_at_once_on_a_gap_or_its_filling_else_on_the_next_pass() -> None:
    async def scenario() -> list[str]:
        net = Net(seed=3)
        _, b = await associate(net, STOCK, FastSctpTransport)
        channel(b, 1)
        await asyncio.sleep(1)
        first = sctp.tsn_plus_one(b._last_received_tsn)
        log: list[str] = []

        def sacks() -> list[tuple[int, list[tuple[int, int]]]]:
            found = [c for p in net.b.sent for c in chunks_of(p) if isinstance(c, sctp.SackChunk)]
            return [((c.cumulative_tsn - first) % 2**32, list(c.gaps)) for c in found]

        before = len(sacks())

        async def step(label: str, action: Awaitable[None]) -> None:
            await action
            log.append(f"{label}: {sacks()[before:]}")

        await step("one packet", b._handle_data(_data_packet(b, first, 0, b"x")))
        await step("next loop pass", asyncio.sleep(0.001))
        await step("third", b._handle_data(_data_packet(b, first + 1, 1, b"y")))
        await step("fourth", b._handle_data(_data_packet(b, first + 2, 2, b"z")))
        await step("gap", b._handle_data(_data_packet(b, first + 4, 4, b"after a gap")))
        await step("filled", b._handle_data(_data_packet(b, first + 3, 3, b"the gap")))
        await step("then", b._handle_data(_data_packet(b, first + 5, 5, b"in order")))
        await step("next pass", asyncio.sleep(0.001))
        net.close()
        return log

    # Cumulative TSNs are shown relative to the first packet's TSN (0).
    assert run(scenario()) == [
        "one packet: []",
        "next loop pass: [(0, [])]",
        "third: [(0, [])]",
        "fourth: [(0, []), (2, [])]",
        "gap: [(0, []), (2, []), (2, [(2, 2)])]",
        "filled: [(0, []), (2, []), (2, [(2, 2)]), (4, [])]",
        "then: [(0, []), (2, []), (2, [(2, 2)]), (4, [])]",
        "next pass: [(0, []), (2, []), (2, [(2, 2)]), (4, []), (5, [])]",
    ]


# -- any sizes, drops and reordering ------------------------------------------------------------

PAIRS = [
    (FastSctpTransport, FastSctpTransport),
    (FastSctpTransport, STOCK),
    (STOCK, FastSctpTransport),
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=st.sampled_from(PAIRS),
    sizes=st.lists(
        st.one_of(st.integers(1, 300), st.integers(301, 6000)), min_size=1, max_size=120
    ),
    back=st.lists(st.integers(1, 1500), max_size=40),
    lossy_count=st.integers(0, 60),
    drop=st.sampled_from([0.0, 0.05, 0.2, 0.35]),
    jitter=st.sampled_from([0.0, 0.02, 0.3]),
    bursts=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_reliable_message_arrives_once_in_order_whatever_the_link_does(
    pair: tuple[type[sctp.RTCSctpTransport], type[sctp.RTCSctpTransport]],
    sizes: list[int],
    back: list[int],
    lossy_count: int,
    drop: float,
    jitter: float,
    bursts: int,
    seed: int,
) -> None:
    def message(tag: bytes, index: int, size: int) -> bytes:
        head = tag + index.to_bytes(4, "big")
        return (head * (size // len(head) + 1))[: max(size, len(head))]

    async def scenario() -> None:
        net = Net(seed, drop, jitter)
        a, b = await associate(net, *pair)
        net.lossy = True
        tx, rx = channel(a, 1), channel(b, 1)  # reliable, ordered
        ltx, lrx = channel(a, 3, ordered=False, maxRetransmits=0), channel(b, 3)
        btx, brx = channel(b, 5), channel(a, 5)  # the other way, so SACKs meet DATA
        got, lossy_got, back_got = collect(rx), collect(lrx), collect(brx)
        sent = [message(b"R", i, n) for i, n in enumerate(sizes)]
        lossy = [message(b"L", i, 100) for i in range(lossy_count)]
        replies = [message(b"B", i, n) for i, n in enumerate(back)]

        # In bursts, each sent without yielding, with (virtual) pauses between.
        def cut(items: list[bytes], k: int) -> list[bytes]:
            step = -(-len(items) // bursts)
            return items[k * step : (k + 1) * step]

        for k in range(bursts):
            for m, lm in itertools.zip_longest(cut(sent, k), cut(lossy, k)):
                if m is not None:
                    tx.send(m)
                if lm is not None:
                    ltx.send(lm)
            for m in cut(replies, k):
                btx.send(m)
            await asyncio.sleep(0.01 * k)

        def settled() -> bool:
            queues = [(s._sent_queue, s._outbound_queue, s._data_channel_queue) for s in (a, b)]
            return not any(q for three in queues for q in three) and (
                b._last_received_tsn == sctp.tsn_minus_one(a._local_tsn)
                and a._last_received_tsn == sctp.tsn_minus_one(b._local_tsn)
            )

        await until(lambda: len(got) == len(sent) and len(back_got) == len(replies), 1800, 0.5)
        # Everything is acknowledged cumulatively in the end: abandoned lossy chunks too,
        # which takes FORWARD TSN (RFC 3758) getting through.
        await until(settled, 1800, 0.5)
        net.close()
        assert got == sent
        assert back_got == replies
        assert len(set(lossy_got)) == len(lossy_got)
        assert set(lossy_got) <= set(lossy)
        if drop == 0.0 and jitter == 0.0:
            assert sorted(lossy_got) == sorted(lossy)
        for packet in net.a.sent + net.b.sent:
            assert len(packet) <= sctp.SCTP_MAX_PACKET_LENGTH
            chunks_of(packet)

    run(scenario())


# -- no idle scans ------------------------------------------------------------------------------


class CountingDeque(collections.deque[Any]):
    walks = 0

    def __iter__(self) -> Any:
        CountingDeque.walks += 1
        return super().__iter__()


def test_the_sent_queue_is_walked_only_after_t3_or_a_sack_with_gaps() -> None:
    async def scenario() -> list[tuple[str, int, int]]:
        net = Net(seed=4, drop=1.0)  # nothing arrives: chunks stay outstanding
        a, _ = await associate(net, FastSctpTransport, STOCK)
        net.lossy = True
        a._cwnd = 64 * sctp.USERDATA_MAX_LENGTH
        tx = channel(a, 1)
        a._sent_queue = CountingDeque(a._sent_queue)
        log: list[tuple[str, int, int]] = []

        async def sends(label: str, n: int) -> None:
            CountingDeque.walks = 0
            for _ in range(n):
                tx.send(b"m" * 100)
                await asyncio.sleep(0)  # one transmission per message
            log.append((label, len(a._sent_queue), CountingDeque.walks))

        await sends("idle", 30)
        a._t3_expired()  # marks all 30 for retransmission; cwnd drops to one MTU
        await asyncio.sleep(0)
        log.append(("t3: still marked", sum(c._retransmit for c in a._sent_queue), 0))
        a._cwnd = 64 * sctp.USERDATA_MAX_LENGTH
        await sends("after t3", 3)  # the first walk resends the rest; then no more walks
        net.close()
        return log

    # After T3 the 1-MTU window (1,160 B) resends 12 of the 30 (100 B each): 18 stay marked,
    # and the next transmission's walk resends them; no walk after that.
    assert run(scenario()) == [("idle", 30, 0), ("t3: still marked", 18, 0), ("after t3", 33, 1)]


# -- receiving in order -------------------------------------------------------------------------


def _receiver(cls: type[sctp.RTCSctpTransport], last: int) -> Any:
    """An association as after its handshake, whose cumulative TSN is `last`, that keeps the
    chunks it would send."""

    async def make() -> Any:  # aiortc's constructor wants a running loop
        return cls(FakeDtls(None, "server"))  # type: ignore[arg-type]

    receiver = run(make())
    receiver._last_received_tsn = last
    receiver.sent_chunks = []

    async def send_chunk(chunk: sctp.Chunk) -> None:
        receiver.sent_chunks.append(chunk)

    receiver._send_chunk = send_chunk
    return receiver


class UnwrappedReceiver:
    """aiortc's rules for marking TSNs received, on TSNs that do not wrap (Python ints), so
    that plain integer order is serial number order: what a receiver should do."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.misordered: set[int] = set()
        self.duplicates: list[int] = []

    def mark(self, tsn: int) -> bool:
        if tsn <= self.last or tsn in self.misordered:
            self.duplicates.append(tsn)
            return True
        self.misordered.add(tsn)
        while self.last + 1 in self.misordered:
            self.last += 1
        self.misordered = {t for t in self.misordered if t > self.last}
        self.duplicates = [t for t in self.duplicates if t > self.last]
        return False


@settings(deadline=None)  # each example makes two associations on a loop of their own
@given(
    last=st.sampled_from([0, 1000, 2**32 - 5, 2**32 - 2, 2**32 - 1]),
    # Each TSN relative to the cumulative TSN so far: mostly the next one (1), some
    # duplicates (0 or less) and some leaving a gap (2 or more).
    offsets=st.lists(st.one_of(st.just(1), st.integers(-2, 4)), max_size=40),
)
def test_marking_tsns_received_follows_serial_number_order_across_the_wrap(
    last: int, offsets: list[int]
) -> None:
    fast, model = _receiver(FastSctpTransport, last), UnwrappedReceiver(last)
    stock = _receiver(STOCK, last)
    for offset in offsets:
        tsn = model.last + offset
        assert fast._mark_received(tsn % 2**32) == model.mark(tsn)
        assert fast._last_received_tsn == model.last % 2**32
        assert fast._sack_misordered == {t % 2**32 for t in model.misordered}
        assert fast._sack_duplicates == [t % 2**32 for t in model.duplicates]
        if model.last + 4 < 2**32 or last + 1 >= 2**32:  # nothing near the wrap: as aiortc
            stock._mark_received(tsn % 2**32)
            assert (stock._last_received_tsn, stock._sack_misordered) == (
                fast._last_received_tsn,
                fast._sack_misordered,
            )


def test_aiortc_alone_stalls_on_a_gap_across_the_tsn_wrap_and_the_fast_path_does_not() -> None:
    # 2**32 - 1 is late; 0, 1 and 2 arrive before it. aiortc's walk sorts 0, 1, 2 first and
    # stops: its cumulative TSN stays at 2**32 - 2 for good.
    fast, stock = _receiver(FastSctpTransport, 2**32 - 2), _receiver(STOCK, 2**32 - 2)
    for tsn in (0, 1, 2, 2**32 - 1, 3):
        assert fast._mark_received(tsn) is False
        assert stock._mark_received(tsn) is False
    assert stock._last_received_tsn == 2**32 - 2
    assert stock._sack_misordered == {0, 1, 2, 3, 2**32 - 1}
    assert fast._last_received_tsn == 3
    assert fast._sack_misordered == set()


def test_sack_gap_blocks_are_ordered_and_merged_across_the_wrap() -> None:
    # Cumulative TSN 2**32 - 3; received beyond it: 2**32 - 1, 0, 1 (offsets 2, 3, 4) and 5
    # (offset 8). aiortc would report (3, 4), (8, 8), (2, 2): unmerged and out of order.
    fast = _receiver(FastSctpTransport, 2**32 - 3)
    for tsn in (2**32 - 1, 0, 1, 5, 0):
        fast._mark_received(tsn)
    fast._advertised_rwnd = 131072
    run(fast._lk_send_sack())
    (sack,) = fast.sent_chunks
    assert (sack.cumulative_tsn, sack.gaps, sack.duplicates) == (2**32 - 3, [(2, 4), (8, 8)], [0])
    assert bytes(sack) == struct.pack(
        "!BBHLLHHHHHHL", SACK, 0, 28, 2**32 - 3, 131072, 2, 1, 2, 4, 8, 8, 0
    )
    assert fast._sack_duplicates == [] and fast._sack_needed is False


def test_a_forward_tsn_before_the_wrap_advances_over_what_arrived_after_it() -> None:
    # Lost: 2**32 - 3 .. 2**32 - 1 (abandoned by the sender); arrived: 0 and 1.
    fast = _receiver(FastSctpTransport, 2**32 - 4)
    fast._mark_received(0)
    fast._mark_received(1)
    forward = sctp.ForwardTsnChunk()
    forward.cumulative_tsn = 2**32 - 1
    forward.streams = []
    run(fast._receive_forward_tsn_chunk(forward))
    assert (fast._last_received_tsn, fast._sack_misordered) == (1, set())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sender=st.sampled_from([FastSctpTransport, STOCK]),
    start=st.integers(2**32 - 60, 2**32 - 1),
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=80),
    drop=st.sampled_from([0.05, 0.2]),
    jitter=st.sampled_from([0.02, 0.3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_lossy_reordering_link_across_the_tsn_wrap_delivers_everything_and_settles(
    sender: type[sctp.RTCSctpTransport],
    start: int,
    sizes: list[int],
    drop: float,
    jitter: float,
    seed: int,
) -> None:
    async def scenario() -> None:
        net = Net(seed, drop, jitter)
        a, b = await associate(net, sender, FastSctpTransport, start_tsn=start)
        net.lossy = True
        tx, rx = channel(a, 1), channel(b, 1)
        got = collect(rx)
        sent = [bytes([n % 256]) * size for n, size in enumerate(sizes)]
        for m in sent:
            tx.send(m)
        await until(
            lambda: (
                len(got) == len(sent)
                and not a._sent_queue
                and b._last_received_tsn == sctp.tsn_minus_one(a._local_tsn)
            ),
            1800,
            0.5,
        )
        net.close()
        assert got == sent
        assert b._sack_misordered == set()

    run(scenario())


# -- delivery reports ---------------------------------------------------------------------------


async def _tagged_run(
    net: Net,
    sizes: list[int],
    untagged: set[int],
    lossy_count: int,
    start_tsn: int | None = None,
    in_order: bool = False,
) -> tuple[list[tuple[int, int]], list[int], Any]:
    """Sizes sent on a reliable channel from a `FastSctpTransport` to aiortc's, each tagged
    with its index + 1 unless untagged, with lossy messages between; returns the reports as
    (tag, messages the receiver had by then), the tagged indexes and the sender."""
    a, b = await associate(net, FastSctpTransport, STOCK, start_tsn=start_tsn)
    net.lossy = not in_order
    tx, rx = channel(a, 1), channel(b, 1)
    ltx, _ = channel(a, 3, ordered=False, maxRetransmits=0), channel(b, 3)
    got = collect(rx)
    reports: list[tuple[int, int]] = []
    a.lk_on_delivered = lambda tag: reports.append((tag, len(got)))
    for n, size in enumerate(sizes):
        tx.send(bytes([n % 256]) * size)
        if n not in untagged:
            a.lk_tag_last_message(n + 1)
        if n < lossy_count:
            ltx.send(b"lossy")
        if n % 10 == 9:
            await asyncio.sleep(0.01)
    await until(lambda: len(got) == len(sizes) and not a._sent_queue, 1800, 0.5)
    net.close()
    assert got == [bytes([n % 256]) * size for n, size in enumerate(sizes)]
    return reports, [n for n in range(len(sizes)) if n not in untagged], a


def _check_reports(reports: list[tuple[int, int]], tagged: list[int], a: Any) -> list[int]:
    tags = [tag for tag, _ in reports]
    assert tags == sorted(set(tags))  # each once, rising
    assert all(had >= tag for tag, had in reports)  # never before its message arrived
    assert tags[-1:] == [n + 1 for n in tagged[-1:]]  # the last one always
    assert set(tags) <= {n + 1 for n in tagged}
    assert a._lk_tags == {} and not a._lk_tagged_tsns  # nothing left behind
    return tags


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.one_of(st.integers(1, 300), st.integers(301, 4000)), min_size=1, max_size=80),
    untagged=st.sets(st.integers(0, 79), max_size=20),
    lossy_count=st.integers(0, 30),
    drop=st.sampled_from([0.0, 0.1, 0.3]),
    jitter=st.sampled_from([0.0, 0.02, 0.3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_tag_is_reported_only_once_its_message_arrived_whole_and_the_last_one_always(
    sizes: list[int],
    untagged: set[int],
    lossy_count: int,
    drop: float,
    jitter: float,
    seed: int,
) -> None:
    async def scenario() -> None:
        net = Net(seed, drop, jitter)
        _check_reports(*await _tagged_run(net, sizes, untagged, lossy_count))

    run(scenario())


def test_reports_across_the_tsn_wrap() -> None:
    # aiortc's receiver sorts out-of-order TSNs as plain ints, so a gap across the wrap
    # stalls it (its `_mark_received`): this link neither drops nor reorders (in order).
    async def scenario() -> list[int]:
        net = Net(seed=5)
        sizes = [3000, 100, 2500, 100, 100, 1200, 50]
        reports, tagged, a = await _tagged_run(
            net, sizes, {1}, 0, start_tsn=2**32 - 4, in_order=True
        )
        assert a._local_tsn < 100  # it wrapped
        return _check_reports(reports, tagged, a)

    tags = run(scenario())
    assert tags[-1] == 7


def test_a_failing_report_is_logged_and_the_association_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> list[bytes]:
        net = Net(seed=3)
        a, b = await associate(net, FastSctpTransport, STOCK)
        tx, rx = channel(a, 1), channel(b, 1)
        got = collect(rx)

        def broken(tag: int) -> None:
            raise RuntimeError(f"report {tag}")

        a.lk_on_delivered = broken
        for n in range(3):
            tx.send(b"m%d" % n)
            a.lk_tag_last_message(n + 1)
            await until(lambda n=n: not a._sent_queue and len(got) == n + 1, 60)
        net.close()
        return got

    with caplog.at_level(logging.ERROR, logger="aiortc"):
        assert run(scenario()) == [b"m0", b"m1", b"m2"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "lkproto: a delivery report failed"
    ] * 3


def test_tagging_with_nothing_queued_is_a_no_op() -> None:
    async def scenario() -> dict[int, Any]:
        net = Net(seed=4)
        a = FastSctpTransport(net.a)  # type: ignore[arg-type]
        a.lk_tag_last_message(1)
        net.close()
        return dict(a._lk_tags)

    assert run(scenario()) == {}
