"""Issue 19 item 13: a session logs what a user needs under the `lkproto` logger, never a
token, and `logging.getLogger("lkproto")` quiets all of it."""

from __future__ import annotations

import logging

import pytest

from lkproto import events as ev
from lkproto.models import (
    Channel,
    DisconnectReason,
    Participant,
    ReconnectMode,
    RoomInfo,
    ServerInfo,
)
from lkproto.streams import StreamErrorReason
from lkproto.transports import _logging
from lkproto.transports.anyio import ConnectError, Room
from lkproto.transports.testing import MemoryServer

pytestmark = pytest.mark.timeout(30)


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    return [
        (r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("lkproto")
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_session_logs_its_connect_join_and_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lkproto")
    async with MemoryServer(update_interval=0) as server:
        token = server.token("alice")
        room = Room()
        with pytest.raises(ConnectError):  # refused; the query is not logged either
            await Room().connect(server.url + "?access_token=secret-in-the-query", token)
        await room.connect(server.url, token)
        await room.disconnect()
    got = [(level, message) for name, level, message in records(caplog)]
    name = "lkproto.transports.session"
    assert all(n.startswith("lkproto") for n, _, _ in records(caplog))
    assert (logging.INFO, f"connecting to {server.url}") in got
    joined = [m for level, m in got if level == logging.INFO and m.startswith("joined room")]
    assert len(joined) == 1 and "as 'alice' (sid " in joined[0]
    assert (logging.INFO, "disconnected (CLIENT_INITIATED): closed by the application") in got
    text = "\n".join(m for _, m in got)
    assert token not in text and "secret-in-the-query" not in text
    assert {n for n, _, m in records(caplog) if m.startswith(("connecting", "joined"))} == {name}


@pytest.mark.parametrize(
    ("event", "level", "message"),
    [
        (
            ev.Reconnecting(mode=ReconnectMode.RESUME, reason=DisconnectReason.SIGNAL_CLOSE),
            logging.INFO,
            "connection interrupted (SIGNAL_CLOSE): resume reconnect",
        ),
        (
            ev.Reconnected(mode=ReconnectMode.FULL, attempts=3, duration=2.5),
            logging.INFO,
            "reconnected (full) after 3 attempts in 2.5s",
        ),
        (
            ev.PacketDropped(
                reason="malformed", channel=Channel.RELIABLE, detail="bad", participant_identity="x"
            ),
            logging.INFO,
            "dropped a reliable data packet from 'x': malformed (bad)",
        ),
        (
            ev.StreamFailed(
                sender_identity="bob",
                stream_id="s",
                reason=StreamErrorReason.ABNORMAL_END,
                message="gone",
            ),
            logging.INFO,
            "a stream from 'bob' failed (ABNORMAL_END): gone",
        ),
        (
            ev.ParticipantDisconnected(
                participant=Participant(sid="PA_1", identity="bob"),
                reason=DisconnectReason.CLIENT_INITIATED,
            ),
            logging.DEBUG,
            "participant 'bob' left (CLIENT_INITIATED)",
        ),
        (
            ev.Joined(
                room=RoomInfo(sid="RM_1", name="r"),
                local_participant=Participant(sid="PA_me", identity="me"),
                participants=(),
                server_info=ServerInfo(version="1.13.5"),
                ice_servers=(),
                single_peer_connection=True,
            ),
            logging.INFO,
            "joined room 'r' as 'me' (sid PA_me; server version 1.13.5)",
        ),
    ],
)
def test_what_each_event_logs(
    caplog: pytest.LogCaptureFixture, event: ev.Event, level: int, message: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="lkproto")
    _logging.log_event(event)
    assert records(caplog) == [("lkproto.transports.session", level, message)]


def test_the_lkproto_logger_quiets_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("lkproto").setLevel(logging.WARNING)
    try:
        _logging.log_connecting("ws://127.0.0.1:7880")
        assert records(caplog) == []
    finally:
        logging.getLogger("lkproto").setLevel(logging.NOTSET)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_leave_waits_config_leave_drain_timeout_and_warns_of_unacknowledged_data(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lkproto import Config
    from lkproto.transports.testing import _memory

    waited: list[float] = []

    async def never_acknowledged(self: object, timeout: float) -> bool:
        waited.append(timeout)
        return False  # the server still lacks part of what we sent

    caplog.set_level(logging.DEBUG, logger="lkproto")
    async with MemoryServer(update_interval=0) as server:
        room = Room(config=Config(leave_drain_timeout=7.5))
        await room.connect(server.url, server.token("alice"))
        monkeypatch.setattr(_memory._MemoryPeer, "drain", never_acknowledged)
        await room.local_participant.publish_data(b"last words")
        await room.disconnect()
    assert waited == [7.5]
    assert (
        "lkproto.transports",
        logging.WARNING,
        "leaving with sent data the server has not acknowledged after 7.5 s "
        "(Config.leave_drain_timeout): it is lost",
    ) in records(caplog)
