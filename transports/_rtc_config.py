"""`RtcConfiguration`: the ICE settings of a Room, under `livekit.rtc`'s names.

`livekit.rtc.RtcConfiguration(ice_transport_type=, continual_gathering_policy=, ice_servers=)`
with `IceTransportType`, `ContinualGatheringPolicy` (the `room.proto` enums, same values) and
`IceServer(urls, username, password)`. How they reach aiortc (transports/_aiortc.py,
transports/_turn.py):
- ICE servers: the user's `ice_servers` replace the ones the server hands out in the join (and
  reconnect) response; an empty list keeps the server's (rust-sdks `make_rtc_config_join`:
  the server's list is used only when the user gave none). The server's TURN credentials are
  short-lived and tied to the participant, so a user normally gives none and relies on them.
- `TRANSPORT_RELAY` is aiortc's `iceTransportPolicy=RELAY`: aioice gathers no host or
  server-reflexive candidate and pairs only relay candidates, so media and data go through
  the TURN server. `TRANSPORT_ALL` gathers everything. `TRANSPORT_NOHOST` is refused: aioice
  cannot gather server-reflexive candidates without using (and pairing) its host sockets.
- `continual_gathering_policy` is accepted and has no effect: aiortc gathers once, before its
  description goes out; after a network change a full reconnect gathers anew.
- TURN over TLS (`turns:` URLs) verifies the server's certificate against `ssl_context`
  (lkproto only) if given, else against `RoomOptions.ssl_context` if given, else against the
  system's trust store; verification is never turned off.
- `host_addresses` (lkproto only) restricts the local addresses ICE gathers host candidates
  from.
TURN passwords never appear in a repr: `IceServer` and the core's `IceServer` hide them.
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

import attrs

from lkproto._repr import plain_repr
from lkproto.models import IceServer as CoreIceServer

__all__ = [
    "ContinualGatheringPolicy",
    "IcePolicy",
    "IceServer",
    "IceTransportType",
    "RtcConfiguration",
    "check_rtc_configuration",
    "ice_policy",
]

_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class IceTransportType(enum.IntEnum):
    """`livekit.rtc.IceTransportType` values (`room.proto` `IceTransportType`)."""

    TRANSPORT_RELAY = 0
    TRANSPORT_NOHOST = 1
    TRANSPORT_ALL = 2


class ContinualGatheringPolicy(enum.IntEnum):
    """`livekit.rtc.ContinualGatheringPolicy` values (`room.proto`)."""

    GATHER_ONCE = 0
    GATHER_CONTINUALLY = 1


@dataclass
class IceServer:
    """A STUN or TURN server: `livekit.rtc.IceServer(urls=, username=, password=)`.

    `urls` are `stun:`, `turn:` (`?transport=udp` or `tcp`) or `turns:` (TLS over TCP) URLs.
    The password is never shown in a repr.
    """

    urls: list[str] = field(default_factory=list)
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass
class RtcConfiguration:
    """ICE settings (`livekit.rtc.RtcConfiguration`). Empty `ice_servers` means: use the servers
    the SFU hands out. `ice_transport_type=IceTransportType.TRANSPORT_RELAY` connects through
    TURN only.

    lkproto only: `host_addresses` restricts the local addresses ICE gathers from;
    `ssl_context` verifies TURN servers reached over TLS (`turns:`), e.g. with a private CA
    (default: `RoomOptions.ssl_context`, else the system's trust store).
    `ice_servers` also takes the core's `lkproto.models.IceServer` (`credential` for the
    password).
    """

    ice_transport_type: IceTransportType = IceTransportType.TRANSPORT_ALL
    continual_gathering_policy: ContinualGatheringPolicy = (
        ContinualGatheringPolicy.GATHER_CONTINUALLY
    )
    ice_servers: list[IceServer] | list[CoreIceServer] = field(default_factory=list)
    host_addresses: list[str] | None = None
    ssl_context: ssl.SSLContext | None = None


@attrs.frozen
@plain_repr
class IcePolicy:
    """What the peer side needs beyond the servers: relay only, and whom TLS TURN trusts."""

    relay_only: bool = False
    tls_context: ssl.SSLContext | None = attrs.field(default=None, repr=False)


def _type(value: object) -> str:
    return type(value).__name__


def _member(value: object, enum_type: type[enum.IntEnum]) -> bool:
    """An enum member, or its plain int value (`livekit.rtc` passes protobuf ints)."""
    return isinstance(value, int) and not isinstance(value, bool) and value in set(enum_type)


def _check_urls(urls: object) -> None:
    if isinstance(urls, str | bytes) or not isinstance(urls, Sequence):
        raise TypeError(f"RtcConfiguration: IceServer.urls must be a list, not {_type(urls)}")
    for url in urls:
        if not isinstance(url, str):
            raise TypeError(f"RtcConfiguration: IceServer.urls must hold str, not {_type(url)}")
        if not url.startswith(_SCHEMES):
            # The URL is the user's own configuration, not a secret: naming it helps.
            raise ValueError(
                f"RtcConfiguration: {url!r} is not a stun:, stuns:, turn: or turns: URL"
            )


def check_rtc_configuration(rtc: object) -> None:
    """Refuse wrong types and values in `RoomOptions.rtc_config`, at `connect()`."""
    if not isinstance(rtc, RtcConfiguration):
        raise TypeError(f"connect: rtc_config must be RtcConfiguration or None, not {_type(rtc)}")
    if not _member(rtc.ice_transport_type, IceTransportType):
        raise TypeError(
            "RtcConfiguration: ice_transport_type must be an IceTransportType, "
            f"not {rtc.ice_transport_type!r}"
        )
    if IceTransportType(rtc.ice_transport_type) is IceTransportType.TRANSPORT_NOHOST:
        raise ValueError(
            "RtcConfiguration: TRANSPORT_NOHOST is not supported (aiortc gathers "
            "server-reflexive candidates through its host sockets); use TRANSPORT_RELAY"
        )
    if not _member(rtc.continual_gathering_policy, ContinualGatheringPolicy):
        raise TypeError(
            "RtcConfiguration: continual_gathering_policy must be a ContinualGatheringPolicy, "
            f"not {rtc.continual_gathering_policy!r}"
        )
    servers: object = rtc.ice_servers
    if isinstance(servers, str | bytes) or not isinstance(servers, Sequence):
        raise TypeError(f"RtcConfiguration: ice_servers must be a list, not {_type(servers)}")
    for server in servers:
        if isinstance(server, IceServer):
            _check_urls(server.urls)
            secrets = (server.username, server.password)
        elif isinstance(server, CoreIceServer):
            _check_urls(server.urls)
            secrets = (server.username, server.credential)
        else:
            raise TypeError(
                f"RtcConfiguration: ice_servers must hold IceServer, not {_type(server)}"
            )
        if not all(isinstance(s, str) for s in secrets):
            raise TypeError("RtcConfiguration: IceServer.username and password must be str")
    if rtc.ssl_context is not None and not isinstance(rtc.ssl_context, ssl.SSLContext):
        raise TypeError(
            f"RtcConfiguration: ssl_context must be ssl.SSLContext, not {_type(rtc.ssl_context)}"
        )


def core_ice_servers(rtc: RtcConfiguration) -> list[CoreIceServer]:
    """The user's servers as the core's values (what the peer side takes)."""
    out = []
    for server in rtc.ice_servers:
        if isinstance(server, IceServer):
            out.append(
                CoreIceServer(
                    urls=tuple(server.urls), username=server.username, credential=server.password
                )
            )
        else:
            out.append(server)
    return out


def ice_policy(rtc: RtcConfiguration, fallback_context: ssl.SSLContext | None) -> IcePolicy:
    relay = IceTransportType(rtc.ice_transport_type) is IceTransportType.TRANSPORT_RELAY
    return IcePolicy(relay_only=relay, tls_context=rtc.ssl_context or fallback_context)
