"""The fuzz invariant, shared by the fuzz targets and by tests/fuzz.

After h11 and websockets: whatever a peer sends, lkproto either accepts it, reports it as a
documented event (`PacketDropped`, `StreamDropped`, `StreamFailed`, `RpcDropped`, ...), or
ends the session with a documented reason (`Disconnected`, whose `exc` is a
`RemoteProtocolError` when a protocol fault ended it). Nothing else is raised from a
`receive_*`/`handle_timer` input; an application verb raises `LocalProtocolError` or nothing.
No bound of `Config` (or of a sub-machine's constructor) is ever exceeded, and the
bookkeeping behind each bound agrees with what was reported:

- streams: every `StreamChunkReceived`/`StreamFinished`/`StreamFailed` belongs to a stream
  that was opened for that (sender, stream id) and is still open; the RPC topics never
  surface; text chunks are `str` and byte chunks `bytes`, never empty; `received` grows by
  what was delivered and never passes the declared `total_length` or `max_stream_bytes`;
  buffered bytes equal what was delivered and neither consumed nor released by a failure,
  and never pass `max_buffered_bytes`; open streams per sender and remembered stream ids stay
  within their bounds;
- RPC: `RpcSucceeded`/`RpcFailed` only for a call we made and still pending, once;
  `RpcInvoked` only once per running request id; `RpcInvocationCancelled` only for a running
  handler; pending calls, running invocations and remembered request ids stay bounded;
- timers: after `handle_timer(now)`, `get_timer()` is None or later than `now`;
- the session: no event after `Disconnected` (but the `RpcDropped` that `respond_rpc`
  documents for an invocation the end cancelled), and at most one; once closed, no timer;
  de-duplication state, the replay buffer, the send queue and pending metadata requests stay
  within their bounds.

A broken invariant raises `InvariantViolation` (an AssertionError), which a fuzzer reports
as a crash and a test as a failure.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable
from typing import Any

from lkproto import commands as cmd
from lkproto import events as ev
from lkproto import rpc
from lkproto.errors import LocalProtocolError, RemoteProtocolError
from lkproto.models import ConnectionState
from lkproto.rpc import RPC_REQUEST_TOPIC, RPC_RESPONSE_TOPIC, RpcTable
from lkproto.streams import (
    DropReason,
    StreamAssembler,
    StreamChunkReceived,
    StreamDropped,
    StreamEvent,
    StreamFailed,
    StreamFinished,
    StreamInfo,
    StreamKind,
    StreamOpened,
)

__all__ = [
    "EVENT_TYPES",
    "RPC_OUTPUT_TYPES",
    "ConnectionChecker",
    "InvariantViolation",
    "RpcModel",
    "StreamModel",
    "check",
    "check_assembler_bounds",
    "check_rpc_output",
    "check_rpc_table_bounds",
    "local_call",
    "remote_call",
]

EVENT_TYPES: tuple[type, ...] = typing.get_args(ev.Event)
COMMAND_TYPES: tuple[type, ...] = typing.get_args(cmd.Command)
RPC_OUTPUT_TYPES: tuple[type, ...] = typing.get_args(rpc.RpcOutput)
STREAM_EVENT_TYPES: tuple[type, ...] = typing.get_args(StreamEvent)
_RPC_TOPICS = frozenset({RPC_REQUEST_TOPIC, RPC_RESPONSE_TOPIC})

_Key = tuple[str, str]


class InvariantViolation(AssertionError):
    """The fuzz invariant broke: lkproto raised, exceeded a bound or reported nonsense."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)


def remote_call(what: str, fn: typing.Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a remote input (`receive_*`, `handle_timer`, ...): it must not raise at all."""
    try:
        return fn(*args, **kwargs)
    except InvariantViolation:
        raise
    except Exception as exc:
        raise InvariantViolation(f"{what} raised {type(exc).__name__}: {exc}") from exc


def local_call(what: str, fn: typing.Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run an application verb: it may raise `LocalProtocolError` (returned, not raised)."""
    try:
        return fn(*args, **kwargs)
    except InvariantViolation:
        raise
    except LocalProtocolError as exc:
        check(type(exc).__module__.startswith("lkproto"), f"{what}: foreign error type {exc!r}")
        return exc
    except Exception as exc:
        raise InvariantViolation(f"{what} raised {type(exc).__name__}: {exc}") from exc


# -- streams ----------------------------------------------------------------------------------


class StreamModel:
    """What the stream events said, and the bytes delivered but not yet consumed."""

    def __init__(self, *, max_stream_bytes: int, hidden_topics: Iterable[str] = ()) -> None:
        self.max_stream_bytes = max_stream_bytes
        self.hidden_topics = frozenset(hidden_topics)
        self.open: dict[_Key, StreamInfo] = {}
        self.received: dict[_Key, int] = {}
        #: Delivered, neither consumed nor released: (key, nbytes) per chunk, oldest first.
        self.outstanding: list[tuple[_Key, int]] = []

    @property
    def buffered(self) -> int:
        return sum(n for _, n in self.outstanding)

    def event(self, event: StreamEvent) -> None:
        check(isinstance(event, STREAM_EVENT_TYPES), f"not a stream event: {event!r}")
        if isinstance(event, StreamOpened):
            key = (event.sender_identity, event.info.stream_id)
            check(key not in self.open, f"StreamOpened for a stream already open: {key}")
            check(
                event.info.topic not in self.hidden_topics,
                f"an internal stream surfaced: {event.info.topic!r}",
            )
            self.open[key] = event.info
            self.received[key] = 0
            return
        key = (event.sender_identity, event.stream_id)
        if isinstance(event, StreamDropped):
            # A second header for an open stream is dropped; the open stream carries on.
            check(
                key not in self.open or event.reason is DropReason.DUPLICATE,
                f"StreamDropped ({event.reason}) for an open stream: {key}",
            )
            return
        info = self.open.get(key)
        check(info is not None, f"{type(event).__name__} for a stream not open: {key}")
        assert info is not None
        if isinstance(event, StreamChunkReceived):
            wanted = str if info.kind is StreamKind.TEXT else bytes
            check(isinstance(event.data, wanted), f"chunk of the wrong type for {info.kind}")
            check(len(event.data) > 0 and event.nbytes > 0, f"an empty chunk: {event!r}")
            if isinstance(event.data, bytes):
                check(event.nbytes == len(event.data), f"nbytes is not the size: {event!r}")
            else:
                check(
                    event.nbytes == len(event.data.encode("utf-8", "surrogatepass")),
                    f"nbytes is not the UTF-8 size: {event.nbytes}",
                )
            check(event.received > self.received[key], f"received did not grow: {event!r}")
            total = info.total_length
            check(
                total is None or event.received <= total,
                f"received {event.received} passed total_length {total}",
            )
            check(
                event.received <= self.max_stream_bytes,
                f"received {event.received} passed max_stream_bytes {self.max_stream_bytes}",
            )
            self.received[key] = event.received
            self.outstanding.append((key, event.nbytes))
            return
        del self.open[key]
        if isinstance(event, StreamFinished):
            total = info.total_length
            check(
                total is None or self.received[key] >= total,
                f"finished with {self.received[key]} of total_length {total}",
            )
        else:
            assert isinstance(event, StreamFailed)
            self.release(key)  # a failed stream's unread bytes are released

    def release(self, key: _Key) -> None:
        self.outstanding = [(k, n) for k, n in self.outstanding if k != key]

    def consumed(self, key: _Key, nbytes: int) -> None:
        left = nbytes
        kept: list[tuple[_Key, int]] = []
        for k, n in self.outstanding:
            if k == key and left > 0:
                take = min(n, left)
                left -= take
                n -= take
            if n:
                kept.append((k, n))
        self.outstanding = kept

    def discarded(self, key: _Key) -> None:
        self.release(key)
        self.open.pop(key, None)  # still open: the rest is ignored quietly


def check_assembler_bounds(assembler: StreamAssembler) -> None:
    """The assembler's own bounds and bookkeeping."""
    a = assembler
    buffered = a.buffered_bytes
    check(0 <= buffered <= a.max_buffered_bytes, f"buffered {buffered} > {a.max_buffered_bytes}")
    charged = a._charged
    check(all(n > 0 for n in charged.values()), f"a non-positive charge: {charged}")
    check(sum(charged.values()) == buffered, f"buffered {buffered} != charges {charged}")
    held: dict[str, int] = {}
    for (sender, _), n in charged.items():
        held[sender] = held.get(sender, 0) + n
    check(held == a._buffered_by, f"per-sender bytes {a._buffered_by} != charges {held}")
    share = a.max_buffered_bytes_per_sender
    check(all(n <= share for n in held.values()), f"a sender holds more than {share}: {held}")
    # Open streams are counted per origin: the header's server-stamped SID (else identity).
    per_sender: dict[str, int] = {}
    for stream in a._open.values():
        per_sender[stream.origin] = per_sender.get(stream.origin, 0) + 1
    check(per_sender == a._per_sender, f"per-sender counts {a._per_sender} != {per_sender}")
    worst = max(per_sender.values(), default=0)
    check(
        worst <= a.max_open_streams_per_sender,
        f"{worst} open streams from one sender > {a.max_open_streams_per_sender}",
    )
    check(
        len(a._ended) <= a.max_remembered_streams,
        f"{len(a._ended)} remembered stream ids > {a.max_remembered_streams}",
    )
    for key, stream in a._open.items():
        check(
            stream.received <= a.max_stream_bytes,
            f"open stream {key} holds {stream.received} > {a.max_stream_bytes}",
        )
        check(
            stream.received <= a.max_decompressed_bytes or stream.inflater is None,
            f"compressed stream {key} inflated to {stream.received}",
        )


# -- RPC --------------------------------------------------------------------------------------


class RpcModel:
    """Calls we made and handlers we were asked to run, per the outputs and events."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}  # request id -> destination
        self.handlers: dict[str, str] = {}  # request id -> caller

    def performed(self, request_id: str, destination: str) -> None:
        """perform() returned `request_id`: register it before draining, since a refusal
        (1402, 1403, 1505) is among the same call's outputs."""
        # Ids come from the application's id_factory: one may come back once its call is
        # over (the table can only refuse the ids still pending).
        check(
            request_id not in self.pending,
            f"perform returned the id of a pending call: {request_id!r}",
        )
        self.pending[request_id] = destination

    def outcome(self, request_id: str) -> None:
        check(request_id in self.pending, f"a result for no pending call: {request_id!r}")
        del self.pending[request_id]

    def invoked(self, request_id: str, caller: str) -> None:
        check(request_id not in self.handlers, f"RpcInvoked twice for {request_id!r}")
        check(bool(caller), f"RpcInvoked without a caller: {request_id!r}")
        self.handlers[request_id] = caller

    def cancelled(self, request_id: str, caller: str) -> None:
        check(
            self.handlers.get(request_id) == caller,
            f"InvocationCancelled for no running handler: {request_id!r} from {caller!r}",
        )
        del self.handlers[request_id]

    def answered(self, request_id: str) -> None:
        self.handlers.pop(request_id, None)


def check_rpc_table_bounds(table: RpcTable) -> None:
    check(
        table.pending_calls <= table.max_pending_calls,
        f"{table.pending_calls} pending calls > {table.max_pending_calls}",
    )
    check(
        table.active_invocations <= table.max_incoming_invocations,
        f"{table.active_invocations} invocations > {table.max_incoming_invocations}",
    )
    check(
        len(table._seen) <= table.max_remembered_requests,
        f"{len(table._seen)} remembered request ids > {table.max_remembered_requests}",
    )
    if table.pending_calls or table.active_invocations:
        check(table.get_timer() is not None, "calls or invocations pending with no deadline")


def check_rpc_output(out: object) -> None:
    check(isinstance(out, RPC_OUTPUT_TYPES), f"not an RPC output: {out!r}")
    if isinstance(out, rpc.SendRpcPacket):
        destinations = list(out.packet.destination_identities)
        check(
            destinations == [out.destination_identity] and bool(out.destination_identity),
            f"an RPC packet for {out.destination_identity!r} addressed to {destinations}",
        )
    elif isinstance(out, rpc.SendRpcStream):
        check(bool(out.destination_identity), "an RPC stream without destination")
        check(out.topic in _RPC_TOPICS, f"an RPC stream on {out.topic!r}")


# -- the connection ---------------------------------------------------------------------------


class ConnectionChecker:
    """Drains a `Connection` after every input and checks everything it reports."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.config = conn.config
        self.streams = StreamModel(
            max_stream_bytes=self.config.max_stream_bytes, hidden_topics=_RPC_TOPICS
        )
        self.rpc = RpcModel()
        self.disconnected: ev.Disconnected | None = None
        self.events: list[Any] = []

    def drain(self, *, now: float, after_timer: bool = False) -> list[Any]:
        conn = self.conn
        for command in conn.commands_to_send():
            check(isinstance(command, COMMAND_TYPES), f"not a command: {command!r}")
        out: list[Any] = []
        while (event := conn.next_event()) is not None:
            check(isinstance(event, EVENT_TYPES), f"not a documented event: {event!r}")
            # respond_rpc after the end is documented to report RpcDropped; nothing else.
            check(
                self.disconnected is None or isinstance(event, rpc.RpcDropped),
                f"{event!r} after {self.disconnected!r}",
            )
            self._event(event)
            out.append(event)
        self.events += out
        if after_timer:
            deadline = conn.get_timer()
            check(
                deadline is None or deadline > now,
                f"get_timer() is {deadline} after handle_timer({now})",
            )
        self.check_bounds()
        return out

    def _event(self, event: Any) -> None:
        if isinstance(event, ev.Disconnected):
            check(
                event.exc is None or isinstance(event.exc, RemoteProtocolError),
                f"Disconnected with an undocumented cause: {event.exc!r}",
            )
            self.disconnected = event
        elif isinstance(event, STREAM_EVENT_TYPES):
            self.streams.event(event)
        elif isinstance(event, rpc.RpcSucceeded | rpc.RpcFailed):
            self.rpc.outcome(event.request_id)
        elif isinstance(event, ev.RpcInvoked):
            invocation = event.invocation
            self.rpc.invoked(invocation.request_id, invocation.caller_identity)
            check(
                invocation.method in self.conn.rpc_methods,
                f"RpcInvoked for a method not registered: {invocation.method!r}",
            )
            check(
                math.isfinite(invocation.response_timeout) and invocation.response_timeout > 0,
                f"a handler told to wait {invocation.response_timeout}",
            )
        elif isinstance(event, ev.RpcInvocationCancelled):
            self.rpc.cancelled(event.request_id, event.caller_identity)

    def check_bounds(self) -> None:
        conn, c = self.conn, self.config
        check_assembler_bounds(conn._streams)
        check_rpc_table_bounds(conn._rpc)
        check(
            conn.buffered_stream_bytes <= c.max_buffered_stream_bytes,
            f"buffered {conn.buffered_stream_bytes} > {c.max_buffered_stream_bytes}",
        )
        check(
            self.streams.buffered <= conn.buffered_stream_bytes,
            f"the application holds {self.streams.buffered} bytes, the core counts "
            f"{conn.buffered_stream_bytes}",
        )
        open_keys = set(conn._streams.open_streams)
        check(
            set(conn._exchange.rpc_streams) <= open_keys,
            f"RPC streams {set(conn._exchange.rpc_streams) - open_keys} are not open",
        )
        check(
            set(self.streams.open) <= open_keys,
            f"streams reported open are closed in the core: {set(self.streams.open) - open_keys}",
        )
        dedup = len(conn._dedup._last)
        check(dedup <= c.max_dedup_senders, f"{dedup} de-dup senders > {c.max_dedup_senders}")
        sender = conn._sender
        check(
            sender._replay_bytes <= c.replay_buffer_bytes,
            f"replay buffer {sender._replay_bytes} > {c.replay_buffer_bytes}",
        )
        check(
            sender._replay_bytes == sum(len(d) for _, d in sender._replay),
            "replay byte count is off",
        )
        queued = sum(len(d) for q in sender._queued.values() for _, d in q)
        check(queued == sender._queued_bytes, f"queued {queued} != {sender._queued_bytes}")
        check(
            queued <= c.max_queued_send_bytes + c.replay_buffer_bytes,
            f"queued {queued} bytes > the queue and replay bounds",
        )
        check(
            len(conn._metadata.pending) <= c.max_pending_metadata_requests,
            f"{len(conn._metadata.pending)} metadata requests > {c.max_pending_metadata_requests}",
        )
        if self.disconnected is not None:
            check(conn.state is ConnectionState.CLOSED, f"Disconnected but {conn.state}")
            check(conn.get_timer() is None, "a closed connection still arms a timer")
            check(not conn._streams.open_streams, "a closed connection has open streams")
            check(conn._rpc.pending_calls == 0, "a closed connection has pending calls")
            check(not self.rpc.pending, f"calls never resolved: {sorted(self.rpc.pending)}")
            check(not self.rpc.handlers, f"handlers never cancelled: {sorted(self.rpc.handlers)}")
        else:
            check(conn.state is not ConnectionState.CLOSED, "CLOSED without Disconnected")
