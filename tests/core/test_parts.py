"""Each part of a `Connection`, used alone on a `Context`: no `Connection` involved.

The parts are private (their behaviour through `Connection` is what the other core tests
pin); these tests show the seams hold: a part needs only the context, its siblings and its
hooks.
"""

from __future__ import annotations

import itertools

import pytest
from fake_sfu import participant

from lkproto import (
    Channel,
    Config,
    DisconnectReason,
    LocalProtocolError,
    Participant,
    PeerTarget,
    ReconnectMode,
    RoomInfo,
)
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._context import Context, Timer
from lkproto._data import DECODERS, DataReceiver, DataSender, Deduplicator
from lkproto._exchange import Exchange
from lkproto._keepalive import Keepalive
from lkproto._media import MediaTracks
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._peers import Peers
from lkproto._reconnect import ReconnectCause, Reconnector
from lkproto._roster import Roster
from lkproto._state import Input, ReconnectPhase
from lkproto.models import ConnectionState
from lkproto.streams import StreamKind

T0 = 50.0


def context(config: Config | None = None) -> Context:
    ids = (f"id-{i}" for i in itertools.count(1))
    return Context(config or Config(), now=T0, unix_time_ms=1_000, id_factory=lambda: next(ids))


def events(ctx: Context) -> list[ev.Event]:
    out = []
    while (event := ctx.next_event()) is not None:
        out.append(event)
    return out


def test_the_context_keeps_order_time_and_misuse() -> None:
    ctx = context()
    ctx.events += [ev.RoomUpdated(room=RoomInfo()), ev.TokenRefreshed(token="t")]
    assert ctx.next_event() == ev.RoomUpdated(room=RoomInfo())
    ctx.events.append(ev.TokenRefreshed(token="u"))  # appended while draining
    assert events(ctx) == [ev.TokenRefreshed(token="t"), ev.TokenRefreshed(token="u")]
    ctx.commands.append(cmd.CloseSignal(code=1000))
    assert ctx.take_commands() == [cmd.CloseSignal(code=1000)]
    assert ctx.take_commands() == []
    assert ctx.wall_ms(T0 + 1.5) == 2_500
    error = ctx.misuse("open_stream", "no")
    assert (str(error), error.call, error.state) == ("open_stream: no", "open_stream", "NEW")


def test_the_roster_alone_reports_joins_diffs_and_departures() -> None:
    ctx = context()
    left: list[tuple[str, float]] = []
    local_infos: list[str] = []
    roster = Roster(
        ctx,
        on_left=lambda p, now: left.append((p.identity, now)),
        on_local_info=lambda info: local_infos.append(info.sid),
    )
    roster.join(participant("me"), [participant("bob"), participant("", "PA_anon")])
    assert (roster.local and roster.local.identity, list(roster.remotes)) == ("me", ["bob"])
    assert local_infos == ["PA_me"] and events(ctx) == []  # the join reports nothing itself
    roster.update(
        [
            participant("bob", version=2, attributes={"a": "1"}),
            participant("me", version=2, name="Me"),
            participant("carol"),
        ],
        now=T0,
    )
    bob = roster.remotes["bob"]
    me = roster.local
    assert me is not None
    assert [type(e).__name__ for e in events(ctx)] == [
        "ParticipantUpdated",
        "ParticipantAttributesChanged",
        "ParticipantUpdated",
        "ParticipantNameChanged",
        "ParticipantConnected",
        "ParticipantActive",
    ]
    assert local_infos == ["PA_me", "PA_me"]
    # A leave by SID only, as some server versions send it.
    leave = ppb.ParticipantInfo(sid=bob.sid, state=3, disconnect_reason=4)  # type: ignore[arg-type]
    roster.update([leave], now=T0 + 1)
    assert events(ctx) == [
        ev.ParticipantDisconnected(participant=bob, reason=DisconnectReason.PARTICIPANT_REMOVED)
    ]
    assert left == [("bob", T0 + 1)]
    roster.remove_all(DisconnectReason.MIGRATION, now=T0 + 2)
    assert left == [("bob", T0 + 1), ("carol", T0 + 2)]
    assert roster.remotes == {}


def test_the_roster_works_without_hooks() -> None:
    ctx = context()
    roster = Roster(ctx)
    roster.join(participant("me"), [participant("bob")])
    roster.remove(roster.remotes["bob"], DisconnectReason.UNKNOWN_REASON, now=T0)
    assert [type(e) for e in events(ctx)] == [ev.ParticipantDisconnected]


def test_the_data_receiver_dispatches_through_its_tables() -> None:
    ctx = context()
    receiver = DataReceiver(ctx, Deduplicator(Config()))
    claimed: list[tuple[str, str, Channel, float, int]] = []
    receiver.routes["rpc_ack"] = lambda packet, sender, channel, now, encryption: claimed.append(
        (packet.rpc_ack.request_id, sender, channel, now, encryption)
    )
    packets = [
        dpb.DataPacket(participant_identity="bob", rpc_ack=dpb.RpcAck(request_id="r1")),
        dpb.DataPacket(participant_identity="bob", sip_dtmf=dpb.SipDTMF(code=1, digit="1")),
        dpb.DataPacket(participant_identity="bob", rpc_response=dpb.RpcResponse()),
        dpb.DataPacket(participant_identity="bob"),
    ]
    for packet in packets:
        receiver.receive(packet.SerializeToString(), channel=Channel.LOSSY, now=T0)
    receiver.receive(b"\xff", channel=Channel.RELIABLE, now=T0)
    assert claimed == [("r1", "bob", Channel.LOSSY, T0, 0)]
    out = events(ctx)
    assert out[:3] == [
        ev.SipDtmfReceived(code=1, digit="1", participant_identity="bob"),
        ev.PacketDropped(
            reason="unsupported",
            channel=Channel.LOSSY,
            detail="rpc_response",  # nobody claimed it here
            participant_identity="bob",
        ),
        ev.PacketDropped(reason="empty", channel=Channel.LOSSY, participant_identity="bob"),
    ]
    assert isinstance(out[3], ev.PacketDropped) and out[3].reason == "malformed"
    assert set(DECODERS) == {"user", "sip_dtmf", "transcription", "chat_message"} | {
        "encrypted_packet",
        None,
    }


def test_peers_alone_negotiate_and_close() -> None:
    ctx = context()
    peers = Peers(ctx)
    peers.single_pc = False
    peers.create_publisher((), T0)
    peers.remote_offer("v=0 sub")
    trickle = spb.TrickleRequest(candidateInit='{"c":1}', target=1)  # type: ignore[arg-type]
    peers.remote_candidate(trickle)
    peers.remote_candidate(spb.TrickleRequest())  # empty: ignored
    assert peers.sync_descriptions() == ("v=0 sub", None)
    assert not peers.all_connected
    peers.connected |= {PeerTarget.PUBLISHER, PeerTarget.SUBSCRIBER}
    assert peers.all_connected
    peers.reset()
    assert ctx.take_commands()[-3:] == [
        cmd.AddIceCandidate(target=PeerTarget.SUBSCRIBER, candidate_init='{"c":1}'),
        cmd.ClosePeerConnection(target=PeerTarget.PUBLISHER),
        cmd.ClosePeerConnection(target=PeerTarget.SUBSCRIBER),
    ]
    assert (peers.targets, peers.connected, peers.sync_descriptions()) == (
        set(),
        set(),
        (None, None),
    )


def test_keepalive_alone_pings_and_measures() -> None:
    ctx = context()
    keepalive = Keepalive(ctx)
    keepalive.configure(0, 15, now=T0)  # off: no interval
    assert ctx.deadlines.earliest() is None
    keepalive.configure(5, 15, now=T0)
    assert ctx.deadlines.pop_earliest() is Timer.PING
    keepalive.ping(T0 + 5)
    assert ctx.take_commands() == [cmd.SendSignal(data=ctx.codec.ping(6_000, 0))]
    keepalive.pong(6_000, now=T0 + 5.25)
    assert keepalive.rtt_ms == 250
    # Two pings within one millisecond get distinct stamps, so that a pong names its ping.
    assert keepalive.send_ping(T0 + 5.5) == 6_500
    assert keepalive.send_ping(T0 + 5.5) == 6_501
    keepalive.ping(T0 + 5.5001)
    assert ctx.take_commands() == [
        cmd.SendSignal(data=ctx.codec.ping(6_500, 250)),
        cmd.SendSignal(data=ctx.codec.ping(6_501, 250)),
        cmd.SendSignal(data=ctx.codec.ping(6_502, 250)),
    ]
    keepalive.stop()
    assert ctx.deadlines.earliest() is None


class Host:
    """The hooks a reconnector's owner supplies, recorded."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.calls: list[tuple[object, ...]] = []

    def open_signal(self, now: float, resume: bool) -> None:
        self.calls.append(("open_signal", now, resume))

    def end(
        self,
        reason: DisconnectReason,
        message: str,
        now: float,
        *,
        send_leave: bool,
        close_signal: bool = True,
    ) -> None:
        self.calls.append(("end", reason, message))
        self.ctx.sm.process(Input.ENDED)

    def session_lost(self, reason: DisconnectReason, message: str, now: float) -> set[str]:
        self.calls.append(("session_lost", reason, message))
        return set()

    def server_answered(self, response: spb.ReconnectResponse) -> None:
        self.calls.append(("server_answered", response.last_message_seq))

    def rejoined(self, join: spb.JoinResponse, now: float) -> None:
        self.calls.append(("rejoined", join.participant.identity))


def reconnector(ctx: Context, host: Host, peers: Peers) -> Reconnector:
    config = ctx.config
    return Reconnector(
        ctx,
        peers=peers,
        keepalive=Keepalive(ctx),
        sender=DataSender(config),
        dedup=Deduplicator(config),
        media=MediaTracks(ctx, peers),
        open_signal=host.open_signal,
        end=host.end,
        session_lost=host.session_lost,
        server_answered=host.server_answered,
        rejoined=host.rejoined,
        random=lambda: 0.5,
    )


def connected_context(config: Config | None = None) -> Context:
    ctx = context(config)
    ctx.sm.process(Input.CONNECT)
    ctx.sm.process(Input.JOINED)
    return ctx


def test_the_reconnector_alone_resumes_through_its_hooks() -> None:
    ctx = connected_context()
    host, peers = Host(ctx), Peers(ctx)
    peers.targets.add(PeerTarget.PUBLISHER)
    peers.ever_connected = True
    r = reconnector(ctx, host, peers)
    r.signal_closed("the signal connection closed (code 1006)", now=T0)
    assert (ctx.state, r.phase, r.mode, r.cause) == (
        ConnectionState.RECONNECTING,
        ReconnectPhase.BACKOFF,
        ReconnectMode.RESUME,
        ReconnectCause.SIGNAL,
    )
    assert ctx.deadlines.pop_earliest() is Timer.RETRY
    r.attempt(T0)
    assert host.calls == [("open_signal", T0, True)]
    response = spb.ReconnectResponse(last_message_seq=4)
    r.answer(spb.SignalResponse(reconnect=response), "reconnect", now=T0 + 1)
    assert host.calls[-1] == ("server_answered", 4)
    assert r.phase is ReconnectPhase.PEER  # the peer connection is not connected
    peers.connected.add(PeerTarget.PUBLISHER)
    r.peer_connected(T0 + 2)
    assert (ctx.state, r.phase, r.mode) == (ConnectionState.CONNECTED, ReconnectPhase.IDLE, None)
    assert events(ctx) == [
        ev.Reconnecting(
            mode=ReconnectMode.RESUME,
            reason=DisconnectReason.SIGNAL_CLOSE,
            message="the signal connection closed (code 1006)",
        ),
        ev.Reconnected(mode=ReconnectMode.RESUME, attempts=1, duration=2.0),
    ]


def test_the_reconnector_alone_gives_up_through_its_end_hook() -> None:
    ctx = connected_context(Config(reconnect_attempts=1))
    host = Host(ctx)
    r = reconnector(ctx, host, Peers(ctx))  # no peer connection ever connected: full
    r.interrupt(DisconnectReason.SIGNAL_CLOSE, "lost", now=T0)
    assert r.mode is ReconnectMode.FULL
    assert host.calls == [("session_lost", DisconnectReason.SIGNAL_CLOSE, "lost")]
    r.attempt(T0)
    r.signal_refused(503, "busy", now=T0 + 1)
    assert host.calls[-1] == (
        "end",
        DisconnectReason.SIGNAL_CLOSE,
        "gave up reconnecting after 1 attempts: reconnect attempt failed (HTTP 503): busy",
    )
    r.ended()
    assert (r.phase, r.mode) == (ReconnectPhase.IDLE, None)


def test_the_exchange_alone_frames_streams_for_its_roster() -> None:
    ctx = connected_context()
    sender = DataSender(ctx.config)
    sender.channel_opened(Channel.RELIABLE)
    roster = Roster(ctx)
    roster.join(participant("me"), [participant("bob", client_protocol=2)])
    exchange = Exchange(ctx, sender, roster)
    stream_id = exchange.send_stream(
        T0,
        kind=StreamKind.TEXT,
        topic="chat",
        payload="hi",
        destination_identities=["bob"],
        attributes=None,
        mime_type=None,
        name=None,
        reply_to_stream_id=None,
        attached_stream_ids=(),
        operation_type=0,
        version=0,
        generated=False,
        stream_id=None,
        compress=True,
    )
    sent = ctx.take_commands()
    assert stream_id == "id-1" and len(sent) == 1  # bob reads inline streams: one packet
    assert isinstance(sent[0], cmd.SendDataPacket)
    packet = dpb.DataPacket.FromString(sent[0].data)
    assert (packet.stream_header.stream_id, packet.stream_header.topic) == ("id-1", "chat")
    assert (list(packet.destination_identities), packet.sequence) == (["bob"], 1)
    with pytest.raises(LocalProtocolError, match="reserved for RPC"):
        exchange.register_topic(StreamKind.TEXT, "lk.rpc_request")
    assert isinstance(roster.local, Participant)
