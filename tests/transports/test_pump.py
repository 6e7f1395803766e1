"""The shared `Pump` (transports/_pump.py) driving the real core, with recording ports.

Every port and the sink append to one shared log, so each test asserts the exact interleaving:
commands in the core's order (each to its port), then the events, then the re-armed deadline.
Time is a literal clock the test moves; server messages come from tests/core/fake_sfu.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lkproto import (
    Channel,
    Config,
    Connection,
    DisconnectReason,
    PeerTarget,
    ReconnectMode,
    SdpType,
)
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import signal_pb2 as spb
from lkproto.errors import DataPacketTooLargeError
from lkproto.models import IceServer
from lkproto.signal import SignalCodec
from lkproto.transports._pump import Pump


def _fake_sfu() -> ModuleType:
    """tests/core/fake_sfu.py, whether or not tests/core is on sys.path in this run."""
    if "fake_sfu" in sys.modules:
        return sys.modules["fake_sfu"]
    path = Path(__file__).resolve().parents[1] / "core" / "fake_sfu.py"
    spec = importlib.util.spec_from_file_location("fake_sfu", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_sfu"] = module
    spec.loader.exec_module(module)
    return module


sfu = _fake_sfu()
FakeSfu = sfu.FakeSfu
T0: float = sfu.T0
UNIX0: int = sfu.UNIX0
URL: str = sfu.URL
TOKEN: str = sfu.TOKEN
STUN = (IceServer(urls=("stun:127.0.0.1:3478",)),)
PUB, SUB = PeerTarget.PUBLISHER, PeerTarget.SUBSCRIBER

Entry = tuple[object, ...]


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A `SignalPort`, a `PeerPort` and an `EventSink`, all writing to `log`."""

    def __init__(self) -> None:
        self.log: list[Entry] = []

    def take(self) -> list[Entry]:
        out, self.log = self.log, []
        return out


class SignalPort:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def submit(self, command: cmd.OpenSignal | cmd.SendSignal | cmd.CloseSignal) -> None:
        self.rec.log.append(("signal", command))


class PeerPort:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def submit(self, command: cmd.Command) -> None:
        self.rec.log.append(("peer", command))

    def buffered_amount(self, channel: Channel) -> int:
        return 0

    def set_low_threshold(self, channel: Channel, threshold: int) -> None:
        self.rec.log.append(("threshold", channel, threshold))

    async def aclose(self) -> None:
        self.rec.log.append(("aclose",))


class Sink:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def deliver(self, event: ev.Event) -> None:
        self.rec.log.append(("event", event))

    def deadline_changed(self, deadline: float | None) -> None:
        self.rec.log.append(("deadline", deadline))

    def channel_changed(self, channel: Channel, is_open: bool) -> None:
        self.rec.log.append(("channel", channel, is_open))

    def writable(self, channel: Channel) -> None:
        self.rec.log.append(("writable", channel))


class Rig:
    def __init__(self, config: Config | None = None) -> None:
        self.clock = Clock()
        self.rec = Recorder()
        self.conn = sfu.new_connection(config)
        self.pump = Pump(
            self.conn,
            clock=self.clock,
            signal=SignalPort(self.rec),
            peer=PeerPort(self.rec),
            sink=Sink(self.rec),
        )

    def at(self, t: float) -> Rig:
        self.clock.t = t
        return self

    def take(self) -> list[Entry]:
        return self.rec.take()


def connected(config: Config | None = None, **join: object) -> Rig:
    """Joined at T0 + 0.5 (ping every 5 s, pong timeout 15 s), channels open, log cleared."""
    rig = Rig(config)
    rig.pump.call(rig.conn.connect, URL, TOKEN, now=rig.pump.now())
    rig.at(T0 + 0.5).pump.on_signal(FakeSfu.join(**join))
    rig.pump.on_channel_open(Channel.RELIABLE, None)
    rig.pump.on_channel_open(Channel.LOSSY, None)
    rig.take()
    return rig


def leave(reason: DisconnectReason) -> cmd.SendSignal:
    return cmd.SendSignal(data=SignalCodec.leave(int(reason)))


# -- connecting ---------------------------------------------------------------------------------


def test_connect_sends_open_signal_and_arms_the_join_timer() -> None:
    rig = Rig()
    assert rig.pump.deadline is None
    rig.pump.call(rig.conn.connect, URL, TOKEN, now=rig.pump.now())
    log = rig.take()
    assert [entry[0] for entry in log] == ["signal", "deadline"]
    opened = log[0][1]
    assert isinstance(opened, cmd.OpenSignal)
    assert opened.url.startswith("wss://sfu.example/rtc/v1?join_request=")
    assert opened.headers == (("Authorization", f"Bearer {TOKEN}"),)
    assert log[1] == ("deadline", T0 + 5.0)
    assert rig.pump.deadline == T0 + 5.0


def test_join_dispatches_peer_commands_in_core_order_then_the_event() -> None:
    rig = Rig()
    rig.pump.call(rig.conn.connect, URL, TOKEN, now=rig.pump.now())
    rig.take()
    rig.at(T0 + 0.5).pump.on_signal(FakeSfu.join(others=[sfu.participant("alice")]))
    log = rig.take()
    assert log[:5] == [
        ("peer", cmd.CreatePeerConnection(target=PUB, ice_servers=STUN)),
        (
            "peer",
            cmd.CreateDataChannel(channel=Channel.RELIABLE, ordered=True, max_retransmits=None),
        ),
        ("peer", cmd.CreateDataChannel(channel=Channel.LOSSY, ordered=False, max_retransmits=0)),
        (
            "peer",
            cmd.CreateDataChannel(channel=Channel.DATA_TRACK, ordered=False, max_retransmits=0),
        ),
        ("peer", cmd.CreateOffer(target=PUB, offer_id=1)),  # the core's offer queue's first
    ]
    kind, joined = log[5]
    assert kind == "event" and isinstance(joined, ev.Joined)
    assert joined.local_participant.identity == "me"
    assert [p.identity for p in joined.participants] == ["alice"]
    # The join timer (T0 + 5) is replaced by the ping timer: T0 + 0.5 + 5.
    assert log[6:] == [("deadline", T0 + 5.5)]


def test_signal_and_peer_commands_go_to_their_ports() -> None:
    rig = connected()
    rig.at(T0 + 1).pump.on_local_description(PUB, "v=0 offer", SdpType.OFFER)
    assert rig.take() == [("signal", cmd.SendSignal(data=SignalCodec.offer("v=0 offer")))]
    answer = FakeSfu.response(answer=spb.SessionDescription(type="answer", sdp="v=0 answer"))
    rig.pump.on_signal(answer)
    assert rig.take() == [
        ("peer", cmd.SetRemoteDescription(target=PUB, sdp="v=0 answer", sdp_type=SdpType.ANSWER))
    ]
    rig.pump.on_ice_candidate(PUB, '{"candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host"}')
    assert rig.take() == [
        (
            "signal",
            cmd.SendSignal(
                data=SignalCodec.trickle(
                    '{"candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host"}', int(PUB)
                )
            ),
        )
    ]
    rig.pump.on_ice_candidate(PUB, None)  # end of gathering: nothing to send
    assert rig.take() == []


def test_close_dispatches_mixed_commands_in_order_then_disconnected() -> None:
    rig = connected()
    rig.at(T0 + 2).pump.call(rig.conn.close, now=rig.pump.now())
    assert rig.take() == [
        ("signal", leave(DisconnectReason.CLIENT_INITIATED)),
        ("signal", cmd.CloseSignal(code=1000)),
        ("peer", cmd.ClosePeerConnection(target=PUB)),
        (
            "event",
            ev.Disconnected(
                reason=DisconnectReason.CLIENT_INITIATED, message="closed by the application"
            ),
        ),
        ("deadline", None),
    ]
    assert rig.pump.deadline is None


def test_dual_pc_offer_creates_the_subscriber() -> None:
    rig = Rig()
    rig.pump.call(rig.conn.connect, URL, TOKEN, now=rig.pump.now(), single_peer_connection=False)
    rig.at(T0 + 0.5).pump.on_signal(FakeSfu.join())
    rig.take()
    offer = FakeSfu.response(offer=spb.SessionDescription(type="offer", sdp="v=0 sub"))
    rig.at(T0 + 1).pump.on_signal(offer)
    assert rig.take() == [
        ("peer", cmd.CreatePeerConnection(target=SUB, ice_servers=STUN)),
        ("peer", cmd.SetRemoteDescription(target=SUB, sdp="v=0 sub", sdp_type=SdpType.OFFER)),
        ("peer", cmd.CreateAnswer(target=SUB)),
    ]


# -- the deadline -------------------------------------------------------------------------------


def test_deadline_changed_only_when_the_deadline_changes() -> None:
    rig = connected()
    assert rig.pump.deadline == T0 + 5.5
    # A signal message moves the pong timeout (to T0 + 16), not the earliest deadline.
    rig.at(T0 + 1).pump.on_signal(FakeSfu.update(sfu.participant("bob")))
    log = rig.take()
    assert [(entry[0], type(entry[1])) for entry in log] == [
        ("event", ev.ParticipantConnected),
        ("event", ev.ParticipantActive),
    ]
    # An input that changes nothing in the core: no call at all.
    rig.pump.on_timer()
    assert rig.take() == []
    assert rig.pump.deadline == T0 + 5.5


def test_timer_sends_a_ping_and_rearms() -> None:
    rig = connected()
    rig.at(T0 + 5.5).pump.on_timer()
    assert rig.take() == [
        ("signal", cmd.SendSignal(data=SignalCodec.ping(UNIX0 + 5500, 0))),
        ("deadline", T0 + 10.5),
    ]


def test_join_timeout_fires_from_the_timer() -> None:
    rig = Rig()
    rig.pump.call(rig.conn.connect, URL, TOKEN, now=rig.pump.now())
    rig.take()
    rig.at(T0 + 4.999).pump.on_timer()  # early: nothing
    assert rig.take() == []
    rig.at(T0 + 5.0).pump.on_timer()
    assert rig.take() == [
        ("signal", cmd.CloseSignal(code=1000)),
        (
            "event",
            ev.Disconnected(
                reason=DisconnectReason.JOIN_FAILURE, message="no join response within 5s"
            ),
        ),
        ("deadline", None),
    ]


# -- call() -------------------------------------------------------------------------------------


def test_call_returns_the_verbs_result_and_flushes() -> None:
    rig = connected()
    request_id = rig.at(T0 + 1).pump.call(rig.conn.set_metadata, "m", now=rig.pump.now())
    assert request_id == 1
    log = rig.take()  # its timeout (T0 + 6) is later than the ping (T0 + 5.5): no re-arm
    assert len(log) == 1 and log[0][0] == "signal"
    sent = spb.SignalRequest.FromString(log[0][1].data)  # type: ignore[attr-defined]
    assert (sent.update_metadata.request_id, sent.update_metadata.metadata) == (1, "m")


def test_call_flushes_even_when_the_verb_raises() -> None:
    rig = connected()

    def verb() -> None:
        rig.conn.close(now=rig.pump.now(), reason=DisconnectReason.USER_REJECTED)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match=r"^boom$"):
        rig.at(T0 + 1).pump.call(verb)
    assert rig.take() == [
        ("signal", leave(DisconnectReason.USER_REJECTED)),
        ("signal", cmd.CloseSignal(code=1000)),
        ("peer", cmd.ClosePeerConnection(target=PUB)),
        (
            "event",
            ev.Disconnected(
                reason=DisconnectReason.USER_REJECTED, message="closed by the application"
            ),
        ),
        ("deadline", None),
    ]


def test_call_with_a_local_error_dispatches_nothing() -> None:
    rig = connected()
    with pytest.raises(DataPacketTooLargeError, match="over the 64000-byte limit"):
        rig.at(T0 + 1).pump.call(rig.conn.publish_data, b"x" * 70_000, now=rig.pump.now())
    assert rig.take() == []


# -- data channels ------------------------------------------------------------------------------


def test_channel_open_flushes_queued_data_then_tells_the_sink() -> None:
    rig = Rig()
    rig.pump.call(rig.conn.connect, URL, TOKEN, now=rig.pump.now())
    rig.at(T0 + 0.5).pump.on_signal(FakeSfu.join())
    rig.take()
    rig.pump.call(rig.conn.publish_data, b"early", now=rig.pump.now(), topic="t")
    assert rig.take() == []  # queued until the channel opens
    rig.at(T0 + 1).pump.on_channel_open(Channel.RELIABLE, 1000)
    log = rig.take()
    assert [entry[0] for entry in log] == ["peer", "channel"]
    sent = log[0][1]
    assert isinstance(sent, cmd.SendDataPacket) and sent.channel is Channel.RELIABLE
    packet = dpb.DataPacket.FromString(sent.data)
    assert (packet.user.payload, packet.user.topic, packet.sequence) == (b"early", "t", 1)
    assert log[1] == ("channel", Channel.RELIABLE, True)
    assert rig.conn.max_data_message_size == 1000  # the remote SCTP limit reached the core


def test_channel_close_and_writable_reach_the_sink() -> None:
    rig = connected()
    rig.at(T0 + 1).pump.on_channel_closed(Channel.LOSSY)
    assert rig.take() == [("channel", Channel.LOSSY, False)]
    rig.pump.on_writable(Channel.RELIABLE)
    assert rig.take() == [("writable", Channel.RELIABLE)]


def test_data_reaches_the_sink_in_order() -> None:
    rig = connected(others=[sfu.participant("alice")])
    rig.at(T0 + 1).pump.on_data(
        Channel.RELIABLE, FakeSfu.user_packet(b"one", sequence=1, topic="a")
    )
    rig.pump.on_data(Channel.LOSSY, FakeSfu.user_packet(b"two"))
    rig.pump.on_data(Channel.RELIABLE, b"\xff\xff not protobuf")
    log = rig.take()
    assert log[:2] == [
        (
            "event",
            ev.DataReceived(
                payload=b"one",
                participant_identity="alice",
                participant_sid="PA_alice",
                topic="a",
                channel=Channel.RELIABLE,
            ),
        ),
        (
            "event",
            ev.DataReceived(
                payload=b"two",
                participant_identity="alice",
                participant_sid="PA_alice",
                topic=None,
                channel=Channel.LOSSY,
            ),
        ),
    ]
    kind, dropped = log[2]
    assert kind == "event" and isinstance(dropped, ev.PacketDropped)
    assert (dropped.reason, dropped.channel) == ("malformed", Channel.RELIABLE)
    assert len(log) == 3


# -- failures reported by the ports -------------------------------------------------------------


def test_signal_failed_without_http_status() -> None:
    rig = Rig()
    rig.pump.call(rig.conn.connect, URL, TOKEN, now=rig.pump.now())
    rig.take()
    rig.at(T0 + 0.25).pump.on_signal_failed(None, "could not connect to sfu.example:443: refused")
    assert rig.take() == [
        ("signal", cmd.CloseSignal(code=1000)),
        (
            "event",
            ev.Disconnected(
                reason=DisconnectReason.JOIN_FAILURE,
                message="could not reach the server: could not connect to sfu.example:443: refused",
            ),
        ),
        ("deadline", None),
    ]


def test_signal_404_falls_back_to_rtc_and_rearms_the_join_timer() -> None:
    rig = Rig()
    rig.pump.call(rig.conn.connect, URL, TOKEN, now=rig.pump.now())
    rig.take()
    rig.at(T0 + 0.25).pump.on_signal_failed(404, "404 page not found")
    log = rig.take()
    assert [entry[0] for entry in log] == ["signal", "deadline"]
    reopened = log[0][1]
    assert isinstance(reopened, cmd.OpenSignal)
    assert reopened.url.startswith("wss://sfu.example/rtc?")
    assert reopened.single_peer_connection is False
    assert log[1] == ("deadline", T0 + 5.25)


def test_signal_closed_before_the_join() -> None:
    rig = Rig()
    rig.pump.call(rig.conn.connect, URL, TOKEN, now=rig.pump.now())
    rig.take()
    rig.at(T0 + 0.25).pump.on_signal_closed(None)
    assert rig.take() == [
        (
            "event",
            ev.Disconnected(
                reason=DisconnectReason.JOIN_FAILURE,
                message="the signal closed before the join (code None)",
            ),
        ),
        ("deadline", None),
    ]


def test_peer_failure_starts_a_resume_and_a_failed_peer_command_a_full_reconnect() -> None:
    rig = connected()
    rig.at(T0 + 1).pump.on_peer_state(PUB, "connected")
    assert rig.take() == []
    rig.pump.on_peer_state(PUB, "failed")
    # The signal stays open until the attempt, and `Reconnecting` waits for it: a leave may
    # be on the signal.
    assert rig.take() == [("deadline", T0 + 1.25)]
    # The ICE restart a resume needs cannot be done: the resume becomes a full reconnect (its
    # event supersedes the resume's, which never had an attempt).
    rig.pump.on_command_failed(cmd.CreateOffer(target=PUB, ice_restart=True), "no ICE restart")
    assert rig.take() == [
        ("signal", cmd.CloseSignal(code=1000)),
        ("peer", cmd.ClosePeerConnection(target=PUB)),
        (
            "event",
            ev.Reconnecting(
                mode=ReconnectMode.FULL,
                reason=DisconnectReason.UNKNOWN_REASON,
                message="CreateOffer failed: no ICE restart",
            ),
        ),
        ("deadline", T0 + 1),  # the rejoin, at once
    ]
    assert rig.conn.get_timer() == T0 + 1


def test_command_failed_ends_the_session_with_the_message_when_not_reconnecting() -> None:
    rig = connected(config=Config(reconnect_attempts=0))
    rig.at(T0 + 1).pump.on_command_failed(cmd.CreateAnswer(target=PUB), "sdp rejected")
    log = rig.take()
    assert log[-2:] == [
        (
            "event",
            ev.Disconnected(
                reason=DisconnectReason.UNKNOWN_REASON,
                message="CreateAnswer failed: sdp rejected "
                "(reconnecting is off: Config.reconnect_attempts is 0)",
            ),
        ),
        ("deadline", None),
    ]


def test_now_reads_the_injected_clock() -> None:
    rig = Rig()
    assert rig.pump.now() == T0
    assert rig.at(123.25).pump.now() == 123.25
    assert isinstance(rig.pump.conn, Connection)
