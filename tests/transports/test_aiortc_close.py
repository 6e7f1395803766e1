"""Closing an aiortc peer connection that aiortc is closing already (transports/_aiortc.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiortc import RTCPeerConnection

from lkproto.transports._aiortc import close_peer_connection


async def _race(ours: Callable[[RTCPeerConnection], Awaitable[None]]) -> BaseException | None:
    """aiortc's own close task starts (as when the remote closed DTLS); then a close of ours
    that is cancelled while it waits for aiortc's. What aiortc's task ended with."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    pc.createDataChannel("x")
    await pc.setLocalDescription(await pc.createOffer())
    theirs = asyncio.ensure_future(pc.close())
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(ours(pc))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.wait([theirs], timeout=5)
    return theirs.exception()


def test_a_cancelled_close_leaves_aiortcs_own_close_intact() -> None:
    assert asyncio.run(_race(close_peer_connection)) is None


def test_without_the_shield_aiortcs_close_fails() -> None:
    # The aiortc behaviour the shield is for: if aiortc fixes it, this test says so.
    error = asyncio.run(_race(lambda pc: pc.close()))
    assert isinstance(error, asyncio.InvalidStateError)
