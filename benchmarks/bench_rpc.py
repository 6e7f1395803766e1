"""RPC latency and rate: lkproto's anyio Room vs the official SDK, and the core vs protobuf.

Two measurements, side by side in one run:
1. The official RPC benchmark recipe (RPC_SPEC.md, client-sdk-js; field-notes 3.1): an echo
   handler `benchmark-echo`, a 15360-byte payload, 3 concurrent callers each waiting
   --gap (10 ms) between calls, N calls in all; p50/p95/p99 latency (ms), calls/s (N over
   the wall time of the run) and an error breakdown, for lkproto -> official,
   official -> lkproto and official -> official, through one confined livekit-server. Both
   SDKs advertise client_protocol 2, so requests and responses are RPC v2 text streams.
   Official participants run on an asyncio loop in a helper thread (as in the e2e tests);
   lkproto on the main loop; each side times its own calls with perf_counter.
2. In memory, no network: complete RPCs per second between two `lkproto.Connection`s relayed
   by the test suite's in-memory SFU (perform_rpc, relay, RpcInvoked, respond_rpc, relay,
   RpcSucceeded), over v2 streams (the default) and v1 packets (both sides client_protocol
   0), next to the raw protobuf cost of building, serializing and parsing the three v1
   packets one RPC needs (request, ack, response) with the same payload.

Confinement: as root the process first moves into a private network namespace (the test
harness's `confine()`); otherwise everything binds 127.0.0.1. Every loop is bounded by a
count and a time limit.

Run: .venv/bin/python benchmarks/bench_rpc.py [--calls 300] [--gap 0.01] [--seconds 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import LiveKitServer, confine, mint_token
from harness.netns import release

PAYLOAD_BYTES = 15360
CONCURRENCY = 3
METHOD = "benchmark-echo"
LIMIT = 60.0  # seconds, per direction
WARMUP = 6  # calls before timing (first-call setup, stream handlers, caches)
MAX_ITERATIONS = 2_000_000  # in-memory loops


def make_payload(nbytes: int = PAYLOAD_BYTES) -> str:
    """Deterministic pseudo-random ASCII: realistic for deflate, exactly `nbytes` bytes."""
    rng = random.Random(15360)
    return "".join(rng.choices(string.ascii_letters + string.digits + " .,:;-", k=nbytes))


def summarize(latencies: list[float], wall: float, errors: dict[str, int]) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies)
    if len(ms) > 1:
        q = statistics.quantiles(ms, n=100, method="inclusive")
    else:  # nothing (or one call) succeeded: no distribution to report
        q = (ms or [float("nan")]) * 99
    total = len(ms) + sum(errors.values())
    return {
        "calls": total,
        "ok": len(ms),
        "p50_ms": q[49],
        "p95_ms": q[94],
        "p99_ms": q[98],
        "calls_per_s": total / wall,
        "errors": dict(errors),
    }


# -- 1. through the server -------------------------------------------------------------------


async def _official_workers(
    room: Any, destination: str, payload: str, calls: int, gap: float
) -> tuple[list[float], float, dict[str, int]]:
    """Runs on the official loop: CONCURRENCY callers share `calls` calls."""
    from livekit import rtc

    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    left = [calls]
    deadline = time.perf_counter() + LIMIT

    async def worker() -> None:
        while left[0] > 0 and time.perf_counter() < deadline:
            left[0] -= 1
            t = time.perf_counter()
            try:
                reply = await room.local_participant.perform_rpc(
                    destination_identity=destination, method=METHOD, payload=payload
                )
            except rtc.RpcError as exc:
                errors[str(exc.code)] += 1
            else:
                if reply == payload:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors["wrong payload"] += 1
            await asyncio.sleep(gap)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return latencies, time.perf_counter() - start, dict(errors)


async def _lk_workers(
    room: Any, destination: str, payload: str, calls: int, gap: float
) -> tuple[list[float], float, dict[str, int]]:
    import anyio

    from lkproto.transports.anyio import RpcError

    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    left = [calls]
    deadline = time.perf_counter() + LIMIT

    async def worker() -> None:
        while left[0] > 0 and time.perf_counter() < deadline:
            left[0] -= 1
            t = time.perf_counter()
            try:
                reply = await room.local_participant.perform_rpc(
                    destination_identity=destination, method=METHOD, payload=payload
                )
            except RpcError as exc:
                errors[str(exc.code)] += 1
            else:
                if reply == payload:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors["wrong payload"] += 1
            await anyio.sleep(gap)

    start = time.perf_counter()
    with anyio.fail_after(LIMIT + 20):
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(worker)
    return latencies, time.perf_counter() - start, dict(errors)


async def _through_server(
    args: argparse.Namespace, server: LiveKitServer, host: str
) -> dict[str, Any]:
    import anyio

    from harness.official import OfficialLoop, OfficialPeer
    from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration

    loop = OfficialLoop()
    options = RoomOptions(auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[host]))
    payload = make_payload()
    results: dict[str, Any] = {}

    async def official_peer(identity: str, room: str) -> OfficialPeer:
        peer = OfficialPeer(loop)
        await peer.connect(server.url, mint_token(identity, room))

        async def register(r: Any) -> None:
            r.local_participant.register_rpc_method(METHOD, lambda data: data.payload)

        await peer.do(register)
        return peer

    async def official_run(
        caller: OfficialPeer, destination: str, calls: int
    ) -> tuple[list[float], float, dict[str, int]]:
        async def run(r: Any) -> tuple[list[float], float, dict[str, int]]:
            return await _official_workers(r, destination, payload, calls, args.gap)

        return await caller.do(run, LIMIT + 30)

    try:
        # lkproto -> official
        callee = await official_peer("callee", "rpc-lk-to-official")
        lk = Room()
        await lk.connect(server.url, mint_token("caller", "rpc-lk-to-official"), options)
        try:
            await callee.wait_for(lambda r: ("joined", ("caller",)) in r)
            await _lk_workers(lk, "callee", payload, WARMUP, 0)
            results["lkproto->official"] = summarize(
                *await _lk_workers(lk, "callee", payload, args.calls, args.gap)
            )
        finally:
            await lk.disconnect()
            await callee.disconnect()

        # official -> lkproto
        lk = Room()
        lk.local_participant.register_rpc_method(METHOD, lambda data: data.payload)
        caller = await official_peer("caller", "rpc-official-to-lk")
        await lk.connect(server.url, mint_token("callee", "rpc-official-to-lk"), options)
        try:
            await caller.wait_for(lambda r: ("joined", ("callee",)) in r)
            await official_run(caller, "callee", WARMUP)
            results["official->lkproto"] = summarize(
                *await official_run(caller, "callee", args.calls)
            )
        finally:
            await lk.disconnect()
            await caller.disconnect()

        # official -> official
        callee = await official_peer("callee", "rpc-official-to-official")
        caller = await official_peer("caller", "rpc-official-to-official")
        try:
            await caller.wait_for(lambda r: ("joined", ("callee",)) in r)
            await official_run(caller, "callee", WARMUP)
            results["official->official"] = summarize(
                *await official_run(caller, "callee", args.calls)
            )
        finally:
            await caller.disconnect()
            await callee.disconnect()
    finally:
        with anyio.move_on_after(5, shield=True):
            await anyio.to_thread.run_sync(loop.close)
    return results


# -- 2. in memory ------------------------------------------------------------------------------


def timed(fn: Callable[[], object], seconds: float) -> float:
    """Calls fn() repeatedly for about `seconds` (bounded by MAX_ITERATIONS); returns calls/s."""
    n, batch = 0, 16
    start = time.perf_counter()
    while n < MAX_ITERATIONS:
        for _ in range(batch):
            fn()
        n += batch
        if time.perf_counter() - start >= seconds:
            break
    return n / (time.perf_counter() - start)


def _core_rpc(v2: bool, payload: str) -> Callable[[], None]:
    from sfu_relay import T0, Sfu, events

    from lkproto import Config
    from lkproto import events as ev

    config = Config() if v2 else Config(client_protocol=0, capabilities=())
    sfu = Sfu()
    bob = sfu.join("bob", config)
    bob.register_rpc_method(METHOD)
    alice = sfu.join("alice", config)

    def one() -> None:
        alice.perform_rpc(destination_identity="bob", method=METHOD, payload=payload, now=T0)
        sfu.deliver("alice", now=T0)
        for event in events(bob):
            if isinstance(event, ev.RpcInvoked):
                bob.respond_rpc(event.invocation.request_id, event.invocation.payload, now=T0)
        sfu.deliver("bob", now=T0)
        (done,) = events(alice)
        assert isinstance(done, ev.RpcSucceeded) and done.payload == payload, done
        # The core's contract: re-arm the timer after every input (this also prunes the
        # cancelled deadlines; without it they pile up and the run slows down).
        alice.get_timer()
        bob.get_timer()

    one()  # warm up; also proves the path works
    return one


def _raw_rpc(payload: str) -> Callable[[], None]:
    from lkproto._pb import data_pb2 as dpb

    counter = [0]

    def one() -> None:
        counter[0] += 1
        request_id = f"00000000-0000-4000-8000-{counter[0]:012d}"
        seq = 3 * counter[0]
        request = dpb.DataPacket(
            kind=dpb.DataPacket.RELIABLE,
            participant_identity="alice",
            destination_identities=["bob"],
            sequence=seq,
            rpc_request=dpb.RpcRequest(
                id=request_id,
                method=METHOD,
                payload=payload,
                response_timeout_ms=15000,
                version=1,
            ),
        )
        ack = dpb.DataPacket(
            kind=dpb.DataPacket.RELIABLE,
            participant_identity="bob",
            destination_identities=["alice"],
            sequence=seq + 1,
            rpc_ack=dpb.RpcAck(request_id=request_id),
        )
        got = dpb.DataPacket.FromString(request.SerializeToString()).rpc_request
        response = dpb.DataPacket(
            kind=dpb.DataPacket.RELIABLE,
            participant_identity="bob",
            destination_identities=["alice"],
            sequence=seq + 2,
            rpc_response=dpb.RpcResponse(request_id=got.id, payload=got.payload),
        )
        assert dpb.DataPacket.FromString(ack.SerializeToString()).rpc_ack.request_id
        assert dpb.DataPacket.FromString(response.SerializeToString()).rpc_response.payload

    one()
    return one


def in_memory(seconds: float) -> dict[str, float]:
    payload = make_payload()
    return {
        "core v2 (streams)": timed(_core_rpc(True, payload), seconds),
        "core v1 (packets)": timed(_core_rpc(False, payload), seconds),
        "raw protobuf, 3 v1 packets": timed(_raw_rpc(payload), seconds),
    }


# -- output ------------------------------------------------------------------------------------


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"RPC through livekit-server: `{METHOD}`, {PAYLOAD_BYTES}-byte payload, concurrency "
        f"{CONCURRENCY}, {args.gap * 1000:g} ms between calls, {args.calls} calls",
        "",
        "| caller -> callee | p50 ms | p95 ms | p99 ms | calls/s | errors |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for direction, r in results["server"].items():
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
        lines.append(
            f"| {direction} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['calls_per_s']:.1f} | {errors} |"
        )
    memory = results["memory"]
    raw = memory["raw protobuf, 3 v1 packets"]
    lines += [
        "",
        f"In memory (no network), {PAYLOAD_BYTES}-byte echo, complete RPCs",
        "",
        "| path | RPCs/s | µs per RPC | cost vs raw protobuf |",
        "|---|---:|---:|---:|",
    ]
    for name, rate in memory.items():
        lines.append(f"| {name} | {rate:,.0f} | {1e6 / rate:.1f} | {raw / rate:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.01, help="seconds between a worker's calls")
    parser.add_argument("--seconds", type=float, default=1.0, help="per in-memory measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    confinement = confine()
    try:
        with LiveKitServer(confinement) as server:
            import anyio

            server_results = anyio.run(_through_server, args, server, confinement.host)
    finally:
        release(confinement)
    results = {"server": server_results, "memory": in_memory(args.seconds)}
    print(json.dumps(results) if args.json else render(results, args))


if __name__ == "__main__":
    main()
