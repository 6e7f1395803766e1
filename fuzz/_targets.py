"""The fuzz targets' one-input functions, importable without atheris instrumentation.

Each target reads its input as a sequence of operations (`_framing`), runs them against a
fresh machine configured with small bounds (so the bounds are reached by short inputs), and
checks the invariant of `_invariants` after every operation. A target returns normally for
every input; anything else is a finding.

- `signal_connecting`: a `Connection` after `connect()`; signal messages, timers, signal
  EOF, metadata verbs, close.
- `signal_joined`: a `Connection` joined by a fixed `JoinResponse`; the same operations.
- `data_packet`: a joined `Connection` with both channels open and topics and methods
  registered; data packets on `_reliable` and `_lossy`, signal messages, timers, RPC and
  stream verbs, channel open/close, ids for `id_factory`.
- `streams`: a `StreamAssembler`; stream packets (optionally with an encryption type),
  consumed/discard, topics, a sender leaving, abort, timers.
- `rpc`: an `RpcTable`; requests (v1 packets, v2 stream events), acks and responses (raw or
  for a pending call), perform/respond, send failures, participants leaving, disconnect,
  timers, the server version and our permissions.
- `e2ee`: a `lkproto.e2ee` `KeyProvider` and `DataCryptor`; encrypted DataPackets (raw,
  hostile envelopes with any key index, IV and tag length, or sealed with a real or
  ratcheted key), data-track frames, our own packets read back, and the key verbs.

`OPS[target]` names each target's operations; an input's op byte is taken modulo their
number. `capture_corpus.py` writes seeds with the same names.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

from google.protobuf.message import DecodeError

from fuzz._framing import TICK, Record, decode, split_field, text
from fuzz._invariants import (
    ConnectionChecker,
    InvariantViolation,
    RpcModel,
    StreamModel,
    check,
    check_assembler_bounds,
    check_rpc_output,
    check_rpc_table_bounds,
    local_call,
    remote_call,
)
from lkproto import Channel, Config, Connection, RpcError
from lkproto._pb import data_pb2 as dpb
from lkproto._pb import participants_pb2 as ppb
from lkproto._pb import signal_pb2 as spb
from lkproto.e2ee import (
    ENCRYPTED_KINDS,
    IV_LENGTH,
    DataCryptor,
    Decrypted,
    DecryptedPacket,
    DecryptionFailed,
    DecryptionFailure,
    EncryptionType,
    KeyDerivationFunction,
    KeyProvider,
    KeyProviderOptions,
    RatchetsNeeded,
    aes_gcm_encrypt,
    derive_encryption_key,
    ratchet_material,
)
from lkproto.errors import LocalProtocolError
from lkproto.rpc import (
    ATTR_REQUEST_ID,
    RPC_REQUEST_TOPIC,
    RPC_RESPONSE_TOPIC,
    InvocationCancelled,
    InvokeHandler,
    RpcFailed,
    RpcSucceeded,
    RpcTable,
    SendRpcPacket,
    SendRpcStream,
)
from lkproto.streams import StreamAssembler, StreamKind

__all__ = ["OPS", "TARGETS", "run"]

# -- configurations: small bounds, so that inputs of a few KiB reach them --------------------

CONFIG = Config(
    join_timeout=5.0,
    metadata_request_timeout=2.0,
    max_pending_metadata_requests=3,
    max_data_message_size=16_000,
    replay_buffer_bytes=6_000,
    max_queued_send_bytes=4_000,
    dedup_ttl=4.0,
    max_dedup_senders=3,
    stream_chunk_size=1_000,
    max_stream_bytes=20_000,
    max_decompressed_bytes=12_000,
    max_buffered_stream_bytes=24_000,
    max_open_streams_per_sender=3,
    max_remembered_streams=6,
    stream_idle_timeout=5.0,
    max_open_outgoing_streams=3,
    rpc_response_timeout=3.0,
    rpc_max_round_trip_latency=1.0,
    max_pending_rpcs=4,
    max_incoming_rpcs=3,
    max_rpc_method_bytes=16,
    max_remembered_rpc_requests=6,
)

ASSEMBLER_BOUNDS: Mapping[str, Any] = {
    "max_stream_bytes": 20_000,
    "max_decompressed_bytes": 12_000,
    "max_buffered_bytes": 24_000,
    "max_open_streams_per_sender": 3,
    "max_remembered_streams": 6,
    "idle_timeout": 5.0,
}

RPC_BOUNDS: Mapping[str, Any] = {
    "client_protocol": 2,
    "response_timeout": 3.0,
    "max_round_trip_latency": 1.0,
    "max_pending_calls": 4,
    "max_incoming_invocations": 3,
    "max_method_bytes": 16,
    "max_remembered_requests": 6,
}

#: Topics and methods registered before any input (seeds add those of their session).
TEXT_TOPICS = ("chat", "lk.chat")
BYTE_TOPICS = ("files",)
METHODS = ("echo",)

LOCAL = "lk"
URL = "ws://127.0.0.1:7880"


def _participant(sid: str, identity: str, client_protocol: int) -> ppb.ParticipantInfo:
    return ppb.ParticipantInfo(
        sid=sid,
        identity=identity,
        state=ppb.ParticipantInfo.ACTIVE,
        client_protocol=client_protocol,
        capabilities=[ppb.ClientInfo.CAP_COMPRESSION_DEFLATE_RAW] if client_protocol >= 2 else [],
        permission=ppb.ParticipantPermission(can_publish_data=True, can_subscribe=True),
    )


def join_response(*, keepalive: bool) -> bytes:
    """The fixed join of the joined targets: us, a current peer and a legacy one."""
    join = spb.JoinResponse(
        room=ppb.Room(sid="RM_fuzz", name="fuzz"),
        participant=_participant("PA_lk", LOCAL, 2),
        other_participants=[
            _participant("PA_official", "official", 2),
            _participant("PA_legacy", "legacy", 0),
        ],
        server_info=ppb.ServerInfo(version="1.13.5", protocol=16),
        ping_interval=5 if keepalive else 0,
        ping_timeout=15 if keepalive else 0,
    )
    return spb.SignalResponse(join=join).SerializeToString()


class _Ids:
    """`id_factory` fed by `push_id` operations, else a counter."""

    def __init__(self) -> None:
        self.queue: list[str] = []
        self.count = 0

    def __call__(self) -> str:
        if self.queue:
            return self.queue.pop(0)
        self.count += 1
        return f"id-{self.count}"


def _attributes(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    while raw:
        key, raw = split_field(raw)
        value, raw = split_field(raw)
        out[text(key)] = text(value)
    return out


def _two_parts(payload: bytes) -> tuple[bytes, bytes]:
    """A 2-byte little-endian length, that many bytes, the rest."""
    n = int.from_bytes(payload[:2], "little")
    return payload[2 : 2 + n], payload[2 + n :]


# -- the connection targets -------------------------------------------------------------------


class _Session:
    """One `Connection` driven by operations, drained and checked after each."""

    def __init__(self, *, joined: bool, data: bool) -> None:
        self.now = 0.0
        self.ids = _Ids()
        self.conn = Connection(CONFIG, now=0.0, unix_time_ms=1_700_000_000_000, id_factory=self.ids)
        self.checker = ConnectionChecker(self.conn)
        self.builder = PacketBuilder()
        conn = self.conn
        for topic in TEXT_TOPICS:
            conn.register_stream_topic(StreamKind.TEXT, topic)
        for topic in BYTE_TOPICS:
            conn.register_stream_topic(StreamKind.BYTES, topic)
        for method in METHODS:
            conn.register_rpc_method(method)
        conn.connect(URL, "fuzz-token", now=0.0)
        self.drain()
        if joined:
            conn.receive_signal(join_response(keepalive=not data), now=0.0)
            self.drain()
            check(self.conn.local_participant is not None, "the fixed join was refused")
        if data:
            for channel in Channel:
                conn.data_channel_opened(channel, now=0.0)
            self.drain()

    def drain(self, *, after_timer: bool = False) -> None:
        self.checker.drain(now=self.now, after_timer=after_timer)

    def step(self, name: str, record: Record) -> None:
        if record.dt:
            self.now += record.dt * TICK
        deadline = self.conn.get_timer()
        if deadline is not None and deadline <= self.now:  # as an adapter's sleep would
            remote_call("handle_timer", self.conn.handle_timer, self.now)
            self.drain(after_timer=True)
        _SESSION_OPS[name](self, record.payload)
        self.drain(after_timer=name == "timer")

    def finish(self) -> None:
        """Close the session: everything must then be settled."""
        remote_call("close", self.conn.close, now=self.now)
        self.drain()
        check(self.checker.disconnected is not None, "close() did not end the session")

    # operations

    def _signal(self, payload: bytes) -> None:
        remote_call("receive_signal", self.conn.receive_signal, payload, now=self.now)

    def _reliable(self, payload: bytes) -> None:
        remote_call(
            "receive_data_packet",
            self.conn.receive_data_packet,
            payload,
            channel=Channel.RELIABLE,
            now=self.now,
        )

    def _lossy(self, payload: bytes) -> None:
        remote_call(
            "receive_data_packet",
            self.conn.receive_data_packet,
            payload,
            channel=Channel.LOSSY,
            now=self.now,
        )

    def _timer(self, payload: bytes) -> None:
        remote_call("handle_timer", self.conn.handle_timer, self.now)

    def _signal_closed(self, payload: bytes) -> None:
        remote_call("signal_closed", self.conn.signal_closed, now=self.now)

    def _close(self, payload: bytes) -> None:
        remote_call("close", self.conn.close, now=self.now)

    def _metadata(self, payload: bytes) -> None:
        which = payload[0] % 3 if payload else 0
        rest = payload[1:]
        if which == 0:
            local_call("set_metadata", self.conn.set_metadata, text(rest), now=self.now)
        elif which == 1:
            local_call("set_name", self.conn.set_name, text(rest), now=self.now)
        else:
            attributes = _attributes(rest)
            local_call("set_attributes", self.conn.set_attributes, attributes, now=self.now)

    def _push_id(self, payload: bytes) -> None:
        self.ids.queue.append(text(payload))

    def _register_method(self, payload: bytes) -> None:
        local_call("register_rpc_method", self.conn.register_rpc_method, text(payload))

    def _register_topic(self, payload: bytes) -> None:
        kind = StreamKind.BYTES if payload[:1] and payload[0] & 1 else StreamKind.TEXT
        topic = text(payload[1:])
        local_call("register_stream_topic", self.conn.register_stream_topic, kind, topic)

    def _perform(self, payload: bytes) -> None:
        destination, rest = split_field(payload)
        method, body = split_field(rest)
        request_id = local_call(
            "perform_rpc",
            self.conn.perform_rpc,
            destination_identity=text(destination),
            method=text(method),
            payload=text(body),
            now=self.now,
        )
        if isinstance(request_id, str):
            self.checker.rpc.performed(request_id, text(destination))

    def _respond(self, payload: bytes) -> None:
        raw_id, rest = split_field(payload)
        request_id = text(raw_id)
        if not request_id and self.checker.rpc.handlers:
            request_id = next(iter(self.checker.rpc.handlers))
        mode, body = (rest[0] % 4, rest[1:]) if rest else (0, b"")
        if mode == 3:
            error = local_call(
                "respond_rpc_exception",
                self.conn.respond_rpc_exception,
                request_id,
                ValueError(text(body)),
                now=self.now,
            )
            if error is None:
                self.checker.rpc.answered(request_id)
        else:
            result: str | RpcError | None = text(body)
            if mode == 1:
                result = None
            elif mode == 2:
                result = RpcError(int.from_bytes(body[:2], "little"), text(body[2:]))
            error = local_call(
                "respond_rpc", self.conn.respond_rpc, request_id, result, now=self.now
            )
            if error is None:
                self.checker.rpc.answered(request_id)

    def _consume(self, payload: bytes) -> None:
        model = self.checker.streams
        if payload:
            sender, rest = split_field(payload)
            stream_id, rest = split_field(rest)
            targets = [((text(sender), text(stream_id)), int.from_bytes(rest[:4], "little"))]
        else:
            targets = list(model.outstanding)
        for key, nbytes in targets:
            local_call("stream_consumed", self.conn.stream_consumed, *key, nbytes)
            model.consumed(key, nbytes)

    def _discard(self, payload: bytes) -> None:
        model = self.checker.streams
        if payload:
            sender, rest = split_field(payload)
            key = (text(sender), text(split_field(rest)[0]))
        elif model.open:
            key = next(iter(model.open))
        elif model.outstanding:
            key = model.outstanding[0][0]
        else:
            return
        local_call("stream_discarded", self.conn.stream_discarded, *key)
        model.discarded(key)

    def _publish(self, payload: bytes) -> None:
        flags = payload[0] if payload else 0
        local_call(
            "publish_data",
            self.conn.publish_data,
            payload[1:],
            now=self.now,
            reliable=not flags & 1,
            topic="fuzz" if flags & 2 else None,
            destination_identities=["official"] if flags & 4 else (),
        )

    def _send_stream(self, payload: bytes) -> None:
        flags = payload[0] if payload else 0
        topic, body = split_field(payload[1:])
        kind = StreamKind.BYTES if flags & 1 else StreamKind.TEXT
        local_call(
            "send_stream",
            self.conn.send_stream,
            now=self.now,
            kind=kind,
            topic=text(topic),
            payload=body if kind is StreamKind.BYTES else text(body),
            destination_identities=["legacy"] if flags & 2 else (),
            compress=not flags & 4,
        )

    def _stream_packet(self, kind: str, payload: bytes) -> None:
        for packet, _ in getattr(self.builder, kind)(payload):
            self._reliable(packet.SerializeToString())
            self.drain()

    def _rpc_packet(self, payload: bytes) -> None:
        """`kind sel rest`: kind % 4 = 0 an ack, 1 a response, 2 an error response for the
        pending call `sel` (from its destination, or with kind & 4 from SENDERS[sel % 4]);
        3 a v1 request `r<sel // 4>` from SENDERS[sel % 4], for "echo" (or with kind & 8
        "nope"), version (kind >> 4) & 3."""
        kind, sel = (payload + b"\0\0")[:2]
        rest = payload[2:]
        if kind % 4 == 3:
            sender = SENDERS[sel % 4]
            request = dpb.RpcRequest(
                id=f"r{sel // 4}",
                method="nope" if kind & 8 else "echo",
                payload=text(rest),
                response_timeout_ms=int.from_bytes(rest[:2], "little"),
                version=(kind >> 4) & 3,
            )
            packet = dpb.DataPacket(rpc_request=request)
        else:
            pending = list(self.checker.rpc.pending.items())
            if not pending:
                return
            request_id, sender = pending[sel % len(pending)]
            if kind & 4:
                sender = SENDERS[sel % 4]
            if kind % 4 == 0:
                packet = dpb.DataPacket(rpc_ack=dpb.RpcAck(request_id=request_id))
            elif kind % 4 == 1:
                response = dpb.RpcResponse(request_id=request_id, payload=text(rest))
                packet = dpb.DataPacket(rpc_response=response)
            else:
                error = dpb.RpcError(code=int.from_bytes(rest[:2], "little"), message=text(rest))
                response = dpb.RpcResponse(request_id=request_id, error=error)
                packet = dpb.DataPacket(rpc_response=response)
        packet.participant_identity = sender
        self._reliable(packet.SerializeToString())

    def _channel(self, payload: bytes) -> None:
        flags = payload[0] if payload else 0
        channel = Channel.LOSSY if flags & 1 else Channel.RELIABLE
        if flags & 2:
            remote_call("data_channel_closed", self.conn.data_channel_closed, channel, now=self.now)
        else:
            remote_call("data_channel_opened", self.conn.data_channel_opened, channel, now=self.now)


_SESSION_OPS: dict[str, Callable[[_Session, bytes], None]] = {
    "signal": _Session._signal,
    "reliable": _Session._reliable,
    "lossy": _Session._lossy,
    "timer": _Session._timer,
    "signal_closed": _Session._signal_closed,
    "close": _Session._close,
    "metadata": _Session._metadata,
    "push_id": _Session._push_id,
    "register_method": _Session._register_method,
    "register_topic": _Session._register_topic,
    "perform": _Session._perform,
    "respond": _Session._respond,
    "consume": _Session._consume,
    "discard": _Session._discard,
    "publish": _Session._publish,
    "send_stream": _Session._send_stream,
    "channel": _Session._channel,
    "stream_header": lambda session, payload: session._stream_packet("header", payload),
    "stream_chunk": lambda session, payload: session._stream_packet("chunk", payload),
    "stream_trailer": lambda session, payload: session._stream_packet("trailer", payload),
    "rpc_packet": _Session._rpc_packet,
}

_SIGNAL_OPS = ("signal", "timer", "signal_closed", "metadata", "close")
_DATA_OPS = (
    "reliable",
    "lossy",
    "timer",
    "signal",
    "push_id",
    "perform",
    "respond",
    "consume",
    "discard",
    "register_method",
    "register_topic",
    "publish",
    "send_stream",
    "channel",
    "close",
    "stream_header",
    "stream_chunk",
    "stream_trailer",
    "rpc_packet",
)


# -- structure-aware packets ------------------------------------------------------------------

SENDERS = ("official", "agent", "", "legacy")
STREAM_TOPICS = ("chat", "files", RPC_REQUEST_TOPIC, RPC_RESPONSE_TOPIC, "unregistered")
_MAX_INFLATED_SEED = 1 << 20


class PacketBuilder:
    """Stream packets from a few bytes, so that mutations stay meaningful.

    Raw protobuf bytes mutate into mostly shallow inputs; these operations name a sender
    and a stream slot with one byte and keep per-stream chunk indexes and deflate state, so
    a fuzzer reaches complete, compressed, replayed, gapped and interleaved streams. Each
    returns the packets to deliver with their encryption type.

    - header: `sel flags [total: 2 bytes if flags & 8] rest`. sel: bits 0-1 the sender,
      2-4 the stream slot, 5-6 the encryption type. flags: bit 0 bytes (else text), bits
      1-3 the topic, bit 3 a total_length (x4), bit 4 inline content, bit 5 deflate, bit 6
      no content header, bit 7 an unknown compression. Inline content is `rest`; deflated,
      `rest[1:]` repeated `rest[0]` * 64 times (a bomb when large).
    - chunk: `sel index rest`: index 0 means the stream's next index, n means n - 1. In a
      deflated stream the content is `rest[1:]` repeated `rest[0]` times, deflated.
    - trailer: `sel flags attributes`: flags bit 0 aborts with a reason. A deflated
      stream's deflate data is closed in a last chunk first.
    """

    def __init__(self) -> None:
        self.next_index: dict[tuple[str, str], int] = {}
        self.deflaters: dict[tuple[str, str], Any] = {}

    @staticmethod
    def _who(sel: int) -> tuple[str, str, int]:
        return SENDERS[sel & 3], f"s{(sel >> 2) & 7}", (sel >> 5) & 3

    @staticmethod
    def _repeat(rest: bytes, unit: int) -> bytes:
        if not rest:
            return b""
        body = rest[1:]
        times = max(1, rest[0] * unit)
        if body and times * len(body) > _MAX_INFLATED_SEED:
            times = max(1, _MAX_INFLATED_SEED // len(body))
        return body * times

    def header(self, payload: bytes) -> list[tuple[dpb.DataPacket, int]]:
        sel, flags = (payload + b"\0\0")[:2]
        rest = payload[2:]
        sender, stream_id, encryption = self._who(sel)
        key = (sender, stream_id)
        header = dpb.DataStream.Header(
            stream_id=stream_id,
            topic=STREAM_TOPICS[((flags >> 1) & 7) % len(STREAM_TOPICS)],
            timestamp=1,
            attributes={"k": "v"},
        )
        if flags & 8:
            header.total_length = int.from_bytes(rest[:2], "little") * 4
            rest = rest[2:]
        if not flags & 64:
            if flags & 1:
                header.byte_header.name = "f"
            else:
                header.text_header.CopyFrom(dpb.DataStream.TextHeader())
        self.next_index[key] = 0
        self.deflaters.pop(key, None)
        content = rest
        if flags & 32:
            header.compression = dpb.DataStream.DEFLATE_RAW
            deflater = zlib.compressobj(wbits=-15)
            if flags & 16:
                content = deflater.compress(self._repeat(rest, 64)) + deflater.flush()
            else:
                self.deflaters[key] = deflater
        if flags & 128:
            header.compression = 7  # type: ignore[assignment]
        if flags & 16:
            header.inline_content = content
        return [(dpb.DataPacket(participant_identity=sender, stream_header=header), encryption)]

    def _chunk(self, key: tuple[str, str], index: int, content: bytes) -> dpb.DataPacket:
        chunk = dpb.DataStream.Chunk(stream_id=key[1], chunk_index=index, content=content)
        return dpb.DataPacket(participant_identity=key[0], stream_chunk=chunk)

    def chunk(self, payload: bytes) -> list[tuple[dpb.DataPacket, int]]:
        sel, index = (payload + b"\0\0")[:2]
        rest = payload[2:]
        sender, stream_id, encryption = self._who(sel)
        key = (sender, stream_id)
        if index == 0:
            index = self.next_index.get(key, 0)
            self.next_index[key] = index + 1
        else:
            index -= 1
        deflater = self.deflaters.get(key)
        if deflater is not None:
            rest = deflater.compress(self._repeat(rest, 1)) + deflater.flush(zlib.Z_SYNC_FLUSH)
        return [(self._chunk(key, index, rest), encryption)]

    def trailer(self, payload: bytes) -> list[tuple[dpb.DataPacket, int]]:
        sel, flags = (payload + b"\0\0")[:2]
        sender, stream_id, encryption = self._who(sel)
        key = (sender, stream_id)
        out: list[tuple[dpb.DataPacket, int]] = []
        deflater = self.deflaters.pop(key, None)
        if deflater is not None:
            index = self.next_index.get(key, 0)
            self.next_index[key] = index + 1
            out.append((self._chunk(key, index, deflater.flush()), encryption))
        trailer = dpb.DataStream.Trailer(
            stream_id=stream_id,
            reason="aborted" if flags & 1 else "",
            attributes=_attributes(payload[2:]),
        )
        out.append(
            (dpb.DataPacket(participant_identity=sender, stream_trailer=trailer), encryption)
        )
        return out


# -- the stream assembler ---------------------------------------------------------------------


class _Streams:
    def __init__(self) -> None:
        self.now = 0.0
        self.assembler = StreamAssembler(**ASSEMBLER_BOUNDS)
        self.model = StreamModel(max_stream_bytes=ASSEMBLER_BOUNDS["max_stream_bytes"])
        self.builder = PacketBuilder()
        for topic in (*TEXT_TOPICS, RPC_REQUEST_TOPIC, RPC_RESPONSE_TOPIC):
            self.assembler.add_topic(StreamKind.TEXT, topic)
        for topic in BYTE_TOPICS:
            self.assembler.add_topic(StreamKind.BYTES, topic)

    def events(self, events: list[Any], *, after_timer: bool = False) -> None:
        for event in events:
            self.model.event(event)
        a = self.assembler
        check_assembler_bounds(a)
        check(
            a.buffered_bytes == self.model.buffered,
            f"buffered {a.buffered_bytes} != delivered and unconsumed {self.model.buffered}",
        )
        check(
            set(a.open_streams) == set(self.model.open),
            f"open streams {set(a.open_streams)} != reported {set(self.model.open)}",
        )
        if after_timer:
            deadline = a.get_timer()
            check(deadline is None or deadline > self.now, f"timer {deadline} at {self.now}")

    def step(self, name: str, record: Record) -> None:
        self.now += record.dt * TICK
        deadline = self.assembler.get_timer()
        if deadline is not None and deadline <= self.now:
            self.events(remote_call("handle_timer", self.assembler.handle_timer, self.now))
        payload = record.payload
        a = self.assembler
        if name in ("packet", "packet_encrypted"):
            encryption = 0
            if name == "packet_encrypted":
                encryption, payload = (payload[0] if payload else 1), payload[1:]
            try:
                packet = dpb.DataPacket.FromString(payload)
            except DecodeError:
                return  # parsing is the connection's job, fuzzed there
            if packet.WhichOneof("value") not in (
                "stream_header",
                "stream_chunk",
                "stream_trailer",
            ):
                error = local_call("receive", a.receive, packet, now=self.now)
                check(error is not None, "a non-stream packet was accepted")
                return
            self.events(
                remote_call("receive", a.receive, packet, now=self.now, encryption=encryption)
            )
        elif name in ("header", "chunk", "trailer"):
            for packet, encryption in getattr(self.builder, name)(payload):
                events = remote_call(
                    "receive", a.receive, packet, now=self.now, encryption=encryption
                )
                self.events(events)
        elif name == "consume":
            if payload:
                sender, rest = split_field(payload)
                stream_id, rest = split_field(rest)
                targets = [((text(sender), text(stream_id)), int.from_bytes(rest[:4], "little"))]
            else:
                targets = list(self.model.outstanding)
            for key, nbytes in targets:
                local_call("consumed", a.consumed, *key, nbytes)
                self.model.consumed(key, nbytes)
            self.events([])
        elif name == "discard":
            if payload:
                sender, rest = split_field(payload)
                key = (text(sender), text(split_field(rest)[0]))
            elif self.model.open:
                key = next(iter(self.model.open))
            else:
                return
            local_call("discard", a.discard, *key)
            self.model.discarded(key)
            self.events([])
        elif name == "timer":
            self.events(remote_call("handle_timer", a.handle_timer, self.now), after_timer=True)
        elif name in ("add_topic", "remove_topic"):
            kind = StreamKind.BYTES if payload[:1] and payload[0] & 1 else StreamKind.TEXT
            method = a.add_topic if name == "add_topic" else a.remove_topic
            local_call(name, method, kind, text(payload[1:]))
        elif name == "sender_left":
            self.events(remote_call("sender_left", a.sender_left, text(payload)))
        else:
            assert name == "abort_all"
            self.events(remote_call("abort_all", a.abort_all, text(payload)))
            check(not a.open_streams, "abort_all left streams open")

    def finish(self) -> None:
        self.events(remote_call("abort_all", self.assembler.abort_all, "end of input"))
        check(not self.assembler.open_streams, "abort_all left streams open")


_STREAM_OPS = (
    "packet",
    "consume",
    "timer",
    "discard",
    "packet_encrypted",
    "add_topic",
    "remove_topic",
    "sender_left",
    "abort_all",
    "header",
    "chunk",
    "trailer",
)


# -- the RPC table ------------------------------------------------------------------------------


class _Rpc:
    def __init__(self) -> None:
        self.now = 0.0
        self.ids = _Ids()
        self.table = RpcTable(id_factory=self.ids, **RPC_BOUNDS)
        self.table.server_version = "1.13.5"
        self.model = RpcModel()
        self.sends: list[SendRpcPacket | SendRpcStream] = []

    def drain(self, *, after_timer: bool = False) -> None:
        for out in self.table.drain():
            check_rpc_output(out)
            if isinstance(out, RpcSucceeded | RpcFailed):
                self.model.outcome(out.request_id)
            elif isinstance(out, InvokeHandler):
                self.model.invoked(out.invocation.request_id, out.invocation.caller_identity)
            elif isinstance(out, InvocationCancelled):
                self.model.cancelled(out.request_id, out.caller_identity)
            elif isinstance(out, SendRpcPacket | SendRpcStream):
                self.sends = [*self.sends[-15:], out]
        t = self.table
        check_rpc_table_bounds(t)
        check(
            t.pending_calls == len(self.model.pending),
            f"{t.pending_calls} pending calls, {len(self.model.pending)} unresolved",
        )
        check(
            set(self.model.handlers) <= set(t._invocations),
            "a running handler's invocation is gone",
        )
        if after_timer:
            deadline = t.get_timer()
            check(deadline is None or deadline > self.now, f"timer {deadline} at {self.now}")

    def _pending(self, index: int) -> tuple[str, str] | None:
        if not self.model.pending:
            return None
        items = list(self.model.pending.items())
        return items[index % len(items)]

    def step(self, name: str, record: Record) -> None:
        self.now += record.dt * TICK
        t, now, payload = self.table, self.now, record.payload
        deadline = t.get_timer()
        if deadline is not None and deadline <= now:
            remote_call("handle_timer", t.handle_timer, now)
            self.drain(after_timer=True)
        after_timer = False
        if name == "push_id":
            self.ids.queue.append(text(payload))
        elif name == "perform":
            flags, rest = (payload[0], payload[1:]) if payload else (0, b"")
            destination, rest = split_field(rest)
            method, body = split_field(rest)
            timeout = (flags >> 2) * 0.25 or None
            request_id = local_call(
                "perform",
                t.perform,
                text(destination),
                text(method),
                text(body),
                now=now,
                response_timeout=timeout,
                destination_client_protocol=flags & 3,
            )
            if isinstance(request_id, str):
                self.model.performed(request_id, text(destination))
        elif name in ("ack", "ack_known"):
            if name == "ack":
                sender, raw_id = split_field(payload)
                target: tuple[str, str] | None = (text(raw_id), text(sender))
            else:
                target = self._pending(payload[0] if payload else 0)
                if target is not None and payload[1:2] not in (b"", b"\x00"):
                    target = (target[0], text(payload[2:]))
            if target is not None:
                remote_call(
                    "ack_received", t.ack_received, target[0], sender_identity=target[1], now=now
                )
        elif name in ("response", "response_known"):
            if name == "response":
                sender_raw, body = split_field(payload)
                sender = text(sender_raw)
            else:
                body = payload[1:]
            try:
                response = dpb.RpcResponse.FromString(body)
            except DecodeError:
                return
            if name == "response_known":
                target = self._pending(payload[0] if payload else 0)
                if target is None:
                    return
                response.request_id, sender = target
            remote_call(
                "response_received", t.response_received, response, sender_identity=sender, now=now
            )
        elif name == "request":
            caller, rest = split_field(payload)
            registered, body = bool(rest[:1] and rest[0] & 1), rest[1:]
            try:
                request = dpb.RpcRequest.FromString(body)
            except DecodeError:
                return
            remote_call(
                "request_received",
                t.request_received,
                request,
                caller_identity=text(caller),
                now=now,
                registered=registered,
            )
        elif name == "request_built":
            flags, sel = (payload + b"\0\0")[:2]
            request = dpb.RpcRequest(
                id=f"r{sel // 4}",
                method="echo",
                payload=text(payload[2:]),
                response_timeout_ms=(flags >> 3) * 500,
                version=flags & 3,
            )
            if flags & 4:
                request.compressed_payload = b"x"
            remote_call(
                "request_received",
                t.request_received,
                request,
                caller_identity=SENDERS[sel % 4],
                now=now,
                registered=bool(sel & 1),
            )
        elif name == "stream_response_failed_known":
            target = self._pending(payload[0] if payload else 0)
            if target is None:
                return
            remote_call(
                "stream_response_failed",
                t.stream_response_failed,
                {ATTR_REQUEST_ID: target[0]},
                sender_identity=target[1],
                now=now,
                detail=text(payload[1:]),
            )
        elif name in ("stream_opened", "stream_request_failed"):
            caller, rest = split_field(payload)
            method = t.stream_request_opened if name == "stream_opened" else t.stream_request_failed
            remote_call(name, method, _attributes(rest), caller_identity=text(caller), now=now)
        elif name == "stream_request":
            caller, rest = split_field(payload)
            registered, rest = bool(rest[:1] and rest[0] & 1), rest[1:]
            attributes, body = _two_parts(rest)
            remote_call(
                "stream_request_received",
                t.stream_request_received,
                _attributes(attributes),
                text(body),
                caller_identity=text(caller),
                now=now,
                registered=registered,
            )
        elif name == "stream_response":
            sender_raw, rest = split_field(payload)
            attributes, body = _two_parts(rest)
            remote_call(
                "stream_response_received",
                t.stream_response_received,
                _attributes(attributes),
                text(body),
                sender_identity=text(sender_raw),
                now=now,
            )
        elif name == "stream_response_known":
            target = self._pending(payload[0] if payload else 0)
            if target is None:
                return
            remote_call(
                "stream_response_received",
                t.stream_response_received,
                {ATTR_REQUEST_ID: target[0]},
                text(payload[1:]),
                sender_identity=target[1],
                now=now,
            )
        elif name == "stream_response_failed":
            sender_raw, rest = split_field(payload)
            remote_call(
                "stream_response_failed",
                t.stream_response_failed,
                _attributes(rest),
                sender_identity=text(sender_raw),
                now=now,
                detail="fuzz",
            )
        elif name == "respond":
            raw_id, rest = split_field(payload)
            request_id = text(raw_id)
            if not request_id and self.model.handlers:
                request_id = next(iter(self.model.handlers))
            mode, body = (rest[0] % 4, rest[1:]) if rest else (0, b"")
            if mode == 3:
                local_call(
                    "respond_exception",
                    t.respond_exception,
                    request_id,
                    ValueError(text(body)),
                    now=now,
                    include_detail=bool(body[:1] and body[0] & 1),
                )
            else:
                result: str | RpcError | None = text(body)
                if mode == 1:
                    result = None
                elif mode == 2:
                    result = RpcError(int.from_bytes(body[:2], "little"), text(body[2:]))
                if local_call("respond", t.respond, request_id, result, now=now) is not None:
                    return  # refused, nothing changed
            self.model.answered(request_id)
        elif name == "timer":
            remote_call("handle_timer", t.handle_timer, now)
            after_timer = True
        elif name == "participant_left":
            remote_call("participant_left", t.participant_left, text(payload), now=now)
        elif name == "disconnected":
            remote_call("disconnected", t.disconnected, now=now)
        elif name == "send_failed":
            if not self.sends:
                return
            out = self.sends[(payload[0] if payload else 0) % len(self.sends)]
            remote_call("send_failed", t.send_failed, out, now=now, detail=text(payload[1:]))
        else:
            assert name == "state"
            flags = payload[0] if payload else 0
            t.local_hidden = bool(flags & 1)
            t.local_can_publish_data = not flags & 2
            t.server_version = text(payload[1:]) if flags & 4 else "1.13.5"
        self.drain(after_timer=after_timer)

    def finish(self) -> None:
        remote_call("disconnected", self.table.disconnected, now=self.now)
        self.drain()
        check(not self.model.pending, f"calls never resolved: {sorted(self.model.pending)}")
        check(not self.model.handlers, f"handlers never cancelled: {sorted(self.model.handlers)}")
        check(self.table.get_timer() is None, "a disconnected table still has deadlines")


_RPC_OPS = (
    "request",
    "ack",
    "response",
    "timer",
    "push_id",
    "perform",
    "respond",
    "ack_known",
    "response_known",
    "stream_opened",
    "stream_request",
    "stream_request_failed",
    "stream_response",
    "stream_response_known",
    "stream_response_failed",
    "participant_left",
    "disconnected",
    "send_failed",
    "state",
    "request_built",
    "stream_response_failed_known",
)


# -- end-to-end encryption ----------------------------------------------------------------------

#: The fuzz room's keys: HKDF (PBKDF2 would spend each execution in key derivation), a window
#: of 3, a ring of 4 (so that a key index from 4 up is outside it), small caches.
E2EE_KEYS = (b"fuzz room key", b"another key", b"")
E2EE_OPTIONS = KeyProviderOptions(
    shared_key=E2EE_KEYS[0],
    ratchet_salt=b"fuzz salt",
    ratchet_window_size=3,
    failure_tolerance=2,
    key_ring_size=4,
    key_derivation_function=KeyDerivationFunction.HKDF,
)
E2EE_BOUNDS: Mapping[str, Any] = {
    "ratchet_retry_interval": 3,
    "max_cached_ratchets": 8,
    "max_cloned_identities": 3,
}
#: Peers; never LOCAL, whose key only our own `encrypt` operations use.
E2EE_SENDERS = ("alice", "bob", "", "carol", "dave")
E2EE_IV = bytes(range(12))
_KINDS = tuple(sorted(ENCRYPTED_KINDS))


def e2ee_ratchet(material: bytes, times: int) -> bytes:
    """`material` ratcheted `times` times with the fuzz options."""
    for _ in range(times):
        material = ratchet_material(
            material, E2EE_OPTIONS.ratchet_salt, E2EE_OPTIONS.key_derivation_function
        )
    return material


def e2ee_seal(material: bytes, plaintext: bytes, iv: bytes = E2EE_IV) -> bytes:
    """What a peer holding `material` sends for `plaintext` (ciphertext || tag)."""
    key = derive_encryption_key(
        material, E2EE_OPTIONS.ratchet_salt, E2EE_OPTIONS.key_derivation_function
    )
    return aes_gcm_encrypt(key, iv, plaintext)


def e2ee_payload(kind_sel: int, body: bytes) -> bytes:
    """A serialized EncryptedPacketPayload of kind `_KINDS[kind_sel % 8]` carrying `body`."""
    payload = dpb.EncryptedPacketPayload()
    kind = _KINDS[kind_sel % len(_KINDS)]
    value = getattr(payload, kind)
    value.SetInParent()
    if kind == "user":
        value.payload = body
    elif kind == "stream_chunk":
        value.content = body
    return payload.SerializeToString()


class _E2ee:
    """A `KeyProvider` and `DataCryptor` fed hostile envelopes, sealed packets, frames and
    key verbs.

    - packet: raw DataPacket bytes to `decrypt_packet`.
    - envelope: `sel flags key_index(4, little endian) iv-field value`: an EncryptedPacket
      from E2EE_SENDERS[sel % 5] with encryption_type flags & 3 and that key index (modulo
      8 if flags & 4, else as is: up to 2**32 - 1).
    - sealed: `sel ratchets flags body`: a packet that E2EE_SENDERS[sel % 5] really encrypted
      under key index (sel >> 3) % 6 with its key (or, flags & 1, another) ratcheted
      `ratchets % 6` times; the plaintext is `body` raw (flags & 2) or a payload of kind
      flags >> 2; flags & 32 cuts (flags >> 6) + 1 bytes off, flags & 16 flips a tag bit.
    - frame: `sel key_index iv-field payload`: `decrypt_frame`; with sel & 128 the payload is
      sealed with the publisher's key first.
    - set_shared_key / set_key / ratchet_shared_key / ratchet_key / forget: the verbs, with
      `sel` naming the identity (sel & 128: LOCAL), the key (E2EE_KEYS, or the rest) and the
      index (sel >> 2).
    - encrypt: raw DataPacket bytes that we send, encrypted as LOCAL and read back.

    Packets are read as `Connection` reads them: `try_decrypt_packet`, and when it needs
    ratchets, `RatchetsNeeded.derive()` "elsewhere" and `add_ratchets`, then again; frames
    with `decrypt_frame`, which derives inline.

    Besides "never raises": a failed decryption leaves the participant's key as it was; a
    success after r ratchets leaves it ratcheted r times; a packet sealed with the right key
    and no ratchet decrypts (unless its key is invalid or its payload malformed); the outer
    fields survive; one decryption derives at most 2 x window keys, inline and elsewhere
    together, and asks for ratchets at most window times; caches stay bounded.
    """

    def __init__(self) -> None:
        self.keys = KeyProvider(E2EE_OPTIONS, **E2EE_BOUNDS)
        self.ivs = 0
        self.cryptor = DataCryptor(self.keys, iv_source=self._iv)
        self.elsewhere = 0  # KDF runs of ratchets derived outside the key provider

    def _offloaded(self, packet: dpb.DataPacket) -> DecryptedPacket | DecryptionFailed:
        """`decrypt_packet` as `Connection` does it, with the KDF runs "off the loop"."""
        window = E2EE_OPTIONS.ratchet_window_size
        for _ in range(window + 1):
            result = self.cryptor.try_decrypt_packet(packet)
            if not isinstance(result, RatchetsNeeded):
                return result
            check(1 <= result.steps <= window, f"asked for {result.steps} ratchets")
            chain = result.derive()
            self.elsewhere += 2 * len(chain)
            self.keys.add_ratchets(result.material, chain)
        raise InvariantViolation(f"a packet asked for ratchets more than {window} times")

    def _iv(self) -> bytes:
        self.ivs += 1
        return self.ivs.to_bytes(IV_LENGTH, "big")

    def _material(self, identity: str, index: int) -> bytes | None:
        if index >= E2EE_OPTIONS.key_ring_size:
            return None
        try:
            return self.keys.export_key(identity, index)
        except LocalProtocolError:
            return None

    def _checked(
        self, what: str, identity: str, index: int, fn: Callable[..., Any], *args: Any
    ) -> Any:
        """Run a decryption and check what it did to the keys."""
        window = E2EE_OPTIONS.ratchet_window_size
        before, derivations = self._material(identity, index), self.keys.derivations
        elsewhere = self.elsewhere
        result = remote_call(what, fn, *args)
        spent = self.keys.derivations - derivations + self.elsewhere - elsewhere
        check(spent <= 2 * window, f"{what} derived {spent} keys (window {window})")
        after = self._material(identity, index)
        if isinstance(result, DecryptionFailed):
            check(
                (result.participant_identity, result.key_index) == (identity, index),
                f"{what}: failure for {result.participant_identity!r}/{result.key_index}",
            )
            check(isinstance(result.reason, DecryptionFailure), f"{what}: {result.reason!r}")
            if result.reason is not DecryptionFailure.MALFORMED_PAYLOAD:
                check(after == before, f"{what}: a failed decryption changed the key")
        else:
            check(isinstance(result, Decrypted | DecryptedPacket), f"{what} returned {result!r}")
            check(0 <= result.ratchets <= window, f"{what}: {result.ratchets} ratchets")
            if result.key_index is not None:
                check(before is not None, f"{what}: decrypted without a key")
                expected = e2ee_ratchet(before or b"", result.ratchets)
                check(after == expected, f"{what}: the key is not the one that decrypted")
        check(self.keys.cloned_identities <= self.keys.max_cloned_identities, "copies")
        check(self.keys.cached_ratchets <= self.keys.max_cached_ratchets, "ratchet cache")
        return result

    def _receive(self, packet: dpb.DataPacket) -> DecryptedPacket | DecryptionFailed:
        envelope = packet.encrypted_packet
        result: DecryptedPacket | DecryptionFailed = self._checked(
            "decrypt_packet",
            packet.participant_identity,
            envelope.key_index,
            self._offloaded,
            packet,
        )
        if packet.WhichOneof("value") != "encrypted_packet":
            check(
                isinstance(result, DecryptedPacket)
                and result.packet is packet
                and result.encryption_type is EncryptionType.NONE,
                "a clear packet was not passed through",
            )
        elif isinstance(result, DecryptedPacket):
            out = result.packet
            check(out.WhichOneof("value") in ENCRYPTED_KINDS, f"decrypted to {out!r}")
            check(
                (
                    out.kind,
                    out.participant_identity,
                    list(out.destination_identities),
                    out.sequence,
                    out.participant_sid,
                )
                == (
                    packet.kind,
                    packet.participant_identity,
                    list(packet.destination_identities),
                    packet.sequence,
                    packet.participant_sid,
                ),
                "the outer fields changed",
            )
            check(result.encryption_type is EncryptionType.GCM, "not reported as GCM")
        return result

    def _identity(self, sel: int) -> str:
        return LOCAL if sel & 128 else E2EE_SENDERS[sel % len(E2EE_SENDERS)]

    def step(self, name: str, record: Record) -> None:
        payload = record.payload
        head = (payload + b"\0\0\0")[:3]
        if name == "packet":
            try:
                packet = dpb.DataPacket.FromString(payload)
            except DecodeError:
                return
            self._receive(packet)
        elif name == "envelope":
            sel, flags = head[0], head[1]
            raw_index = int.from_bytes(payload[2:6].ljust(4, b"\0"), "little")
            iv, value = split_field(payload[6:])
            packet = dpb.DataPacket(
                participant_identity=E2EE_SENDERS[sel % len(E2EE_SENDERS)],
                destination_identities=[LOCAL],
                sequence=sel,
                encrypted_packet=dpb.EncryptedPacket(
                    encryption_type=flags & 3,  # type: ignore[arg-type]
                    iv=iv,
                    key_index=raw_index % 8 if flags & 4 else raw_index,
                    encrypted_value=value,
                ),
            )
            self._receive(dpb.DataPacket.FromString(packet.SerializeToString()))
        elif name == "sealed":
            self._sealed(head[0], head[1] % 6, head[2], payload[3:])
        elif name == "frame":
            sel, key_index = head[0], head[1]
            identity = E2EE_SENDERS[sel % len(E2EE_SENDERS)]
            iv, data = split_field(payload[2:])
            if sel & 128:
                data = e2ee_seal(self._material(identity, key_index) or b"?", data, iv=E2EE_IV)
                iv = E2EE_IV
            self._checked(
                "decrypt_frame", identity, key_index, self.cryptor.decrypt_frame,
                identity, key_index, iv, data,
            )  # fmt: skip
        elif name == "encrypt":
            self._encrypt(payload)
        else:
            self._verb(name, head[0], payload[1:])

    def _sealed(self, sel: int, ratchets: int, flags: int, body: bytes) -> None:
        identity = E2EE_SENDERS[sel % len(E2EE_SENDERS)]
        index = (sel >> 3) % 6
        own = self._material(identity, index)
        material = E2EE_KEYS[1] if flags & 1 else own
        plaintext = body if flags & 2 else e2ee_payload(flags >> 2, body)
        data = e2ee_seal(e2ee_ratchet(material or b"no key", ratchets), plaintext)
        tampered = bool(flags & 48)
        if flags & 32:
            data = data[: -((flags >> 6) + 1)]
        if flags & 16:
            data = data[:-1] + bytes((data[-1] ^ 1,)) if data else data
        packet = dpb.DataPacket(
            participant_identity=identity,
            encrypted_packet=dpb.EncryptedPacket(
                encryption_type=dpb.Encryption.GCM, iv=E2EE_IV, key_index=index,
                encrypted_value=data,
            ),
        )  # fmt: skip
        result = self._receive(packet)
        if own is not None and material == own and not tampered and ratchets == 0:
            allowed = {DecryptionFailure.KEY_INVALID}
            if flags & 2:
                allowed.add(DecryptionFailure.MALFORMED_PAYLOAD)
            check(
                isinstance(result, DecryptedPacket) or result.reason in allowed,
                f"a packet sealed with the key did not decrypt: {result!r}",
            )

    def _encrypt(self, raw: bytes) -> None:
        try:
            packet = dpb.DataPacket.FromString(raw)
        except DecodeError:
            return
        out = local_call(
            "encrypt_packet", self.cryptor.encrypt_packet, packet, participant_identity=LOCAL
        )
        if isinstance(out, LocalProtocolError):
            return
        kind = packet.WhichOneof("value")
        if kind not in ENCRYPTED_KINDS:
            check(out is packet, "a clear packet was changed")
            return
        check(out.WhichOneof("value") == "encrypted_packet", "an encrypted kind was sent clear")
        out.participant_identity = LOCAL
        result = self._receive(out)
        if isinstance(result, DecryptionFailed):
            check(
                result.reason is DecryptionFailure.KEY_INVALID,
                f"our own packet did not read back: {result!r}",
            )
            return
        expected = dpb.DataPacket(
            kind=packet.kind,
            participant_identity=LOCAL,
            destination_identities=packet.destination_identities,
            sequence=packet.sequence,
            participant_sid=packet.participant_sid,
        )
        getattr(expected, kind).CopyFrom(getattr(packet, kind))
        check(result.packet == expected, "our own packet read back differently")
        check(result.ratchets == 0, "our own packet needed a ratchet")

    def _verb(self, name: str, sel: int, rest: bytes) -> None:
        keys = self.keys
        identity, index = self._identity(sel), sel >> 2
        key = rest or E2EE_KEYS[sel % len(E2EE_KEYS)]
        derivations = keys.derivations
        if name == "set_shared_key":
            local_call(name, keys.set_shared_key, key, index)
        elif name == "set_key":
            local_call(name, keys.set_key, identity, key, index)
        elif name == "ratchet_shared_key":
            local_call(name, keys.ratchet_shared_key, index)
        elif name == "ratchet_key":
            local_call(name, keys.ratchet_key, identity, index)
        else:
            assert name == "forget"
            local_call(name, keys.forget_participant, identity)
        check(keys.derivations - derivations <= 2, f"{name} derived more than one ratchet")
        check(keys.cloned_identities <= keys.max_cloned_identities, "copies")
        check(keys.cached_ratchets <= keys.max_cached_ratchets, "ratchet cache")

    def finish(self) -> None:
        """Whatever happened, our own current key (if any) still encrypts and reads back."""
        self._encrypt(dpb.DataPacket(user=dpb.UserPacket(payload=b"end")).SerializeToString())


_E2EE_OPS = (
    "packet",
    "envelope",
    "sealed",
    "frame",
    "encrypt",
    "set_shared_key",
    "set_key",
    "ratchet_shared_key",
    "ratchet_key",
    "forget",
)


# -- the table of targets ---------------------------------------------------------------------

OPS: Mapping[str, tuple[str, ...]] = {
    "signal_connecting": _SIGNAL_OPS,
    "signal_joined": _SIGNAL_OPS,
    "data_packet": _DATA_OPS,
    "streams": _STREAM_OPS,
    "rpc": _RPC_OPS,
    "e2ee": _E2EE_OPS,
}


class _Machine(Protocol):
    """What a target drives: one step per decoded record, then the final checks."""

    def step(self, name: str, record: Record) -> None: ...

    def finish(self) -> None: ...


def _target(machine: Callable[[], _Machine], ops: tuple[str, ...]) -> Callable[[bytes], None]:
    """A fuzz entry point: a fresh `machine()` runs every record of one input."""

    def one_input(data: bytes) -> None:
        driven = machine()
        for record in decode(data, len(ops)):
            driven.step(ops[record.op], record)
        driven.finish()

    return one_input


TARGETS: Mapping[str, Callable[[bytes], None]] = {
    "signal_connecting": _target(partial(_Session, joined=False, data=False), _SIGNAL_OPS),
    "signal_joined": _target(partial(_Session, joined=True, data=False), _SIGNAL_OPS),
    "data_packet": _target(partial(_Session, joined=True, data=True), _DATA_OPS),
    "streams": _target(_Streams, _STREAM_OPS),
    "rpc": _target(_Rpc, _RPC_OPS),
    "e2ee": _target(_E2ee, _E2EE_OPS),
}


def run(target: str, data: bytes) -> None:
    """Run one input through `target`; raises only if the invariant breaks."""
    TARGETS[target](data)
