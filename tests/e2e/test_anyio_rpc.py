"""RPC between `lkproto.transports.anyio.Room` and the official SDK, through a real server.

Every test runs on both anyio backends, and in both directions where that makes sense:
"lk" is our Room, "official" a `livekit.rtc` participant on the helper-thread asyncio loop
(harness/official.py). Both advertise client_protocol 2, so requests and successful
responses travel as RPC v2 text streams; acks and errors are v1 packets (protocol-reference
B.2). Official-side handlers run on the official loop and report through the peer's
thread-safe record (`peer._record`), which the test waits on with `peer.wait_for`.

Timing facts the assertions rely on, all observed against livekit-server 1.13.5 and
livekit 1.2.0:
- The official caller (Rust) tells the handler max(response_timeout - 7 s, 1 s); we tell it
  max(response_timeout, 8 s), as client-sdk-js does. Each callee enforces what it was told.
- The server announces a join or a departure to the others about 3 s after it happens (the
  session announces our join at once: harness/announce.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from livekit import rtc

# Every test runs once per adapter (anyio on asyncio and on trio, trio-native, threaded): the
# fixtures swap this module's `Room` for the adapter under test. See harness/adapters.py.
from harness.adapters import adapter, adapter_room, anyio_backend, threaded  # noqa: F401
from harness.announce import announce
from harness.official import OfficialLoop, OfficialPeer
from lkproto.transports.anyio import (
    Room,
    RoomOptions,
    RpcError,
    RpcInvocationData,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(90)]

LK, OFFICIAL = "lk", "official"
E = RpcError.ErrorCode
APPLICATION_ERROR = "Application error in method handler"
UNSUPPORTED_METHOD = "Method not supported at destination"
BIG = 100 * 1024  # bytes of UTF-8: far over RPC v1's 15360-byte limit


@pytest.fixture
def session(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> Callable[..., contextlib.AbstractAsyncContextManager[tuple[OfficialPeer, Room]]]:
    """`async with session(room=..., lk={token kwargs}, official={token kwargs})`: the official
    peer joins first, then our Room (pass one with handlers registered before connect);
    yields once the official peer has seen us join. Both leave on exit."""

    @contextlib.asynccontextmanager
    async def open_session(
        room: Room | None = None,
        lk: dict[str, Any] | None = None,
        official: dict[str, Any] | None = None,
    ) -> AsyncIterator[tuple[OfficialPeer, Room]]:
        peer = OfficialPeer(official_loop)
        await peer.connect(livekit_server.url, make_token(OFFICIAL, **(official or {})))
        room = room or Room()
        try:
            await room.connect(livekit_server.url, make_token(LK, **(lk or {})), options)
            # Announced at once rather than on the server's next 3 s tick (harness/announce.py).
            await announce(livekit_server, room.name, LK)
            await peer.wait_for(lambda r: ("joined", (LK,)) in r)
            yield peer, room
        finally:
            await room.disconnect()
            await peer.disconnect()

    return open_session


# -- helpers -----------------------------------------------------------------------------------


async def official_register(
    peer: OfficialPeer, method: str, handler: Callable[[rtc.RpcInvocationData], Any]
) -> None:
    """Register `handler` on the official participant (only possible once connected)."""

    async def register(official_room: rtc.Room) -> None:
        official_room.local_participant.register_rpc_method(method, handler)

    await peer.do(register)


async def official_unregister(peer: OfficialPeer, method: str) -> None:
    async def unregister(official_room: rtc.Room) -> None:
        official_room.local_participant.unregister_rpc_method(method)

    await peer.do(unregister)


async def official_call(
    peer: OfficialPeer, method: str, payload: str, *, timeout: float = 30, **kwargs: Any
) -> str:
    """`perform_rpc` from the official participant to us; raises `rtc.RpcError`."""

    async def call(official_room: rtc.Room) -> str:
        return await official_room.local_participant.perform_rpc(
            destination_identity=LK, method=method, payload=payload, **kwargs
        )

    return await peer.do(call, timeout)


async def lk_call(room: Room, method: str, payload: str, **kwargs: Any) -> str:
    with anyio.fail_after(30):
        return await room.local_participant.perform_rpc(
            destination_identity=OFFICIAL, method=method, payload=payload, **kwargs
        )


def fields(error: RpcError | rtc.RpcError) -> tuple[int, str, str | None]:
    return int(error.code), error.message, error.data


async def raises_rpc(call: Awaitable[object]) -> tuple[tuple[int, str, str | None], float]:
    """Await `call`, expecting our `RpcError`; returns (code, message, data) and seconds."""
    start = time.monotonic()
    with pytest.raises(RpcError) as info:
        await call
    return fields(info.value), time.monotonic() - start


async def official_raises_rpc(
    call: Awaitable[object],
) -> tuple[tuple[int, str, str | None], float]:
    """Await `call`, expecting `rtc.RpcError`; returns (code, message, data) and seconds."""
    start = time.monotonic()
    with pytest.raises(rtc.RpcError) as info:
        await call
    return fields(info.value), time.monotonic() - start


def recorder(peer: OfficialPeer, name: str) -> Callable[[rtc.RpcInvocationData], None]:
    """Record an official invocation as (name, (method, caller, payload, timeout, id))."""

    def record(data: rtc.RpcInvocationData) -> None:
        peer._record(
            name,
            data.method,
            data.caller_identity,
            data.payload,
            data.response_timeout,
            data.request_id,
        )

    return record


def big_text(nbytes: int) -> str:
    """Exactly `nbytes` of UTF-8 mixing 1-, 2-, 3- and 4-byte characters, so that stream
    chunk boundaries fall inside multi-byte characters."""
    unit = "lkproto → 官方 RPC v2 😀 ñ; "
    text = unit * (nbytes // len(unit.encode()) + 1)
    cut = text.encode()[: nbytes - 8].decode("utf-8", "ignore")
    return cut + "x" * (nbytes - len(cut.encode()))


# -- tests -------------------------------------------------------------------------------------


async def test_echo_both_ways_with_handlers_registered_before_connect(session: Any) -> None:
    room = Room()
    seen: list[RpcInvocationData] = []

    @room.local_participant.register_rpc_method("echo")
    def echo(data: RpcInvocationData) -> str:  # sync, registered as a decorator
        seen.append(data)
        return data.payload

    async def shout(data: RpcInvocationData) -> str:  # async, registered by a call
        await anyio.sleep(0)
        seen.append(data)
        return data.payload.upper()

    room.local_participant.register_rpc_method("shout", shout)

    async with session(room=room) as (peer, room):
        record = recorder(peer, "invoked")

        def official_echo(data: rtc.RpcInvocationData) -> str:
            record(data)
            return data.payload

        await official_register(peer, "echo", official_echo)

        # lkproto -> official.
        assert await lk_call(room, "echo", "héllo from lk 👋") == "héllo from lk 👋"
        ((method, caller, payload, timeout, request_id),) = peer.of("invoked")
        assert (method, caller, payload) == ("echo", LK, "héllo from lk 👋")
        assert timeout == 15.0  # the default response timeout, as we advertise it
        assert request_id

        # official -> lkproto, to both pre-registered handlers.
        assert await official_call(peer, "echo", "héllo from official") == "héllo from official"
        assert await official_call(peer, "shout", "quiet ✓") == "QUIET ✓"
        assert [(d.method, d.caller_identity, d.payload) for d in seen] == [
            ("echo", OFFICIAL, "héllo from official"),
            ("shout", OFFICIAL, "quiet ✓"),
        ]
        # livekit.rtc tells the handler max(15 s - 7 s, 1 s) by default.
        assert {d.response_timeout for d in seen} == {8.0}
        assert all(d.request_id for d in seen)
        assert len({d.request_id for d in seen} | {request_id}) == 3


async def test_rpc_error_code_message_and_data_arrive_intact_both_ways(session: Any) -> None:
    code, message = 4242, "custom failure ✗ (not built in)"
    data = json.dumps({"reason": "quota", "retry_after_s": 3, "note": "ünïcödé 😀"})
    async with session() as (peer, room):

        def official_fail(_: rtc.RpcInvocationData) -> str:
            raise rtc.RpcError(code, message, data)

        def lk_fail(_: RpcInvocationData) -> str:
            raise RpcError(code, message, data)

        await official_register(peer, "fail", official_fail)
        room.local_participant.register_rpc_method("fail", lk_fail)

        got, _ = await raises_rpc(lk_call(room, "fail", "x"))
        assert got == (code, message, data)
        got, _ = await official_raises_rpc(official_call(peer, "fail", "x"))
        assert got == (code, message, data)


async def test_unknown_method_is_1400_both_ways(session: Any) -> None:
    async with session() as (peer, room):
        room.local_participant.register_rpc_method("known", lambda d: "yes")
        await official_register(peer, "known", lambda d: "yes")

        got, _ = await raises_rpc(lk_call(room, "unknown", "x"))
        assert got == (E.UNSUPPORTED_METHOD, UNSUPPORTED_METHOD, None)
        got, _ = await official_raises_rpc(official_call(peer, "unknown", "x"))
        # livekit.rtc shows "no data" as "", we as None (RpcError.data).
        assert got == (E.UNSUPPORTED_METHOD, UNSUPPORTED_METHOD, "")


async def test_unregistered_method_is_1400_both_ways(session: Any) -> None:
    async with session() as (peer, room):
        room.local_participant.register_rpc_method("temp", lambda d: "here")
        await official_register(peer, "temp", lambda d: "here")
        assert await lk_call(room, "temp", "x") == "here"
        assert await official_call(peer, "temp", "x") == "here"

        room.local_participant.unregister_rpc_method("temp")
        room.local_participant.unregister_rpc_method("temp")  # idempotent
        await official_unregister(peer, "temp")

        got, _ = await raises_rpc(lk_call(room, "temp", "x"))
        assert got == (E.UNSUPPORTED_METHOD, UNSUPPORTED_METHOD, None)
        got, _ = await official_raises_rpc(official_call(peer, "temp", "x"))
        assert got == (E.UNSUPPORTED_METHOD, UNSUPPORTED_METHOD, "")

        # Registering again works.
        room.local_participant.register_rpc_method("temp", lambda d: "back")
        assert await official_call(peer, "temp", "x") == "back"


async def test_a_plain_exception_is_1500_and_leaks_nothing_both_ways(session: Any) -> None:
    secret = "db password hunter2 at /srv/app/secrets.py line 42"

    def explode(_: object) -> str:
        raise ValueError(secret)

    async def explode_async(_: RpcInvocationData) -> str:
        await anyio.sleep(0)
        raise KeyError(secret)

    async with session() as (peer, room):
        room.local_participant.register_rpc_method("explode", explode)
        room.local_participant.register_rpc_method("explode_async", explode_async)
        await official_register(peer, "explode", explode)

        start = time.monotonic()
        with pytest.raises(RpcError) as ours:
            await lk_call(room, "explode", "x")
        assert fields(ours.value) == (E.APPLICATION_ERROR, APPLICATION_ERROR, None)
        for method in ("explode", "explode_async"):
            with pytest.raises(rtc.RpcError) as theirs:
                await official_call(peer, method, "x")
            assert fields(theirs.value) == (E.APPLICATION_ERROR, APPLICATION_ERROR, "")
            assert "hunter2" not in repr(theirs.value) + str(theirs.value)
        assert "hunter2" not in repr(ours.value) + str(ours.value)
        assert time.monotonic() - start < 5
        # A raising handler does not disturb the next call.
        room.local_participant.register_rpc_method("ok", lambda d: "fine")
        assert await official_call(peer, "ok", "x") == "fine"


async def test_a_slow_handler_gives_1502_both_ways(session: Any) -> None:
    async with session() as (peer, room):
        # lkproto -> official: our caller's 2 s deadline passes while the handler sleeps 4 s.
        record = recorder(peer, "slow")

        async def official_slow(data: rtc.RpcInvocationData) -> str:
            record(data)
            await asyncio.sleep(4)
            peer._record("slow-done")
            return "too late"

        await official_register(peer, "slow", official_slow)
        await official_register(peer, "echo", lambda d: d.payload)
        got, elapsed = await raises_rpc(lk_call(room, "slow", "x", response_timeout=2))
        assert got == (E.RESPONSE_TIMEOUT, "Response timeout", None)
        assert 1.9 <= elapsed < 3.5
        # We told the handler JS's minimum effective timeout, max(2 s, 7 s + 1 s).
        ((_, caller, _, timeout, _),) = peer.of("slow")
        assert (caller, timeout) == (LK, 8.0)
        # Its late answer is ignored; the next call gets its own response.
        await peer.wait_for(lambda r: ("slow-done", ()) in r)
        assert await lk_call(room, "echo", "after") == "after"

        # official -> lkproto: livekit.rtc tells our handler max(2 s - 7 s, 1 s) = 1 s; our
        # core enforces that deadline, cancels the handler and answers 1502 itself.
        seen: list[RpcInvocationData] = []
        cancelled = anyio.Event()

        async def lk_slow(data: RpcInvocationData) -> str:
            seen.append(data)
            try:
                await anyio.sleep(10)
            except anyio.get_cancelled_exc_class():
                cancelled.set()
                raise
            return "too late"

        room.local_participant.register_rpc_method("slow", lk_slow)
        got, elapsed = await official_raises_rpc(
            official_call(peer, "slow", "x", response_timeout=2)
        )
        assert got == (E.RESPONSE_TIMEOUT, "Response timeout", "")
        assert elapsed < 2.5
        assert [d.response_timeout for d in seen] == [1.0]
        if not threaded(room):  # a handler on a worker thread cannot be interrupted
            with anyio.fail_after(5):
                await cancelled.wait()


async def _call_while_destination_leaves(peer: OfficialPeer, room: Room) -> list[str]:
    """Call a hanging official handler, make the official participant leave once it runs;
    returns the order in which we saw the call fail (1503) and the participant leave."""
    record = recorder(peer, "hanging")

    async def hang(data: rtc.RpcInvocationData) -> str:
        record(data)
        await asyncio.sleep(60)
        return "never"

    await official_register(peer, "hang", hang)
    order: list[str] = []
    left = anyio.Event()

    def on_left(participant: Any) -> None:
        order.append(f"left:{participant.identity}")
        left.set()

    room.on("participant_disconnected", on_left)

    async def call() -> None:
        got, _ = await raises_rpc(lk_call(room, "hang", "x", response_timeout=30))
        order.append(f"rpc:{got[0]}")
        assert got == (E.RECIPIENT_DISCONNECTED, "Recipient disconnected", None)

    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await peer.wait_for(lambda r: [a for n, a in r if n == "hanging"])
        await peer.disconnect()
        with anyio.fail_after(15):
            await left.wait()
    # Well before the 30 s response timeout (and the 7 s ack timeout).
    assert time.monotonic() - start < 7
    return order


async def test_lkproto_caller_gets_1503_when_the_destination_leaves(session: Any) -> None:
    """Observed: livekit.rtc cancels its running handlers on disconnect and tries to answer
    their callers 1503 as it leaves; that answer races its data channel closing, so the 1503
    comes either from it (before the server announces the departure) or from our own
    participant-update path (next test), whichever is first."""
    async with session() as (peer, room):
        order = await _call_while_destination_leaves(peer, room)
        assert sorted(order) == [f"left:{OFFICIAL}", f"rpc:{E.RECIPIENT_DISCONNECTED}"]


async def test_lkproto_caller_gets_1503_from_the_participant_update(session: Any) -> None:
    """A destination whose answers never arrive (no canPublishData: the server drops its ack
    and its 1503 as it leaves): our caller fails the call with 1503 on the participant update
    that announces the departure, before its 7 s ack timeout. (The threaded adapter runs
    event callbacks on their own thread, so there the two orders are equally right.)"""
    async with session(official={"can_publish_data": False}) as (peer, room):
        order = await _call_while_destination_leaves(peer, room)
        expected = [f"left:{OFFICIAL}", f"rpc:{E.RECIPIENT_DISCONNECTED}"]
        assert (sorted(order) if threaded(room) else order) == expected


async def test_official_caller_gets_1503_when_we_leave(session: Any) -> None:
    """Our Room, like livekit.rtc as a callee, cancels the running handler and answers 1503
    before it leaves, so the caller learns at once. (Without that answer livekit.rtc fails
    the call only ~5 s later, once the server has announced the departure.)"""
    async with session() as (peer, room):
        started, cancelled = anyio.Event(), anyio.Event()

        async def hang(_: RpcInvocationData) -> str:
            started.set()
            try:
                await anyio.sleep(60)
            except anyio.get_cancelled_exc_class():
                cancelled.set()
                raise
            return "never"

        room.local_participant.register_rpc_method("hang", hang)
        outcome: list[tuple[tuple[int, str, str | None], float]] = []

        async def call() -> None:
            outcome.append(
                await official_raises_rpc(official_call(peer, "hang", "x", response_timeout=20))
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(10):
                await started.wait()
            await room.disconnect()
            assert cancelled.is_set() or threaded(room)  # threads run to their end
        ((got, elapsed),) = outcome
        assert got == (E.RECIPIENT_DISCONNECTED, "Recipient disconnected", "")
        assert elapsed < 4


async def test_a_slow_handler_does_not_delay_the_other_traffic(session: Any) -> None:
    """While one of our handlers is busy (awaiting, for as long as the test likes), other
    calls to us, our calls out, and our data packets all complete; the slow call completes
    last, when released. Order, not wall-clock time, is the assertion."""
    room = Room()
    started, release = anyio.Event(), anyio.Event()
    order: list[str] = []

    @room.local_participant.register_rpc_method("slow")
    async def slow(data: RpcInvocationData) -> str:
        started.set()
        await release.wait()
        return "slow done"

    @room.local_participant.register_rpc_method("fast")
    async def fast(data: RpcInvocationData) -> str:
        return f"fast {data.payload}"

    async with session(room=room) as (peer, room):
        await official_register(peer, "pong", lambda d: f"pong {d.payload}")

        async def call_slow() -> None:
            order.append(await official_call(peer, "slow", "", response_timeout=25))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call_slow)
            with anyio.fail_after(15):
                await started.wait()
            for i in range(3):
                order.append(await official_call(peer, "fast", str(i)))
                order.append(await lk_call(room, "pong", str(i)))
            await room.local_participant.publish_data(b"meanwhile", topic="t")
            await peer.wait_for(lambda r: ("data", (LK, b"meanwhile", "t", 1)) in r)
            order.append("data")
            release.set()
    assert order == [
        "fast 0",
        "pong 0",
        "fast 1",
        "pong 1",
        "fast 2",
        "pong 2",
        "data",
        "slow done",
    ]


async def test_five_concurrent_calls_each_get_their_own_response_both_ways(
    session: Any,
) -> None:
    count = 5
    async with session() as (peer, room):
        # Each handler waits until all five calls are in, then answers in reverse order.
        arrived: list[int] = []
        everyone = anyio.Event()

        async def lk_handler(data: RpcInvocationData) -> str:
            i = json.loads(data.payload)["i"]
            arrived.append(i)
            if len(arrived) == count:
                everyone.set()
            with anyio.fail_after(10):
                await everyone.wait()
            await anyio.sleep((count - i) * 0.05)
            return json.dumps({"i": i, "from": "lk", "echo": data.payload})

        official_arrived: list[int] = []
        official_everyone = asyncio.Event()

        async def official_handler(data: rtc.RpcInvocationData) -> str:
            i = json.loads(data.payload)["i"]
            official_arrived.append(i)
            if len(official_arrived) == count:
                official_everyone.set()
            await asyncio.wait_for(official_everyone.wait(), 10)
            await asyncio.sleep((count - i) * 0.05)
            return json.dumps({"i": i, "from": "official", "echo": data.payload})

        room.local_participant.register_rpc_method("work", lk_handler)
        await official_register(peer, "work", official_handler)

        # lkproto -> official.
        results: dict[int, str] = {}

        async def one(i: int) -> None:
            results[i] = await lk_call(room, "work", json.dumps({"i": i}))

        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(one, i)
        assert sorted(official_arrived) == list(range(count))
        for i in range(count):
            assert json.loads(results[i]) == {
                "i": i,
                "from": "official",
                "echo": json.dumps({"i": i}),
            }

        # official -> lkproto.
        async def many(official_room: rtc.Room) -> list[str]:
            calls = [
                official_room.local_participant.perform_rpc(
                    destination_identity=LK, method="work", payload=json.dumps({"i": i})
                )
                for i in range(count)
            ]
            return list(await asyncio.gather(*calls))

        replies = await peer.do(many)
        assert sorted(arrived) == list(range(count))
        assert [json.loads(r) for r in replies] == [
            {"i": i, "from": "lk", "echo": json.dumps({"i": i})} for i in range(count)
        ]


async def test_a_100_kib_payload_round_trips_over_rpc_v2_both_ways(session: Any) -> None:
    payload = big_text(BIG)
    assert len(payload.encode()) == BIG
    async with session() as (peer, room):
        # Both advertise client_protocol 2, so v2 (data streams) carries it: v1 would refuse
        # anything over 15360 bytes with 1402.
        assert room.remote_participants[OFFICIAL].info.client_protocol >= 1
        assert room.local_participant.info.client_protocol >= 1
        got_by_lk: list[str] = []

        def lk_reverse(data: RpcInvocationData) -> str:
            got_by_lk.append(data.payload)
            return data.payload[::-1]

        def official_reverse(data: rtc.RpcInvocationData) -> str:
            peer._record("big", len(data.payload), data.payload == payload)
            return data.payload[::-1]

        room.local_participant.register_rpc_method("reverse", lk_reverse)
        await official_register(peer, "reverse", official_reverse)

        assert await lk_call(room, "reverse", payload) == payload[::-1]
        assert peer.of("big") == [(len(payload), True)]
        assert await official_call(peer, "reverse", payload) == payload[::-1]
        assert got_by_lk == [payload]


async def test_lkproto_caller_without_can_publish_data_fails_fast_with_1505(
    session: Any,
) -> None:
    async with session(lk={"can_publish_data": False}) as (peer, room):
        await official_register(peer, "echo", recorder(peer, "invoked"))
        got, elapsed = await raises_rpc(lk_call(room, "echo", "x"))
        assert got == (
            E.SEND_FAILED,
            "Failed to send",
            "this participant lacks canPublishData: the server drops its data packets",
        )
        assert elapsed < 1
        # Refused locally: nothing was sent, so nothing reached the official handler.
        assert peer.of("invoked") == []


async def test_official_caller_without_can_publish_data_times_out_with_1501(
    session: Any,
) -> None:
    """Observed: livekit.rtc sends the request anyway; the server drops it, so the caller
    waits for an ack that never comes and fails with 1501 CONNECTION_TIMEOUT after
    max_round_trip_latency (7 s by default; 2 s here to keep the test short). We refuse
    at once with 1505 (previous test)."""
    async with session(official={"can_publish_data": False}) as (peer, room):
        seen: list[RpcInvocationData] = []
        room.local_participant.register_rpc_method("echo", seen.append)  # type: ignore[arg-type]
        got, elapsed = await official_raises_rpc(
            official_call(peer, "echo", "x", max_round_trip_latency=2)
        )
        assert got == (E.CONNECTION_TIMEOUT, "Connection timeout", "")
        assert 1.9 <= elapsed < 4
        assert seen == []
