"""The exceptions the transports raise, and the boundary that maps backend errors onto them.

Users of any adapter see these (and the core's `LkProtocolError` family), never
`trio.BrokenResourceError`, `anyio.EndOfStream`, `ssl.SSLError` or an aiortc exception: each
adapter wraps its I/O calls in `map_exceptions` (httpcore's idea).
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator

import anyio

from lkproto.errors import LkProtocolError

__all__ = [
    "ConnectError",
    "MetadataUpdateError",
    "PublishDataError",
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


class PublishDataError(TransportError):
    """`publish_*` failed: too large, not connected, or the channel broke."""


class MetadataUpdateError(TransportError):
    """The server refused or did not answer a metadata, name or attributes update."""

    def __init__(self, message: str, *, reason: int) -> None:
        super().__init__(message)
        self.reason = reason


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
        detail = redact(describe(exc), *secrets)
        raise TransportError(f"{what}: {detail}") from None


def describe(exc: BaseException) -> str:
    """A one-line account of a backend failure, with its underlying causes.

    anyio's `connect_tcp` raises "All connection attempts failed" with the real errors as its
    `__cause__`; those say what to fix ("Connection refused"), so they are appended. An OS
    error is named by its `strerror` (asyncio's "Connect call failed ('10.0.0.1', 80)" hides
    it), and a failed certificate check or a server that does not speak TLS says so plainly.
    """
    text = _one(exc)
    extra: list[str] = []
    for leaf in _leaves(exc.__cause__) if exc.__cause__ is not None else ():
        one = _one(leaf)
        if one not in extra and one not in text:
            extra.append(one)
    return f"{text}: {'; '.join(extra)}" if extra else text


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _one(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate verification failed: {getattr(exc, 'verify_message', '') or exc} "
            "(to trust a private CA, pass RoomOptions(ssl_context=...))"
        )
    if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None) == "WRONG_VERSION_NUMBER":
        return "TLS handshake failed: the server did not answer in TLS (is it a ws:// server?)"
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.errno:
        try:
            reason = os.strerror(exc.errno)
        except ValueError:  # pragma: no cover - an errno the platform cannot name
            reason = ""
        if reason and not reason.startswith("Unknown error"):
            return reason
    return str(exc) or type(exc).__name__
