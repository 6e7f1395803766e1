"""lkproto: a sans-I/O implementation of the LiveKit client protocol.

The core under ``lkproto`` does no I/O, reads no clock and draws no randomness:
bytes and ``now`` go in, events and commands come out. The adapters that own
sockets and WebRTC peer connections live in ``lkproto.transports``.

Typical use by an adapter::

    conn = lkproto.Connection(now=clock(), unix_time_ms=wall_ms(), id_factory=new_id)
    conn.connect(url, token, now=clock())
    for command in conn.commands_to_send():
        ...  # carry it out, in order
    while (event := conn.next_event()) is not None:
        ...  # hand it to the application
    deadline = conn.get_timer()  # call conn.handle_timer(now) when it passes

Data streams (``register_stream_topic``, ``open_stream``/``write_stream``/``close_stream``,
``send_stream``) and RPC (``register_rpc_method``, ``perform_rpc``, ``respond_rpc``) are
verbs of the same ``Connection``; their sub-machines are public in ``lkproto.streams`` and
``lkproto.rpc`` for use alone. End-to-end encryption of all of it is on when the
``Connection`` is made with ``encryption=`` (keys in ``Connection.key_provider``); its key
provider and cryptor are public in ``lkproto.e2ee``.
"""

from __future__ import annotations

from lkproto import commands, e2ee, events, rpc, streams
from lkproto._connection import Connection
from lkproto._version import __version__
from lkproto.commands import Command
from lkproto.config import Config
from lkproto.errors import (
    DataPacketTooLargeError,
    LkProtocolError,
    LocalProtocolError,
    RemoteProtocolError,
)
from lkproto.events import Event
from lkproto.models import (
    Channel,
    ConnectionState,
    DisconnectReason,
    IceServer,
    LeaveAction,
    Participant,
    ParticipantKind,
    ParticipantState,
    PeerState,
    PeerTarget,
    Permissions,
    ReconnectMode,
    RoomInfo,
    SdpType,
    ServerInfo,
    SimulateScenario,
)
from lkproto.rpc import RpcError, RpcInvocationData
from lkproto.signal import SignalCodec
from lkproto.streams import (
    OperationType,
    StreamError,
    StreamErrorReason,
    StreamHeaderTooLargeError,
    StreamInfo,
    StreamKind,
)

__all__ = [
    "Channel",
    "Command",
    "Config",
    "Connection",
    "ConnectionState",
    "DataPacketTooLargeError",
    "DisconnectReason",
    "Event",
    "IceServer",
    "LeaveAction",
    "LkProtocolError",
    "LocalProtocolError",
    "OperationType",
    "Participant",
    "ParticipantKind",
    "ParticipantState",
    "PeerState",
    "PeerTarget",
    "Permissions",
    "ReconnectMode",
    "RemoteProtocolError",
    "RoomInfo",
    "RpcError",
    "RpcInvocationData",
    "SdpType",
    "ServerInfo",
    "SignalCodec",
    "SimulateScenario",
    "StreamError",
    "StreamErrorReason",
    "StreamHeaderTooLargeError",
    "StreamInfo",
    "StreamKind",
    "__version__",
    "commands",
    "e2ee",
    "events",
    "rpc",
    "streams",
]
