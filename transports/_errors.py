"""The exceptions the transports raise, and the boundary that maps backend errors onto them.

Users of any adapter see these (and the core's `LkProtocolError` family), never
`trio.BrokenResourceError`, `anyio.EndOfStream`, `ssl.SSLError` or an aiortc exception: each
adapter wraps its I/O calls in `map_exceptions` (httpcore's idea).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import anyio

from lkproto.errors import LkProtocolError

__all__ = [
    "ConnectError",
    "TransportClosedError",
    "TransportError",
    "map_exceptions",
    "redact",
]


class TransportError(LkProtocolError):
    """An I/O failure underneath the protocol (socket, TLS, peer connection)."""


class ConnectError(TransportError):
    """`Room.connect` failed: the server refused us, could not be reached, or never answered.

    `message` carries the server's reason when it gave one, with the token redacted.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransportClosedError(TransportError):
    """The room is not connected (never was, or the session ended)."""


def redact(text: str, *secrets: str) -> str:
    """Replace every occurrence of each non-empty secret in `text` (servers echo tokens)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


@contextlib.contextmanager
def map_exceptions(what: str, *secrets: str) -> Iterator[None]:
    """Turn backend exceptions raised inside the block into `TransportError`s.

    `what` names the operation for the message; `secrets` are redacted from it.
    """
    try:
        yield
    except LkProtocolError:
        raise
    except (
        OSError,
        ssl.SSLError,
        anyio.BrokenResourceError,
        anyio.ClosedResourceError,
        anyio.EndOfStream,
        ConnectionError,
        ValueError,
    ) as exc:
        detail = redact(str(exc) or type(exc).__name__, *secrets)
        raise TransportError(f"{what}: {detail}") from None
