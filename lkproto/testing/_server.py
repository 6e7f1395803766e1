"""The SFU inside a MemoryRoom: what livekit-server v1.13.5 does with one room's clients.

Theory of operation (each behaviour cites the fact it mirrors; [srv] is livekit/livekit
v1.13.5, pkg/rtc/room.go, participant.go and participant_signal.go unless named)
- Joining (D.1, D.4): the WebSocket target is `/rtc/v1?join_request=...` (a base64url
  `WrappedJoinRequest`, gzip or not) or `/rtc?...` with the same facts as query parameters,
  anything else is 404. The token comes from `Authorization: Bearer` (or `access_token` on
  `/rtc`). A bad token is a 401 whose body echoes it, as the server's does ("invalid token:
  <token>, error: ..."); one without roomJoin for this room is a 401 "permissions denied";
  an undecodable join request is a 400. The server sends the `JoinResponse` (our own info
  at state JOINING, version 0; the others that are not hidden; ping 5/15 s; server 1.13.5,
  protocol 17), then `refresh_token`; on `/rtc` also the subscriber `offer` (dual PC). The
  JoinRequest's non-empty metadata and attribute values override the token's (E.1). A second
  join with the same identity ends the first session (DUPLICATE_IDENTITY). A participant
  not ACTIVE a minute after joining is removed (JOIN_FAILURE, [srv] Room.Join, Verify).
- Resuming (D.8, [srv] pkg/service/roommanager.go StartSession, Room.ResumeParticipant): a
  join request with `reconnect` (`reconnect=1` on `/rtc`) names the participant by the
  token's identity (the SID it carries is not checked). If the room has no such participant
  (it left, was removed, or the server restarted) the answer is `leave{STATE_MISMATCH,
  RECONNECT}` (`can_reconnect` for protocol <= 12) and the socket closes. Otherwise the new
  socket replaces the old one (closed, 1000) and the server sends `reconnect`
  (`ReconnectResponse.last_message_seq` = the last reliable sequence it took from that
  participant), for protocol > 8 an `update` with the participants that left since the last
  signal message it got from the client (sid, identity, version and state only, as
  sendDisconnectUpdatesForReconnect), an `update` with every participant that is not
  hidden, itself included, a `room_update` (as of the last 5 s tick), on `/rtc` an
  ICE-restart `offer` for the subscriber, then `refresh_token`.
  The resume cancels a pending cleanup (ICERestart clears the disconnect timer). The
  participant's peer connection, sequence state and data routing carry on untouched.
- The peer connection is simulated: every offer gets an answer whose `a=ice-ufrag` names
  the session, and the client's side "connects" by presenting that ufrag
  (`MemoryRoom.connect_peer`), as ICE ties a real peer connection to its signal session;
  an ICE restart (a new offer) connects the same way. Data channel messages over 65535
  bytes (the server's SCTP max-message-size, advertised in the answer) are refused.
- Participant states (D.5, [srv] updateState, broadcastParticipantState,
  PushAndDequeueUpdates): JOINING -> JOINED once the join response is out -> ACTIVE once the
  peer connection is up -> DISCONNECTED; every change bumps `version`. State changes are
  batched per identity (the newest wins) and sent to every participant, the subject too,
  on the server's 3 s subscriber-update tick (counted from the room's creation): this is why
  joins and departures are announced ~3 s late (a data-track publisher's at once, see
  `_sfu_datatracks`); the departure of a session replaced by a newer one of the same
  identity (DUPLICATE_IDENTITY) is not sent to clients of protocol > 11, which reconnect by
  identity. Name, metadata, attribute and permission
  changes go out at once (`immediate`). A hidden participant's changes go only to itself,
  and its state changes to nobody; updates about hidden others are never sent. Every
  update sent is remembered per receiver (SendParticipantUpdate's updateCache), even when
  its socket is gone, so a resume can repeat the departures it missed.
- Room updates ([srv] protoProxy, roomUpdateInterval 5 s): when the participant count
  changed, a `room_update` with `num_participants` goes to everyone on the next 5 s tick;
  the JoinResponse carries the room as of the last tick. A room metadata change is sent at
  once.
- Metadata requests (D.9, E.1): without canUpdateOwnMetadata -> NOT_ALLOWED; name over 256
  bytes, metadata over 512 KiB or attributes (keys + values of this update) over 64 KiB ->
  LIMIT_EXCEEDED; else non-empty name/metadata are applied, attributes merged ("" deletes),
  each effective change broadcast immediately (and a refresh token sent), then the OK
  response (clients with protocol > 14).
- Data packets (A.5, [srv] onReceivedDataMessage, handleReceivedDataMessage,
  BroadcastDataPacketForRoom): silently dropped if the sender left or lacks canPublishData,
  or if unparsable; `participant_sid` stamped; a reliable packet whose sequence is not above
  the sender's last is dropped; `kind` set from the channel; `participant_identity` stamped
  (blank for a hidden sender; an agent may keep another identity on chat and text-stream
  headers, which are then marked generated); the user packet's sender and destinations
  mirrored; transcriptions from non-agents and metrics are not forwarded; a user packet
  whose 16-byte nonce is among the room's last 100 is dropped. Then it goes to every other
  participant, or only to the listed destination identities / SIDs (absent ones skipped),
  through the (sender, receiver) `Link`. A receiver whose data channel is not open (not yet
  ACTIVE, or gone) loses it. Every drop is recorded in `dropped`.
- Leaving (D.7, [srv] Close, IssueFullReconnect, onAnyTransportFailed, RemoveParticipant,
  HandleSignalSourceClose): a client `leave` ends the session (CLIENT_INITIATED, or
  USER_UNAVAILABLE / USER_REJECTED / AGENT_ERROR when it says so) with a leave back, the
  socket and peer connection closed. `leave(action=DISCONNECT)`: leave{DISCONNECT}, then
  closed and removed. RECONNECT: leave{RECONNECT}, closed and removed. RESUME: leave{RESUME}
  and the socket closed, the participant kept for the 5 s disconnect-cleanup time (a resume
  keeps it), then removed (CONNECTION_TIMEOUT). A client whose socket closes before its
  peer connection ever connected is removed at once (SIGNAL_CLOSE); once it has connected,
  the socket may go and come back (a resume) for as long as the peer connection lives. A
  peer connection that fails (ICE) makes the server send leave{RESUME, CONNECTION_TIMEOUT}
  (protocol > 12), close the socket, and remove the participant 5 s later unless it
  resumes; one the client closes is removed 5 s later. Every removal is announced as a
  batched DISCONNECTED update with the reason.
- The network ([srv] wsprotocol.go has no read deadline: the server never notices a silent
  socket). `disconnect` cuts one client off: its signal messages both ways and its reliable
  data packets are held, as TCP and SCTP hold them, and delivered in order when the network
  is restored; lossy packets are lost; a WebSocket upgrade from it is lost (the client's own
  timer gives up). 15 s into the cut (ICE disconnected 10 s + failed 5 s) both ends' peer
  connection fails: the held packets riding it are lost, and the server acts as above
  (leave{RESUME}, close, removal 5 s later). A cut of a participant whose peer connection
  never came up is never noticed; the join timeout removes it.
- Client scenarios ([srv] Room.onSimulateScenario, SignalRequest.simulate): speaker_update n
  -> `speakers_changed` {active, 0.9} now and {inactive, 0} n s later (only to the
  participant itself: the others subscribe to no track of it); node_failure and migration
  -> the participant is closed without a leave (socket closed 1000, peer connection closed,
  DISCONNECTED with SERVER_SHUTDOWN / MIGRATION) and a resume then finds nothing
  (STATE_MISMATCH); server_leave -> leave{SERVER_SHUTDOWN, DISCONNECT}; switch_candidate_
  protocol -> an ICE restart; disconnect_signal_on_resume -> a resume within 5 s gets its
  messages, then its socket is closed; disconnect_signal_on_resume_no_messages -> a resume
  within 5 s is answered HTTP 500 "connection closed by media" (the signal service's three
  tries all find the socket closed) and the old socket is closed; subscriber_bandwidth and
  leave_request_full_reconnect change nothing a data client sees.
- Restart ([srv] RoomManager.Stop -> Room.Close): graceful, every client gets
  leave{SERVER_SHUTDOWN, DISCONNECT} and is closed, with no DISCONNECTED broadcast (the room's
  update loop is gone); a crash resets every socket without a word, and the clients' peer
  connections fail 15 s later. Either way the room starts over empty, with a new SID, after
  `downtime` seconds during which connections are refused; resumes then find nothing.
- Keepalive (D.6): `ping_req` is answered `pong_resp`, the legacy `ping` with `pong`.
- Data tracks: `_sfu_datatracks.DataTrackRouter` (publish, unpublish, subscriber handles,
  subscription permissions, packet forwarding with an optional deterministic loss rate, and
  the resume's check of `SyncState.publish_data_tracks`); `_data_track` packets, like lossy
  ones, are lost rather than held on a cut network.
- Media tracks and their frames: lkproto/testing/_media.py.
Not modelled: RTP and connection quality; the reliable-packet cache (for migration between
nodes) and SyncState's media-track checks; data blobs; data-track auto-subscription;
server-initiated RPC; token refresh on a timer; regions.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import attrs

from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto._pb import tracks_pb2 as tpb
from lkproto.models import Channel, DisconnectReason, LeaveAction
from lkproto.testing._links import Link
from lkproto.testing._media import MediaModel
from lkproto.testing._schedule import Handle, Scheduler
from lkproto.testing._sfu_datatracks import DataTrackRouter
from lkproto.testing._tokens import Grants, TokenError, read_token
from lkproto.tokens import VideoGrants, mint_token

__all__ = [
    "DroppedPacket",
    "Member",
    "PeerEndpoint",
    "PeerLink",
    "Rejected",
    "Sfu",
    "SignalEndpoint",
    "SignalLink",
    "Unreachable",
    "Upgrade",
    "ice_ufrag",
]

SERVER_VERSION = "1.13.5"
SERVER_PROTOCOL = 17
PING_INTERVAL = 5  # PingIntervalSeconds
PING_TIMEOUT = 15  # PingTimeoutSeconds
MAX_MESSAGE_SIZE = 65535  # a=max-message-size in the server's answer
UPDATE_INTERVAL = 3.0  # subscriberUpdateInterval
ROOM_UPDATE_INTERVAL = 5.0  # roomUpdateInterval
DISCONNECT_CLEANUP = 5.0  # disconnectCleanupDuration
ICE_FAILURE = 15.0  # iceDisconnectedTimeout (10 s) + iceFailedTimeout (5 s)
JOIN_TIMEOUT = 60.0  # Room.Join: not ACTIVE a minute after joining -> removed
SIMULATE_TIMEOUT = 5.0  # simulateDisconnectSignalTimeout
NONCES = 100  # user_packet_deduper maxSize
MAX_NAME = 256
MAX_METADATA = 512 * 1024
MAX_ATTRIBUTES = 64 * 1024

_KIND_NAMES = {
    0: "standard",
    1: "ingress",
    2: "egress",
    3: "sip",
    4: "agent",
    7: "connector",
    8: "bridge",
}
_AGENT = 4
_LEAVE_REASONS = {
    int(DisconnectReason.USER_UNAVAILABLE),
    int(DisconnectReason.USER_REJECTED),
    int(DisconnectReason.AGENT_ERROR),
}
_JOINING, _JOINED, _ACTIVE, _DISCONNECTED = 0, 1, 2, 3
NOT_OPEN = "the receiver's data channel is not open"
_CAPABILITIES = {"CAP_PACKET_TRAILER": 1, "CAP_COMPRESSION_DEFLATE_RAW": 2}


class SignalEndpoint(Protocol):
    """The client side of a signal connection: what the server says arrives here."""

    def signal_received(self, data: bytes) -> None:
        """One serialized `SignalResponse`."""

    def signal_closed(self, code: int | None) -> None:
        """The server closed the socket (None: reset, no close frame)."""


class PeerEndpoint(Protocol):
    """The client side of a peer connection: data channel messages from the server."""

    def data_received(self, channel: Channel, data: bytes) -> None:
        """A data channel message for this client arrived."""

    def peer_closed(self) -> None:
        """The server closed the peer connection (its data channels are gone)."""

    def peer_failed(self) -> None:
        """The peer connection failed (ICE gave up): its data channels are gone."""

    def media_received(self, mid: str, payload: object) -> None:
        """A media frame the room forwards on the m-line `mid` (see `_media`)."""


@attrs.frozen
class Rejected:
    """The WebSocket upgrade was refused with HTTP `status`; `body` is the server's text."""

    status: int
    body: str = attrs.field(repr=False)


@attrs.frozen
class Unreachable:
    """No HTTP answer. `refused`: the server is down and the connection is refused at once;
    otherwise the client's network is cut and the request is lost (nothing ever answers)."""

    refused: bool


@attrs.frozen(kw_only=True)
class Upgrade:
    """One WebSocket upgrade the room saw (or that a cut network lost), for tests.

    `identity` is the one the token names (unverified); `resume` whether the join request
    asked for a resume; `outcome` is "joined", "resumed", "state mismatch", "unreachable",
    "refused" or "rejected <HTTP status>"."""

    at: float
    identity: str
    resume: bool
    outcome: str


@attrs.frozen(kw_only=True)
class DroppedPacket:
    """A data packet the room did not deliver, and why.

    `receiver` is None when the server itself dropped it (before forwarding); `data` is the
    packet as the sender sent it, or as forwarded when a link or receiver lost it.
    """

    sender: str
    receiver: str | None
    channel: Channel
    data: bytes = attrs.field(repr=False)
    reason: str

    def packet(self) -> dpb.DataPacket:
        """The dropped data packet, decoded (not for `_data_track`, whose packets are
        data-track packets)."""
        return dpb.DataPacket.FromString(self.data)


def ice_ufrag(sdp: str) -> str | None:
    """The `a=ice-ufrag` of a session description (the MemoryRoom's session key)."""
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line.removeprefix("a=ice-ufrag:").strip()
    return None


def _sdp(kind: str, ufrag: str) -> str:
    lines = [
        "v=0",
        "o=- 0 0 IN IP4 0.0.0.0",
        f"s=lkproto-memory-{kind}",
        "t=0 0",
        "a=group:BUNDLE 0",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=setup:active",
        "a=mid:0",
        "a=sctp-port:5000",
        f"a=max-message-size:{MAX_MESSAGE_SIZE}",
        f"a=ice-ufrag:{ufrag}",
        "a=ice-pwd:lkproto-memory",
    ]
    return "\r\n".join(lines) + "\r\n"


def _claimed_identity(token: str) -> str:
    """The `sub` a token names, unverified ("" if unreadable): whose network a request is on."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return ""
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else ""


class _Session:
    """One signal WebSocket, server side. `open` is False once either side closed it."""

    __slots__ = ("endpoint", "identity", "member", "open")

    def __init__(self, endpoint: SignalEndpoint | None, identity: str) -> None:
        self.endpoint = endpoint
        self.identity = identity
        self.member: Member | None = None
        self.open = endpoint is not None


class _Held:
    """Something in flight on a cut network: run when it is restored. A data packet riding
    `member`'s peer connection is lost instead if that connection fails first (`lost`)."""

    __slots__ = ("action", "lost", "member")

    def __init__(
        self,
        action: Callable[[], None],
        member: Member | None = None,
        lost: DroppedPacket | None = None,
    ) -> None:
        self.action = action
        self.member = member
        self.lost = lost


class _Outage:
    """One client's cut network: what waits for it, and the timers it started."""

    __slots__ = ("held", "timers")

    def __init__(self) -> None:
        self.held: list[_Held] = []
        self.timers: list[Handle] = []


class Member:
    """One participant session in the room."""

    def __init__(
        self,
        sid: str,
        grants: Grants,
        session: _Session,
        *,
        joined_at_ms: int,
        ufrag: str,
        single: bool,
    ) -> None:
        self.sid = sid
        self.identity = grants.identity
        self.grants = grants
        self.name = grants.name
        self.metadata = grants.metadata
        self.attributes = dict(grants.attributes)
        self.kind = grants.kind
        self.permission = ppb.ParticipantPermission(
            can_subscribe=grants.can_subscribe,
            can_publish=grants.can_publish,
            can_publish_data=grants.can_publish_data,
            can_update_metadata=grants.can_update_metadata,
            hidden=grants.hidden,
        )
        self.state = _JOINING
        self.version = 0
        self.disconnect_reason = 0
        self.joined_at_ms = joined_at_ms
        self.client_protocol = 0
        self.capabilities: list[int] = []
        self.protocol = 0
        self.session = session
        self.single = single
        self.ufrag = ufrag
        self.peer: PeerEndpoint | None = None
        self.peer_epoch = 0  # bumped whenever the peer connection changes: old links go dead
        self.last_sequence = 0
        self.last_signal_at = 0.0
        self.join_timer: Handle | None = None
        # sid -> (identity, version, state, when sent): SendParticipantUpdate's updateCache
        self.sent: dict[str, tuple[str, int, int, float]] = {}
        self.departure: Handle | None = None
        self.data_tracks: dict[int, tpb.DataTrackInfo] = {}  # by pub_handle
        self.is_publisher = False
        self.tracks: list[tpb.TrackInfo] = []  # published media tracks (`_media`)

    @property
    def hidden(self) -> bool:
        return self.permission.hidden

    def info(self) -> ppb.ParticipantInfo:
        return ppb.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            state=self.state,  # type: ignore[arg-type]
            joined_at=self.joined_at_ms // 1000,
            joined_at_ms=self.joined_at_ms,
            version=self.version,
            permission=self.permission,
            metadata=self.metadata,
            attributes=self.attributes,
            kind=self.kind,  # type: ignore[arg-type]
            disconnect_reason=self.disconnect_reason,  # type: ignore[arg-type]
            client_protocol=self.client_protocol,
            capabilities=self.capabilities,  # type: ignore[arg-type]
            is_publisher=self.is_publisher,
            data_tracks=list(self.data_tracks.values()),
            tracks=self.tracks,
        )


class SignalLink:
    """The client's handle on an accepted signal connection."""

    def __init__(self, sfu: Sfu, session: _Session) -> None:
        self._sfu = sfu
        self._session = session

    def send(self, data: bytes) -> None:
        """One serialized `SignalRequest` from the client."""
        sfu, session, data = self._sfu, self._session, bytes(data)
        sfu.clock.call_soon(
            lambda: sfu.via_network(session.identity, lambda: sfu.signal_request(session, data))
        )

    def close(self) -> None:
        """The client closed the socket."""
        sfu, session = self._sfu, self._session
        sfu.clock.call_soon(
            lambda: sfu.via_network(session.identity, lambda: sfu.client_closed_signal(session))
        )


class PeerLink:
    """The client's handle on a connected (simulated) peer connection."""

    def __init__(self, sfu: Sfu, member: Member, endpoint: PeerEndpoint) -> None:
        self._sfu = sfu
        self._member = member
        self._endpoint = endpoint
        self._epoch = member.peer_epoch

    def send(self, channel: Channel, data: bytes) -> None:
        """One data channel message from the client."""
        self._sfu.uplink_data(self._member, self._epoch, channel, bytes(data))

    def send_media(self, mid: str, payload: object) -> None:
        """One media frame from the client on its m-line `mid` (lost on a cut network)."""
        sfu, member = self._sfu, self._member
        if member.peer_epoch == self._epoch and member.identity not in sfu.outages:
            sfu.clock.call_soon(lambda: sfu.media.forward(member, mid, payload))

    def close(self) -> None:
        """The client closed its peer connection."""
        sfu, member, epoch = self._sfu, self._member, self._epoch
        sfu.clock.call_soon(lambda: sfu.client_closed_peer(member, epoch))


class Sfu:
    """The server side of one MemoryRoom. Driven by `MemoryRoom`; see the module docstring."""

    def __init__(
        self,
        clock: Scheduler,
        wall_ms: Callable[[], int],
        *,
        name: str,
        api_key: str,
        api_secret: str,
        update_interval: float,
        single_peer_connection: bool,
        data_track_loss: float = 0.0,
        data_track_seed: int = 0,
    ) -> None:
        self.clock = clock
        self._wall_ms = wall_ms
        self.name = name
        self._api_key = api_key
        self._api_secret = api_secret
        self.update_interval = update_interval
        self.single_peer_connection = single_peer_connection
        self.members: dict[str, Member] = {}
        self.media = MediaModel(self)  # a new one with each start of the room
        self.dropped: list[DroppedPacket] = []
        self.upgrades: list[Upgrade] = []
        self.links: dict[tuple[str, str], Link] = {}
        self.uplinks: dict[str, Link] = {}
        self.outages: dict[str, _Outage] = {}
        self.metadata = ""
        self.down_until = -float("inf")
        self._sids = 0
        self._rooms = 0
        self._nonces: deque[bytes] = deque(maxlen=NONCES)
        self._batch: dict[str, ppb.ParticipantInfo] = {}
        self._batch_timer: Handle | None = None
        self._room_timer: Handle | None = None
        self._room_count = 0  # num_participants as of the last room-update tick
        # Scenario flags (identity -> expiry): disconnect_signal_on_resume[_no_messages]
        self._close_on_resume: dict[str, float] = {}
        self._refuse_resume: dict[str, float] = {}
        self.datatracks: DataTrackRouter[Member] = DataTrackRouter(
            self, loss=data_track_loss, seed=data_track_seed
        )
        self._start_room(self.clock.now)

    def _start_room(self, at: float) -> None:
        self._rooms += 1
        self.room_sid = f"RM_{self._rooms}"
        self._created = at
        self._created_ms = self._wall_ms() + round((at - self.clock.now) * 1000)
        self._room_count = 0
        self.media = MediaModel(self)
        self._nonces.clear()
        self._close_on_resume.clear()
        self._refuse_resume.clear()

    # -- tokens ---------------------------------------------------------------------------------

    def token(self, grants: Grants, *, ttl: int = 6 * 3600) -> str:
        """A token for `grants`, signed with this room's key."""
        return mint_token(
            self._api_key,
            self._api_secret,
            now=self._wall_ms() // 1000,
            grants=VideoGrants(
                room=grants.room,
                room_join=grants.room_join,
                can_publish=grants.can_publish,
                can_subscribe=grants.can_subscribe,
                can_publish_data=grants.can_publish_data,
                can_update_own_metadata=grants.can_update_metadata,
                hidden=grants.hidden,
            ),
            identity=grants.identity,
            name=grants.name or None,
            metadata=grants.metadata or None,
            attributes=grants.attributes,
            kind=_KIND_NAMES.get(grants.kind, "standard"),
            ttl=ttl,
        )

    def _refresh_token(self, member: Member) -> None:
        grants = attrs.evolve(
            member.grants,
            name=member.name,
            metadata=member.metadata,
            attributes=dict(member.attributes),
            can_publish_data=member.permission.can_publish_data,
            can_update_metadata=member.permission.can_update_metadata,
        )
        self._send(member, spb.SignalResponse(refresh_token=self.token(grants)))

    # -- joining and resuming -------------------------------------------------------------------

    def accept(
        self, target: str, headers: Sequence[tuple[str, str]], endpoint: SignalEndpoint
    ) -> SignalLink | Rejected | Unreachable:
        """A WebSocket upgrade for `target` (path and query) with these headers."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        token = query.get("access_token", "")
        for key, value in headers:
            if key.lower() == "authorization" and value.startswith("Bearer "):
                token = value.removeprefix("Bearer ").strip()
        single: bool | None = None
        if path.endswith("/rtc/v1") and self.single_peer_connection:
            single = True
        elif path.endswith("/rtc"):
            single = False
        request: spb.JoinRequest | None = None
        problem = ""
        if single is not None:
            try:
                request = _join_request(query) if single else _join_request_v0(query)
            except ValueError as exc:
                problem = str(exc)
        claimed = _claimed_identity(token)
        resume = request is not None and request.reconnect

        def answer(
            outcome: str, result: SignalLink | Rejected | Unreachable
        ) -> SignalLink | Rejected | Unreachable:
            if outcome:
                self.upgrades.append(
                    Upgrade(at=self.clock.now, identity=claimed, resume=resume, outcome=outcome)
                )
            return result

        if claimed in self.outages:
            return answer("unreachable", Unreachable(refused=False))
        if self.clock.now < self.down_until:
            return answer("refused", Unreachable(refused=True))
        if single is None:
            return answer("rejected 404", Rejected(404, "404 page not found"))
        if not token:
            return answer("rejected 401", Rejected(401, "permissions denied"))
        try:
            grants = read_token(
                token,
                api_key=self._api_key,
                api_secret=self._api_secret,
                unix_time=self._wall_ms() / 1000,
            )
        except TokenError as exc:
            return answer("rejected 401", Rejected(401, f"invalid token: {token}, error: {exc}"))
        if not grants.room_join or grants.room != self.name:
            return answer("rejected 401", Rejected(401, "permissions denied"))
        if not grants.identity:
            return answer("rejected 400", Rejected(400, "identity cannot be empty"))
        if request is None:
            return answer("rejected 400", Rejected(400, problem))
        member = self.members.get(grants.identity)
        if request.reconnect and member is not None and self._refused_resume(member):
            return answer("rejected 500", Rejected(500, "connection closed by media"))
        session = _Session(endpoint, grants.identity)
        link = SignalLink(self, session)
        self.clock.call_soon(lambda: self._join(session, grants, request, single))
        return answer("", link)  # recorded by _join, once it knows the outcome

    def _record(self, identity: str, resume: bool, outcome: str) -> None:
        self.upgrades.append(
            Upgrade(at=self.clock.now, identity=identity, resume=resume, outcome=outcome)
        )

    def _join(
        self, session: _Session, grants: Grants, request: spb.JoinRequest, single: bool
    ) -> None:
        # (Runs before anything the client did after the upgrade, e.g. hanging up: that was
        # scheduled later. What we send then is dropped with the closed socket.)
        existing = self.members.get(grants.identity)
        if request.reconnect:
            if existing is None:
                self._record(grants.identity, True, "state mismatch")
                self._state_mismatch(session, request.client_info.protocol)
            else:
                self._record(grants.identity, True, "resumed")
                self._resume(existing, session)
            return
        self._record(grants.identity, False, "joined")
        if existing is not None:
            self._remove(existing, DisconnectReason.DUPLICATE_IDENTITY, send_leave=True)
        self._sids += 1
        member = Member(
            f"PA_{self._sids}",
            grants,
            session,
            joined_at_ms=self._wall_ms(),
            ufrag=f"memory{self._sids}",
            single=single,
        )
        session.member = member
        info = request.client_info
        member.protocol = info.protocol
        member.client_protocol = info.client_protocol
        member.capabilities = list(info.capabilities)
        member.last_signal_at = self.clock.now
        if request.metadata:
            member.metadata = request.metadata
        member.attributes.update({k: v for k, v in request.participant_attributes.items() if v})
        self.members[member.identity] = member
        self.media.joined(member, request.connection_settings.auto_subscribe)
        others = [m.info() for m in self.members.values() if m is not member and not m.hidden]
        for other in others:
            member.sent[other.sid] = (other.identity, other.version, other.state, self.clock.now)
        join = spb.JoinResponse(
            room=self._room_proto(self._room_count),
            participant=member.info(),
            other_participants=others,
            server_version=SERVER_VERSION,
            subscriber_primary=not single,
            ping_timeout=PING_TIMEOUT,
            ping_interval=PING_INTERVAL,
            server_info=self._server_info(),
            fast_publish=member.permission.can_publish,
        )
        self._send(member, spb.SignalResponse(join=join))
        self._set_state(member, _JOINED)
        self._refresh_token(member)
        if not single:
            self._offer(member)
        self._room_changed()
        member.join_timer = self.clock.call_at(
            self.clock.now + JOIN_TIMEOUT,
            lambda: self._remove(member, DisconnectReason.JOIN_FAILURE, send_leave=True),
        )

    @staticmethod
    def _server_info() -> ppb.ServerInfo:
        return ppb.ServerInfo(version=SERVER_VERSION, protocol=SERVER_PROTOCOL, node_id="ND_memory")

    def _offer(self, member: Member) -> None:
        offer = spb.SessionDescription(type="offer", sdp=_sdp("offer", member.ufrag))
        self._send(member, spb.SignalResponse(offer=offer))

    def _state_mismatch(self, session: _Session, protocol: int) -> None:
        """StartSession's answer to a resume of a participant it does not have."""
        reason = int(DisconnectReason.STATE_MISMATCH)
        if protocol > 12:
            leave = spb.LeaveRequest(reason=reason, action=LeaveAction.RECONNECT)  # type: ignore[arg-type]
        else:
            leave = spb.LeaveRequest(reason=reason, can_reconnect=True)  # type: ignore[arg-type]
        self._deliver(session, spb.SignalResponse(leave=leave).SerializeToString())
        self._close_session(session, 1000)

    def _swap_session(self, member: Member, session: _Session) -> None:
        """SwapResponseSink: the new socket replaces the old one, which is closed."""
        old = member.session
        member.session = session
        session.member = member
        self._close_session(old, 1000)

    def _refused_resume(self, member: Member) -> bool:
        """disconnect_signal_on_resume_no_messages: the signal service tries StartSession
        three times; each resume swaps in the new socket and closes it before any message,
        so the upgrade fails (HTTP 500). Once used, the scenario is over."""
        expiry = self._refuse_resume.pop(member.identity, None)
        if expiry is None or self.clock.now >= expiry:
            return False
        self._swap_session(member, _Session(None, member.identity))
        return True

    def _resume(self, member: Member, session: _Session) -> None:
        """Room.ResumeParticipant, in its order."""
        self._swap_session(member, session)
        now = self.clock.now
        response = spb.ReconnectResponse(
            server_info=self._server_info(), last_message_seq=member.last_sequence
        )
        self._send(member, spb.SignalResponse(reconnect=response))
        if member.protocol > 8:  # sendDisconnectUpdatesForReconnect
            gone: list[ppb.ParticipantInfo] = []
            for sid, (identity, version, state, at) in reversed(member.sent.items()):
                if at < member.last_signal_at:
                    break
                if state == _DISCONNECTED:
                    gone.append(
                        ppb.ParticipantInfo(
                            sid=sid,
                            identity=identity,
                            version=version,
                            state=_DISCONNECTED,  # type: ignore[arg-type]
                        )
                    )
            if gone:
                self._send(
                    member, spb.SignalResponse(update=ppb.ParticipantUpdate(participants=gone))
                )
        self._send_update(member, [m.info() for m in self.members.values() if not m.hidden])
        room = self._room_proto(self._room_count)
        self._send(member, spb.SignalResponse(room_update=ppb.RoomUpdate(room=room)))
        self._ice_restart(member)
        expiry = self._close_on_resume.pop(member.identity, None)
        if expiry is not None and now < expiry:
            self._close_session(session, 1000)
            return
        self._refresh_token(member)  # the new session worker's first act

    def _ice_restart(self, member: Member) -> None:
        """ParticipantImpl.ICERestart: the cleanup timer goes; the subscriber (dual PC only)
        is offered an ICE restart."""
        if member.departure is not None:
            member.departure.cancel()
            member.departure = None
        if not member.single:
            self._offer(member)

    def connect_peer(self, ufrag: str, endpoint: PeerEndpoint) -> PeerLink | None:
        """The client's peer connection for the session named by `ufrag` came up."""
        member = next((m for m in self.members.values() if m.ufrag == ufrag), None)
        if member is None or member.identity in self.outages:
            return None
        member.peer = endpoint
        member.peer_epoch += 1
        self._set_state(member, _ACTIVE)
        return PeerLink(self, member, endpoint)

    # -- signal requests ------------------------------------------------------------------------

    def _current(self, member: Member | None) -> Member | None:
        """`member` if it is still in the room."""
        if member is None or self.members.get(member.identity) is not member:
            return None
        return member

    def signal_request(self, session: _Session, data: bytes) -> None:
        member = self._current(session.member)
        if member is None or member.session is not session or not session.open:
            return
        try:
            request = spb.SignalRequest.FromString(data)
        except Exception:  # an unparsable request ends the connection, as a read error does
            self._close_session(session, 1002)
            return
        member.last_signal_at = self.clock.now
        kind = request.WhichOneof("message")
        if kind == "offer":  # the answer echoes the offer's id (media findings F3.6)
            self.media.answer(member, request.offer, _sdp("answer", member.ufrag))
        elif kind == "subscription_permission":  # it covers both kinds of track
            self.media.request(member, request)
            self.datatracks.set_permission(member, request.subscription_permission)
        elif self.media.request(member, request):
            pass  # a media-track request
        elif kind == "leave":
            reason = int(request.leave.reason)
            if reason not in _LEAVE_REASONS:
                reason = DisconnectReason.CLIENT_INITIATED
            self._remove(member, reason, send_leave=True)
        elif kind == "ping_req":
            pong = spb.Pong(
                last_ping_timestamp=request.ping_req.timestamp, timestamp=self._wall_ms()
            )
            self._send(member, spb.SignalResponse(pong_resp=pong))
        elif kind == "ping":
            self._send(member, spb.SignalResponse(pong=self._wall_ms()))
        elif kind == "update_metadata":
            self._update_metadata(member, request.update_metadata)
        elif kind == "simulate":
            self._simulate(member, request.simulate)
        elif kind == "publish_data_track_request":
            self.datatracks.publish(member, request.publish_data_track_request)
        elif kind == "unpublish_data_track_request":
            self.datatracks.unpublish(member, request.unpublish_data_track_request)
        elif kind == "update_data_subscription":
            self.datatracks.update_subscription(member, request.update_data_subscription)
        elif kind == "sync_state" and not self.datatracks.knows_all(member, request.sync_state):
            # ResumeParticipant: a published data track the server does not have
            self.server_leave(member, LeaveAction.RECONNECT, DisconnectReason.STATE_MISMATCH)
        # Everything else (answers, trickles, subscriptions, media) needs no reply.

    def client_closed_signal(self, session: _Session) -> None:
        """HandleSignalSourceClose: a participant whose peer connection never connected is
        closed; one that has connected stays, for a resume."""
        session.open = False
        member = self._current(session.member)
        if member is not None and member.session is session and member.state < _ACTIVE:
            self._remove(member, DisconnectReason.SIGNAL_CLOSE, send_leave=False)

    def client_closed_peer(self, member: Member, epoch: int) -> None:
        if self._current(member) is None or member.peer_epoch != epoch:
            return
        self._peer_gone(member)
        self._depart_later(member, DISCONNECT_CLEANUP)

    def _update_metadata(self, member: Member, update: spb.UpdateParticipantMetadata) -> None:
        response = spb.RequestResponse(request_id=update.request_id)
        response.update_metadata.CopyFrom(update)
        attributes_size = sum(
            len(k.encode()) + len(v.encode()) for k, v in update.attributes.items()
        )
        if not member.permission.can_update_metadata:
            response.reason = spb.RequestResponse.NOT_ALLOWED
            response.message = "does not have permission to update own metadata"
        elif len(update.name.encode()) > MAX_NAME:
            response.reason = spb.RequestResponse.LIMIT_EXCEEDED
            response.message = "exceeds name length limit"
        elif len(update.metadata.encode()) > MAX_METADATA:
            response.reason = spb.RequestResponse.LIMIT_EXCEEDED
            response.message = "exceeds metadata size limit"
        elif attributes_size > MAX_ATTRIBUTES:
            response.reason = spb.RequestResponse.LIMIT_EXCEEDED
            response.message = "exceeds attributes size limit"
        else:
            self.apply_update(
                member,
                name=update.name or None,
                metadata=update.metadata or None,
                attributes=dict(update.attributes),
            )
            if member.protocol <= 14:
                return  # OK responses go only to protocol > 14 (SupportsNonErrorSignalResponse)
        self._send(member, spb.SignalResponse(request_response=response))

    def apply_update(
        self,
        member: Member,
        *,
        name: str | None = None,
        metadata: str | None = None,
        attributes: Mapping[str, str] | None = None,
        permission: Mapping[str, bool] | None = None,
    ) -> None:
        """Apply each change that changes something; broadcast each at once (E.1)."""
        if name is not None and name != member.name:
            member.name = name
            self._changed(member)
        if metadata is not None and metadata != member.metadata:
            member.metadata = metadata
            self._changed(member)
        if attributes:
            for key, value in attributes.items():
                if value:
                    member.attributes[key] = value
                else:
                    member.attributes.pop(key, None)
            self._changed(member)
        if permission:
            updated = ppb.ParticipantPermission()
            updated.CopyFrom(member.permission)
            for key, flag in permission.items():
                setattr(updated, key, flag)
            if updated != member.permission:
                member.permission = updated
                self._changed(member)

    def _changed(self, member: Member) -> None:
        member.version += 1
        self._broadcast_now(member)
        self._refresh_token(member)

    # -- scenarios the client asks for (SignalRequest.simulate) --------------------------------

    def _simulate(self, member: Member, scenario: spb.SimulateScenario) -> None:
        which = scenario.WhichOneof("scenario")
        now = self.clock.now
        if which == "speaker_update":
            self._speaking(member, active=True)
            later = now + scenario.speaker_update
            self.clock.call_at(later, lambda: self._speaking(member, active=False))
        elif which == "node_failure":
            self._remove(member, DisconnectReason.SERVER_SHUTDOWN, send_leave=False)
        elif which == "migration":
            self._remove(member, DisconnectReason.MIGRATION, send_leave=False)
        elif which == "server_leave":
            self._remove(member, DisconnectReason.SERVER_SHUTDOWN, send_leave=True)
        elif which == "switch_candidate_protocol":
            self._ice_restart(member)
        elif which == "disconnect_signal_on_resume":
            self._close_on_resume[member.identity] = now + SIMULATE_TIMEOUT
        elif which == "disconnect_signal_on_resume_no_messages":
            self._refuse_resume[member.identity] = now + SIMULATE_TIMEOUT
        # subscriber_bandwidth (media only) and leave_request_full_reconnect (not handled by
        # v1.13.5): nothing happens.

    def _speaking(self, member: Member, *, active: bool) -> None:
        """sendSpeakerChanges: each participant hears of the speakers it subscribes to and of
        itself; a data client subscribes to nothing, so only the speaker hears of itself."""
        if self._current(member) is None or member.protocol <= 2 or member.state < _JOINED:
            return
        changed = ppb.SpeakersChanged()
        changed.speakers.add(sid=member.sid, level=0.9 if active else 0.0, active=active)
        self._send(member, spb.SignalResponse(speakers_changed=changed))

    # -- participant state and updates ----------------------------------------------------------

    def _set_state(self, member: Member, state: int) -> None:
        if state <= member.state:
            return
        if state == _ACTIVE and member.join_timer is not None:
            member.join_timer.cancel()
        member.state = state
        member.version += 1
        self._enqueue(member)

    def via_network(
        self,
        identity: str,
        action: Callable[[], None],
        *,
        member: Member | None = None,
        lost: DroppedPacket | None = None,
    ) -> None:
        """Run `action` now, or hold it while `identity`'s network is cut (see `_Held`)."""
        outage = self.outages.get(identity)
        if outage is None:
            action()
        else:
            outage.held.append(_Held(action, member, lost))

    def _send(self, member: Member, message: spb.SignalResponse) -> None:
        self._deliver(member.session, message.SerializeToString())

    send = _send  # for the data-track router

    def _deliver(self, session: _Session, data: bytes) -> None:
        def deliver() -> None:
            endpoint = session.endpoint
            if session.open and endpoint is not None:
                self.via_network(session.identity, lambda: endpoint.signal_received(data))

        self.clock.call_soon(deliver)

    def _close_session(self, session: _Session, code: int | None) -> None:
        def close() -> None:
            endpoint = session.endpoint
            if session.open and endpoint is not None:
                session.open = False
                self.via_network(session.identity, lambda: endpoint.signal_closed(code))

        self.clock.call_soon(close)

    def _send_update(self, receiver: Member, infos: Sequence[ppb.ParticipantInfo]) -> None:
        """SendParticipantUpdate: remember what `receiver` was sent (even if its socket is
        gone: a resume repeats the departures it missed), and send it, if anything."""
        # Hidden participants never reach a batch or another's broadcast (see `_enqueue`,
        # `_broadcast_now`), and a SID's versions only grow here (the batch keeps the newest,
        # an immediate broadcast takes its entry out), so the server's filters for hidden
        # others and for versions older than the last sent have nothing to do.
        if receiver.protocol > 11:  # SendParticipantUpdates: a newer session replaced these
            infos = [i for i in infos if not _replaced(i)]
        for info in infos:
            receiver.sent.pop(info.sid, None)
            receiver.sent[info.sid] = (info.identity, info.version, info.state, self.clock.now)
        if infos:
            update = ppb.ParticipantUpdate(participants=infos)
            self._send(receiver, spb.SignalResponse(update=update))

    def _broadcast_now(self, member: Member) -> None:
        info = member.info()
        if member.hidden:
            self._send_update(member, [info])
            return
        self._batch.pop(member.identity, None)
        for receiver in list(self.members.values()):
            self._send_update(receiver, [info])

    def publication_changed(self, member: Member) -> None:
        """A data track was published or unpublished: the update goes out at once."""
        member.version += 1
        self._broadcast_now(member)

    def _enqueue(self, member: Member) -> None:
        if member.hidden:
            return
        if member.is_publisher:  # PushAndDequeueUpdates: a publisher's updates are immediate
            self._broadcast_now(member)
            return
        self._batch.pop(member.identity, None)
        self._batch[member.identity] = member.info()
        if self._batch_timer is None:
            when = self._next_tick(self.update_interval)
            self._batch_timer = self.clock.call_at(when, self._flush_batch)

    def _flush_batch(self) -> None:
        self._batch_timer = None
        infos = list(self._batch.values())
        self._batch.clear()
        for receiver in list(self.members.values()):
            self._send_update(receiver, infos)

    def _next_tick(self, interval: float) -> float:
        """The first tick of a ticker started at the room's creation strictly after now."""
        if interval <= 0:
            return self.clock.now
        ticks = (self.clock.now - self._created) // interval + 1
        return self._created + ticks * interval

    def _room_proto(self, count: int) -> ppb.Room:
        return ppb.Room(
            sid=self.room_sid,
            name=self.name,
            empty_timeout=300,
            departure_timeout=20,
            creation_time=self._created_ms // 1000,
            creation_time_ms=self._created_ms,
            metadata=self.metadata,
            num_participants=count,
        )

    def _room_changed(self) -> None:
        if self._room_timer is None:
            when = self._next_tick(ROOM_UPDATE_INTERVAL)
            self._room_timer = self.clock.call_at(when, self._flush_room)

    def _flush_room(self) -> None:
        self._room_timer = None
        if self._room_count != len(self.members):
            self._room_count = len(self.members)
            self.send_room_update()

    def send_room_update(self) -> None:
        room = self._room_proto(self._room_count)
        for receiver in list(self.members.values()):
            self._send(receiver, spb.SignalResponse(room_update=ppb.RoomUpdate(room=room)))

    # -- leaving --------------------------------------------------------------------------------

    def _remove(
        self,
        member: Member,
        reason: int,
        *,
        send_leave: bool,
        broadcast: bool = True,
        close_code: int | None = 1000,
    ) -> None:
        # Callers pass a current member: a departure timer is cancelled on removal, and
        # requests from a session whose member left are ignored before they get here.
        assert self.members.get(member.identity) is member
        del self.members[member.identity]
        self.datatracks.member_removed(member)
        self.media.left(member)
        for timer in (member.departure, member.join_timer):
            if timer is not None:
                timer.cancel()
        if send_leave:
            self._leave(member, reason, LeaveAction.DISCONNECT)
        member.state = _DISCONNECTED
        member.version += 1
        member.disconnect_reason = reason
        self._close_session(member.session, close_code)
        peer = self._peer_gone(member)
        if peer is not None and close_code is not None:
            closed = peer.peer_closed
            self.clock.call_soon(lambda: self.via_network(member.identity, closed))
        if broadcast:
            self._enqueue(member)
        self._room_changed()

    def _peer_gone(self, member: Member) -> PeerEndpoint | None:
        """The member's peer connection is gone: its links die, and what it held is lost."""
        peer, member.peer = member.peer, None
        member.peer_epoch += 1
        outage = self.outages.get(member.identity)
        if outage is not None:
            kept: list[_Held] = []
            for item in outage.held:
                if item.member is member and item.lost is not None:
                    self.dropped.append(item.lost)
                else:
                    kept.append(item)
            outage.held = kept
        return peer

    def _leave(self, member: Member, reason: int, action: LeaveAction) -> None:
        if member.protocol > 12:
            leave = spb.LeaveRequest(reason=reason, action=action)  # type: ignore[arg-type]
        else:
            leave = spb.LeaveRequest(reason=reason, can_reconnect=action is LeaveAction.RECONNECT)  # type: ignore[arg-type]
        self._send(member, spb.SignalResponse(leave=leave))

    def _depart_later(self, member: Member, delay: float) -> None:
        """setupDisconnectTimer: removal after `delay` (replacing one already pending)."""
        if member.departure is not None:
            member.departure.cancel()
        reason = DisconnectReason.CONNECTION_TIMEOUT
        member.departure = self.clock.call_at(
            self.clock.now + delay, lambda: self._remove(member, reason, send_leave=True)
        )

    def server_leave(self, member: Member, action: LeaveAction, reason: int) -> None:
        if action is LeaveAction.DISCONNECT:
            self._remove(member, reason, send_leave=True)
        elif action is LeaveAction.RECONNECT:
            self._leave(member, reason, action)
            self._remove(member, reason, send_leave=False)
        else:
            self._leave(member, reason, action)
            self._close_session(member.session, 1000)
            self._depart_later(member, DISCONNECT_CLEANUP)

    def peer_failed(self, member: Member) -> None:
        """ICE failed at both ends (onAnyTransportFailed): the server asks for a resume,
        closes the socket and removes the participant 5 s later unless it resumes."""
        peer = self._peer_gone(member)
        if member.protocol > 12:
            self._leave(member, DisconnectReason.CONNECTION_TIMEOUT, LeaveAction.RESUME)
        self._close_session(member.session, 1000)
        self._depart_later(member, DISCONNECT_CLEANUP)
        if peer is not None:  # the client's own ICE agent gives up too: no network involved
            self.clock.call_soon(peer.peer_failed)

    def reset_signal(self, member: Member) -> None:
        """The socket breaks at both ends (no close frame): HandleSignalSourceClose."""
        session = member.session
        endpoint = session.endpoint
        if session.open and endpoint is not None:
            session.open = False
            self.clock.call_soon(lambda: endpoint.signal_closed(None))
        if member.state < _ACTIVE:
            self._remove(member, DisconnectReason.SIGNAL_CLOSE, send_leave=False)

    def cut(self, member: Member, *, signal_reset: bool, duration: float | None) -> None:
        """Cut `member`'s client off the network (see the module docstring)."""
        identity = member.identity
        outage = self.outages.get(identity)
        if outage is None:
            outage = self.outages[identity] = _Outage()
            failure = self.clock.call_at(
                self.clock.now + ICE_FAILURE, lambda: self._ice_failed(identity)
            )
            outage.timers.append(failure)
        if duration is not None:
            restore = self.clock.call_at(self.clock.now + duration, lambda: self.restore(identity))
            outage.timers.append(restore)
        if signal_reset:
            self.reset_signal(member)

    def _ice_failed(self, identity: str) -> None:
        member = self.members.get(identity)
        if member is not None and member.peer is not None:
            self.peer_failed(member)

    def restore(self, identity: str) -> None:
        """The client's network is back: what was held goes through, in order."""
        outage = self.outages.pop(identity, None)
        if outage is None:
            return
        for timer in outage.timers:
            timer.cancel()
        for item in outage.held:
            item.action()

    def restart(self, *, graceful: bool, downtime: float) -> None:
        now = self.clock.now
        for member in list(self.members.values()):
            if graceful:
                self._remove(
                    member, DisconnectReason.SERVER_SHUTDOWN, send_leave=True, broadcast=False
                )
                continue
            peer = member.peer
            self._remove(
                member,
                DisconnectReason.SERVER_SHUTDOWN,
                send_leave=False,
                broadcast=False,
                close_code=None,
            )
            if peer is not None:  # no consent checks answered: the client's ICE gives up
                self.clock.call_at(now + ICE_FAILURE, peer.peer_failed)
        for timer in (self._batch_timer, self._room_timer):
            if timer is not None:
                timer.cancel()
        self._batch_timer = self._room_timer = None
        self._batch.clear()
        self.down_until = now + downtime
        self._start_room(now + downtime)

    # -- data packets ---------------------------------------------------------------------------

    def _drop(
        self, sender: str, receiver: str | None, channel: Channel, data: bytes, why: str
    ) -> None:
        self.dropped.append(
            DroppedPacket(sender=sender, receiver=receiver, channel=channel, data=data, reason=why)
        )

    drop = _drop  # for the data-track router

    def link(self, sender: str, receiver: str) -> Link:
        return self.links.setdefault((sender, receiver), Link())

    def uplink(self, identity: str) -> Link:
        return self.uplinks.setdefault(identity, Link())

    def uplink_data(self, member: Member, epoch: int, channel: Channel, data: bytes) -> None:
        sender = member.identity
        if self._current(member) is None:
            self._drop(sender, None, channel, data, "the sender is not in the room")
            return
        if member.peer_epoch != epoch:
            self._drop(sender, None, channel, data, "the sender's peer connection is closed")
            return
        if len(data) > MAX_MESSAGE_SIZE:
            self._drop(sender, None, channel, data, "over the SCTP max-message-size")
            return
        if sender in self.outages:
            if channel is not Channel.RELIABLE:
                self._drop(sender, None, channel, data, "lost: the sender's network is cut")
                return
            lost = DroppedPacket(
                sender=sender,
                receiver=None,
                channel=channel,
                data=data,
                reason="lost with the sender's peer connection",
            )
            self.via_network(
                sender,
                lambda: self.uplink_data(member, epoch, channel, data),
                member=member,
                lost=lost,
            )
            return
        copies, due = self.uplink(sender).plan(channel, self.clock.now)
        if not copies:
            self._drop(sender, None, channel, data, "lost on the uplink (fault)")

        def arrive() -> None:
            if self._current(member) is not None and member.peer_epoch != epoch:
                why = "lost with the sender's peer connection"  # it failed while in flight
                self._drop(sender, None, channel, data, why)
            else:
                self.receive_data(member, channel, data)

        for _ in range(copies):
            self.clock.call_at(due, arrive)

    def receive_data(self, member: Member, channel: Channel, data: bytes) -> None:
        """A data channel message from `member`'s client reached the server (A.5)."""
        sender = member.identity
        if self.members.get(sender) is not member:
            self._drop(sender, None, channel, data, "the sender is not in the room")
            return
        if channel is Channel.DATA_TRACK:
            self.datatracks.packet(member, data)
            return
        if not member.permission.can_publish_data:
            self._drop(sender, None, channel, data, "the sender lacks canPublishData")
            return
        try:
            packet = dpb.DataPacket.FromString(data)
        except Exception:
            self._drop(sender, None, channel, data, "unparsable")
            return
        packet.participant_sid = member.sid
        reliable = channel is Channel.RELIABLE
        if reliable and packet.sequence > 0:
            if packet.sequence <= member.last_sequence:
                self._drop(sender, None, channel, data, "out of order reliable packet")
                return
            member.last_sequence = packet.sequence
        packet.kind = dpb.DataPacket.RELIABLE if reliable else dpb.DataPacket.LOSSY
        kind = packet.WhichOneof("value")
        agent = member.kind == _AGENT
        on_behalf = agent and packet.participant_identity not in ("", sender)
        override = True
        if kind == "user":
            user = packet.user
            user.participant_sid = "" if member.hidden else member.sid
            user.participant_identity = "" if member.hidden else sender
            if packet.destination_identities:
                user.ClearField("destination_identities")
                user.destination_identities.extend(packet.destination_identities)
            else:
                packet.destination_identities.extend(user.destination_identities)
        elif kind == "transcription" and not agent:
            self._drop(sender, None, channel, data, "transcriptions only travel from agents")
            return
        elif kind == "metrics":
            self._drop(sender, None, channel, data, "metrics are not forwarded as data")
            return
        elif kind == "chat_message" and on_behalf:
            override = False
            packet.chat_message.generated = True
        elif kind == "stream_header" and on_behalf and packet.stream_header.HasField("text_header"):
            override = False
            packet.stream_header.text_header.generated = True
        if override:
            packet.participant_identity = "" if member.hidden else sender
        self.forward(member, channel, packet)

    def forward(self, source: Member | None, channel: Channel, packet: dpb.DataPacket) -> None:
        """BroadcastDataPacketForRoom: to everyone but the source, or to the destinations."""
        sender = "" if source is None else source.identity
        destination_sids: list[str] = []
        if packet.WhichOneof("value") == "user":
            user = packet.user
            nonce = user.nonce
            if len(nonce) == 16:
                if nonce in self._nonces:
                    self._drop(sender, None, channel, packet.SerializeToString(), "duplicate nonce")
                    return
                self._nonces.append(nonce)
            if packet.participant_identity:
                user.participant_identity = packet.participant_identity
            else:
                packet.participant_identity = user.participant_identity
            destination_sids = list(user.destination_sids)
        identities = set(packet.destination_identities)
        data = packet.SerializeToString()
        for receiver in list(self.members.values()):
            if receiver is source:
                continue
            if (destination_sids or identities) and not (
                receiver.sid in destination_sids or receiver.identity in identities
            ):
                continue
            self._route(sender, receiver, channel, data)

    def _route(self, sender: str, receiver: Member, channel: Channel, data: bytes) -> None:
        if receiver.peer is None:  # SendDataMessage: only to an ACTIVE participant
            self._drop(sender, receiver.identity, channel, data, NOT_OPEN)
            return
        copies, due = self.link(sender, receiver.identity).plan(channel, self.clock.now)
        if not copies:
            self._drop(sender, receiver.identity, channel, data, "lost on the link (fault)")
        epoch = receiver.peer_epoch
        for _ in range(copies):
            self.clock.call_at(due, lambda: self._arrive(sender, receiver, channel, data, epoch))

    route = _route  # for the data-track router

    def _arrive(
        self, sender: str, receiver: Member, channel: Channel, data: bytes, epoch: int
    ) -> None:
        peer = receiver.peer
        name = receiver.identity
        if peer is None:
            self._drop(sender, name, channel, data, NOT_OPEN)
            return
        if receiver.peer_epoch != epoch:  # its peer connection failed while this was in flight
            self._drop(sender, name, channel, data, "lost with the receiver's peer connection")
            return
        if name in self.outages:
            if channel is not Channel.RELIABLE:
                self._drop(sender, name, channel, data, "lost: the receiver's network is cut")
                return
            lost = DroppedPacket(
                sender=sender,
                receiver=name,
                channel=channel,
                data=data,
                reason="lost with the receiver's peer connection",
            )
            retry = lambda: self._arrive(sender, receiver, channel, data, epoch)  # noqa: E731
            self.via_network(name, retry, member=receiver, lost=lost)
            return
        peer.data_received(channel, data)


def _replaced(info: ppb.ParticipantInfo) -> bool:
    """The departure of a session a newer one of the same identity replaced, which clients
    that reconnect by identity (protocol > 11) are not told of ([srv] SendParticipantUpdates,
    IsCloseNotifySkippable)."""
    return (
        info.state == _DISCONNECTED
        and int(info.disconnect_reason) == DisconnectReason.DUPLICATE_IDENTITY
    )


def _join_request(query: Mapping[str, str]) -> spb.JoinRequest:
    """Decode `/rtc/v1`'s `join_request` (D.1); raises ValueError with the server's text."""
    param = query.get("join_request", "")
    if not param:
        raise ValueError("join_request is required")
    try:
        blob = base64.b64decode(param, altchars=b"-_", validate=True)
    except ValueError:
        raise ValueError("cannot base64 decode wrapped join request") from None
    try:
        wrapped = spb.WrappedJoinRequest.FromString(blob)
    except Exception:
        raise ValueError("cannot unmarshal wrapped join request") from None
    raw = wrapped.join_request
    try:
        if wrapped.compression == spb.WrappedJoinRequest.GZIP:
            raw = zlib.decompress(raw, wbits=31)
        return spb.JoinRequest.FromString(raw)
    except Exception:
        raise ValueError("cannot unmarshal join request") from None


def _join_request_v0(query: Mapping[str, str]) -> spb.JoinRequest:
    """The same facts from `/rtc`'s query parameters (D.1)."""
    request = spb.JoinRequest(metadata=query.get("metadata", ""))
    info = request.client_info
    try:
        info.protocol = int(query.get("protocol", "0") or 0)
        info.client_protocol = int(query.get("client_protocol", "0") or 0)
        request.reconnect_reason = int(query.get("reconnect_reason", "0") or 0)  # type: ignore[assignment]
    except ValueError:
        raise ValueError("cannot parse the protocol version") from None
    for name in filter(None, query.get("capabilities", "").split(",")):
        if name in _CAPABILITIES:
            info.capabilities.append(_CAPABILITIES[name])  # type: ignore[arg-type]
    request.reconnect = query.get("reconnect", "") in ("1", "true")
    request.participant_sid = query.get("sid", "")
    blob = query.get("attributes", "")
    if blob:
        try:
            attributes = json.loads(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))
            request.participant_attributes.update({str(k): str(v) for k, v in attributes.items()})
        except Exception:
            raise ValueError("cannot decode attributes") from None
    return request
