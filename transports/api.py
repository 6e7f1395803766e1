"""`lkproto.transports.api`: a small async client for the LiveKit server API (Twirp).

It covers what an agent or a backend needs to manage a room's life: `RoomService` ListRooms,
DeleteRoom and ListParticipants, and `EgressService` ListEgress and StopEgress. `call()` reaches
any other Twirp method with a JSON body and the grants you give it. It runs on anyio, so on
asyncio and on trio::

    api = LiveKitAPI("wss://my.livekit.example", api_key, api_secret)
    for participant in await api.list_participants("my-room"):
        print(participant.identity, participant.kind)
    await api.delete_room("my-room")

The wire: one HTTP/1.1 request per call (``Connection: close``), made with h11 over an anyio
TCP stream (TLS for ``https://``/``wss://``): ``POST <base>/twirp/livekit.<Service>/<Method>``
with a JSON body (protobuf-JSON field names) and ``Authorization: Bearer <token>``. Each call
mints a short-lived token (`lkproto.tokens`) carrying only the grants that method needs:
``roomList`` (ListRooms), ``roomCreate`` (DeleteRoom: livekit-server checks the create
permission for it), ``roomAdmin`` plus the room (ListParticipants), ``roomRecord`` (egress).

`TwirpExchange` is the same exchange without I/O (request bytes out, response bytes in,
decoded JSON or an exception out); `LiveKitAPI` only adds the socket, the token and a timeout.

Errors:
- `TwirpError`: the server answered with an error. `code` is the Twirp code ("not_found",
  "unauthenticated", ...), `message` its text, `status` the HTTP status. Errors that do not
  come from a Twirp handler (a proxy, or livekit-server's own 401 for a bad token or its plain
  404 for a service it does not run) get the code the Twirp spec derives from the status
  (401 "unauthenticated", 403 "permission_denied", 404 "bad_route", 429/502/503/504
  "unavailable", other 4xx/3xx "internal", else "unknown") and
  ``metadata["http_error_from_intermediary"] == "true"``.
- `TransportError` (lkproto's): the server could not be reached, the connection broke, the
  response was not HTTP, or no answer came within `timeout`.
The token and the API secret never appear in a message, a log line or a `repr`:
livekit-server echoes a rejected token in its 401 body, so bodies are redacted.

A livekit-server without an egress service (the open-source server without Redis and egress
workers, e.g. v1.13.5 in dev mode) answers the egress methods with a plain "404 page not
found": that is a `TwirpError` with code "bad_route" and status 404.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import ssl
import time
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.abc
import attrs
import h11
from google.protobuf import json_format
from google.protobuf.message import Message

from lkproto._pb import participants_pb2 as _ppb
from lkproto._repr import plain_repr
from lkproto._version import __version__
from lkproto.errors import LkProtocolError
from lkproto.models import Participant, RoomInfo
from lkproto.tokens import VideoGrants, mint_token

from ._errors import TransportError, map_exceptions, redact

__all__ = [
    "EgressInfo",
    "EgressStatus",
    "LiveKitAPI",
    "Participant",
    "RoomInfo",
    "ServerEndpoint",
    "TransportError",
    "TwirpError",
    "TwirpExchange",
    "server_endpoint",
]

_JSON = "application/json"
_USER_AGENT = f"lkproto/{__version__}"
_MAX_RESPONSE = 16 * 1024 * 1024  # a ListParticipants answer for a very large room fits
_MESSAGE_LIMIT = 512  # characters of a non-Twirp error body kept for the message
_READ = 65536
_MAX_PAGES = 1000
_M = TypeVar("_M", bound=Message)

# Twirp spec, "HTTP errors from intermediary proxies": the code a client derives from a status.
_INTERMEDIARY_CODES = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "bad_route",
    429: "unavailable",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}


class TwirpError(LkProtocolError):
    """The server API answered a call with an error.

    `code` is the Twirp error code, `message` the server's text (tokens redacted), `status`
    the HTTP status, `method` the call ("RoomService/DeleteRoom") and `metadata` the Twirp
    ``meta`` map.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        method: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code}: {message} (HTTP {status})")
        self.code = code
        self.message = message
        self.status = status
        self.method = method
        self.metadata: dict[str, str] = dict(metadata or {})


@attrs.frozen
@plain_repr
class ServerEndpoint:
    """Where the server API lives: host, port, TLS, and the path prefix before ``/twirp``."""

    host: str
    port: int
    tls: bool
    base_path: str
    netloc: str

    @property
    def url(self) -> str:
        """The server's base URL (http or https)."""
        return f"{'https' if self.tls else 'http'}://{self.netloc}{self.base_path}"

    def target(self, service: str, method: str) -> str:
        """The request target (path) of a Twirp `service`/`method`."""
        return f"{self.base_path}/twirp/livekit.{service}/{method}"


_SCHEMES = {"ws": False, "http": False, "wss": True, "https": True}


def server_endpoint(url: str) -> ServerEndpoint:
    """Map a LiveKit URL to the server API's endpoint: ws→http, wss→https, http(s) kept.

    Raises `ValueError` for another scheme, a missing host, a query or a fragment.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"the LiveKit URL must start with ws://, wss://, http:// or https://, got {scheme!r}"
        )
    if not parts.hostname:
        raise ValueError("the LiveKit URL has no host")
    if parts.query or parts.fragment:
        raise ValueError("the LiveKit URL must not have a query or a fragment")
    tls = _SCHEMES[scheme]
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as exc:
        raise ValueError(f"the LiveKit URL has an invalid port: {exc}") from None
    host_part = parts.netloc.rsplit("@", 1)[-1]  # never send credentials from the URL
    return ServerEndpoint(
        host=parts.hostname,
        port=port,
        tls=tls,
        base_path=parts.path.rstrip("/"),
        netloc=host_part,
    )


class TwirpExchange:
    """One Twirp call over one HTTP/1.1 connection, as a sans-I/O object.

    Write `request()`, then feed what you read to `receive()` (b"" at end of stream) until it
    returns the decoded JSON object of a successful answer. It raises `TwirpError` for an error
    answer and `TransportError` for a response that is not HTTP, is cut short, or is larger
    than `max_response_size`. `secrets` (the token is always one) are redacted from messages.
    """

    def __init__(
        self,
        endpoint: ServerEndpoint,
        service: str,
        method: str,
        payload: Mapping[str, object],
        token: str,
        *,
        secrets: Sequence[str] = (),
        max_response_size: int = _MAX_RESPONSE,
    ) -> None:
        self.endpoint = endpoint
        self.method = f"{service}/{method}"
        self._target = endpoint.target(service, method)
        self._body = json.dumps(dict(payload), separators=(",", ":")).encode()
        self._token = token
        self._secrets = (token, *secrets)
        self._max = max_response_size
        self._http = h11.Connection(h11.CLIENT)
        self._status = 0
        self._reason = ""
        self._received = bytearray()
        self._done = False

    def request(self) -> bytes:
        """The whole request: head and JSON body."""
        headers = [
            ("Host", self.endpoint.netloc),
            ("User-Agent", _USER_AGENT),
            ("Content-Type", _JSON),
            ("Accept", _JSON),
            ("Authorization", f"Bearer {self._token}"),
            ("Content-Length", str(len(self._body))),
            ("Connection", "close"),
        ]
        http = self._http
        return (
            http.send(h11.Request(method="POST", target=self._target, headers=headers))
            + http.send(h11.Data(data=self._body))
            + http.send(h11.EndOfMessage())
        )

    def receive(self, data: bytes) -> dict[str, object] | None:
        """Feed bytes read from the connection (b"" at EOF); the answer once it is complete."""
        if self._done:
            raise TransportError(f"{self.method}: the response was already complete")
        try:
            self._http.receive_data(data)
            while True:
                event = self._http.next_event()
                if event is h11.NEED_DATA:
                    if not data:  # pragma: no cover - h11 reports the cut as an error
                        raise TransportError(f"{self.method}: the connection closed early")
                    return None
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                    self._reason = event.reason.decode("latin-1", "replace")
                elif isinstance(event, h11.Data):
                    if len(self._received) + len(event.data) > self._max:
                        raise TransportError(
                            f"{self.method}: the response is larger than {self._max} bytes"
                        )
                    self._received += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self._done = True
                    return self._decode()
                elif isinstance(event, h11.ConnectionClosed):  # pragma: no cover - h11 raises
                    raise TransportError(
                        f"{self.method}: the server closed the connection without an answer"
                    )
                elif event is h11.PAUSED:  # pragma: no cover - only after EndOfMessage
                    return None
                # An InformationalResponse (100 Continue) needs nothing.
        except h11.RemoteProtocolError as exc:
            if not data:
                raise TransportError(
                    f"{self.method}: the connection closed before the response was complete"
                ) from None
            detail = redact(str(exc), *self._secrets)
            raise TransportError(
                f"{self.method}: the server's answer is not HTTP: {detail}"
            ) from None

    def _decode(self) -> dict[str, object]:
        body = bytes(self._received)
        if self._status == 200:
            try:
                value = json.loads(body)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                raise TwirpError(
                    "internal",
                    "the server's answer is not a JSON object",
                    status=200,
                    method=self.method,
                )
            return value
        raise self._error(body)

    def _error(self, body: bytes) -> TwirpError:
        try:
            value = json.loads(body)
        except ValueError:
            value = None
        if (
            isinstance(value, dict)
            and isinstance(value.get("code"), str)
            and isinstance(value.get("msg", ""), str)
        ):
            meta = value.get("meta")
            metadata = (
                {str(k): redact(str(v), *self._secrets) for k, v in meta.items()}
                if isinstance(meta, dict)
                else {}
            )
            return TwirpError(
                value["code"],
                redact(value.get("msg", ""), *self._secrets),
                status=self._status,
                method=self.method,
                metadata=metadata,
            )
        status = self._status
        code = _INTERMEDIARY_CODES.get(status)
        if code is None:
            code = "internal" if 300 <= status < 500 else "unknown"
        text = redact(body.decode("utf-8", "replace"), *self._secrets).strip()
        if len(text) > _MESSAGE_LIMIT:
            text = text[:_MESSAGE_LIMIT] + "..."
        if not text:
            try:
                text = HTTPStatus(status).phrase
            except ValueError:
                text = self._reason or f"HTTP status {status}"
        return TwirpError(
            code,
            text,
            status=status,
            method=self.method,
            metadata={"http_error_from_intermediary": "true", "status_code": str(status)},
        )


class EgressStatus(enum.IntEnum):
    """`EgressStatus` values."""

    EGRESS_STARTING = 0
    EGRESS_ACTIVE = 1
    EGRESS_ENDING = 2
    EGRESS_COMPLETE = 3
    EGRESS_FAILED = 4
    EGRESS_ABORTED = 5
    EGRESS_LIMIT_REACHED = 6


@attrs.frozen(kw_only=True)
@plain_repr
class EgressInfo:
    """The part of `EgressInfo` needed to find and stop a room's recordings.

    Times are Unix nanoseconds (0 when unset).
    """

    egress_id: str
    room_id: str = ""
    room_name: str = ""
    status: EgressStatus | int = EgressStatus.EGRESS_STARTING
    started_at: int = 0
    ended_at: int = 0
    updated_at: int = 0
    error: str = ""

    @property
    def active(self) -> bool:
        """Starting or running: stopping it ends a recording."""
        return self.status in (EgressStatus.EGRESS_STARTING, EgressStatus.EGRESS_ACTIVE)

    @classmethod
    def from_json(cls, value: Mapping[str, object]) -> EgressInfo:
        """From protobuf-JSON (proto or camelCase field names; enums by name or number).

        Raises `ValueError` for a value of the wrong type.
        """

        def get(name: str) -> object:
            if name in value:
                return value[name]
            head, *rest = name.split("_")
            return value.get(head + "".join(part.title() for part in rest))

        def text(name: str) -> str:
            got = get(name)
            if got is None:
                return ""
            if not isinstance(got, str):
                raise ValueError(f"EgressInfo.{name} is not a string: {got!r}")
            return got

        def number(name: str) -> int:
            got = get(name)
            if got is None or got == "":
                return 0
            if isinstance(got, bool) or not isinstance(got, int | str):
                raise ValueError(f"EgressInfo.{name} is not an integer: {got!r}")
            return int(got)

        raw = get("status")
        status: EgressStatus | int
        if raw is None:
            status = EgressStatus.EGRESS_STARTING
        elif isinstance(raw, str) and raw in EgressStatus.__members__:
            status = EgressStatus[raw]
        elif isinstance(raw, int) and not isinstance(raw, bool):
            status = EgressStatus(raw) if raw in EgressStatus._value2member_map_ else raw
        else:
            raise ValueError(f"EgressInfo.status is not an egress status: {raw!r}")
        egress_id = text("egress_id")
        if not egress_id:
            raise ValueError("EgressInfo has no egress_id")
        return cls(
            egress_id=egress_id,
            room_id=text("room_id"),
            room_name=text("room_name"),
            status=status,
            started_at=number("started_at"),
            ended_at=number("ended_at"),
            updated_at=number("updated_at"),
            error=text("error"),
        )


class LiveKitAPI:
    """An async client for the LiveKit server API (see the module's docstring).

    `url`, `api_key` and `api_secret` default to the LIVEKIT_URL, LIVEKIT_API_KEY and
    LIVEKIT_API_SECRET environment variables. `timeout` bounds each call, connection
    included. `ssl_context` verifies ``https://``/``wss://`` servers (e.g. with a private CA).
    Calls are independent: the client holds no connection and needs no closing.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        token_ttl: int = 600,
    ) -> None:
        url = url or os.environ.get("LIVEKIT_URL", "")
        api_key = api_key or os.environ.get("LIVEKIT_API_KEY", "")
        api_secret = api_secret or os.environ.get("LIVEKIT_API_SECRET", "")
        if not url:
            raise ValueError("a LiveKit URL is required (argument or LIVEKIT_URL)")
        if not api_key or not api_secret:
            raise ValueError(
                "an API key and secret are required (arguments or LIVEKIT_API_KEY and "
                "LIVEKIT_API_SECRET)"
            )
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.endpoint = server_endpoint(url)
        self._api_key = api_key
        self._api_secret = api_secret
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._token_ttl = token_ttl

    def __repr__(self) -> str:
        return f"LiveKitAPI(url={self.endpoint.url!r}, api_key={self._api_key!r})"

    # -- RoomService ------------------------------------------------------------------------

    async def list_rooms(self, names: Sequence[str] = ()) -> list[RoomInfo]:
        """The active rooms (only those named in `names`, when given)."""
        payload: dict[str, object] = {"names": list(names)} if names else {}
        answer = await self.call("RoomService", "ListRooms", payload, VideoGrants(room_list=True))
        return [
            RoomInfo.from_pb(self._parse(item, _ppb.Room(), "RoomService/ListRooms"))
            for item in self._items(answer, "rooms", "RoomService/ListRooms")
        ]

    async def delete_room(self, room: str) -> None:
        """Delete `room`: every participant is disconnected with reason ROOM_DELETED.

        Raises `TwirpError` with code "not_found" when there is no such room.
        """
        await self.call("RoomService", "DeleteRoom", {"room": room}, VideoGrants(room_create=True))

    async def list_participants(self, room: str) -> list[Participant]:
        """The participants in `room`, as lkproto `Participant` snapshots."""
        answer = await self.call(
            "RoomService",
            "ListParticipants",
            {"room": room},
            VideoGrants(room_admin=True, room=room),
        )
        method = "RoomService/ListParticipants"
        return [
            Participant.from_pb(self._parse(item, _ppb.ParticipantInfo(), method))
            for item in self._items(answer, "participants", method)
        ]

    # -- EgressService ----------------------------------------------------------------------

    async def list_egress(
        self, *, room_name: str = "", egress_id: str = "", active: bool = False
    ) -> list[EgressInfo]:
        """The egresses of `room_name` (all rooms when empty); only running ones if `active`.

        Follows the server's pages to the end.
        """
        method = "EgressService/ListEgress"
        payload: dict[str, object] = {}
        if room_name:
            payload["room_name"] = room_name
        if egress_id:
            payload["egress_id"] = egress_id
        if active:
            payload["active"] = True
        found: list[EgressInfo] = []
        for _ in range(_MAX_PAGES):
            answer = await self.call(
                "EgressService", "ListEgress", payload, VideoGrants(room_record=True)
            )
            for item in self._items(answer, "items", method):
                found.append(self._egress(item, method))
            page = answer.get("next_page_token", answer.get("nextPageToken"))
            token = page.get("token") if isinstance(page, dict) else None
            if not isinstance(token, str) or not token:
                break
            payload["page_token"] = {"token": token}
        return found

    async def stop_egress(self, egress_id: str) -> EgressInfo:
        """Stop one egress; returns its state as the server reports it."""
        answer = await self.call(
            "EgressService",
            "StopEgress",
            {"egress_id": egress_id},
            VideoGrants(room_record=True),
        )
        return self._egress(answer, "EgressService/StopEgress")

    # -- any method ---------------------------------------------------------------------------

    async def call(
        self,
        service: str,
        method: str,
        payload: Mapping[str, object],
        grants: VideoGrants,
    ) -> dict[str, object]:
        """POST `payload` to ``livekit.<service>/<method>`` with a token carrying `grants`.

        Returns the answer's JSON object; raises `TwirpError` or `TransportError`.
        """
        token = mint_token(
            self._api_key,
            self._api_secret,
            now=int(time.time()),
            grants=grants,
            ttl=self._token_ttl,
        )
        exchange = TwirpExchange(
            self.endpoint, service, method, payload, token, secrets=(self._api_secret,)
        )
        end = self.endpoint
        what = f"LiveKit server API {service}/{method}"
        secrets = (token, self._api_secret)
        try:
            with anyio.fail_after(self._timeout):
                with map_exceptions(
                    f"{what}: could not connect to {end.host}:{end.port}", *secrets
                ):
                    stream: anyio.abc.ByteStream
                    if end.tls:
                        stream = await anyio.connect_tcp(
                            end.host,
                            end.port,
                            tls=True,
                            ssl_context=self._ssl_context,
                            tls_standard_compatible=False,
                        )
                    else:
                        stream = await anyio.connect_tcp(end.host, end.port)
                try:
                    with map_exceptions(what, *secrets):
                        await stream.send(exchange.request())
                        while True:
                            try:
                                data = await stream.receive(_READ)
                            except anyio.EndOfStream:
                                data = b""
                            answer = exchange.receive(data)
                            if answer is not None:
                                return answer
                finally:
                    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                        await stream.aclose()
        except TimeoutError:
            raise TransportError(f"{what}: no answer within {self._timeout:g}s") from None

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _items(answer: Mapping[str, object], key: str, method: str) -> list[Mapping[str, object]]:
        items = answer.get(key, [])
        if items is None:
            return []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise TwirpError(
                "internal",
                f"the answer's {key!r} is not a list of objects",
                status=200,
                method=method,
            )
        return items

    @staticmethod
    def _parse(item: Mapping[str, object], message: _M, method: str) -> _M:
        try:
            return json_format.ParseDict(dict(item), message, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise TwirpError(
                "internal", f"unexpected answer: {exc}", status=200, method=method
            ) from None

    @staticmethod
    def _egress(item: Mapping[str, object], method: str) -> EgressInfo:
        try:
            return EgressInfo.from_json(item)
        except ValueError as exc:
            raise TwirpError(
                "internal", f"unexpected answer: {exc}", status=200, method=method
            ) from None
