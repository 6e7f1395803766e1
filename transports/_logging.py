"""What a session logs, under the `lkproto` logger (here `lkproto.transports.session`).

INFO: connecting (the URL without its query), joined (room, identity, SID, server version),
each reconnect (its mode and reason) and its outcome (attempts, seconds), a signal
connection that could not be opened, data the core dropped and why (malformed, duplicate,
encrypted, unsupported, empty), a received stream that failed, and the end of the session
(reason and message). DEBUG: participants joining and leaving, each signal connection
attempt, RPC messages dropped. Nothing here logs a token, a key or a payload: messages
that can carry a server's text were redacted before they became events.

To quiet the library: `logging.getLogger("lkproto").setLevel(logging.WARNING)`. aiortc and
aioice log every ICE check and SCTP step at DEBUG and some at INFO:
`logging.getLogger("aioice").setLevel(logging.WARNING)` and the same for `"aiortc"`.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from lkproto import events as ev

__all__ = ["log", "log_connecting", "log_event", "log_signal_attempt", "log_signal_failed"]

log = logging.getLogger("lkproto.transports.session")


def shown_url(url: str) -> str:
    """`url` without a query, fragment or user part (those may carry a secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def log_connecting(url: str) -> None:
    log.info("connecting to %s", shown_url(url))


def log_signal_attempt(host: str, port: int, tls: bool) -> None:
    log.debug("opening the signal connection to %s:%d%s", host, port, " (TLS)" if tls else "")


def log_signal_failed(reason: str) -> None:
    log.info("signal connection failed: %s", reason)


def log_event(event: ev.Event) -> None:
    """Log one core event, if it is one a user needs to see (see the module docstring)."""
    match event:
        case ev.Joined():
            me, info = event.local_participant, event.server_info
            log.info(
                "joined room %r as %r (sid %s; server version %s)",
                event.room.name,
                me.identity,
                me.sid,
                info.version or "unknown",
            )
        case ev.Reconnecting():
            log.info(
                "connection interrupted (%s): %s reconnect%s",
                event.reason.name,
                event.mode.name.lower(),
                f": {event.message}" if event.message else "",
            )
        case ev.Reconnected():
            log.info(
                "reconnected (%s) after %d attempt%s in %.1fs",
                event.mode.name.lower(),
                event.attempts,
                "" if event.attempts == 1 else "s",
                event.duration,
            )
        case ev.Disconnected():
            log.info(
                "disconnected (%s)%s",
                event.reason.name,
                f": {event.message}" if event.message else "",
            )
        case ev.ParticipantConnected():
            log.debug(
                "participant %r joined (sid %s)", event.participant.identity, event.participant.sid
            )
        case ev.ParticipantDisconnected():
            log.debug("participant %r left (%s)", event.participant.identity, event.reason.name)
        case ev.PacketDropped():
            log.info(
                "dropped a %s data packet from %r: %s%s",
                event.channel.name.lower(),
                event.participant_identity or "the server",
                event.reason,
                f" ({event.detail})" if event.detail else "",
            )
        case ev.StreamFailed():
            log.info(
                "a stream from %r failed (%s): %s",
                event.sender_identity,
                event.reason.name,
                event.message,
            )
        case _:
            pass
