"""A process's first `connect()` imports aiortc on a worker thread while the signal connection
is set up (issue 25, start-up; transports/_session.py `_install_peer`): the core's peer
commands wait in a `_PendingPeer` and are replayed into the real port in order.

Each test runs a fresh interpreter (aiortc not yet imported, which is the only case that takes
this path; the test process has long imported it) against this worker's server: the join
completes with the reliable channel open, a rejected token fails promptly without the real
port ever being made, and a connect cancelled during the import leaves nothing behind and
lets the next connect work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

_PRELUDE = """
import os, sys, time
import anyio
from lkproto.transports.anyio import ConnectError, Room, RoomOptions, RtcConfiguration
from lkproto.transports import _session
URL, TOKEN = os.environ["LK_URL"], os.environ["LK_TOKEN"]
OPTIONS = RoomOptions(
    auto_subscribe=False,
    rtc_config=RtcConfiguration(host_addresses=[os.environ["LK_HOST"]]),
)
assert "aiortc" not in sys.modules
"""


def _run(code: str, url: str, token: str, host: str) -> str:
    env = dict(os.environ, LK_URL=url, LK_TOKEN=token, LK_HOST=host)
    out = subprocess.run(
        [sys.executable, "-c", _PRELUDE + code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_first_connect_imports_aiortc_beside_the_signal_and_replays_the_peer_commands(
    livekit_server: Any, make_token: Any, confinement: Any
) -> None:
    code = """
async def main():
    room = Room()
    await room.connect(URL, TOKEN, OPTIONS)
    peer = room._session.peer
    assert "aiortc" in sys.modules and not isinstance(peer, _session._PendingPeer), peer
    await room.local_participant.publish_data(b"first", topic="t")
    await room.disconnect()
    print("ok", type(peer).__name__)
anyio.run(main)
"""
    out = _run(code, livekit_server.url, make_token("first"), confinement.host)
    assert out.split() == ["ok", "AiortcPeer"]


def test_a_rejected_token_fails_promptly_and_makes_no_peer(
    livekit_server: Any, make_token: Any, confinement: Any
) -> None:
    code = """
async def main():
    room = Room()
    start = time.monotonic()
    try:
        await room.connect(URL, TOKEN + "x", OPTIONS)
    except ConnectError as exc:
        assert TOKEN not in str(exc)
        print("refused", time.monotonic() - start < 10, type(room._session.peer).__name__)
    else:
        raise AssertionError("connected with a forged token")
anyio.run(main)
"""
    out = _run(code, livekit_server.url, make_token("rejected"), confinement.host)
    assert out.split() == ["refused", "True", "_PendingPeer"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_connect_cancelled_during_the_import_leaves_nothing_and_the_next_one_joins(
    livekit_server: Any, make_token: Any, confinement: Any, backend: str
) -> None:
    code = f"""
async def main():
    room = Room()
    with anyio.move_on_after(0.02) as scope:
        await room.connect(URL, TOKEN, OPTIONS)
    assert scope.cancelled_caught and not room.isconnected()
    assert room._session.done.is_set()
    await room.connect(URL, TOKEN, OPTIONS)
    assert room.isconnected()
    await room.disconnect()
    print("ok")
anyio.run(main, backend={backend!r})
"""
    out = _run(code, livekit_server.url, make_token(f"cancelled-{backend}"), confinement.host)
    assert out.split() == ["ok"]
