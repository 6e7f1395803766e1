"""WebSocket glue: wsproto driven without I/O, shared by every backend.

Each adapter opens a TCP (or TLS, for `wss://`) stream itself, writes `handshake()`, then feeds
whatever it reads into `receive()` and writes `data_to_send()` after each call. `receive()`
turns wsproto's events into the four facts the pump needs: the upgrade was accepted, it was
rejected (HTTP status and the start of the body, for the error message), a whole binary message
arrived, or the connection closed. Pings are answered here.

Limits: a signal message is reassembled up to `max_message_size` bytes (a JoinResponse for a
large room is the biggest message; 16 MiB by default) and a rejection body is kept up to 2 KiB,
enough for the server's reason. Exceeding the message bound closes with code 1009; bytes that
are not WebSocket close with 1002. Nothing is reported after the first `Closed` or `Rejected`.

The token: livekit-server echoes it in its 401 body ("invalid token: <token>, error: ..."). The
credential of every `Authorization` header is replaced by "<redacted>" in the body before it is
cut to 2 KiB (enough of the body is read for that), so the reason after the token survives and
neither the whole token nor a piece of it at a cut is ever reported.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs
import wsproto
import wsproto.events as wse
from wsproto.connection import ConnectionState as WsState
from wsproto.utilities import LocalProtocolError as WsLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WsRemoteProtocolError

from lkproto._repr import plain_repr

__all__ = ["Accepted", "Closed", "Message", "Rejected", "WebSocketClient", "WsResult"]

_BODY_LIMIT = 2048
_REDACTED = b"<redacted>"
_MIN_PARTIAL = 8  # a cut-off piece of a secret this long or longer is redacted too


@attrs.frozen
@plain_repr
class Accepted:
    """The server accepted the WebSocket upgrade."""


@attrs.frozen
@plain_repr
class Rejected:
    """The server answered the upgrade with HTTP `status`; `body` is its reason text."""

    status: int
    body: str


@attrs.frozen
@plain_repr
class Message:
    """One whole binary message."""

    data: bytes


@attrs.frozen
@plain_repr
class Closed:
    """The WebSocket closed (`code` None: the stream ended without a close frame)."""

    code: int | None
    reason: str = ""


WsResult = Accepted | Rejected | Message | Closed


def _credentials(headers: tuple[tuple[str, str], ...]) -> tuple[bytes, ...]:
    """The secrets in `headers`: each `Authorization` credential (the part after the scheme)."""
    found = set()
    for name, value in headers:
        if name.lower() == "authorization":
            credential = value.split(" ", 1)[-1].strip()
            if credential:
                found.add(credential.encode())
    return tuple(sorted(found, key=len, reverse=True))


@attrs.frozen
@plain_repr
class Endpoint:
    host: str
    port: int
    tls: bool
    target: str
    netloc: str


def parse_endpoint(url: str) -> Endpoint:
    """Where to connect for a ws:// or wss:// URL (the core already validated it)."""
    parts = urlsplit(url)
    tls = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Endpoint(host=host, port=port, tls=tls, target=target, netloc=parts.netloc)


class WebSocketClient:
    """The client side of one WebSocket connection, as a sans-I/O object."""

    def __init__(
        self,
        url: str,
        headers: tuple[tuple[str, str], ...],
        *,
        max_message_size: int = 16 * 1024 * 1024,
    ) -> None:
        self.endpoint = parse_endpoint(url)
        self._headers = headers
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._out = bytearray()
        self._message = bytearray()
        self._max = max_message_size
        self._reject_status: int | None = None
        self._reject_body = bytearray()
        self._secrets = _credentials(headers)
        # Keep enough past the limit that a token starting before the cut is seen whole.
        self._body_keep = _BODY_LIMIT + max((len(s) for s in self._secrets), default=0)
        self.closed = False

    def handshake(self) -> bytes:
        """The HTTP upgrade request to write first."""
        return self._ws.send(
            wse.Request(
                host=self.endpoint.netloc,
                target=self.endpoint.target,
                extra_headers=[(k.encode(), v.encode()) for k, v in self._headers],
            )
        )

    def send(self, data: bytes) -> bytes:
        """Frame one binary message, or b"" if the connection is not open (it is dropped)."""
        if self._ws.state is not WsState.OPEN:
            return b""
        return self._ws.send(wse.BytesMessage(data=data))

    def close(self, code: int = 1000) -> bytes:
        """A close frame, or b"" if the connection is not open."""
        if self._ws.state is not WsState.OPEN:
            return b""
        try:
            return self._ws.send(wse.CloseConnection(code=code))
        except WsLocalProtocolError:  # pragma: no cover - guarded by the state check
            return b""

    def data_to_send(self) -> bytes:
        """Bytes wsproto wants written (pongs, close replies) after a `receive`."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive(self, data: bytes | None) -> list[WsResult]:
        """Feed bytes read from the stream (None at EOF); return what happened."""
        results: list[WsResult] = []
        if self.closed:
            return results
        try:
            self._ws.receive_data(data)
            for event in self._ws.events():
                self._handle(event, results, eof=data is None)
                if self._ended(results):
                    break
        except WsRemoteProtocolError as exc:
            # At EOF, h11 calls an unfinished response malformed: that is the stream ending.
            if data is not None:
                results.append(Closed(code=1002, reason=f"WebSocket protocol error: {exc}"))
        if data is None and not self._ended(results):
            if self._reject_status is not None:
                results.append(self._rejected())
            else:
                results.append(Closed(code=None))
        if self._ended(results):
            self.closed = True
        return results

    @staticmethod
    def _ended(results: list[WsResult]) -> bool:
        return bool(results) and isinstance(results[-1], Closed | Rejected)

    def _rejected(self) -> Rejected:
        """The rejection, its body redacted, then cut to about `_BODY_LIMIT` bytes."""
        assert self._reject_status is not None
        body = bytes(self._reject_body)
        longest = max((len(s) for s in self._secrets), default=0)
        kept = bytearray()
        i = 0
        while i < len(body) and len(kept) < _BODY_LIMIT:
            secret = next((s for s in self._secrets if body.startswith(s, i)), None)
            if secret is not None:
                kept += _REDACTED
                i += len(secret)
                continue
            rest = len(body) - i
            if _MIN_PARTIAL <= rest < longest and any(
                s.startswith(body[i:]) for s in self._secrets
            ):
                kept += _REDACTED  # the start of a secret, cut off where we stopped reading
                break
            kept.append(body[i])
            i += 1
        text = bytes(kept).decode("utf-8", "replace").strip()
        return Rejected(status=self._reject_status, body=text)

    def _handle(self, event: wse.Event, results: list[WsResult], *, eof: bool) -> None:
        if isinstance(event, wse.AcceptConnection):
            results.append(Accepted())
        elif isinstance(event, wse.RejectConnection):
            self._reject_status = event.status_code
            if not event.has_body:
                results.append(self._rejected())
        elif isinstance(event, wse.RejectData):
            room = self._body_keep - len(self._reject_body)
            self._reject_body += event.data[: max(room, 0)]
            if event.body_finished:
                results.append(self._rejected())
        elif isinstance(event, wse.BytesMessage | wse.TextMessage):
            chunk = event.data.encode() if isinstance(event.data, str) else bytes(event.data)
            if len(self._message) + len(chunk) > self._max:
                self._out += self.close(1009)
                results.append(Closed(code=1009, reason="signal message too large"))
                return
            self._message += chunk
            if event.message_finished:
                results.append(Message(data=bytes(self._message)))
                self._message.clear()
        elif isinstance(event, wse.Ping):
            self._out += self._ws.send(event.response())
        elif isinstance(event, wse.CloseConnection):
            if eof:  # wsproto's stand-in (1006) for a stream that ended without a close frame
                results.append(Closed(code=None))
                return
            if self._ws.state is WsState.REMOTE_CLOSING:
                self._out += self._ws.send(event.response())
            elif self._ws.state is WsState.OPEN:  # a frame wsproto could not parse
                self._out += self.close(int(event.code))
            results.append(Closed(code=int(event.code), reason=event.reason or ""))
