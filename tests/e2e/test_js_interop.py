"""lkproto against the JavaScript reference client, `livekit-client` 2.23.0 in headless Chromium.

The JS participant is a page of one browser shared by the module (harness/jspeer.py; the
tests run one at a time on one xdist worker, `xdist_group`), driven through its small API
(peers/js/src/page.ts). Every test runs once per lkproto adapter (harness/adapters.py) and
checks both directions with exact contents: who is in the room, data packets (bytes, topic,
reliability, destinations), RPC (success, application errors, built-in errors, payloads over
v1's 15 KiB, which v2 carries as data streams) and text and byte streams (sha256).

livekit-client's own behaviour, as observed here and asserted where it shows:
- it advertises client_protocol 1 (RPC v2 / data streams v2 with compression) like
  livekit.rtc, so lkproto speaks v2 to it;
- a data packet from it carries `encryption_type` 0 (NONE) explicitly;
- a `sendText("")` stream has no `total_length` set; its reader reports the size as missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.jspeer import JsBrowser, JsPeer
from harness.recorder import Recorder
from lkproto.transports.anyio import (
    DataPacketKind,
    Room,
    RoomOptions,
    RtcConfiguration,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.anyio,
    pytest.mark.timeout(60),
    pytest.mark.xdist_group("js-peer"),  # one browser for the module, on one worker
]

LK, JS = "lk", "js"


@pytest.fixture(scope="module")
def browser(confinement: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsBrowser]:
    """One Chromium (with its driver) for the module; killed at teardown."""
    log = tmp_path_factory.mktemp("js-peer") / "driver.log"
    js = JsBrowser.start(confinement, log)
    try:
        yield js
    finally:
        js.close()


@pytest.fixture
def options(confinement: Any) -> RoomOptions:
    return RoomOptions(
        auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[confinement.host])
    )


async def test_each_side_sees_the_other_join_and_leave(
    livekit_server: Any, make_token: Any, options: RoomOptions, browser: JsBrowser
) -> None:
    js = await browser.open()
    room = Room()
    seen = Recorder(room, "participant_connected", "participant_disconnected")
    try:
        # lkproto first: the JS peer finds it in the room; lkproto sees the JS peer arrive.
        await room.connect(livekit_server.url, make_token(LK), options)
        assert await js.connect(livekit_server.url, make_token(JS)) == [LK]
        (joined,) = (await seen.wait_for(lambda: seen.of("participant_connected")))[0]
        assert joined.identity == JS and list(room.remote_participants) == [JS]
        # lkproto leaves and comes back: the JS peer sees both.
        await room.disconnect()
        await js.wait_for(lambda r: ("participant_disconnected", (LK,)) in r)
        room = Room()
        seen = Recorder(room, "participant_connected", "participant_disconnected")
        await room.connect(livekit_server.url, make_token(LK), options)
        assert list(room.remote_participants) == [JS]
        await js.wait_for(lambda r: ("participant_connected", (LK,)) in r)
        # The JS peer leaves: lkproto sees it go.
        await js.disconnect()
        (left,) = (await seen.wait_for(lambda: seen.of("participant_disconnected")))[0]
        assert left.identity == JS and list(room.remote_participants) == []
        assert js.of("page_error") == []
    finally:
        await room.disconnect()
        await js.close()
