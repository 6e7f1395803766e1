"""`lkproto.transports.threaded.Room` (blocking) against the official SDK, on a real server.

These are plain synchronous tests, written the way a threaded application uses the adapter:
no event loop in the test thread. The official participant lives on the shared asyncio loop
thread (harness/official.py); `Official` below drives it with short `anyio.run` calls, and
`Official.soon` starts an official action in the background (a `concurrent.futures.Future`).
What our Room's handlers and callbacks see is recorded in an `Inbox` (a list under a
`threading.Condition`), so the tests wait on predicates, never on sleeps.

Child processes (multiprocessing "fork" and "spawn") run harness/threaded_child.py and
report over a pipe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import faulthandler
import functools
import hashlib
import itertools
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from livekit import rtc

from harness import threaded_child
from harness.official import OfficialLoop, OfficialPeer
from lkproto.transports.threaded import (
    ByteStreamReader,
    ConnectionState,
    DataPacket,
    DataPacketKind,
    Room,
    RoomOptions,
    RpcError,
    RpcInvocationData,
    TextStreamReader,
    TransportClosedError,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

T = TypeVar("T")
LK, OFFICIAL = "lk", "official"
E = RpcError.ErrorCode
DISPATCHER = "lkproto-events_0"  # the one thread running our room.on(...) callbacks
HANDLER = "lkproto-handler_"  # the prefix of the threads running our RPC/stream handlers


class Official:
    """The official participant, driven from a synchronous test."""

    def __init__(self, loop: OfficialLoop) -> None:
        self.loop = loop
        self.peer = OfficialPeer(loop)

    def connect(self, url: str, token: str) -> None:
        anyio.run(self.peer.connect, url, token)

    def wait_for(self, predicate: Callable[[list[Any]], T | None], timeout: float = 15) -> T:
        return anyio.run(functools.partial(self.peer.wait_for, predicate, timeout))

    def do(self, fn: Callable[[rtc.Room], Awaitable[T]], timeout: float = 30) -> T:
        return anyio.run(functools.partial(self.peer.do, fn, timeout))

    def soon(self, fn: Callable[[rtc.Room], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Start `fn(room)` on the official loop; don't wait for it."""
        room = self.peer.room
        assert room is not None

        async def run() -> T:
            return await fn(room)

        return asyncio.run_coroutine_threadsafe(run(), self.loop.loop)

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return self.peer.of(kind)

    def register_rpc(self, method: str, handler: Callable[[rtc.RpcInvocationData], Any]) -> None:
        async def register(room: rtc.Room) -> None:
            room.local_participant.register_rpc_method(method, handler)

        self.do(register)

    def call(self, method: str, payload: str, **kwargs: Any) -> str:
        return self.do(
            lambda r: r.local_participant.perform_rpc(
                destination_identity=LK, method=method, payload=payload, **kwargs
            )
        )

    def record_streams(self) -> None:
        """Record every text stream on "chat" and byte stream on "files" that reaches it."""
        peer = self.peer
        # Each text stream is read by a task of its own, so they may finish in any order; a
        # record carries the rank of its header's arrival, which follows the sending order.
        headers = itertools.count()

        def on_text(reader: Any, identity: str) -> None:
            rank = next(headers)

            async def read() -> None:
                text = await reader.read_all()
                info = reader.info
                attributes = dict(info.attributes or {})
                peer._record("text", rank, identity, info.topic, attributes, text)

            peer.spawn(read())

        def on_bytes(reader: Any, identity: str) -> None:
            async def read() -> None:
                digest, size = hashlib.sha256(), 0
                async for chunk in reader:
                    digest.update(chunk)
                    size += len(chunk)
                peer._record("file", identity, reader.info.name, size, digest.hexdigest())

            peer.spawn(read())

        async def register(room: rtc.Room) -> None:
            room.register_text_stream_handler("chat", on_text)
            room.register_byte_stream_handler("files", on_bytes)

        self.do(register)

    def disconnect(self) -> None:
        anyio.run(self.peer.disconnect)


class Inbox:
    """What our handlers and callbacks saw, from any thread, with a waitable condition."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []
        self._cond = threading.Condition()

    def add(self, *item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        with self._cond:
            return [i[1:] for i in self.items if i[0] == kind]

    def wait(self, predicate: Callable[[Inbox], object], timeout: float = 30) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"inbox: condition not met in {timeout}s; saw {self.items!r}")


def thread() -> str:
    return threading.current_thread().name


def io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lkproto-io"]


@pytest.fixture
def session(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> Callable[..., contextlib.AbstractContextManager[tuple[Official, Room]]]:
    """`with session(room) as (official, room)`: the official peer joins, then our Room (pass
    one with handlers registered); yields once the official peer has seen us join."""

    @contextlib.contextmanager
    def open_session(room: Room | None = None, **grants: Any) -> Iterator[tuple[Official, Room]]:
        official = Official(official_loop)
        official.connect(livekit_server.url, make_token(OFFICIAL))
        room = room or Room()
        try:
            room.connect(livekit_server.url, make_token(LK, **grants), options)
            official.wait_for(lambda r: ("joined", (LK,)) in r)
            yield official, room
        finally:
            room.disconnect()
            official.disconnect()

    return open_session


# -- 1. the blocking API against the official SDK ----------------------------------------------


def test_join_data_attributes_and_the_context_manager_leaving(
    livekit_server: Any, make_token: Any, options: RoomOptions, official_loop: OfficialLoop
) -> None:
    official = Official(official_loop)
    official.connect(livekit_server.url, make_token(OFFICIAL))
    seen = Inbox()
    try:
        with Room() as room:
            room.on("connection_state_changed", lambda s: seen.add("state", s, thread()))
            room.on("connected", lambda: seen.add("connected", thread()))
            room.on(
                "data_received",
                lambda p: seen.add("data", p.participant.identity, p.data, p.topic, p.kind, p),
            )
            room.on(
                "participant_attributes_changed",
                lambda changed, p: seen.add("attributes", changed, p is room.local_participant),
            )
            room.on("disconnected", lambda reason: seen.add("disconnected", reason.name))
            room.connect(livekit_server.url, make_token(LK, can_update_own_metadata=True), options)
            # connect() returns once the callbacks for the join ran, on the dispatcher thread.
            assert seen.items == [
                ("state", ConnectionState.CONN_CONNECTED, DISPATCHER),
                ("connected", DISPATCHER),
            ]
            assert room.isconnected()
            assert room.connection_state == ConnectionState.CONN_CONNECTED
            assert list(room.remote_participants) == [OFFICIAL]
            assert room.local_participant.identity == LK
            assert room.sid.startswith("RM_")
            (io,) = io_threads()
            official.wait_for(lambda r: ("joined", (LK,)) in r)

            # lkproto -> official: reliable with a topic, lossy, str payload.
            room.local_participant.publish_data(b"hello official", topic="greet")
            room.local_participant.publish_data("lossy text ✓", reliable=False, topic="fast")
            official.wait_for(lambda r: len([a for n, a in r if n == "data"]) == 2)
            assert sorted(official.of("data")) == [
                (LK, b"hello official", "greet", 1),
                (LK, "lossy text ✓".encode(), "fast", 0),
            ]
            # official -> lkproto.
            official.do(lambda r: r.local_participant.publish_data(b"hello lk", topic="greet"))
            seen.wait(lambda s: s.of("data"))
            ((identity, data, topic, kind, packet),) = seen.of("data")
            assert (identity, data, topic, kind) == (
                OFFICIAL,
                b"hello lk",
                "greet",
                DataPacketKind.KIND_RELIABLE,
            )
            assert isinstance(packet, DataPacket)
            assert packet.participant is room.remote_participants[OFFICIAL]

            room.local_participant.set_attributes({"mood": "blocking"})
            official.wait_for(lambda r: ("attributes", (LK, {"mood": "blocking"})) in r)
            seen.wait(lambda s: s.of("attributes"))
            # Callbacks get this Room's own LocalParticipant object.
            assert seen.of("attributes") == [({"mood": "blocking"}, True)]
            assert room.local_participant.attributes == {"mood": "blocking"}
        # Leaving the block left the room, ran the last callbacks and joined the I/O thread.
        assert not room.isconnected()
        assert seen.items[-2:] == [
            ("state", ConnectionState.CONN_DISCONNECTED, DISPATCHER),
            ("disconnected", "CLIENT_INITIATED"),
        ]
        assert not io.is_alive()
        assert io_threads() == []
        official.wait_for(lambda r: ("left", (LK,)) in r)
        with pytest.raises(
            TransportClosedError, match=r"^publish_data: the room is not connected$"
        ):
            room.local_participant.publish_data(b"too late")

        # A second Room in the same process, after the first was closed, works.
        with Room() as second:
            second.connect(livekit_server.url, make_token("lk2"), options)
            official.wait_for(lambda r: ("joined", ("lk2",)) in r)
            second.local_participant.publish_data(b"from the second room")
            official.wait_for(lambda r: ("data", ("lk2", b"from the second room", "", 1)) in r)
        assert io_threads() == []
    finally:
        official.disconnect()


def test_rpc_both_ways_with_error_codes_and_timeouts(session: Any) -> None:
    room = Room()
    handled: list[tuple[str, str, str, str]] = []

    @room.local_participant.register_rpc_method("echo")
    def echo(data: RpcInvocationData) -> str:
        handled.append((data.method, data.caller_identity, data.payload, thread()))
        return data.payload

    def fail(data: RpcInvocationData) -> str:
        raise RpcError(4243, "ours failed ✗", '{"why": "quota"}')

    def explode(data: RpcInvocationData) -> str:
        raise ValueError("db password hunter2")

    def nested(data: RpcInvocationData) -> str:
        # A handler may call back into the room: publish, and call the caller back.
        room.local_participant.publish_data(b"from inside a handler", topic="nested")
        back = room.local_participant.perform_rpc(
            destination_identity=data.caller_identity, method="echo", payload="back"
        )
        return f"{data.payload}+{back}"

    room.local_participant.register_rpc_method("fail", fail)
    room.local_participant.register_rpc_method("explode", explode)
    room.local_participant.register_rpc_method("nested", nested)

    with session(room) as (official, room):

        def official_fail(_: rtc.RpcInvocationData) -> str:
            raise rtc.RpcError(4242, "theirs failed ✗", "details")

        async def official_slow(_: rtc.RpcInvocationData) -> str:
            await asyncio.sleep(4)
            return "too late"

        official.register_rpc("echo", lambda d: d.payload)
        official.register_rpc("fail", official_fail)
        official.register_rpc("slow", official_slow)
        me = room.local_participant

        # lkproto -> official.
        assert me.perform_rpc(destination_identity=OFFICIAL, method="echo", payload="héllo") == (
            "héllo"
        )
        with pytest.raises(RpcError) as error:
            me.perform_rpc(destination_identity=OFFICIAL, method="fail", payload="x")
        assert (error.value.code, error.value.message, error.value.data) == (
            4242,
            "theirs failed ✗",
            "details",
        )
        with pytest.raises(RpcError) as error:
            me.perform_rpc(destination_identity=OFFICIAL, method="missing", payload="x")
        assert error.value.code == E.UNSUPPORTED_METHOD
        start = time.monotonic()
        with pytest.raises(RpcError) as error:
            me.perform_rpc(
                destination_identity=OFFICIAL, method="slow", payload="x", response_timeout=2
            )
        elapsed = time.monotonic() - start
        assert (error.value.code, error.value.message) == (E.RESPONSE_TIMEOUT, "Response timeout")
        assert 1.9 <= elapsed < 3.5  # the call blocked for its response timeout, no longer

        # official -> lkproto: our handlers run on handler threads.
        assert official.call("echo", "from official ✓") == "from official ✓"
        assert handled == [("echo", OFFICIAL, "from official ✓", handled[0][3])]
        assert handled[0][3].startswith(HANDLER)
        with pytest.raises(rtc.RpcError) as theirs:
            official.call("fail", "x")
        assert (theirs.value.code, theirs.value.message, theirs.value.data) == (
            4243,
            "ours failed ✗",
            '{"why": "quota"}',
        )
        with pytest.raises(rtc.RpcError) as theirs:
            official.call("explode", "x")
        assert theirs.value.code == E.APPLICATION_ERROR
        assert "hunter2" not in str(theirs.value) + repr(theirs.value)
        assert official.call("nested", "ping") == "ping+back"
        official.wait_for(lambda r: ("data", (LK, b"from inside a handler", "nested", 1)) in r)


def test_text_and_byte_streams_both_ways(session: Any, tmp_path: Path) -> None:
    room = Room()
    inbox = Inbox()

    def on_text(reader: TextStreamReader, identity: str) -> None:
        chunks = list(reader)  # a blocking iterator, on a handler thread
        info = reader.info
        inbox.add("text", identity, info.topic, info.attributes, "".join(chunks), thread())

    def on_bytes(reader: ByteStreamReader, identity: str) -> None:
        data = reader.read_all()
        inbox.add("bytes", identity, reader.info.name, hashlib.sha256(data).hexdigest())

    room.register_text_stream_handler("chat", on_text)
    room.register_byte_stream_handler("files", on_bytes)
    payload = os.urandom(300_000)
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()

    with session(room) as (official, room):
        official.record_streams()
        me = room.local_participant
        # lkproto -> official: one-shot text, a text writer, a file, a byte writer.
        info = me.send_text("héllo 😀", topic="chat", attributes={"k": "v"})
        assert (info.topic, info.attributes) == ("chat", {"k": "v"})
        with me.stream_text(topic="chat") as writer:
            writer.write("part one, ")
            writer.write("part two")
        official.wait_for(lambda r: len([a for n, a in r if n == "text"]) == 2)
        assert sorted(official.of("text"), key=lambda record: record[0]) == [
            (0, LK, "chat", {"k": "v"}, "héllo 😀"),
            (1, LK, "chat", {}, "part one, part two"),
        ]
        progress: list[tuple[int, int | None, str]] = []
        sent = me.send_file(
            source, topic="files", on_progress=lambda s, t: progress.append((s, t, thread()))
        )
        assert (sent.name, sent.size) == ("payload.bin", len(payload))
        assert progress[-1] == (len(payload), len(payload), "MainThread")  # the calling thread
        assert all(a[0] < b[0] for a, b in itertools.pairwise(progress))
        with me.stream_bytes("written.bin", topic="files") as bytes_writer:
            bytes_writer.write(payload[:1000])
            bytes_writer.write(payload[1000:])
        official.wait_for(lambda r: len([a for n, a in r if n == "file"]) == 2)
        assert sorted(official.of("file")) == [
            (LK, "payload.bin", len(payload), digest),
            (LK, "written.bin", len(payload), digest),
        ]

        # official -> lkproto: our handlers read with blocking readers on handler threads.
        official.do(
            lambda r: r.local_participant.send_text(
                "from official ✓", topic="chat", attributes={"a": "b"}
            )
        )
        official.do(lambda r: r.local_participant.send_file(str(source), topic="files"))
        inbox.wait(lambda i: i.of("text") and i.of("bytes"))
        ((identity, topic, attributes, text, where),) = inbox.of("text")
        assert (identity, topic, attributes, text) == (
            OFFICIAL,
            "chat",
            {"a": "b"},
            "from official ✓",
        )
        assert where.startswith(HANDLER)
        assert inbox.of("bytes") == [(OFFICIAL, "payload.bin", digest)]


# -- 2. many threads at once ------------------------------------------------------------------


def test_rpc_and_publish_data_from_four_threads_at_once(session: Any) -> None:
    threads, rounds = 4, 5
    room = Room()
    # Five official calls at once must meet in our handler: only possible if they run at once.
    barrier = threading.Barrier(5, timeout=15)

    def meet(data: RpcInvocationData) -> str:
        barrier.wait()
        return f"met {data.payload} on {thread()[: len(HANDLER)]}"

    room.local_participant.register_rpc_method("meet", meet)
    with session(room) as (official, room):
        official.register_rpc("echo", lambda d: d.payload.upper())
        results: dict[str, str] = {}
        errors: list[BaseException] = []
        start = threading.Barrier(threads, timeout=15)

        def work(n: int) -> None:
            try:
                start.wait()
                for i in range(rounds):
                    tag = f"t{n}-{i}"
                    results[tag] = room.local_participant.perform_rpc(
                        destination_identity=OFFICIAL, method="echo", payload=tag
                    )
                    room.local_participant.publish_data(tag.encode(), topic="threads")
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert errors == []
        tags = [f"t{n}-{i}" for n in range(threads) for i in range(rounds)]
        assert results == {tag: tag.upper() for tag in tags}
        official.wait_for(lambda r: len([a for n, a in r if n == "data"]) == len(tags))
        received = [data.decode() for _, data, _, _ in official.of("data")]
        assert sorted(received) == sorted(tags)
        for n in range(threads):  # each thread's packets arrive in its order (reliable, ordered)
            assert [t for t in received if t.startswith(f"t{n}-")] == [
                f"t{n}-{i}" for i in range(rounds)
            ]

        async def five(r: rtc.Room) -> list[str]:
            calls = [
                r.local_participant.perform_rpc(
                    destination_identity=LK, method="meet", payload=str(i)
                )
                for i in range(5)
            ]
            return list(await asyncio.gather(*calls))

        assert official.do(five) == [f"met {i} on {HANDLER}" for i in range(5)]


# -- 3. a slow user handler does not delay other traffic ----------------------------------------


def test_a_slow_rpc_handler_does_not_delay_other_traffic(session: Any) -> None:
    room = Room()
    inbox = Inbox()
    started, release = threading.Event(), threading.Event()

    def slow(data: RpcInvocationData) -> str:
        started.set()
        release.wait(30)  # holds its handler thread until the test lets go
        return "slow done"

    room.local_participant.register_rpc_method("slow", slow)
    room.local_participant.register_rpc_method("fast", lambda d: f"fast {d.payload}")
    room.on("data_received", lambda p: inbox.add("data", p.data))
    with session(room) as (official, room):
        official.register_rpc("echo", lambda d: d.payload)
        slow_call = official.soon(
            lambda r: r.local_participant.perform_rpc(
                destination_identity=LK, method="slow", payload="", response_timeout=30
            )
        )
        assert started.wait(15)
        # While the slow handler runs: RPC both ways and data both ways still flow.
        t0 = time.monotonic()
        assert official.call("fast", "1") == "fast 1"
        official.do(lambda r: r.local_participant.publish_data(b"during", topic="t"))
        inbox.wait(lambda i: ("data", b"during") in i.items)
        assert (
            room.local_participant.perform_rpc(
                destination_identity=OFFICIAL, method="echo", payload="ping"
            )
            == "ping"
        )
        room.local_participant.publish_data(b"still flowing")
        official.wait_for(lambda r: ("data", (LK, b"still flowing", "", 1)) in r)
        during = time.monotonic() - t0
        assert not slow_call.done()  # all of the above happened inside the slow call
        release.set()
        assert slow_call.result(15) == "slow done"
        assert during < 5, f"traffic took {during:.2f}s while a handler was busy"


def test_a_slow_event_callback_delays_only_later_callbacks(session: Any) -> None:
    room = Room()
    inbox = Inbox()
    blocked, release = threading.Event(), threading.Event()

    def on_data(packet: DataPacket) -> None:
        inbox.add("data", packet.data)
        if packet.data == b"block":
            blocked.set()
            release.wait(30)  # holds the dispatcher thread until the test lets go

    room.on("data_received", on_data)
    room.local_participant.register_rpc_method("fast", lambda d: f"fast {d.payload}")
    with session(room) as (official, room):
        official.register_rpc("echo", lambda d: d.payload)
        official.do(lambda r: r.local_participant.publish_data(b"block"))
        assert blocked.wait(15)
        # The dispatcher is stuck in our callback; the room itself is not.
        assert official.call("fast", "2") == "fast 2"
        me = room.local_participant
        assert me.perform_rpc(destination_identity=OFFICIAL, method="echo", payload="x") == "x"
        official.do(lambda r: r.local_participant.publish_data(b"queued"))
        me.publish_data(b"still flowing")
        official.wait_for(lambda r: ("data", (LK, b"still flowing", "", 1)) in r)
        # "queued" reached the room (the RPC after it went through) but its callback waits
        # its turn: callbacks run one at a time, in order.
        assert official.call("fast", "3") == "fast 3"
        assert inbox.items == [("data", b"block")]
        release.set()
        inbox.wait(lambda i: len(i.items) == 2)
        assert inbox.items == [("data", b"block"), ("data", b"queued")]


# -- 4. child processes: multiprocessing fork and spawn ----------------------------------------


def _run_child(
    method: str,
    official: Official,
    url: str,
    token: str,
    host: str,
    identity: str,
    tmp_path: Path,
    inherited: Room | None = None,
) -> dict[str, Any]:
    """Run threaded_child.join_publish_call in a `method` child; return its report.

    The parent closes its copy of the child's end of the pipe, so a child that dies is seen
    at once (EOF) rather than after the whole wait; a child that hangs writes its threads'
    stacks to `stacks` before exiting, and the failure message carries them.
    """
    ctx = multiprocessing.get_context(method)
    ours, theirs = ctx.Pipe()
    stacks = tmp_path / f"child-{method}-stacks.txt"
    args: tuple[Any, ...] = (theirs, url, token, host, OFFICIAL, str(stacks))
    if inherited is not None:
        args += (inherited,)
    proc = ctx.Process(target=threaded_child.join_publish_call, args=args)
    threads = sorted(t.name for t in threading.enumerate())
    # A forked child that hangs before `join_publish_call` arms its own dump (CI run N2: at
    # the fork, or in the child's start, with no stacks file) still shows where: it inherits
    # this SIGUSR1 handler, which the parent fires at it when it gives up waiting.
    early = tmp_path / f"child-{method}-early-stacks.txt"
    with open(early, "w") as sink:
        if method == "fork":
            faulthandler.register(signal.SIGUSR1, file=sink, all_threads=True)
        try:
            proc.start()
        finally:
            if method == "fork":
                faulthandler.unregister(signal.SIGUSR1)
    theirs.close()

    def what_happened(what: str) -> str:
        if method == "fork" and proc.is_alive() and not stacks.exists():
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(1.0)  # the child writes its stacks from the signal handler
            dump = early.read_text()
        else:
            proc.join(15)
            dump = stacks.read_text() if stacks.exists() else ""
        return (
            f"the child never {what} (exit code {proc.exitcode}; the parent's threads at"
            f" the fork: {threads})\n{dump}"
        )

    try:
        assert ours.poll(60), what_happened("joined")
        try:
            joined = ours.recv()
        except EOFError:
            raise AssertionError(what_happened("joined")) from None
        assert joined[:2] == ("joined", identity)
        assert joined[2] == proc.pid != os.getpid()
        official.wait_for(lambda r: ("joined", (identity,)) in r)
        ours.send("go")
        assert ours.poll(60), what_happened("finished")
        kind, report = ours.recv()
        assert kind == "done"
        proc.join(30)
        assert proc.exitcode == 0
        return dict(report)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)


@pytest.mark.xdist_group(
    "solo"
)  # a child of a many-threaded parent: first on the CPU (harness/phases.py)
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_child_process_joins_publishes_and_calls(
    method: str,
    livekit_server: Any,
    make_token: Any,
    confinement: Any,
    official_loop: OfficialLoop,
    tmp_path: Path,
) -> None:
    identity = f"child-{method}"
    official = Official(official_loop)
    official.connect(livekit_server.url, make_token(OFFICIAL))
    try:
        official.register_rpc("echo", lambda d: f"{d.caller_identity}: {d.payload}")
        report = _run_child(
            method,
            official,
            livekit_server.url,
            make_token(identity),
            confinement.host,
            identity,
            tmp_path,
        )
        assert report == {
            "rpc": f"{identity}: rpc from {identity}",
            "remote": [OFFICIAL],
            "io_threads_left": [],
        }
        assert ("data", (identity, f"data from {identity}".encode(), "child", 1)) in (
            official.peer.records
        )
        official.wait_for(lambda r: ("left", (identity,)) in r)
    finally:
        official.disconnect()


@pytest.mark.xdist_group(
    "solo"
)  # a child of a many-threaded parent: first on the CPU (harness/phases.py)
def test_a_forked_child_cannot_use_the_parents_room_but_can_make_its_own(
    livekit_server: Any,
    make_token: Any,
    options: RoomOptions,
    confinement: Any,
    official_loop: OfficialLoop,
    tmp_path: Path,
) -> None:
    official = Official(official_loop)
    official.connect(livekit_server.url, make_token(OFFICIAL))
    try:
        official.register_rpc("echo", lambda d: f"{d.caller_identity}: {d.payload}")
        with Room() as parent:
            parent.connect(livekit_server.url, make_token("parent"), options)
            official.wait_for(lambda r: ("joined", ("parent",)) in r)
            report = _run_child(
                "fork",
                official,
                livekit_server.url,
                make_token("child"),
                confinement.host,
                "child",
                tmp_path,
                inherited=parent,
            )
            assert report == {
                "inherited_state": "CONN_DISCONNECTED",
                "inherited_error": (
                    "publish_data: this Room was inherited through fork(); its I/O thread "
                    "exists only in the parent process. Create a new Room in this process."
                ),
                "rpc": "child: rpc from child",
                "remote": ["official", "parent"],
                "io_threads_left": [],
            }
            # The parent's room was not disturbed by the fork nor by the child's exit.
            assert parent.isconnected()
            parent.local_participant.publish_data(b"parent after fork")
            official.wait_for(lambda r: ("data", ("parent", b"parent after fork", "", 1)) in r)
            assert (
                parent.local_participant.perform_rpc(
                    destination_identity=OFFICIAL, method="echo", payload="still here"
                )
                == "parent: still here"
            )
            assert ("left", ("parent",)) not in official.peer.records
    finally:
        official.disconnect()
