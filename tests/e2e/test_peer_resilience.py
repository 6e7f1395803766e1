"""Resume and full reconnect with independent peers: `livekit-client` 2.23.0 in Chromium and
the Go SDK v2.19.0, through a real livekit-server (issue 24).

test_resilience.py proves resume and rejoin with the official Python SDK as the other side;
this module does the same with the other two peers of the interop matrix, on every lkproto
adapter (harness/adapters.py), both directions:

- both sides resume while reliable packets flow both ways: each side sends `COUNT` numbered
  packets, lkproto resumes (`SimulateScenario.SIGNAL_RECONNECT`) before its `LK_RESUMES_AT`th
  and the peer before its `PEER_RESUMES_AT`th, through its own SDK's simulation
  (livekit-client `room.simulateScenario('signal-reconnect')`, the Go SDK
  `Room.Simulate(SimulateSignalReconnect)`): both close their signal connection as if it had
  dropped and resume over a new one. Every packet arrives exactly once, in order, on both
  sides (a marker sent last proves nothing more is on its way); lkproto reports one
  reconnecting and one reconnected, the peer its own resume, and neither sees the other leave.
- lkproto rejoins (`SimulateScenario.FULL_RECONNECT`) while sending numbered packets: the
  peer gets each exactly once, in order (what the old session's server did not forward is
  sent again in the new one), lkproto reports the peer leaving and coming back (a new
  session), and the peer's packets reach the new session.

What the peer SDKs report, as asserted here:
- a resume of their own: the Go SDK calls OnReconnecting, then OnReconnected; livekit-client
  emits SignalReconnecting (which the page does not record), then Reconnected;
- lkproto's rejoin: nothing. Both get the rejoined participant as a ParticipantInfo with a
  new sid under the same identity and no DISCONNECTED one (either SDK would report that as
  a leave), and apply it in place: the Go SDK only logs "participant sid update" (checked in
  its log, as nothing else shows it), livekit-client updates the participant silently.
  lkproto stays in their participant list, once. (The official Python SDK reports a leave
  and a join.)

The JS tests share the JS modules' xdist group (one browser per module, tests one at a time on
one worker); the Go peer is a process per test (harness/gopeer.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from harness.adapters import adapter, adapter_room, anyio_backend  # noqa: F401
from harness.announce import announce
from harness.gopeer import GoPeer, go_peer, unb64
from harness.jspeer import JsBrowser, JsPeer, browser_fixture
from harness.recorder import Recorder
from lkproto.transports.anyio import (
    ConnectionState,
    Room,
    RoomOptions,
    SimulateScenario,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(60)]
JS_GROUP = pytest.mark.xdist_group("js-peer")  # the JS modules' group: one browser at a time

LK = "lk"
TOPIC = "seq"
COUNT = 50  # numbered packets each way
LK_RESUMES_AT = 15  # lkproto resumes after sending this many
PEER_RESUMES_AT = 30  # the peer resumes after sending this many
INTERVAL = 0.02  # between two sends of one side
END = b"end"

browser = browser_fixture("js-resilience")


def numbered(sender: str, n: int) -> bytes:
    """Packet `n` of `sender`: its number, then 1 KiB of a byte that depends on it."""
    return f"{sender}:{n:03d}:".encode() + bytes([n % 251]) * 1024


def sent_by(sender: str) -> list[bytes]:
    return [numbered(sender, n) for n in range(COUNT)] + [END]


class Other:
    """The peer of a test, JS or Go, behind the few verbs these tests need."""

    identity: str
    #: What the peer's SDK reports for its own resume (see the module docstring).
    RESUME_EVENTS: tuple[str, ...] = ("reconnecting", "reconnected")

    async def publish(self, data: bytes) -> None:
        raise NotImplementedError

    def received(self) -> list[bytes]:
        """The payloads lkproto sent to the peer on `TOPIC`, in the order they arrived."""
        raise NotImplementedError

    def names(self) -> list[tuple[str, str | None]]:
        """(event, identity) of the peer's participant and reconnect events, in order."""
        raise NotImplementedError

    async def wait(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        raise NotImplementedError

    async def resume(self) -> None:
        raise NotImplementedError

    async def remotes(self) -> list[str]:
        """The identities the peer's SDK lists as remote participants now."""
        raise NotImplementedError


class JsOther(Other):
    # A resume emits SignalReconnecting (not recorded by the page), then Reconnected.
    RESUME_EVENTS = ("reconnected",)

    def __init__(self, js: JsPeer) -> None:
        self.js, self.identity = js, js.identity

    async def publish(self, data: bytes) -> None:
        await self.js.publish_data(data, topic=TOPIC)

    def received(self) -> list[bytes]:
        return [a[1] for a in self.js.of("data") if a[0] == LK and a[2] == TOPIC]

    def names(self) -> list[tuple[str, str | None]]:
        kinds = ("participant_connected", "participant_disconnected", "reconnecting", "reconnected")
        return [(n, a[0] if a else None) for n, a in list(self.js.records) if n in kinds]

    async def wait(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        await self.js.wait_for(lambda _: predicate(), timeout=timeout)

    async def resume(self) -> None:
        await self.js.simulate_scenario("signal-reconnect")

    async def remotes(self) -> list[str]:
        return await self.js.remotes()


class GoOther(Other):
    def __init__(self, go: GoPeer) -> None:
        self.go, self.identity = go, str(go.identity)

    async def publish(self, data: bytes) -> None:
        await self.go.publish_data(data, topic=TOPIC)

    def received(self) -> list[bytes]:
        return [
            unb64(f["payload"])
            for f in self.go.of("data")
            if f["sender"] == LK and f["topic"] == TOPIC
        ]

    def names(self) -> list[tuple[str, str | None]]:
        kinds = ("participant_connected", "participant_disconnected", "reconnecting", "reconnected")
        return [(n, f.get("identity")) for n, f in list(self.go.records) if n in kinds]

    async def wait(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        await self.go.wait_for(lambda _: predicate(), timeout=timeout)

    async def resume(self) -> None:
        await self.go.simulate("signal_reconnect")

    async def remotes(self) -> list[str]:
        return [str(i) for i in (await self.go.do("participants"))["participants"]]

    async def logged_new_sid(self, identity: str, timeout: float = 10) -> bool:
        """Whether the SDK logs the new sid of `identity` within `timeout`: its only trace of
        a rejoin (`Room.OnParticipantUpdate`), so the log is polled, every 0.1 s."""
        line = f'"msg"="participant sid update" "participant"="{identity}"'
        with anyio.move_on_after(timeout):
            while line not in self.go.stderr_tail(1000):
                await anyio.sleep(0.1)
            return True
        return False


Session = Callable[[], contextlib.AbstractAsyncContextManager[tuple[Any, Recorder, Other]]]


@pytest.fixture
def js_session(
    livekit_server: Any, make_token: Any, options: RoomOptions, browser: JsBrowser
) -> Session:
    """The JS peer joins, then our Room; yields once the JS peer knows us (the server would
    announce us to it on its next 3 s tick; harness/announce.py has it do so at once)."""

    @contextlib.asynccontextmanager
    async def open_session() -> AsyncIterator[tuple[Any, Recorder, Other]]:
        js = await browser.open()
        room = Room()
        seen = recorder(room)
        try:
            assert await js.connect(livekit_server.url, make_token("js")) == []
            with anyio.fail_after(30):
                await room.connect(livekit_server.url, make_token(LK), options)
            assert list(room.remote_participants) == ["js"]
            await announce(livekit_server, room.name, LK)  # at once, not on the 3 s tick
            await js.wait_for(lambda r: ("participant_connected", (LK,)) in r)
            yield room, seen, JsOther(js)
            assert js.of("page_error") == []
        finally:
            await room.disconnect()
            await js.close()

    return open_session


@pytest.fixture
def go_session(
    livekit_server: Any, make_token: Any, options: RoomOptions, confinement: Any, tmp_path: Path
) -> Session:
    """The Go peer joins, then our Room; yields once the Go peer knows us (the server would
    announce us on its next 3 s tick; harness/announce.py has it do so at once)."""
    if confinement.mode != "netns":
        pytest.skip("the Go peer can be confined only by the harness's network namespace (root)")

    @contextlib.asynccontextmanager
    async def open_session() -> AsyncIterator[tuple[Any, Recorder, Other]]:
        async with go_peer(confinement, tmp_path) as go:
            room = Room()
            seen = recorder(room)
            try:
                await go.connect(livekit_server.url, make_token("go"))
                with anyio.fail_after(30):
                    await room.connect(livekit_server.url, make_token(LK), options)
                assert list(room.remote_participants) == ["go"]
                await announce(livekit_server, room.name, LK)  # at once, not on the 3 s tick
                await go.wait_event("participant_connected", lambda f: f["identity"] == LK)
                yield room, seen, GoOther(go)
            finally:
                await room.disconnect()

    return open_session


def recorder(room: Any) -> Recorder:
    return Recorder(
        room,
        "reconnecting",
        "reconnected",
        "disconnected",
        "data_received",
        "participant_connected",
        "participant_disconnected",
        timeout=20,
    )


def received_by_lk(seen: Recorder, sender: str) -> list[bytes]:
    return [
        a[0].data
        for a in seen.of("data_received")
        if a[0].participant is not None
        and a[0].participant.identity == sender
        and a[0].topic == TOPIC
    ]


async def both_sides_resuming(session: Session) -> None:
    async with session() as (room, seen, peer):
        with anyio.fail_after(40):

            async def lk_sends() -> None:
                for n in range(COUNT):
                    if n == LK_RESUMES_AT:
                        await room.simulate_scenario(SimulateScenario.SIGNAL_RECONNECT)
                    await room.local_participant.publish_data(
                        numbered(LK, n), reliable=True, topic=TOPIC
                    )
                    await anyio.sleep(INTERVAL)
                await room.local_participant.publish_data(END, reliable=True, topic=TOPIC)

            async def peer_sends() -> None:
                for n in range(COUNT):
                    if n == PEER_RESUMES_AT:
                        await peer.resume()
                    await peer.publish(numbered(peer.identity, n))
                    await anyio.sleep(INTERVAL)
                await peer.publish(END)

            async with anyio.create_task_group() as tg:
                tg.start_soon(lk_sends)
                tg.start_soon(peer_sends)
            # The reliable channel is ordered: once the marker is in, so is everything before.
            await peer.wait(lambda: END in peer.received())
            await seen.wait_for(lambda: END in received_by_lk(seen, peer.identity))
            await peer.wait(lambda: ("reconnected", None) in peer.names())
            await seen.wait_for(lambda: seen.of("reconnected"))
        # Exactly once, in order, both ways.
        assert peer.received() == sent_by(LK)
        assert received_by_lk(seen, peer.identity) == sent_by(peer.identity)
        # One resume each, and nobody left: a resume keeps the session.
        assert seen.names().count("reconnecting") == seen.names().count("reconnected") == 1
        assert "participant_disconnected" not in seen.names()
        assert "disconnected" not in seen.names()
        assert room.connection_state == ConnectionState.CONN_CONNECTED
        resumes = [n for n, _ in peer.names() if n in ("reconnecting", "reconnected")]
        assert tuple(resumes) == peer.RESUME_EVENTS
        assert ("participant_disconnected", LK) not in peer.names()


async def lkproto_rejoining(session: Session) -> None:
    async with session() as (room, seen, peer):
        with anyio.fail_after(40):
            before = len(peer.names())
            # Numbered packets across the rejoin: what the old session's server did not
            # forward is sent again in the new session (lkproto/_reconnect.py), exactly once.
            for n in range(COUNT):
                if n == LK_RESUMES_AT:
                    # Not across a packet the server's SCTP took but had not yet forwarded:
                    # livekit-server drops what a session it has just closed (the rejoin's
                    # DUPLICATE_IDENTITY) still delivers (participant.go,
                    # onReceivedDataMessage: IsDisconnected), and nothing tells a client
                    # which those were. CI run G lost packet 14, sent 20 ms before.
                    await peer.wait(lambda: numbered(LK, LK_RESUMES_AT - 1) in peer.received())
                    await room.simulate_scenario(SimulateScenario.FULL_RECONNECT)
                await room.local_participant.publish_data(
                    numbered(LK, n), reliable=True, topic=TOPIC
                )
                await anyio.sleep(INTERVAL)
            await room.local_participant.publish_data(END, reliable=True, topic=TOPIC)
            await seen.wait_for(lambda: seen.of("reconnected"))
            assert room.connection_state == ConnectionState.CONN_CONNECTED
            # lkproto reports the rejoin as the peer leaving and coming back (a new session).
            await seen.wait_for(lambda: seen.of("participant_connected"))
            await peer.wait(lambda: END in peer.received())
            # The new session carries data from the peer too.
            await peer.publish(b"after")
            await seen.wait_for(lambda: b"after" in received_by_lk(seen, peer.identity))
            remotes = await peer.remotes()
        assert peer.received() == sent_by(LK)
        assert received_by_lk(seen, peer.identity) == [b"after"]
        assert seen.names().count("reconnecting") == seen.names().count("reconnected") == 1
        people = [n for n in seen.names() if n.startswith("participant_")]
        assert people == ["participant_disconnected", "participant_connected"]
        assert room.connection_state == ConnectionState.CONN_CONNECTED
        # The server announces the rejoined lkproto only as a new ParticipantInfo (a new sid)
        # under the same identity; both SDKs update the participant in place: no leave, no
        # join, no resume of their own, and lkproto is still (and only once) in their room.
        assert peer.names()[before:] == []
        assert remotes == [LK]
        if isinstance(peer, GoOther):
            assert await peer.logged_new_sid(LK)


@JS_GROUP
async def test_js_both_sides_resume_while_reliable_packets_flow_both_ways(
    js_session: Session,
) -> None:
    await both_sides_resuming(js_session)


@JS_GROUP
async def test_js_sees_lkproto_rejoin_and_data_crosses_after(js_session: Session) -> None:
    await lkproto_rejoining(js_session)


async def test_go_both_sides_resume_while_reliable_packets_flow_both_ways(
    go_session: Session,
) -> None:
    await both_sides_resuming(go_session)


async def test_go_sees_lkproto_rejoin_and_data_crosses_after(go_session: Session) -> None:
    await lkproto_rejoining(go_session)
