"""Hypothesis state machine: any interleaving of inputs keeps the session's invariants.

Invariants checked after every step:
- remote input never raises; verbs raise only `LocalProtocolError` (and only in wrong states);
- after `handle_timer(now)` the next deadline, if any, lies after `now`;
- once CLOSED, nothing more comes out, whatever goes in;
- exactly one `Disconnected` event is ever emitted, and only on entering CLOSED;
- reliable packets on the wire carry 1, 2, 3, ... in order, never skipping a number; they
  start again at 1 after a full reconnect, and repeat only in a resume's replay (A.7);
- `Reconnecting` and `Reconnected` alternate with the RECONNECTING state;
- the reconnect phase is IDLE and the mode None exactly when not RECONNECTING.
"""

from __future__ import annotations

import contextlib

from fake_sfu import TOKEN, URL, FakeSfu, new_connection, participant
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lkproto import (
    Channel,
    ConnectionState,
    LocalProtocolError,
    PeerTarget,
    ReconnectMode,
    SdpType,
    SimulateScenario,
)
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import signal_pb2 as spb
from lkproto._state import ReconnectPhase

IDENTITIES = ["bob", "carol", "dave"]


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.conn = new_connection()
        self.disconnects = 0
        self.highest_sequence = 0  # in this session (a full reconnect starts a new one)
        self.last_sequence = 0
        self.closed_seen = False
        self.reconnecting = False
        # A full reconnect resets the sender (a new session numbers from 1 again); count the
        # resets, since a second one in the same reconnect emits nothing of its own.
        self.resets = self.seen_resets = 0
        sender = self.conn._sender
        reset = sender.reset

        def counting_reset() -> None:
            self.resets += 1
            reset()

        sender.reset = counting_reset  # type: ignore[method-assign]

    def drain(self) -> None:
        commands = self.conn.commands_to_send()
        events = []
        while (e := self.conn.next_event()) is not None:
            events.append(e)
        resumed = any(
            isinstance(e, ev.Reconnected) and e.mode is ReconnectMode.RESUME for e in events
        )
        for c in commands:
            assert not self.closed_seen, f"command after close: {c}"
            if isinstance(c, cmd.SendDataPacket) and c.channel is Channel.RELIABLE:
                seq = dpb.DataPacket.FromString(c.data).sequence
                if seq == 1 and self.resets != self.seen_resets:
                    self.seen_resets = self.resets
                    self.highest_sequence = self.last_sequence = 0  # a new session
                assert seq <= self.highest_sequence + 1, (seq, self.highest_sequence)
                if not resumed:  # a replay may go back; otherwise strictly in order
                    assert seq == self.last_sequence + 1, (seq, self.last_sequence)
                self.last_sequence = seq
                self.highest_sequence = max(self.highest_sequence, seq)
        for e in events:
            assert not self.closed_seen, f"event after close: {e}"
            if isinstance(e, ev.Disconnected):
                self.disconnects += 1
            elif isinstance(e, ev.Reconnecting):
                self.reconnecting = True
            elif isinstance(e, ev.Reconnected):
                assert self.reconnecting
                self.reconnecting = False
        if self.conn.state is ConnectionState.CLOSED:
            self.closed_seen = True
        elif (
            self.conn._reconnector.phase is ReconnectPhase.GRACE
            and self.conn.reconnect_mode is ReconnectMode.RESUME
        ):
            # A failed peer connection with the signal up: a resume's `Reconnecting` waits for
            # the first attempt (a leave may end the session first).
            assert self.conn.state is ConnectionState.RECONNECTING
            assert not self.reconnecting
        else:
            assert self.reconnecting == (self.conn.state is ConnectionState.RECONNECTING)

    @initialize(start=st.sampled_from(["new", "joined", "joined", "joined-open", "joined-open"]))
    def start(self, start: str) -> None:
        if start == "new":
            return
        self.conn.connect(URL, TOKEN, now=self.now)
        self.conn.receive_signal(FakeSfu.join(), now=self.now)
        if start == "joined-open":
            self.conn.data_channel_opened(Channel.RELIABLE, now=self.now)
            self.conn.data_channel_opened(Channel.LOSSY, now=self.now)
        self.drain()

    @rule(dt=st.floats(min_value=0, max_value=20))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.conn.handle_timer(self.now)
        self.drain()
        timer = self.conn.get_timer()
        assert timer is None or timer > self.now

    @rule(single=st.booleans(), embed=st.booleans())
    def connect(self, single: bool, embed: bool) -> None:
        try:
            self.conn.connect(URL, TOKEN, now=self.now, single_peer_connection=single,
                              embed_publisher_offer=embed)  # fmt: skip
        except LocalProtocolError:
            assert self.conn.state is not ConnectionState.NEW
        self.drain()

    @rule(ping=st.integers(0, 10), timeout=st.integers(0, 30))
    def join(self, ping: int, timeout: int) -> None:
        self.conn.receive_signal(
            FakeSfu.join(ping_interval=ping, ping_timeout=timeout), now=self.now
        )
        self.drain()

    @rule(status=st.sampled_from([None, 401, 404, 500]))
    def connect_failed(self, status: int | None) -> None:
        self.conn.signal_connect_failed(status=status, now=self.now)
        self.drain()

    @rule(
        who=st.sampled_from(IDENTITIES),
        state=st.integers(0, 3),
        version=st.integers(0, 5),
        attrs=st.dictionaries(st.sampled_from("abc"), st.sampled_from(["", "1", "2"]), max_size=3),
    )
    def participant_update(self, who: str, state: int, version: int, attrs: dict[str, str]) -> None:
        self.conn.receive_signal(
            FakeSfu.update(participant(who, state=state, version=version, attributes=attrs)),
            now=self.now,
        )
        self.drain()

    @rule(data=st.binary(max_size=40))
    def garbage_signal(self, data: bytes) -> None:
        self.conn.receive_signal(data, now=self.now)
        self.drain()

    @rule(data=st.binary(max_size=40), reliable=st.booleans())
    def garbage_data(self, data: bytes, reliable: bool) -> None:
        self.conn.receive_data_packet(data, channel=Channel.RELIABLE if reliable else Channel.LOSSY,
                                      now=self.now)  # fmt: skip
        self.drain()

    @rule(seq=st.integers(0, 5), sender=st.sampled_from(IDENTITIES))
    def data_in(self, seq: int, sender: str) -> None:
        packet = FakeSfu.user_packet(b"x", sender=sender, sid=f"PA_{sender}", sequence=seq)
        self.conn.receive_data_packet(packet, channel=Channel.RELIABLE, now=self.now)
        self.drain()

    @rule(
        size=st.one_of(st.integers(0, 300), st.integers(63_900, 64_100)),
        reliable=st.booleans(),
    )
    def publish(self, size: int, reliable: bool) -> None:
        # Wrong state, too large, or the pre-open queue is full: all documented local errors.
        with contextlib.suppress(LocalProtocolError):
            self.conn.publish_data(b"p" * size, now=self.now, reliable=reliable)
        self.drain()

    @rule(channel=st.sampled_from(list(Channel)), opened=st.booleans())
    def channel_state(self, channel: Channel, opened: bool) -> None:
        if opened:
            self.conn.data_channel_opened(channel, now=self.now)
        else:
            self.conn.data_channel_closed(channel, now=self.now)
        self.drain()

    @rule()
    def offer_created(self) -> None:
        self.conn.local_description_created(
            PeerTarget.PUBLISHER, "v=0", SdpType.OFFER, now=self.now
        )
        self.drain()

    @rule(action=st.integers(0, 2), reason=st.integers(0, 20))
    def server_leave(self, action: int, reason: int) -> None:
        self.conn.receive_signal(FakeSfu.leave(reason=reason, action=action), now=self.now)
        self.drain()

    @rule(rid=st.integers(0, 4), reason=st.integers(0, 11))
    def request_response(self, rid: int, reason: int) -> None:
        msg = spb.SignalResponse(
            request_response=spb.RequestResponse(request_id=rid, reason=reason)
        )  # type: ignore[arg-type]
        self.conn.receive_signal(msg.SerializeToString(), now=self.now)
        self.drain()

    @rule(value=st.text(max_size=5))
    def set_attributes(self, value: str) -> None:
        try:
            self.conn.set_attributes({"k": value}, now=self.now)
        except LocalProtocolError:
            assert self.conn.state is not ConnectionState.CONNECTED
        self.drain()

    @precondition(lambda self: self.conn.state is not ConnectionState.CLOSED)
    @rule()
    def signal_closed(self) -> None:
        self.conn.signal_closed(now=self.now, code=1006)
        self.drain()

    @rule()
    def close(self) -> None:
        self.conn.close(now=self.now)
        self.drain()

    @invariant()
    def one_disconnect_exactly_when_closed(self) -> None:
        expected = 1 if self.conn.state is ConnectionState.CLOSED else 0
        assert self.disconnects == expected

    @rule(last=st.integers(0, 6), resume=st.sampled_from([0, 1, 2]))
    def reconnect_answer(self, last: int, resume: int) -> None:
        response = spb.ReconnectResponse(last_message_seq=last)
        response.client_configuration.resume_connection = resume  # type: ignore[assignment]
        msg = spb.SignalResponse(reconnect=response)
        self.conn.receive_signal(msg.SerializeToString(), now=self.now)
        self.drain()

    @rule(state=st.sampled_from(["connected", "disconnected", "failed", "closed"]))
    def peer_state(self, state: str) -> None:
        self.conn.peer_state_changed(PeerTarget.PUBLISHER, state, now=self.now)
        self.drain()

    @rule(scenario=st.sampled_from(list(SimulateScenario)))
    def simulate(self, scenario: SimulateScenario) -> None:
        try:
            self.conn.simulate_scenario(scenario, now=self.now)
        except LocalProtocolError:
            assert self.conn.state is not ConnectionState.CONNECTED
        self.drain()

    @rule(failed=st.sampled_from(["open", "send", "offer", "close-pc"]))
    def command_failed(self, failed: str) -> None:
        command: cmd.Command = {
            "open": cmd.OpenSignal(url="wss://x/rtc", token=TOKEN),
            "send": cmd.SendSignal(data=b""),
            "offer": cmd.CreateOffer(target=PeerTarget.PUBLISHER, ice_restart=True),
            "close-pc": cmd.ClosePeerConnection(target=PeerTarget.PUBLISHER),
        }[failed]
        self.conn.command_failed(command, "boom", now=self.now)
        self.drain()

    @invariant()
    def closed_means_no_timer(self) -> None:
        if self.conn.state is ConnectionState.CLOSED:
            assert self.conn.get_timer() is None

    @invariant()
    def a_reconnect_phase_and_mode_only_while_reconnecting(self) -> None:
        reconnector = self.conn._reconnector
        reconnecting = self.conn.state is ConnectionState.RECONNECTING
        assert (reconnector.phase is not ReconnectPhase.IDLE) == reconnecting
        assert (reconnector.mode is not None) == reconnecting


SessionMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestSession = SessionMachine.TestCase
