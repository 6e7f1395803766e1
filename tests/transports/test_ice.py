"""The ICE connection that returns as soon as its check list completes (transports/_ice.py).

Two connections on 127.0.0.1 (the host addresses restricted as the adapters restrict them),
with aioice's 20 ms pacing sleep stretched to 5 s: aioice's own `connect()` would take the
5 s; ours returns once the check list is complete, while aioice's task is still asleep, and
`close()` cancels that task. No clock is read: the stretched sleep makes the difference
unmistakable (the connect is bounded by 3 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

import aioice
import aioice.ice
import pytest
from aiortc import rtcicetransport

from lkproto.transports import _aiortc, _ice

PACING = 0.02  # aioice's Ta: connect() sleeps this long after starting each check


@pytest.fixture
def slow_pacing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    sleep = asyncio.sleep

    def stretched(delay: float, *args: object) -> Awaitable[object]:
        return sleep(5.0 if delay == PACING else delay, *args)

    monkeypatch.setattr(aioice.ice.asyncio, "sleep", stretched)
    token = _aiortc._ALLOWED_HOSTS.set(frozenset({"127.0.0.1"}))
    yield
    _aiortc._ALLOWED_HOSTS.reset(token)


async def _pair(
    make: Callable[..., aioice.Connection],
) -> tuple[aioice.Connection, aioice.Connection]:
    a, b = make(ice_controlling=True, use_ipv6=False), make(ice_controlling=False, use_ipv6=False)
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for one, other in ((a, b), (b, a)):
        one.remote_username, one.remote_password = other.local_username, other.local_password
        for candidate in other.local_candidates:
            await one.add_remote_candidate(candidate)
        await one.add_remote_candidate(None)
    return a, b


def test_importing_the_peer_side_installs_it_for_aiortc() -> None:
    assert rtcicetransport.Connection is _ice.EagerConnection  # type: ignore[attr-defined]


def test_connect_returns_when_the_check_list_completes_and_close_cancels_the_rest(
    slow_pacing: None,
) -> None:
    async def main() -> None:
        a, b = await _pair(_ice.EagerConnection)
        assert [c.host for c in a.local_candidates] == ["127.0.0.1"]
        async with asyncio.timeout(3):  # aioice's own connect() would sleep 5 s here
            await asyncio.gather(a.connect(), b.connect())
        pending = [c._lk_connect for c in (a, b)]
        assert [t is not None and not t.done() for t in pending] == [True, True]
        await a.send(b"after ICE")
        assert await asyncio.wait_for(b.recv(), 3) == b"after ICE"
        await asyncio.gather(a.close(), b.close())
        assert [t is not None and t.cancelled() for t in pending] == [True, True]
        assert [c._query_consent_task for c in (a, b)] == [None, None]  # never started

    asyncio.run(main())


def test_a_failed_check_list_is_aioices_own_error() -> None:
    async def main() -> None:
        token = _aiortc._ALLOWED_HOSTS.set(frozenset({"127.0.0.1"}))
        try:
            a = _ice.EagerConnection(ice_controlling=True, use_ipv6=False)
            await a.gather_candidates()
            a.remote_username, a.remote_password = "user", "password" * 3
            await a.add_remote_candidate(None)  # no candidates at all: nothing to check
            with pytest.raises(ConnectionError, match="ICE negotiation failed"):
                async with asyncio.timeout(3):
                    await a.connect()
            await a.close()
        finally:
            _aiortc._ALLOWED_HOSTS.reset(token)

    asyncio.run(main())


def test_without_the_hook_aioice_is_left_as_it_is_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rtcicetransport, "Connection", aioice.Connection)
    monkeypatch.delattr(aioice.Connection, "_check_list_maybe_complete")
    with caplog.at_level(logging.WARNING, logger="lkproto.transports"):
        _ice.install()
    assert rtcicetransport.Connection is aioice.Connection  # type: ignore[attr-defined]
    assert "20 ms wait" in caplog.text


@pytest.fixture
def fast_consent(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Consent checks every 40-60 ms, STUN's RTO 20 ms, consent expiring after 0.5 s."""
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.02)
    monkeypatch.setattr(_ice, "CONSENT_TIMEOUT", 0.5)
    token = _aiortc._ALLOWED_HOSTS.set(frozenset({"127.0.0.1"}))
    yield
    _aiortc._ALLOWED_HOSTS.reset(token)


def _answer_only_retransmissions(side: aioice.Connection, dropped: list[bytes]) -> None:
    """`side` ignores the first copy of every binding request (a busy receiver's lost or late
    answer), and answers its retransmissions."""
    handle = side.request_received
    seen: set[bytes] = set()

    def request_received(message: aioice.stun.Message, *args: object) -> None:
        if message.transaction_id not in seen:
            seen.add(message.transaction_id)
            dropped.append(message.transaction_id)
            return
        handle(message, *args)  # type: ignore[arg-type]

    side.request_received = request_received  # type: ignore[method-assign]


@pytest.mark.parametrize("kind", ["aioice", "ours"])
def test_consent_survives_unanswered_first_copies_and_expires_without_answers(
    fast_consent: None, kind: str
) -> None:
    make = aioice.Connection if kind == "aioice" else _ice.EagerConnection

    async def main() -> None:
        a, b = await _pair(make)
        async with asyncio.timeout(3):
            await asyncio.gather(a.connect(), b.connect())
        dropped: list[bytes] = []
        _answer_only_retransmissions(b, dropped)
        async with asyncio.timeout(10):  # waits on what happens, not on the clock
            if kind == "aioice":  # no retransmission: six unanswered checks close it
                while a._query_consent_task is not None:
                    await asyncio.sleep(0.05)
            else:  # twice as many first copies unanswered as aioice survives, over 0.5 s
                while len(dropped) < 12 or a._query_consent_task is None:
                    await asyncio.sleep(0.05)
        if kind == "aioice":
            assert len(dropped) == 6
        else:
            assert a._query_consent_task is not None
            await a.send(b"still consented")
            assert await asyncio.wait_for(b.recv(), 3) == b"still consented"
            b.request_received = lambda *args: None  # type: ignore[method-assign]
            async with asyncio.timeout(2):  # 0.5 s without an answer, plus the check under way
                while a._query_consent_task is not None:
                    await asyncio.sleep(0.05)
        await asyncio.gather(a.close(), b.close())

    asyncio.run(main())


def test_consent_takes_an_answer_that_comes_seconds_late() -> None:
    """livekit-server under load answered consent checks 1 to 13 s late (transports/_ice.py).
    Scaled by 1/25 (STUN's RTO 20 ms, checks every 40-60 ms): every answer comes 0.4 s (10 s
    real) after its request, later than three retransmissions wait (0.3 s, 7.5 s real) but
    within five (1.26 s, 31.5 s real), and the connection stays consented past twice the
    consent timeout (0.8 s)."""
    make = _ice.EagerConnection

    async def main() -> None:
        a, b = await _pair(make)
        async with asyncio.timeout(3):
            await asyncio.gather(a.connect(), b.connect())
        loop = asyncio.get_running_loop()
        handle, answered = b.request_received, []

        def late(message: aioice.stun.Message, *args: object) -> None:
            answered.append(message.transaction_id)
            loop.call_later(0.4, handle, message, *args)  # type: ignore[arg-type]

        b.request_received = late  # type: ignore[method-assign]
        async with asyncio.timeout(10):  # waits on what happens, not on the clock
            while a._query_consent_task is None:  # aioice's connect() ends and starts checks
                await asyncio.sleep(0.01)
            begun = loop.time()
            while loop.time() - begun < 2 * 0.8 + 0.4:
                assert a._query_consent_task is not None  # still consented
                await asyncio.sleep(0.05)
        assert len(set(answered)) >= 3  # several checks went by, each answered late
        await a.send(b"still consented")
        assert await asyncio.wait_for(b.recv(), 3) == b"still consented"
        await asyncio.gather(a.close(), b.close())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)
        patch.setattr(aioice.stun, "RETRY_RTO", 0.02)
        patch.setattr(_ice, "CONSENT_TIMEOUT", 0.8)
        token = _aiortc._ALLOWED_HOSTS.set(frozenset({"127.0.0.1"}))
        try:
            asyncio.run(main())
        finally:
            _aiortc._ALLOWED_HOSTS.reset(token)


def test_consent_holds_while_the_peer_sends_and_expires_when_it_stops(
    fast_consent: None,
) -> None:
    """No check is ever answered, but the peer's packets keep arriving (livekit-server under
    heavy load answered 24-34 s late while its data flowed): `a` stays consented well past the
    consent timeout (0.5 s), and closes once the packets stop too."""

    async def main() -> None:
        a, b = await _pair(_ice.EagerConnection)
        async with asyncio.timeout(3):
            await asyncio.gather(a.connect(), b.connect())
        b.request_received = lambda *args: None  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(10):  # waits on what happens, not on the clock
            while a._query_consent_task is None:  # aioice's connect() ends and starts checks
                await asyncio.sleep(0.01)
            begun = loop.time()
            while loop.time() - begun < 3 * 0.5:
                assert a._query_consent_task is not None  # still consented
                await b.send(b"the peer is here")
                await asyncio.sleep(0.02)
            stopped = loop.time()
            while a._query_consent_task is not None:
                await asyncio.sleep(0.02)
        assert loop.time() - stopped >= 0.5  # closed only a consent timeout after the last
        await asyncio.gather(a.close(), b.close())

    asyncio.run(main())
