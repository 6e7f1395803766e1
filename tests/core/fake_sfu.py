"""FakeSfu: builds SignalResponse and DataPacket bytes with lkproto's own schema.

For deterministic core tests only (like h2's FrameFactory); never a proof of a feature.
"""

from __future__ import annotations

from collections.abc import Mapping

from lkproto import Channel, Config, Connection, commands, events
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb

URL = "wss://sfu.example/"
TOKEN = "header.payload.signature-SECRET"
T0 = 100.0
UNIX0 = 1_700_000_000_000


def participant(
    identity: str,
    sid: str | None = None,
    *,
    state: int = 2,
    version: int = 1,
    name: str = "",
    metadata: str = "",
    attributes: Mapping[str, str] | None = None,
    can_publish_data: bool = True,
    client_protocol: int = 0,
    capabilities: tuple[int, ...] = (),
    hidden: bool = False,
) -> ppb.ParticipantInfo:
    return ppb.ParticipantInfo(
        sid=sid or f"PA_{identity}",
        identity=identity,
        state=state,  # type: ignore[arg-type]
        version=version,
        name=name,
        metadata=metadata,
        attributes=dict(attributes or {}),
        permission=ppb.ParticipantPermission(
            can_subscribe=True, can_publish=True, can_publish_data=can_publish_data, hidden=hidden
        ),
        client_protocol=client_protocol,
        capabilities=list(capabilities),  # type: ignore[arg-type]
    )


class FakeSfu:
    @staticmethod
    def join(
        local: ppb.ParticipantInfo | None = None,
        others: list[ppb.ParticipantInfo] | None = None,
        *,
        ping_interval: int = 5,
        ping_timeout: int = 15,
        room_name: str = "room",
        room_metadata: str = "",
        version: str = "1.13.5",
    ) -> bytes:
        return spb.SignalResponse(
            join=spb.JoinResponse(
                room=ppb.Room(sid="RM_1", name=room_name, metadata=room_metadata),
                participant=local or participant("me", "PA_me", state=0),
                other_participants=others or [],
                ice_servers=[spb.ICEServer(urls=["stun:127.0.0.1:3478"])],
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                server_info=ppb.ServerInfo(version=version, protocol=17, node_id="ND_1"),
            )
        ).SerializeToString()

    @staticmethod
    def update(*infos: ppb.ParticipantInfo) -> bytes:
        return spb.SignalResponse(
            update=ppb.ParticipantUpdate(participants=list(infos))
        ).SerializeToString()

    @staticmethod
    def leave(reason: int = 4, action: int = 0) -> bytes:
        return spb.SignalResponse(
            leave=spb.LeaveRequest(reason=reason, action=action)  # type: ignore[arg-type]
        ).SerializeToString()

    @staticmethod
    def response(**kwargs: object) -> bytes:
        return spb.SignalResponse(**kwargs).SerializeToString()  # type: ignore[arg-type]

    @staticmethod
    def user_packet(
        payload: bytes,
        *,
        sender: str = "alice",
        sid: str = "PA_alice",
        sequence: int = 0,
        topic: str | None = None,
        destinations: list[str] | None = None,
    ) -> bytes:
        user = dpb.UserPacket(payload=payload)
        if topic is not None:
            user.topic = topic
        return dpb.DataPacket(
            user=user,
            participant_identity=sender,
            participant_sid=sid,
            sequence=sequence,
            destination_identities=destinations or [],
        ).SerializeToString()


def drain(conn: Connection) -> tuple[list[commands.Command], list[events.Event]]:
    cmds = conn.commands_to_send()
    evs = []
    while (e := conn.next_event()) is not None:
        evs.append(e)
    return cmds, evs


def new_connection(config: Config | None = None) -> Connection:
    ids = iter(f"id-{i}" for i in range(1, 10_000))
    return Connection(config, now=T0, unix_time_ms=UNIX0, id_factory=lambda: next(ids))


def joined_connection(
    config: Config | None = None,
    others: list[ppb.ParticipantInfo] | None = None,
    *,
    open_channels: bool = True,
    **join_kwargs: object,
) -> Connection:
    conn = new_connection(config)
    conn.connect(URL, TOKEN, now=T0)
    conn.receive_signal(FakeSfu.join(others=others, **join_kwargs), now=T0 + 0.1)  # type: ignore[arg-type]
    if open_channels:
        conn.data_channel_opened(Channel.RELIABLE, now=T0 + 0.2)
        conn.data_channel_opened(Channel.LOSSY, now=T0 + 0.2)
    drain(conn)
    return conn
