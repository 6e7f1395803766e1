"""What an in-memory room costs: RPC round trips/s and stream MiB/s, next to raw protobuf.

Measured in one run, no network:
- MemoryRoom (sans-I/O): two `Connection`s driven by `lkproto.testing.MemoryRoom`. RPC: one
  `perform_rpc`, the callee answering from its event handler, run until the caller holds
  `RpcSucceeded`; v2 (both sides advertise client_protocol 2: request and response are text
  streams, the ack a packet) and v1 (client_protocol 0: three packets). Stream: `send_stream`
  of 4 MiB of bytes in 15 000-byte chunks, the receiver consuming every chunk.
- Adapters: the same through `lkproto.transports.anyio.Room`s on a `MemoryServer` (asyncio,
  one loop): `perform_rpc` awaited in a loop, and `send_bytes` read by a byte-stream handler.
- Raw protobuf: the DataPackets of the same exchange built, serialized and parsed with the
  generated classes and nothing else (the floor: what the wire format alone costs).

Run: .venv/bin/python benchmarks/bench_memory.py [--seconds 1.0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable

from lkproto import Config, Connection, StreamKind
from lkproto import events as ev
from lkproto._pb import data_pb2 as dpb
from lkproto.testing import MemoryRoom
from lkproto.transports.anyio import ByteStreamReader, Room
from lkproto.transports.testing import MemoryServer

MiB = 1024 * 1024
STREAM = 4 * MiB
CHUNK = 15_000
MAX_ITERATIONS = 1_000_000


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls of `fn` per second over about `seconds` (bounded by MAX_ITERATIONS)."""
    fn()  # warm up; also proves the path works
    n = 0
    start = time.perf_counter()
    while n < MAX_ITERATIONS:
        fn()
        n += 1
        if time.perf_counter() - start >= seconds:
            break
    return n / (time.perf_counter() - start)


# -- MemoryRoom, sans-I/O ------------------------------------------------------------------------


def room_pair(client_protocol: int) -> tuple[MemoryRoom, Connection, Connection]:
    room = MemoryRoom(update_interval=0)
    config = Config(client_protocol=client_protocol, replay_buffer_bytes=0)
    holder: dict[str, Connection] = {}

    def callee_events(event: ev.Event) -> None:
        if isinstance(event, ev.RpcInvoked):
            inv = event.invocation
            holder["callee"].respond_rpc(inv.request_id, inv.payload, now=room.now)
        elif isinstance(event, ev.StreamChunkReceived):
            holder["callee"].stream_consumed(event.sender_identity, event.stream_id, event.nbytes)

    def setup(conn: Connection) -> None:
        conn.register_rpc_method("echo")
        conn.register_stream_topic(StreamKind.BYTES, "bench")

    holder["callee"] = room.join(
        "callee", config=config, before_connect=setup, on_event=callee_events
    )
    caller = room.join("caller", config=config)
    room.events("caller")
    return room, caller, holder["callee"]


def memory_rpc(client_protocol: int, seconds: float) -> float:
    room, caller, _ = room_pair(client_protocol)

    def call() -> None:
        caller.perform_rpc(
            destination_identity="callee", method="echo", payload="ping", now=room.now
        )
        room.run_until_idle()
        [event] = [e for e in room.events("caller") if not isinstance(e, ev.ParticipantUpdated)]
        assert isinstance(event, ev.RpcSucceeded), event
        room.events("callee")  # (recorded events accumulate until read)

    return rate(call, seconds)


def memory_stream(seconds: float) -> float:
    room, caller, _ = room_pair(2)
    payload = bytes(range(256)) * (STREAM // 256)

    def send() -> None:
        caller.send_stream(
            now=room.now,
            kind=StreamKind.BYTES,
            topic="bench",
            payload=payload,
            destination_identities=["callee"],
            compress=False,
        )
        room.run_until_idle()
        room.events("callee")

    return rate(send, seconds) * STREAM / MiB


# -- raw protobuf: the same packets, nothing else ---------------------------------------------


def raw_rpc_v1() -> None:
    packets = [
        dpb.DataPacket(
            rpc_request=dpb.RpcRequest(
                id="caller-1", method="echo", payload="ping", response_timeout_ms=15_000, version=1
            ),
            destination_identities=["callee"],
            sequence=1,
        ),
        dpb.DataPacket(
            rpc_ack=dpb.RpcAck(request_id="caller-1"), destination_identities=["caller"], sequence=1
        ),
        dpb.DataPacket(
            rpc_response=dpb.RpcResponse(request_id="caller-1", payload="ping"),
            destination_identities=["caller"],
            sequence=2,
        ),
    ]
    for packet in packets:
        data = packet.SerializeToString()
        # The server parses and re-serializes each packet, the receiver parses it.
        forwarded = dpb.DataPacket.FromString(data)
        forwarded.participant_identity, forwarded.participant_sid = "caller", "PA_1"
        dpb.DataPacket.FromString(forwarded.SerializeToString())


def raw_rpc_v2() -> None:
    def header(topic: str, attributes: dict[str, str]) -> dpb.DataPacket:
        text = dpb.DataStream.TextHeader(operation_type=dpb.DataStream.CREATE)
        return dpb.DataPacket(
            stream_header=dpb.DataStream.Header(
                stream_id="s1",
                timestamp=1,
                topic=topic,
                mime_type="text/plain",
                total_length=4,
                attributes=attributes,
                text_header=text,
                inline_content=b"ping",
            ),
            destination_identities=["callee"],
            sequence=1,
        )

    packets = [
        header(
            "lk.rpc_request",
            {
                "lk.rpc_request_id": "caller-1",
                "lk.rpc_request_method": "echo",
                "lk.rpc_request_response_timeout_ms": "15000",
                "lk.rpc_request_version": "2",
            },
        ),
        dpb.DataPacket(rpc_ack=dpb.RpcAck(request_id="caller-1"), sequence=1),
        header("lk.rpc_response", {"lk.rpc_request_id": "caller-1"}),
    ]
    for packet in packets:
        forwarded = dpb.DataPacket.FromString(packet.SerializeToString())
        forwarded.participant_identity, forwarded.participant_sid = "caller", "PA_1"
        dpb.DataPacket.FromString(forwarded.SerializeToString())


def raw_stream(seconds: float) -> float:
    payload = bytes(range(256)) * (STREAM // 256)

    def send() -> None:
        for index, offset in enumerate(range(0, STREAM, CHUNK)):
            packet = dpb.DataPacket(
                stream_chunk=dpb.DataStream.Chunk(
                    stream_id="s", chunk_index=index, content=payload[offset : offset + CHUNK]
                ),
                destination_identities=["callee"],
                sequence=index + 1,
            )
            forwarded = dpb.DataPacket.FromString(packet.SerializeToString())
            forwarded.participant_sid = "PA_1"
            dpb.DataPacket.FromString(forwarded.SerializeToString())

    return rate(send, seconds) * STREAM / MiB


# -- adapters on a MemoryServer -------------------------------------------------------------


async def adapter_figures(seconds: float) -> tuple[float, float]:
    async with MemoryServer(update_interval=0) as server:
        callee, caller = Room(), Room()
        callee.local_participant.register_rpc_method("echo", lambda d: d.payload)
        received = asyncio.Event()

        async def on_bytes(reader: ByteStreamReader, _: str) -> None:
            total = 0
            async for chunk in reader:
                total += len(chunk)
            assert total == STREAM
            received.set()

        callee.register_byte_stream_handler("bench", on_bytes)
        await callee.connect(server.url, server.token("callee"))
        await caller.connect(server.url, server.token("caller"))
        lp = caller.local_participant
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds and calls < MAX_ITERATIONS:
            assert (
                await lp.perform_rpc(destination_identity="callee", method="echo", payload="ping")
                == "ping"
            )
            calls += 1
        rpc_rate = calls / (time.perf_counter() - start)
        payload = bytes(range(256)) * (STREAM // 256)
        sent, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds and sent < 1000:
            received.clear()
            await lp.send_bytes(
                payload, topic="bench", destination_identities=["callee"], compress=False
            )
            await received.wait()
            sent += 1
        stream_rate = sent * STREAM / MiB / (time.perf_counter() - start)
        await caller.disconnect()
        await callee.disconnect()
        return rpc_rate, stream_rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    s = args.seconds
    figures = {
        "memoryroom_rpc_v2_per_s": memory_rpc(2, s),
        "memoryroom_rpc_v1_per_s": memory_rpc(0, s),
        "raw_pb_rpc_v1_per_s": rate(raw_rpc_v1, s),
        "raw_pb_rpc_v2_per_s": rate(raw_rpc_v2, s),
        "memoryroom_stream_mib_s": memory_stream(s),
        "raw_pb_stream_mib_s": raw_stream(s),
    }
    adapter_rpc, adapter_stream = asyncio.run(adapter_figures(s))
    figures["adapter_rpc_per_s"] = adapter_rpc
    figures["adapter_stream_mib_s"] = adapter_stream
    if args.json:
        print(json.dumps(figures))
        return
    f = figures
    rows = [
        (
            "RPC round trips/s, v2 (streams)",
            "memoryroom_rpc_v2_per_s",
            "adapter_rpc_per_s",
            "raw_pb_rpc_v2_per_s",
        ),
        ("RPC round trips/s, v1 (packets)", "memoryroom_rpc_v1_per_s", "", "raw_pb_rpc_v1_per_s"),
        (
            "byte stream MiB/s",
            "memoryroom_stream_mib_s",
            "adapter_stream_mib_s",
            "raw_pb_stream_mib_s",
        ),
    ]
    print(f"{'':34}{'MemoryRoom':>14}{'anyio Room':>14}{'raw protobuf':>14}")
    for label, *keys in rows:
        cells = "".join(f"{f[k]:>14,.1f}" if k else f"{'-':>14}" for k in keys)
        print(f"{label:34}{cells}")


if __name__ == "__main__":
    main()
