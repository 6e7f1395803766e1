"""Data streams and RPC over the reliable data path: the glue around their sub-machines.

Theory of operation
- Data streams (protocol-reference C) and RPC (B) are the public sub-machines
  `streams.StreamAssembler` / `streams.OutgoingStream` / `streams.packetize` and
  `rpc.RpcTable`. This part composes them with the session: it holds our open stream
  writers, the registered RPC methods and the RPC streams being read, and carries out the
  RPC table's outputs.
- Every packet they make goes through the one reliable path (`DataSender`: one sequence
  space, the size limit, the pre-open send queue); a stream's packets are checked and sent
  all or nothing, so no peer ever sees part of a stream followed by a gap. A writer step
  whose packets cannot all be sent is rolled back.
- One-shot sends pick inline/compressed framing from what the recipients advertise
  (`client_protocol`, capabilities, read from the `Roster`; an identity not in the room
  counts as a legacy client); RPC picks v1 or v2 from the destination's `client_protocol`.
- The RPC topics `lk.rpc_request`/`lk.rpc_response` are registered internally for text
  streams and reserved: their streams are read here and handed to the RPC table (the ack
  goes out when a request's header arrives), and never surface as stream events. An RPC
  payload is held against `Config.max_buffered_stream_bytes` until it is complete.
- A participant leaving fails our calls to it (1503), cancels its invocations and fails the
  streams it was sending (`participant_left`), the calls and streams only after what the leave
  overtook has had `Config.rpc_departed_callee_timeout` / `stream_departed_sender_timeout`
  to arrive; the session ending (`ended`) or restarting
  (`restarted`, a full reconnect) does the same for everyone.
- Misuse raises `LocalProtocolError` naming the `Connection` verb and state; the
  `Connection` has checked the verb's state before calling in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from lkproto import events as ev
from lkproto._context import Context
from lkproto._data import DataSender, PacketRoute
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._roster import Roster
from lkproto.errors import LocalProtocolError
from lkproto.models import Channel
from lkproto.rpc import (
    ATTR_METHOD,
    ATTR_REQUEST_ID,
    RPC_REQUEST_TOPIC,
    RPC_RESPONSE_TOPIC,
    InvocationCancelled,
    InvokeHandler,
    RpcDropped,
    RpcError,
    RpcTable,
    SendRpcPacket,
    SendRpcStream,
)
from lkproto.streams import (
    BYTES_MIME_TYPE,
    TEXT_MIME_TYPE,
    DropReason,
    OperationType,
    OutgoingStream,
    StreamAssembler,
    StreamChunkReceived,
    StreamDropped,
    StreamEvent,
    StreamFinished,
    StreamHeaderTooLargeError,
    StreamInfo,
    StreamKind,
    StreamOpened,
    StreamSupport,
    packetize,
)

__all__ = ["RPC_TOPICS", "STREAM_PACKETS", "Exchange"]

RPC_TOPICS = frozenset({RPC_REQUEST_TOPIC, RPC_RESPONSE_TOPIC})
STREAM_PACKETS = frozenset({"stream_header", "stream_chunk", "stream_trailer"})
_StreamKey = tuple[str, str]  # (sender identity, stream id)


class _RpcStream:
    """An incoming `lk.rpc_request`/`lk.rpc_response` text stream, read by the core itself."""

    __slots__ = ("attributes", "pieces", "request")

    def __init__(self, info: StreamInfo) -> None:
        self.request = info.topic == RPC_REQUEST_TOPIC
        self.attributes = info.attributes  # the header's: what the ack was based on
        self.pieces: list[str] = []


class Exchange:
    """Streams and RPC for one session. `streams` and `rpc` are its sub-machines."""

    __slots__ = (
        "_ctx",
        "_roster",
        "_sender",
        "cut_streams",
        "outgoing",
        "rpc",
        "rpc_methods",
        "rpc_streams",
        "streams",
    )

    def __init__(self, ctx: Context, sender: DataSender, roster: Roster) -> None:
        self._ctx = ctx
        self._sender = sender
        self._roster = roster
        c = ctx.config
        self.streams = StreamAssembler(
            max_stream_bytes=c.max_stream_bytes,
            max_decompressed_bytes=c.max_decompressed_bytes,
            max_buffered_bytes=c.max_buffered_stream_bytes,
            max_open_streams_per_sender=c.max_open_streams_per_sender,
            max_buffered_bytes_per_sender=c.max_buffered_stream_bytes_per_sender,
            max_remembered_streams=c.max_remembered_streams,
            idle_timeout=c.stream_idle_timeout,
            departed_timeout=c.stream_departed_sender_timeout,
        )
        for topic in sorted(RPC_TOPICS):
            self.streams.add_topic(StreamKind.TEXT, topic)
        self.rpc = RpcTable(
            id_factory=ctx.id_factory,
            client_protocol=c.client_protocol,
            response_timeout=c.rpc_response_timeout,
            max_round_trip_latency=c.rpc_max_round_trip_latency,
            max_handler_timeout=c.rpc_max_handler_timeout,
            max_pending_calls=c.max_pending_rpcs,
            max_incoming_invocations=c.max_incoming_rpcs,
            max_incoming_invocations_per_caller=(
                max(1, c.max_incoming_rpcs // 4)
                if c.max_incoming_rpcs_per_caller is None
                else c.max_incoming_rpcs_per_caller
            ),
            max_method_bytes=c.max_rpc_method_bytes,
            max_remembered_requests=c.max_remembered_rpc_requests,
            departed_timeout=c.rpc_departed_callee_timeout,
        )
        self.outgoing: dict[str, OutgoingStream] = {}
        self.cut_streams: set[str] = set()  # our streams a full reconnect ended
        self.rpc_methods: set[str] = set()
        self.rpc_streams: dict[_StreamKey, _RpcStream] = {}

    @property
    def routes(self) -> dict[str, PacketRoute]:
        """The data packet kinds this part handles, for `DataReceiver.routes`."""
        return {
            "stream_header": self._stream_packet,
            "stream_chunk": self._stream_packet,
            "stream_trailer": self._stream_packet,
            "rpc_request": self._rpc_request,
            "rpc_ack": self._rpc_ack,
            "rpc_response": self._rpc_response,
        }

    # -- what the session tells us ---------------------------------------------------------

    def local_info(self, info: ppb.ParticipantInfo) -> None:
        """Tell the RPC table what the server will do with our packets (A.5): a hidden
        participant's lose their sender identity, and without canPublishData they are
        dropped. An info without a permission at all changes nothing (unknown: allow)."""
        if info.HasField("permission"):
            self.rpc.local_hidden = info.permission.hidden
            self.rpc.local_can_publish_data = info.permission.can_publish_data

    def participant_left(self, identity: str, sid: str, now: float) -> None:
        # Our calls to it fail (1503), its invocations are cancelled, and the streams it was
        # sending fail (their RPC ones were just settled); calls and streams only once what
        # the leave overtook has had its time to arrive (Config.*_departed_* timeouts).
        self.rpc.participant_left(identity, now=now)
        self.flush_rpc(now, "participant_left")
        left = self.streams.sender_left(identity, sid=sid, now=now)
        self.stream_events(left, now, settle_rpc=False)
        # Its unread requests can never be answered now: drop them at once.
        for key in [k for k, s in self.rpc_streams.items() if k[0] == identity and s.request]:
            del self.rpc_streams[key]
            self.streams.discard(*key)

    def ended(self, now: float, message: str) -> None:
        """The session ended: every pending call resolves (1503), every invocation is
        cancelled and every open incoming stream fails; our open streams are gone."""
        self.rpc.disconnected(now=now)
        self.flush_rpc(now, "close")
        aborted = self.streams.abort_all(f"the session ended: {message}")
        self.stream_events(aborted, now, settle_rpc=False)
        self.outgoing.clear()

    def restarted(self, now: float, message: str) -> set[str]:
        """A full reconnect: as `ended`, for a new session. Returns the ids of our streams it
        cut (their writers now fail with a message that says why)."""
        cut_streams = set(self.outgoing)
        self.rpc.disconnected(now=now)
        self.flush_rpc(now, "reconnect")
        cut = f"the session restarted (full reconnect): {message}"
        self.stream_events(self.streams.abort_all(cut), now, settle_rpc=False)
        self.cut_streams = cut_streams
        self.outgoing.clear()
        return cut_streams

    def rpc_timer(self, when: float, now: float) -> None:
        self.rpc.handle_timer(when)
        self.flush_rpc(now, "handle_timer")

    def streams_timer(self, when: float, now: float) -> None:
        self.stream_events(self.streams.handle_timer(when), now, call="handle_timer")

    # -- data streams (protocol-reference C) -------------------------------------------------

    def register_topic(self, kind: StreamKind, topic: str) -> None:
        call = "register_stream_topic"
        self._check_topic(call, kind, topic)
        try:
            self.streams.add_topic(kind, topic)
        except LocalProtocolError:
            raise self._ctx.misuse(
                call, f"a {kind.value} stream topic {topic!r} is already registered"
            ) from None

    def unregister_topic(self, kind: StreamKind, topic: str) -> None:
        self._check_topic("unregister_stream_topic", kind, topic)
        self.streams.remove_topic(kind, topic)

    def open_stream(
        self,
        now: float,
        *,
        kind: StreamKind,
        topic: str,
        destination_identities: Sequence[str],
        attributes: Mapping[str, str] | None,
        mime_type: str | None,
        name: str | None,
        total_length: int | None,
        reply_to_stream_id: str | None,
        attached_stream_ids: Sequence[str],
        operation_type: OperationType | int,
        version: int,
        generated: bool,
        stream_id: str | None,
        sender_identity: str = "",
    ) -> str:
        call = "open_stream"
        if not isinstance(sender_identity, str):
            raise self._ctx.misuse(call, "sender_identity must be str")
        if len(self.outgoing) >= self._ctx.config.max_open_outgoing_streams:
            raise self._ctx.misuse(
                call,
                f"{len(self.outgoing)} streams are already open "
                "(Config.max_open_outgoing_streams); close one first",
            )
        destinations = self._destinations(call, destination_identities)
        info = self._stream_info(
            call,
            now,
            kind=kind,
            topic=topic,
            attributes=attributes,
            mime_type=mime_type,
            name=name,
            total_length=total_length,
            reply_to_stream_id=reply_to_stream_id,
            attached_stream_ids=attached_stream_ids,
            operation_type=operation_type,
            version=version,
            generated=generated,
            stream_id=stream_id,
        )
        try:
            stream = OutgoingStream(
                info,
                destination_identities=destinations,
                sender_identity=sender_identity,
                chunk_size=self._ctx.config.stream_chunk_size,
            )
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        self._send_reliable(stream.open(), call)
        self.outgoing[info.stream_id] = stream
        return info.stream_id

    def write_stream(self, stream_id: str, data: str | bytes) -> None:
        call = "write_stream"
        stream = self.writer(call, stream_id)
        self._stream_step(call, stream, lambda: stream.write(data))

    def close_stream(
        self, stream_id: str, *, reason: str, attributes: Mapping[str, str] | None
    ) -> None:
        call = "close_stream"
        stream = self.writer(call, stream_id)
        self._stream_step(call, stream, lambda: stream.close(reason=reason, attributes=attributes))
        del self.outgoing[stream_id]

    def send_stream(
        self,
        now: float,
        *,
        kind: StreamKind,
        topic: str,
        payload: str | bytes,
        destination_identities: Sequence[str],
        attributes: Mapping[str, str] | None,
        mime_type: str | None,
        name: str | None,
        reply_to_stream_id: str | None,
        attached_stream_ids: Sequence[str],
        operation_type: OperationType | int,
        version: int,
        generated: bool,
        stream_id: str | None,
        compress: bool,
    ) -> str:
        call = "send_stream"
        destinations = self._destinations(call, destination_identities)
        info = self._stream_info(
            call,
            now,
            kind=kind,
            topic=topic,
            attributes=attributes,
            mime_type=mime_type,
            name=name,
            total_length=None,
            reply_to_stream_id=reply_to_stream_id,
            attached_stream_ids=attached_stream_ids,
            operation_type=operation_type,
            version=version,
            generated=generated,
            stream_id=stream_id,
        )
        try:
            packets = packetize(
                info,
                payload,
                support=self._stream_support(destinations, compress=compress),
                destination_identities=destinations,
                chunk_size=self._ctx.config.stream_chunk_size,
            )
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        self._send_reliable(packets, call)
        return info.stream_id

    def consumed(self, sender_identity: str, stream_id: str, nbytes: int) -> None:
        if (sender_identity, stream_id) in self.rpc_streams:
            return  # the core reads RPC streams itself
        try:
            self.streams.consumed(sender_identity, stream_id, nbytes)
        except LocalProtocolError as exc:
            raise self._verb_error("stream_consumed", exc) from None

    def discarded(self, sender_identity: str, stream_id: str) -> None:
        if (sender_identity, stream_id) not in self.rpc_streams:
            self.streams.discard(sender_identity, stream_id)

    def writer(self, call: str, stream_id: str) -> OutgoingStream:
        """Our open stream `stream_id`; `LocalProtocolError` naming `call` if there is none."""
        stream = self.outgoing.get(stream_id)
        if stream is None and stream_id in self.cut_streams:
            raise self._ctx.misuse(
                call, f"stream {stream_id!r} was ended by a full reconnect (a new session)"
            )
        if stream is None:
            raise self._ctx.misuse(call, f"no stream {stream_id!r} is open (open_stream first)")
        return stream

    def _check_topic(self, call: str, kind: StreamKind, topic: str) -> None:
        if not isinstance(kind, StreamKind):
            raise self._ctx.misuse(call, f"kind must be a StreamKind, not {kind!r}")
        if not isinstance(topic, str):
            raise self._ctx.misuse(call, f"topic must be str, not {type(topic).__name__}")
        if topic in RPC_TOPICS:
            raise self._ctx.misuse(call, f"the topic {topic!r} is reserved for RPC")

    def _destinations(self, call: str, identities: Sequence[str]) -> list[str]:
        if isinstance(identities, str):
            raise self._ctx.misuse(call, "destination_identities must be a sequence of identities")
        return list(identities)

    def _stream_info(
        self,
        call: str,
        now: float,
        *,
        kind: StreamKind,
        topic: str,
        attributes: Mapping[str, str] | None,
        mime_type: str | None,
        name: str | None,
        total_length: int | None,
        reply_to_stream_id: str | None,
        attached_stream_ids: Sequence[str],
        operation_type: OperationType | int,
        version: int,
        generated: bool,
        stream_id: str | None,
    ) -> StreamInfo:
        self._check_topic(call, kind, topic)
        misuse = self._ctx.misuse
        text = kind is StreamKind.TEXT
        if text and name is not None:
            raise misuse(call, "name is for byte streams only")
        text_only = (
            reply_to_stream_id is not None
            or attached_stream_ids
            or operation_type != OperationType.CREATE
            or version
            or generated
        )
        if not text and text_only:
            raise misuse(
                call,
                "reply_to_stream_id, attached_stream_ids, operation_type, version and "
                "generated are for text streams only",
            )
        if total_length is not None and (
            isinstance(total_length, bool) or not isinstance(total_length, int) or total_length < 0
        ):
            raise misuse(call, f"total_length must be a non-negative int: {total_length!r}")
        if isinstance(attached_stream_ids, str):
            raise misuse(call, "attached_stream_ids must be a sequence of stream ids")
        if stream_id is None:
            stream_id = self._ctx.id_factory()
        if not stream_id or stream_id in self.outgoing:
            raise misuse(call, f"the stream id {stream_id!r} is empty or already open")
        return StreamInfo(
            stream_id=stream_id,
            kind=kind,
            topic=topic,
            timestamp=self._ctx.wall_ms(now),
            mime_type=mime_type
            if mime_type is not None
            else (TEXT_MIME_TYPE if text else BYTES_MIME_TYPE),
            total_length=total_length,
            attributes=attributes or {},
            name=name if name is not None else ("" if text else "unknown"),
            operation_type=operation_type,
            version=version,
            reply_to_stream_id=reply_to_stream_id or "",
            attached_stream_ids=tuple(attached_stream_ids),
            generated=generated,
        )

    def _stream_support(self, destinations: Sequence[str], *, compress: bool) -> StreamSupport:
        """What the recipients understand (C.3); an identity not in the room is a legacy
        client (client_protocol 0), as in B.2."""
        remotes = self._roster.remotes
        if not destinations:
            return StreamSupport.of(remotes.values(), compress=compress)
        known = [remotes[i] for i in destinations if i in remotes]
        if len(known) < len(destinations):
            return StreamSupport.CHUNKED
        return StreamSupport.of(known, compress=compress)

    def _stream_step(
        self, call: str, stream: OutgoingStream, step: Callable[[], list[dpb.DataPacket]]
    ) -> None:
        """Run one writer step and send its packets; if they cannot all be sent, undo it."""
        mark = stream.checkpoint()
        try:
            packets = step()
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        try:
            self._send_reliable(packets, call)
        except LocalProtocolError:
            stream.rollback(mark)
            raise

    def _verb_error(self, call: str, exc: LocalProtocolError) -> LocalProtocolError:
        """A sub-machine's misuse error, re-addressed to the `Connection` verb and state."""
        if isinstance(exc, StreamHeaderTooLargeError):
            return StreamHeaderTooLargeError(size=exc.size, limit=exc.limit, call=call)
        return self._ctx.misuse(call, str(exc).removeprefix(f"{exc.call}: "))

    def _send_reliable(self, packets: Sequence[dpb.DataPacket], call: str) -> None:
        self._ctx.commands += self._sender.send_reliable(packets, call=call)

    def _stream_packet(
        self, packet: dpb.DataPacket, sender: str, channel: Channel, now: float, encryption: int
    ) -> None:
        events = self.streams.receive(packet, now=now, encryption=encryption)
        header = packet.stream_header
        if packet.HasField("stream_header") and header.topic in RPC_TOPICS:
            first = events[0]
            if isinstance(first, StreamDropped):  # a dropped header is all there is
                # Not a user stream: report it as the RPC it was meant to be.
                self._ctx.events.append(
                    RpcDropped(
                        reason="duplicate" if first.reason is DropReason.DUPLICATE else "malformed",
                        request_id=header.attributes.get(ATTR_REQUEST_ID, ""),
                        participant_identity=first.sender_identity,
                        detail=f"{header.topic} stream {first.stream_id}: {first.detail}",
                    )
                )
                return
        self.stream_events(events, now)

    def stream_events(
        self,
        events: Iterable[StreamEvent],
        now: float,
        *,
        settle_rpc: bool = True,
        call: str = "receive_data_packet",
    ) -> None:
        """Hand stream events to the application, except those of RPC streams, which go to
        the RPC table. `settle_rpc=False`: failed RPC streams need no answer (the table has
        settled them already: their sender left, or the session ended)."""
        ignored: set[_StreamKey] = set()
        for event in events:
            if isinstance(event, StreamOpened):
                info = event.info
                if info.topic in RPC_TOPICS:
                    key = (event.sender_identity, info.stream_id)
                    if info.topic == RPC_REQUEST_TOPIC and not self.rpc.stream_request_opened(
                        info.attributes, caller_identity=event.sender_identity, now=now
                    ):
                        # Answered or dropped at once: the payload is not wanted.
                        self.streams.discard(*key)
                        ignored.add(key)
                    else:
                        self.rpc_streams[key] = _RpcStream(info)
                    continue
            elif not isinstance(event, StreamDropped):
                key = (event.sender_identity, event.stream_id)
                if key in ignored:
                    continue
                rpc_stream = self.rpc_streams.get(key)
                if rpc_stream is not None:
                    self._rpc_stream_event(key, rpc_stream, event, now, settle=settle_rpc)
                    continue
            self._ctx.events.append(event)
        self.flush_rpc(now, call)

    def _rpc_stream_event(
        self,
        key: _StreamKey,
        rpc_stream: _RpcStream,
        event: StreamEvent,
        now: float,
        *,
        settle: bool,
    ) -> None:
        sender = key[0]
        if isinstance(event, StreamChunkReceived):
            assert isinstance(event.data, str)  # only text streams open on the RPC topics
            rpc_stream.pieces.append(event.data)
            return
        del self.rpc_streams[key]
        attributes = rpc_stream.attributes
        if isinstance(event, StreamFinished):
            self.streams.discard(*key)  # the payload was held against the buffer bound
            text = "".join(rpc_stream.pieces)
            if rpc_stream.request:
                registered = attributes.get(ATTR_METHOD, "") in self.rpc_methods
                self.rpc.stream_request_received(
                    attributes, text, caller_identity=sender, now=now, registered=registered
                )
            else:
                self.rpc.stream_response_received(attributes, text, sender_identity=sender, now=now)
        elif settle:  # StreamFailed (an RPC stream is never dropped once opened)
            assert not isinstance(event, StreamDropped | StreamOpened)
            if rpc_stream.request:
                self.rpc.stream_request_failed(
                    attributes, caller_identity=sender, now=now, detail=event.message
                )
            else:
                self.rpc.stream_response_failed(
                    attributes, sender_identity=sender, now=now, detail=event.message
                )

    # -- RPC (protocol-reference B) --------------------------------------------------------------

    def register_method(self, method: str) -> None:
        call = "register_rpc_method"
        if not isinstance(method, str) or not method:
            raise self._ctx.misuse(call, f"the method must be a non-empty str: {method!r}")
        if method in self.rpc_methods:
            raise self._ctx.misuse(call, f"the method {method!r} is already registered")
        self.rpc_methods.add(method)

    def perform(
        self,
        now: float,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None,
        max_round_trip_latency: float | None,
    ) -> str:
        call = "perform_rpc"
        local = self._roster.local
        assert local is not None
        if destination_identity == local.identity:
            raise self._ctx.misuse(call, "cannot call ourselves: the server never routes it back")
        remote = self._roster.remotes.get(destination_identity)
        try:
            request_id = self.rpc.perform(
                destination_identity,
                method,
                payload,
                now=now,
                response_timeout=response_timeout,
                max_round_trip_latency=max_round_trip_latency,
                destination_client_protocol=remote.client_protocol if remote else 0,
            )
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        self.flush_rpc(now, call)
        return request_id

    def respond(self, request_id: str, result: str | RpcError | None, now: float) -> None:
        call = "respond_rpc"
        try:
            self.rpc.respond(request_id, result, now=now)
        except LocalProtocolError as exc:
            raise self._verb_error(call, exc) from None
        self.flush_rpc(now, call)

    def respond_exception(
        self, request_id: str, exc: BaseException, now: float, *, include_detail: bool
    ) -> None:
        self.rpc.respond_exception(request_id, exc, now=now, include_detail=include_detail)
        self.flush_rpc(now, "respond_rpc")

    def _rpc_request(
        self, packet: dpb.DataPacket, sender: str, channel: Channel, now: float, encryption: int
    ) -> None:
        request = packet.rpc_request
        registered = request.method in self.rpc_methods
        self.rpc.request_received(request, caller_identity=sender, now=now, registered=registered)
        self.flush_rpc(now, "receive_data_packet")

    def _rpc_ack(
        self, packet: dpb.DataPacket, sender: str, channel: Channel, now: float, encryption: int
    ) -> None:
        self.rpc.ack_received(packet.rpc_ack.request_id, sender_identity=sender, now=now)
        self.flush_rpc(now, "receive_data_packet")

    def _rpc_response(
        self, packet: dpb.DataPacket, sender: str, channel: Channel, now: float, encryption: int
    ) -> None:
        self.rpc.response_received(packet.rpc_response, sender_identity=sender, now=now)
        self.flush_rpc(now, "receive_data_packet")

    def flush_rpc(self, now: float, call: str) -> None:
        """Carry out the RPC table's outputs: sends through the reliable path (a refused send
        goes back to the table as `send_failed`), everything else as events."""
        while outputs := self.rpc.drain():
            for out in outputs:
                if isinstance(out, SendRpcPacket | SendRpcStream):
                    try:
                        self._send_rpc(out, now, call)
                    except LocalProtocolError as exc:
                        self.rpc.send_failed(out, now=now, detail=str(exc))
                elif isinstance(out, InvokeHandler):
                    self._ctx.events.append(ev.RpcInvoked(invocation=out.invocation))
                elif isinstance(out, InvocationCancelled):
                    self._ctx.events.append(
                        ev.RpcInvocationCancelled(
                            request_id=out.request_id,
                            caller_identity=out.caller_identity,
                            reason=out.reason,
                        )
                    )
                else:
                    self._ctx.events.append(out)

    def _send_rpc(self, out: SendRpcPacket | SendRpcStream, now: float, call: str) -> None:
        if isinstance(out, SendRpcPacket):
            self._ctx.commands += self._sender.publish(out.packet, reliable=True, call=call)
            return
        destination = out.destination_identity
        info = StreamInfo(
            stream_id=self._ctx.id_factory(),
            kind=StreamKind.TEXT,
            topic=out.topic,
            timestamp=self._ctx.wall_ms(now),
            attributes=out.attributes,
        )
        packets = packetize(
            info,
            out.text,
            support=self._stream_support([destination], compress=True),
            destination_identities=[destination],
            chunk_size=self._ctx.config.stream_chunk_size,
        )
        self._send_reliable(packets, call)
