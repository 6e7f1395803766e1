"""`lkproto.transports.threaded` without a server: calling conventions, threads, fork.

`room._open()` starts what `connect()` starts (the I/O thread with the shared session, the
handler pool, the dispatcher) without joining anything, so the threading rules can be
checked exactly: core events are fed to the session on its own loop through the portal,
as the pump would. Joining a real room is tests/e2e/test_threaded_interop.py's job. The one
socket used here is a refused connection to a closed loopback port.
"""

from __future__ import annotations

import multiprocessing
import socket
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import anyio
import pytest

from lkproto import events as ev
from lkproto.errors import LocalProtocolError
from lkproto.models import Channel, DisconnectReason
from lkproto.streams import StreamError, StreamErrorReason
from lkproto.transports import _streams
from lkproto.transports.threaded import (
    ByteStreamReader,
    ConnectError,
    ConnectionState,
    DataPacket,
    Room,
    RoomOptions,
    RpcError,
    RpcInvocationData,
    TextStreamReader,
    Transcription,
    TransportClosedError,
)

pytestmark = pytest.mark.timeout(30)

TOKEN = "header.payload.signature-that-must-never-leak-0123456789"


@pytest.fixture
def opened() -> Iterator[Room]:
    """A Room whose threads run, joined to nothing."""
    room = Room()
    room._open()
    try:
        yield room
    finally:
        room.disconnect()


def on_loop(room: Room, fn: Callable[[], object]) -> object:
    """Run `fn` on the room's I/O thread (as the pump would) and return its result."""
    assert room._io.portal is not None
    return room._io.portal.call(fn)


def inner(room: Room) -> Any:
    """What the Room runs on its I/O thread: the shared session and the async participant."""
    assert room._io.inner is not None
    return room._io.inner


def io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lkproto-io"]


def invocation(method: str, payload: str, request_id: str = "r1") -> RpcInvocationData:
    return RpcInvocationData(
        request_id=request_id,
        caller_identity="caller",
        payload=payload,
        response_timeout=10.0,
        method=method,
    )


# -- before connect ----------------------------------------------------------------------------

CALLS: list[tuple[str, Callable[[Room], object]]] = [
    ("publish_data", lambda r: r.local_participant.publish_data(b"x")),
    ("publish_dtmf", lambda r: r.local_participant.publish_dtmf(code=1, digit="1")),
    (
        "publish_transcription",
        lambda r: r.local_participant.publish_transcription(Transcription("a", "t", [])),
    ),
    ("set_metadata", lambda r: r.local_participant.set_metadata("m")),
    ("set_name", lambda r: r.local_participant.set_name("n")),
    ("set_attributes", lambda r: r.local_participant.set_attributes({"a": "b"})),
    (
        "perform_rpc",
        lambda r: r.local_participant.perform_rpc(
            destination_identity="x", method="m", payload="p"
        ),
    ),
    ("send_text", lambda r: r.local_participant.send_text("hi")),
    ("send_bytes", lambda r: r.local_participant.send_bytes(b"hi")),
    ("send_file", lambda r: r.local_participant.send_file("/nonexistent")),
    ("stream_text", lambda r: r.local_participant.stream_text()),
    ("stream_bytes", lambda r: r.local_participant.stream_bytes("f")),
]


@pytest.mark.parametrize(("name", "call"), CALLS, ids=[name for name, _ in CALLS])
def test_every_call_before_connect_raises_transport_closed_naming_the_call(
    name: str, call: Callable[[Room], object]
) -> None:
    room = Room()
    with pytest.raises(TransportClosedError) as info:
        call(room)
    assert str(info.value) == f"{name}: the room is not connected"
    assert io_threads() == []


def test_properties_before_connect_and_a_context_manager_that_never_connected() -> None:
    with Room() as room:
        assert room.connection_state == ConnectionState.CONN_DISCONNECTED
        assert not room.isconnected()
        assert (room.name, room.sid, room.metadata, room.num_participants) == ("", "", "", 0)
        assert room.remote_participants == {}
        assert room.connection is None
        assert (room.local_participant.identity, room.local_participant.sid) == ("", "")
        assert list(room.events()) == []
    room.disconnect()  # idempotent
    assert io_threads() == []


def test_handler_registration_rules() -> None:
    room = Room()

    @room.local_participant.register_rpc_method("decorated")
    def decorated(data: RpcInvocationData) -> str:
        return data.payload

    assert decorated(invocation("decorated", "p")) == "p"  # the decorator returns the function
    assert room.local_participant.register_rpc_method("called", decorated) is None
    assert set(room._rpc) == {"decorated", "called"}
    room.local_participant.unregister_rpc_method("called")
    room.local_participant.unregister_rpc_method("called")  # idempotent
    assert set(room._rpc) == {"decorated"}

    room.register_text_stream_handler("topic", lambda reader, who: None)
    room.register_byte_stream_handler("topic", lambda reader, who: None)  # other kind: fine
    with pytest.raises(ValueError) as info:
        room.register_text_stream_handler("topic", lambda reader, who: None)
    assert str(info.value) == "a text stream handler for topic 'topic' is already set"
    room.unregister_text_stream_handler("topic")
    room.unregister_text_stream_handler("topic")
    room.register_text_stream_handler("topic", lambda reader, who: None)  # free again


def test_a_room_connects_again_only_once_disconnected() -> None:
    room = Room()
    room._open()
    try:
        with pytest.raises(LocalProtocolError) as info:
            room.connect("ws://127.0.0.1:1", TOKEN)
        assert "connect: this Room is connected or connecting; disconnect() first" in str(
            info.value
        )
    finally:
        room.disconnect()
    with pytest.raises(ConnectError):  # a new attempt, as livekit.rtc allows (nobody listens)
        room.connect("ws://127.0.0.1:1", TOKEN, RoomOptions(connect_timeout=2))


def test_a_failed_connect_raises_connect_error_and_stops_every_thread() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = set(threading.enumerate())
    room = Room()
    with pytest.raises(ConnectError) as info:
        room.connect(f"ws://127.0.0.1:{port}", TOKEN)
    assert "Connection refused" in info.value.message
    assert TOKEN not in str(info.value) + repr(info.value) + repr(room)
    assert io_threads() == []
    assert {t for t in threading.enumerate() if t.name.startswith("lkproto")} - before == set()
    assert room.connection_state == ConnectionState.CONN_DISCONNECTED
    with pytest.raises(TransportClosedError):
        room.local_participant.publish_data(b"x")


# -- threads -----------------------------------------------------------------------------------


def test_callbacks_run_in_order_on_one_dispatcher_thread(opened: Room) -> None:
    seen: list[tuple[int, int]] = []
    locals_: list[bool] = []
    opened.on("room_metadata_changed", lambda old, new: seen.append((new, threading.get_ident())))
    opened.on(
        "participant_name_changed", lambda p, o, n: locals_.append(p is opened.local_participant)
    )
    io = on_loop(opened, threading.get_ident)

    def burst() -> None:
        for i in range(200):
            opened._emit("room_metadata_changed", "", i)
        opened._emit("participant_name_changed", inner(opened).local, "", "n")

    on_loop(opened, burst)
    opened._flush()  # what connect() and disconnect() do before returning
    assert [i for i, _ in seen] == list(range(200))
    (dispatcher,) = {ident for _, ident in seen}
    assert dispatcher not in (io, threading.get_ident())
    assert locals_ == [True]  # callbacks see this Room's LocalParticipant


def test_a_blocked_callback_blocks_neither_the_io_thread_nor_callers(opened: Room) -> None:
    entered, release = threading.Event(), threading.Event()
    later: list[str] = []

    def stuck(old: str, new: str) -> None:
        entered.set()
        release.wait(10)

    opened.on("room_metadata_changed", stuck)
    opened.on("room_updated", lambda: later.append("room_updated"))
    on_loop(opened, lambda: opened._emit("room_metadata_changed", "", "x"))
    on_loop(opened, lambda: opened._emit("room_updated"))
    assert entered.wait(5)

    async def answer(_: object) -> str:
        await anyio.sleep(0)
        return "the loop answers"

    assert opened._io.call("probe", answer) == "the loop answers"  # while the callback is stuck
    assert later == []  # the next callback waits its turn
    release.set()
    opened._flush()
    assert later == ["room_updated"]


def test_rpc_handlers_run_on_handler_threads_several_at_once(opened: Room) -> None:
    barrier = threading.Barrier(3, timeout=5)  # passes only if three handlers run at once
    threads: list[str] = []

    def meet(data: RpcInvocationData) -> str:
        threads.append(threading.current_thread().name)
        barrier.wait()
        return data.payload.upper()

    opened.local_participant.register_rpc_method("meet", meet)  # after open: forwarded
    wrapper = on_loop(opened, lambda: inner(opened).session.rpc.handlers["meet"])

    async def three(_: object) -> list[str]:
        results: list[str] = [""] * 3

        async def one(i: int) -> None:
            results[i] = await wrapper(invocation("meet", f"p{i}", f"r{i}"))

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(one, i)
        return results

    assert opened._io.call("three", three) == ["P0", "P1", "P2"]
    assert len(set(threads)) == 3
    assert all(name.startswith("lkproto-handler_") for name in threads)


def test_rpc_handler_errors_cross_unchanged_and_handlers_can_call_the_room(opened: Room) -> None:
    refusal = RpcError(4242, "no ✗", "data")

    def refuse(data: RpcInvocationData) -> str:
        raise refusal

    def calls_back(data: RpcInvocationData) -> str:
        try:  # a handler calling into its room is served by the I/O thread, no deadlock
            opened.local_participant.publish_data(b"x")
        except TransportClosedError as exc:
            return str(exc)
        return "unexpected"

    opened.local_participant.register_rpc_method("refuse", refuse)
    opened.local_participant.register_rpc_method("calls_back", calls_back)

    async def run(method: str) -> object:
        try:
            return await inner(opened).session.rpc.handlers[method](invocation(method, ""))
        except RpcError as exc:
            return exc

    assert opened._io.call("run", lambda _: run("refuse")) is refusal
    assert opened._io.call("run", lambda _: run("calls_back")) == (
        "publish_data: the room is not connected"
    )


def _info(kind: str) -> Any:
    if kind == "text":
        return _streams.TextStreamInfo(
            stream_id="s1", mime_type="text/plain", topic="chat", timestamp=0, size=None
        )
    return _streams.ByteStreamInfo(
        stream_id="s2",
        mime_type="application/octet-stream",
        topic="files",
        timestamp=0,
        size=None,
        name="f.bin",
    )


def _deliver(room: Room, kind: str, items: list[Any], log: list[object]) -> None:
    """Open a stream on the I/O thread as the inner room does, push `items`, wait for the
    user's handler to return."""

    async def deliver(_: object) -> None:
        if kind == "text":
            reader: Any = _streams.TextStreamReader(
                _info(kind), "alice", log.append, lambda: log.append("discarded")
            )
            pending = inner(room).session.streams.text_handlers["chat"](reader, "alice")
        else:
            reader = _streams.ByteStreamReader(
                _info(kind), "alice", log.append, lambda: log.append("discarded")
            )
            pending = inner(room).session.streams.byte_handlers["files"](reader, "alice")
        for item in items:
            reader._push(item)
        await pending

    room._io.call("deliver", deliver)


def test_stream_handlers_read_with_blocking_iterators_on_handler_threads(opened: Room) -> None:
    got: list[Any] = []

    def on_text(reader: TextStreamReader, identity: str) -> None:
        name = threading.current_thread().name
        try:
            got.append((identity, reader.info.topic, list(reader), name))
        except StreamError as exc:
            got.append((identity, exc.reason, name))

    def on_bytes(reader: ByteStreamReader, identity: str) -> None:
        first = next(reader)
        reader.close()  # the rest is discarded
        got.append((identity, reader.info.name, first))

    opened.register_text_stream_handler("chat", on_text)
    opened.register_byte_stream_handler("files", on_bytes)
    consumed: list[object] = []

    _deliver(opened, "text", [("héllo ", 7), ("wörld", 6), None], consumed)
    ((identity, topic, chunks, name),) = got
    assert (identity, topic, chunks) == ("alice", "chat", ["héllo ", "wörld"])
    assert name.startswith("lkproto-handler_")
    assert consumed == [7, 6]  # each chunk is released to the core as the handler takes it

    got.clear()
    failure = StreamError("gone", reason=StreamErrorReason.ABNORMAL_END, stream_id="s1")
    _deliver(opened, "text", [("part", 4), failure], consumed)
    assert [g[:2] for g in got] == [("alice", StreamErrorReason.ABNORMAL_END)]

    got.clear()
    consumed.clear()
    _deliver(opened, "bytes", [(b"ab", 2), (b"cd", 2)], consumed)
    assert got == [("alice", "f.bin", b"ab")]
    assert consumed == [2, "discarded"]


def test_a_blocking_call_from_the_io_thread_is_refused(opened: Room) -> None:
    with pytest.raises(RuntimeError) as info:
        on_loop(opened, lambda: opened.local_participant.publish_data(b"x"))
    assert str(info.value) == (
        "publish_data: blocking Room methods cannot run on the room's I/O thread"
    )


def test_disconnect_fails_waiting_calls_and_joins_the_io_thread() -> None:
    room = Room()
    room._open()
    (io,) = io_threads()
    outcome: list[str] = []
    waiting = threading.Event()

    async def forever(_: object) -> None:
        waiting.set()
        await anyio.sleep_forever()

    def caller() -> None:
        try:
            room._io.call("perform_rpc", forever)
        except TransportClosedError as exc:
            outcome.append(str(exc))

    other = threading.Thread(target=caller)
    other.start()
    assert waiting.wait(5)
    room.disconnect()
    other.join(5)
    assert outcome == ["perform_rpc: the room was disconnected"]
    assert not io.is_alive()
    assert io_threads() == []
    with pytest.raises(TransportClosedError) as info:
        room.local_participant.set_name("n")
    assert str(info.value) == "set_name: the room is not connected"


def test_events_iterates_core_events_in_order_until_disconnected(opened: Room) -> None:
    events = opened.events()
    sent = [ev.RoomMetadataChanged(old_metadata="", metadata=f"m{i}") for i in range(3)] + [
        ev.Disconnected(reason=DisconnectReason.SERVER_SHUTDOWN, message="bye")
    ]

    def deliver() -> None:
        for event in sent:
            inner(opened).session.deliver(event)

    on_loop(opened, deliver)
    assert list(events) == sent  # and it ends after Disconnected
    assert list(opened.events()) == []  # the session is over: nothing more will come


# -- fork --------------------------------------------------------------------------------------


def _forked_child(conn: Connection, inherited: Room) -> None:
    report: dict[str, object] = {"state": inherited.connection_state.name}
    try:
        inherited.local_participant.publish_data(b"x")
    except TransportClosedError as exc:
        report["error"] = str(exc)
    inherited.disconnect()  # a no-op in the child
    try:
        inherited.connect("ws://127.0.0.1:1", TOKEN)
    except LocalProtocolError as exc:
        report["reconnect"] = type(exc).__name__
    fresh = Room()
    fresh._open()

    async def answer(_: object) -> str:
        return "fresh room answers"

    report["fresh"] = fresh._io.call("probe", answer)
    fresh.disconnect()
    report["io_threads"] = len(io_threads())
    conn.send(report)


def test_a_forked_child_sees_inherited_rooms_closed_and_can_open_new_ones(opened: Room) -> None:
    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_forked_child, args=(theirs, opened))
    proc.start()
    try:
        assert ours.poll(20), "the child did not report"
        assert ours.recv() == {
            "state": "CONN_DISCONNECTED",
            "error": (
                "publish_data: this Room was inherited through fork(); its I/O thread exists "
                "only in the parent process. Create a new Room in this process."
            ),
            "reconnect": "LocalProtocolError",
            "fresh": "fresh room answers",
            "io_threads": 0,
        }
        proc.join(10)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
    # The parent's room is untouched.
    assert on_loop(opened, lambda: "parent loop answers") == "parent loop answers"
    assert opened._io.portal is not None and not opened._io.inherited


def test_data_packets_reach_callbacks_as_livekit_rtc_shapes_them(opened: Room) -> None:
    got: list[DataPacket] = []
    opened.on("data_received", got.append)
    packet = ev.DataReceived(
        payload=b"\x00\x01",
        participant_identity="bob",
        participant_sid="PA_b",
        topic=None,
        channel=Channel.LOSSY,
    )
    on_loop(opened, lambda: inner(opened).session.deliver(packet))
    opened._flush()
    (only,) = got
    assert (only.data, only.topic, int(only.kind), only.participant) == (b"\x00\x01", "", 0, None)
