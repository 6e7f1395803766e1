"""A tiny in-memory SFU for two or more `Connection`s: it relays their data packets.

It does what protocol-reference A.5 says the server does with a client's DataPacket: drops
it if the sender lacks canPublishData, overwrites `participant_sid` with the sender's SID,
`participant_identity` with its identity (blank if the sender is hidden) and `kind` with the
channel's, drops reliable packets whose sequence is not above the last one seen from that
sender, and forwards to every other participant or only to the listed destinations
(silently skipping ones not in the room). Participant infos relay each `Config`'s
`client_protocol` and capabilities, as the server relays `ClientInfo`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import attrs
from fake_sfu import TOKEN, UNIX0, URL, FakeSfu, participant

from lkproto import Channel, Config, Connection
from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb

T0 = 100.0


@attrs.define
class Peer:
    conn: Connection
    info: ppb.ParticipantInfo
    last_sequence: int = 0


class Sfu:
    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}
        self.dropped: list[dpb.DataPacket] = []  # what the server dropped (A.5)

    def join(
        self,
        identity: str,
        config: Config | None = None,
        *,
        now: float = T0,
        hidden: bool = False,
        can_publish_data: bool = True,
        server_version: str = "1.13.5",
        ping: tuple[int, int] = (0, 0),
        before_connect: Callable[[Connection], None] | None = None,
    ) -> Connection:
        """Join `identity`; `before_connect` runs on the NEW connection (registrations)."""
        config = config or Config()
        info = participant(
            identity,
            client_protocol=config.client_protocol,
            capabilities=config.capabilities,
            hidden=hidden,
            can_publish_data=can_publish_data,
        )
        ids = itertools.count(1)
        conn = Connection(
            config, now=now, unix_time_ms=UNIX0, id_factory=lambda: f"{identity}-{next(ids)}"
        )
        if before_connect is not None:
            before_connect(conn)
        conn.connect(URL, TOKEN, now=now)
        others = [p.info for p in self.peers.values() if not p.info.permission.hidden]
        conn.receive_signal(
            FakeSfu.join(
                local=info,
                others=others,
                version=server_version,
                ping_interval=ping[0],
                ping_timeout=ping[1],
            ),
            now=now,
        )
        conn.data_channel_opened(Channel.RELIABLE, now=now)
        conn.data_channel_opened(Channel.LOSSY, now=now)
        if not hidden:
            for peer in self.peers.values():
                peer.conn.receive_signal(FakeSfu.update(info), now=now)
        self.peers[identity] = Peer(conn, info)
        for peer in self.peers.values():
            commands(peer.conn)
            events(peer.conn)
        return conn

    def leave(self, identity: str, *, now: float) -> None:
        """`identity` left: everyone else gets a DISCONNECTED participant update."""
        peer = self.peers.pop(identity)
        gone = ppb.ParticipantInfo()
        gone.CopyFrom(peer.info)
        gone.state = ppb.ParticipantInfo.DISCONNECTED
        gone.version += 1
        for other in self.peers.values():
            other.conn.receive_signal(FakeSfu.update(gone), now=now)

    def take(self, identity: str) -> list[cmd.SendDataPacket]:
        """The data packets `identity` has to send now (it must have no other commands)."""
        pending = self.peers[identity].conn.commands_to_send()
        sends = [c for c in pending if isinstance(c, cmd.SendDataPacket)]
        assert sends == pending, pending
        return sends

    def forward(self, identity: str, sends: list[cmd.SendDataPacket], *, now: float) -> None:
        """Relay these packets of `identity`, in order, as the server would."""
        for command in sends:
            self._forward(self.peers[identity], command, now)

    def deliver(self, identity: str, *, now: float) -> list[dpb.DataPacket]:
        """Relay everything `identity` has to send now; returns those packets, as sent."""
        sends = self.take(identity)
        self.forward(identity, sends, now=now)
        return packets(sends)

    def _forward(self, peer: Peer, command: cmd.SendDataPacket, now: float) -> None:
        packet = dpb.DataPacket.FromString(command.data)
        permission = peer.info.permission
        if not permission.can_publish_data:
            self.dropped.append(packet)
            return
        reliable = command.channel is Channel.RELIABLE
        if reliable and packet.sequence > 0:
            if packet.sequence <= peer.last_sequence:
                self.dropped.append(packet)
                return
            peer.last_sequence = packet.sequence
        packet.participant_sid = peer.info.sid
        packet.participant_identity = "" if permission.hidden else peer.info.identity
        packet.kind = dpb.DataPacket.RELIABLE if reliable else dpb.DataPacket.LOSSY
        destinations = set(packet.destination_identities)
        for identity, other in self.peers.items():
            if other is peer or (destinations and identity not in destinations):
                continue
            other.conn.receive_data_packet(
                packet.SerializeToString(), channel=command.channel, now=now
            )

    def settle(self, *, now: float, rounds: int = 20) -> None:
        """Relay until nobody has anything left to send."""
        for _ in range(rounds):
            busy = False
            for identity in list(self.peers):
                sends = self.take(identity)
                busy = busy or bool(sends)
                self.forward(identity, sends, now=now)
            if not busy:
                return
        raise AssertionError("the peers kept talking")  # pragma: no cover


def commands(conn: Connection) -> list[cmd.Command]:
    return conn.commands_to_send()


def events(conn: Connection) -> list[ev.Event]:
    out: list[ev.Event] = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def packets(commands_: list[cmd.Command]) -> list[dpb.DataPacket]:
    """The DataPackets in these commands, parsed."""
    return [
        dpb.DataPacket.FromString(c.data) for c in commands_ if isinstance(c, cmd.SendDataPacket)
    ]
