"""The session's facts and the join: where and as whom we join, the room and the server.

Theory of operation (protocol-reference D.1-D.3, E.1)
- Facts: the URL and token (a `refresh_token` from the server replaces it), the metadata
  and attributes we join with (after a full reconnect's rejoin: what we are now, E.1, which
  the server merges over the token's), whether the publisher's offer travels in the join
  request (`embed_offer`, single peer connection only), and the room and the server as the
  server last described them. The server's version also decides RPC's 1403 (`RpcTable`).
- Opening the signal (`open_signal`): `/rtc/v1` carries a join request (with the embedded
  offer, if any); the `/rtc` fallback, for servers that answer the `/rtc/v1` upgrade with
  404, carries the same facts in its query. A resume adds our participant SID, and every
  attempt the reconnector's cause. `Timer.JOIN` (`Config.join_timeout`) then waits for the
  first answer.
- Before the join, the first message must be the `JoinResponse` (a `leave` is the server
  refusing us; anything else is a protocol error that ends the session). Its facts are taken
  over part by part (roster, room, server, ICE servers, keepalive, data tracks), `Joined` is
  reported, then media tracks take over (after the events reporting the people) and the
  publisher is created, unless the embedded offer created it already. A full reconnect's
  `JoinResponse` is taken over the same way (`rejoined`), reporting what changed instead.
- Before the join, a failed upgrade (except a 404 on `/rtc/v1`, which falls back to `/rtc`),
  the signal closing or no answer within `Config.join_timeout` end the session. Ending it is
  the owner's (`end`, `fatal` hooks): this part never sees the `Connection`.
- Our descriptions and ICE candidates go out on the signal. An offer of the media-track
  queue (`offer_id` > 0) is the queue's; any other offer's answer is applied directly
  (`MediaTracks.direct_offer`). While joining with `embed_offer`, the offer opens the signal
  instead, and the candidates gathered meanwhile are not trickled: the offer carries them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto._context import Context, Timer
from lkproto._datatracks import DataTracks
from lkproto._keepalive import Keepalive
from lkproto._media import MediaTracks
from lkproto._pb import signal_pb2 as spb
from lkproto._peers import Peers
from lkproto._reconnect import EndSession
from lkproto._roster import Roster
from lkproto._state import Input
from lkproto.errors import LocalProtocolError, RemoteProtocolError
from lkproto.models import (
    ConnectionState,
    DisconnectReason,
    IceServer,
    ParticipantState,
    PeerTarget,
    RoomInfo,
    SdpType,
    ServerInfo,
)
from lkproto.rpc import RpcTable

__all__ = ["Fatal", "Session"]


class Fatal(Protocol):
    """How the session ends on a remote protocol error (the owner's `_fatal`)."""

    def __call__(
        self, exc: RemoteProtocolError, *, now: float, reason: DisconnectReason
    ) -> None: ...


class Session:
    """The session's facts and its join (see the module docstring)."""

    __slots__ = (
        "_cause",
        "_ctx",
        "_datatracks",
        "_end",
        "_fatal",
        "_keepalive",
        "_media",
        "_peers",
        "_roster",
        "_rpc",
        "attributes",
        "embed_offer",
        "metadata",
        "room",
        "server_info",
        "token",
        "url",
    )

    def __init__(
        self,
        ctx: Context,
        *,
        roster: Roster,
        peers: Peers,
        keepalive: Keepalive,
        datatracks: DataTracks,
        media: MediaTracks,
        rpc: RpcTable,
        cause: Callable[[], int],
        end: EndSession,
        fatal: Fatal,
    ) -> None:
        """`cause()` is the reconnect cause a join request reports (the reconnector's)."""
        self._ctx = ctx
        self._roster = roster
        self._peers = peers
        self._keepalive = keepalive
        self._datatracks = datatracks
        self._media = media
        self._rpc = rpc
        self._cause = cause
        self._end = end
        self._fatal = fatal
        self.url = ""
        self.token = ""
        self.metadata = ""
        self.attributes: dict[str, str] = {}
        self.embed_offer = False
        self.room = RoomInfo()
        self.server_info = ServerInfo()

    # -- opening the signal ---------------------------------------------------------------------

    def connect(
        self,
        url: str,
        token: str,
        now: float,
        metadata: str,
        attributes: Mapping[str, str] | None,
        single_pc: bool,
        embed_offer: bool,
    ) -> None:
        """`Connection.connect`, its state checked."""
        if not token:
            raise LocalProtocolError("connect: the token is empty", call="connect", state="NEW")
        self._ctx.codec.validate_url(url)
        self.url, self.token = url, token
        self.metadata = metadata
        self.attributes = dict(attributes or {})
        self._peers.single_pc = single_pc
        self.embed_offer = embed_offer and single_pc
        self._ctx.sm.process(Input.CONNECT)
        if self.embed_offer:
            self._peers.create_publisher((), now)
        else:
            self.open_signal(now)

    def open_signal(self, now: float, resume: bool = False, offer: str | None = None) -> None:
        local = self._roster.local
        resume_sid = local.sid if resume and local is not None else ""
        codec = self._ctx.codec
        reason = self._cause()
        if self._peers.single_pc:
            request = codec.join_request(
                metadata=self.metadata,
                attributes=self.attributes,
                publisher_offer=offer,
                resume_sid=resume_sid,
                reconnect_reason=reason,
            )
            url = codec.join_url_v1(self.url, request)
        else:
            url = codec.join_url_v0(
                self.url,
                attributes=self.attributes,
                metadata=self.metadata,
                resume_sid=resume_sid,
                reconnect_reason=reason,
            )
        self._ctx.commands.append(
            cmd.OpenSignal(url=url, token=self.token, single_peer_connection=self._peers.single_pc)
        )
        self._ctx.deadlines.set(Timer.JOIN, now + self._ctx.config.join_timeout)

    def connect_failed(self, status: int | None, message: str, now: float) -> None:
        """The join's WebSocket upgrade failed with HTTP `status` (None: no HTTP answer)."""
        if self._ctx.state is not ConnectionState.CONNECTING:
            return
        if status == 404 and self._peers.single_pc:
            # The server predates /rtc/v1: fall back to the dual peer connection path.
            self._peers.single_pc = False
            self.embed_offer = False
            self.open_signal(now)
            return
        if status in (401, 403):
            text = f"the server refused the token (HTTP {status})"
        elif status is None:
            text = (
                f"could not reach the server: {message}"
                if message
                else "could not reach the server"
            )
        else:
            text = f"the signal connection failed with HTTP {status}"
        if status is not None and message:
            text += f": {message}"  # the server's reason; the adapter redacts the token
        self._end(DisconnectReason.JOIN_FAILURE, text, now, send_leave=False)

    def signal_closed(self, why: str, now: float) -> None:
        """The join's signal connection closed before the join."""
        self._end(
            DisconnectReason.JOIN_FAILURE,
            f"the signal closed before the join ({why})",
            now,
            send_leave=False,
            close_signal=False,
        )

    def join_timed_out(self, now: float) -> None:
        """`Timer.JOIN` fired before the join."""
        self._end(
            DisconnectReason.JOIN_FAILURE,
            f"no join response within {self._ctx.config.join_timeout:g}s",
            now,
            send_leave=False,
        )

    def rejoin_as_now(self) -> None:
        """A full reconnect: rejoin as we are now, not as we first joined (E.1)."""
        local = self._roster.local
        assert local is not None  # reconnecting happens only once joined
        self.metadata = local.metadata
        self.attributes = dict(local.attributes)

    # -- our descriptions and candidates -------------------------------------------------------

    def local_description(
        self,
        target: PeerTarget,
        sdp: str,
        sdp_type: SdpType,
        offer_id: int,
        slot_mids: Mapping[int, str] | None,
        now: float,
    ) -> None:
        """The adapter created (and set) a local offer or answer for a current `target`."""
        if sdp_type is SdpType.OFFER and offer_id:
            self._media.offer_created(offer_id, sdp, slot_mids or {}, now)
            return
        self._peers.local_description(target, sdp, sdp_type)
        codec = self._ctx.codec
        if sdp_type is SdpType.OFFER:
            self._media.direct_offer = True  # its answer (id 0) is applied directly
            if self._embedding():
                self.open_signal(now, offer=sdp)
            else:
                self._ctx.commands.append(cmd.SendSignal(data=codec.offer(sdp)))
        else:
            self._ctx.commands.append(cmd.SendSignal(data=codec.answer(sdp)))

    def candidate_gathered(self, target: PeerTarget, candidate_init: str) -> None:
        if self._embedding():
            return  # the embedded offer already carries the candidates gathered so far
        data = self._ctx.codec.trickle(candidate_init, int(target))
        self._ctx.commands.append(cmd.SendSignal(data=data))

    def _embedding(self) -> bool:
        """Joining, with the publisher's offer in the join request."""
        return self._ctx.state is ConnectionState.CONNECTING and self.embed_offer

    # -- the join ---------------------------------------------------------------------------------

    def first_message(self, msg: spb.SignalResponse, kind: str | None, now: float) -> None:
        """The first message on the join's signal connection."""
        if kind == "join":
            self._joined(msg.join, now)
        elif kind == "leave":
            reason = DisconnectReason.of(msg.leave.reason)
            self._end(reason, "the server refused the join", now, send_leave=False)
        else:
            self._fatal(
                RemoteProtocolError(f"expected a join response first, got {kind or 'nothing'}"),
                now=now,
                reason=DisconnectReason.JOIN_FAILURE,
            )

    def _joined(self, join: spb.JoinResponse, now: float) -> None:
        if not join.participant.sid or not join.participant.identity:
            self._fatal(
                RemoteProtocolError("join response without a local participant"),
                now=now,
                reason=DisconnectReason.JOIN_FAILURE,
            )
            return
        self._take_over(join, now)
        self._ctx.sm.process(Input.JOINED)
        peers = self._peers
        self._ctx.events.append(
            ev.Joined(
                room=self.room,
                local_participant=self._roster.local,  # type: ignore[arg-type]  # set just above
                participants=tuple(self._roster.remotes.values()),
                server_info=self.server_info,
                ice_servers=peers.ice_servers,
                single_peer_connection=peers.single_pc,
            )
        )
        self._media_joined(join, now)
        if PeerTarget.PUBLISHER not in peers.targets:
            peers.create_publisher(peers.ice_servers, now)

    def rejoined(self, join: spb.JoinResponse, now: float) -> None:
        """A full reconnect's `JoinResponse`: take it over and report what changed."""
        old, old_room = self._roster.local, self.room
        self._take_over(join, now)
        local = self._roster.local
        assert old is not None and local is not None  # reconnecting implies joined
        events = self._ctx.events
        if old != local:
            events.append(ev.ParticipantUpdated(participant=local, previous=old))
        self._room_events(old_room, always=False)  # e.g. a new room SID: the server restarted
        for participant in self._roster.remotes.values():
            events.append(ev.ParticipantConnected(participant=participant))
            if participant.state is ParticipantState.ACTIVE:
                events.append(ev.ParticipantActive(participant=participant))
        self._media_joined(join, now)  # republishes our tracks, lists the others' again

    def _take_over(self, join: spb.JoinResponse, now: float) -> None:
        """Take over a JoinResponse's facts (a first join or a full reconnect's rejoin)."""
        self._ctx.deadlines.cancel(Timer.JOIN)
        self._roster.join(join.participant, join.other_participants)
        self.room = RoomInfo.from_pb(join.room)
        self._set_server_info(ServerInfo.from_pb(join.server_info))
        self._peers.ice_servers = tuple(IceServer.from_pb(s) for s in join.ice_servers)
        self._keepalive.configure(join.ping_interval, join.ping_timeout, now)
        self._datatracks.joined(join.participant.identity, join.other_participants, now)

    def _media_joined(self, join: spb.JoinResponse, now: float) -> None:
        """Media tracks take over a JoinResponse, after the events reporting its people."""
        enabled = self._peers.single_pc
        self._peers.request_offer = self._media.request_offer if enabled else None
        local = self._roster.local
        assert local is not None  # set by _take_over
        self._media.joined(local.identity, join.other_participants, enabled=enabled, now=now)

    # -- what the server says of the room and itself ----------------------------------------------

    def _set_server_info(self, info: ServerInfo) -> None:
        self.server_info = info
        self._rpc.server_version = info.version

    def server_answered(self, response: spb.ReconnectResponse) -> None:
        """What a resume's `ReconnectResponse` says of the server."""
        if response.ice_servers:
            self._peers.ice_servers = tuple(IceServer.from_pb(s) for s in response.ice_servers)
        if response.HasField("server_info"):
            self._set_server_info(ServerInfo.from_pb(response.server_info))

    def room_updated(self, msg: spb.SignalResponse, now: float) -> None:
        old, self.room = self.room, RoomInfo.from_pb(msg.room_update.room)
        self._room_events(old, always=True)

    def _room_events(self, old: RoomInfo, *, always: bool) -> None:
        """Report the room if it changed from `old` (or `always`), and its metadata."""
        room = self.room
        if always or old != room:
            self._ctx.events.append(ev.RoomUpdated(room=room))
            if old.metadata != room.metadata:
                self._ctx.events.append(
                    ev.RoomMetadataChanged(old_metadata=old.metadata, metadata=room.metadata)
                )

    def token_refreshed(self, msg: spb.SignalResponse, now: float) -> None:
        self.token = msg.refresh_token
        self._ctx.events.append(ev.TokenRefreshed(token=msg.refresh_token))
