"""Byte-stream throughput: lkproto's anyio Room vs the official SDK, in one run on one server.

Measured (median of --repeat transfers each): one byte stream of --size MiB of random bytes
(incompressible), opened with `stream_bytes(name, total_size=...)`, written in 60 000-byte
writes (four 15 000-byte chunks each) and closed, to a receiver whose
`register_byte_stream_handler` handler iterates the reader to the end and hashes what it got.
Time runs from just before the writer opens to the receiver seeing the end of the stream;
the received size and SHA-256 are checked. Directions: lkproto -> official,
official -> lkproto, official -> official, and lkproto -> lkproto for reference.

Official participants run on an asyncio loop in a helper thread (tests/harness/official.py),
lkproto on the main loop, all in this one process (one GIL), as in bench_transport.py. The
table also shows how many UDP datagrams the network namespace dropped for full socket
receive buffers during each direction's transfers (/proc/net/snmp RcvbufErrors; in loopback
mode that counter is the host's); drops cost SCTP retransmissions.

`--profile DIRECTION` additionally runs one transfer in that direction (e.g.
official->lkproto) under cProfile, which profiles only the main thread, i.e. the lkproto
Room and aiortc; the official SDK's threads are not in it. It prints the top entries by
tottime.

Confinement: as root the process first moves into a private network namespace (the test
harness's `confine()`), so no packet can leave it; otherwise everything binds 127.0.0.1.
Every transfer is bounded by a time limit (--limit), and the number of transfers by --repeat.

Run: .venv/bin/python benchmarks/bench_streams.py [--size 16] [--repeat 3] [--profile D] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import LiveKitServer, confine, mint_token
from harness.netns import release

MIB = 1024 * 1024
WRITE = 60_000  # bytes per writer.write(): four 15 000-byte chunks
TOPIC = "bench"
DIRECTIONS = ("lkproto->official", "official->lkproto", "official->official", "lkproto->lkproto")


def _udp_drops() -> int:
    """UDP datagrams this network namespace dropped for a full socket receive buffer."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(dict(zip(rows[0], rows[1], strict=True)).get("RcvbufErrors", 0))


def _token(identity: str, room: str) -> str:
    return mint_token(identity, room)


class _Sink:
    """What a receiver got: bytes, digest and the time it saw the end of the stream.

    Written on whichever thread the receiver runs on; `done` is a threading.Event so the
    main loop can wait for it from a worker thread whatever the receiver's loop is.
    """

    def __init__(self) -> None:
        self.received = 0
        self.digest = ""
        self.end = 0.0
        self.error: BaseException | None = None
        self.done = threading.Event()


async def _drain(reader: Any, sink: _Sink) -> None:
    h = hashlib.sha256()
    try:
        async for chunk in reader:
            sink.received += len(chunk)
            h.update(chunk)
    except BaseException as exc:  # report any failure to the waiting side
        sink.error = exc
        raise
    finally:
        sink.end = time.perf_counter()
        sink.digest = h.hexdigest()
        sink.done.set()


async def _write_all(writer: Any, payload: bytes) -> None:
    view = memoryview(payload)
    for offset in range(0, len(payload), WRITE):
        await writer.write(bytes(view[offset : offset + WRITE]))
    await writer.aclose()


async def _main(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    import asyncio

    import anyio
    import anyio.to_thread

    from harness.official import OfficialLoop, OfficialPeer
    from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration

    loop = OfficialLoop()
    lk_options = RoomOptions(
        auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[host])
    )
    rooms = iter(range(1_000_000))
    size = int(args.size * MIB)
    payload = os.urandom(size)
    expected = hashlib.sha256(payload).hexdigest()

    async def transfer(direction: str, profile: cProfile.Profile | None = None) -> float:
        """Seconds from opening the writer to the receiver seeing the end of the stream."""
        name = f"streams-{next(rooms)}"
        tx_kind, rx_kind = direction.split("->")
        sink = _Sink()
        cleanup: list[Any] = []
        try:
            # The receiver joins first, so the sender sees it in the room when it joins.
            if rx_kind == "official":
                rx_off = OfficialPeer(loop)
                cleanup.append(rx_off.disconnect)

                async def register(room: Any) -> None:
                    def handler(reader: Any, _identity: str) -> None:
                        asyncio.get_running_loop().create_task(_drain(reader, sink))

                    room.register_byte_stream_handler(TOPIC, handler)

                await rx_off.connect(server.url, _token("rx", name))
                await rx_off.do(register)
            else:
                rx_lk = Room()

                async def lk_handler(reader: Any, _identity: str) -> None:
                    await _drain(reader, sink)

                rx_lk.register_byte_stream_handler(TOPIC, lk_handler)
                await rx_lk.connect(server.url, _token("rx", name), lk_options)
                cleanup.append(rx_lk.disconnect)

            if tx_kind == "official":
                tx_off = OfficialPeer(loop)
                await tx_off.connect(server.url, _token("tx", name))
                cleanup.append(tx_off.disconnect)
                await tx_off.wait_for(
                    lambda _r: "rx" in tx_off.room.remote_participants  # type: ignore[union-attr]
                )

                async def send(room: Any) -> float:
                    t = time.perf_counter()
                    writer = await room.local_participant.stream_bytes(
                        "payload.bin",
                        total_size=size,
                        topic=TOPIC,
                        destination_identities=["rx"],
                    )
                    await _write_all(writer, payload)
                    return t

                if profile is not None:
                    profile.enable()
                start = await tx_off.do(send, args.limit)
            else:
                tx_lk = Room()
                await tx_lk.connect(server.url, _token("tx", name), lk_options)
                cleanup.append(tx_lk.disconnect)
                with anyio.fail_after(15):
                    while "rx" not in tx_lk.remote_participants:
                        await anyio.sleep(0.02)
                if profile is not None:
                    profile.enable()
                start = time.perf_counter()
                with anyio.fail_after(args.limit):
                    writer = await tx_lk.local_participant.stream_bytes(
                        "payload.bin",
                        total_size=size,
                        topic=TOPIC,
                        destination_identities=["rx"],
                    )
                    await _write_all(writer, payload)
            remaining = max(1.0, args.limit - (time.perf_counter() - start))
            ok = await anyio.to_thread.run_sync(sink.done.wait, remaining, abandon_on_cancel=True)
            if profile is not None:
                profile.disable()
            if not ok:
                raise TimeoutError(
                    f"{direction}: {sink.received}/{size} bytes within {args.limit}s"
                )
            if sink.error is not None:
                raise RuntimeError(f"{direction}: the reader failed") from sink.error
            if sink.received != size or sink.digest != expected:
                raise RuntimeError(f"{direction}: got {sink.received}/{size} bytes, bad digest")
            return sink.end - start
        finally:
            for disconnect in reversed(cleanup):
                with anyio.move_on_after(10):
                    await disconnect()

    results: dict[str, Any] = {
        "size_mib": args.size,
        "repeat": args.repeat,
        "seconds": {},
        "mib_s": {},
        "udp_drops": {},
    }
    try:
        for direction in DIRECTIONS if args.repeat > 0 else ():
            drops = _udp_drops()
            runs = [await transfer(direction) for _ in range(args.repeat)]
            results["udp_drops"][direction] = _udp_drops() - drops
            results["seconds"][direction] = runs
            results["mib_s"][direction] = args.size / statistics.median(runs)
            print(
                f"{direction}: {', '.join(f'{s:.2f}s' for s in runs)}",
                file=sys.stderr,
                flush=True,
            )
        if args.profile:
            print(f"profiling {args.profile}", file=sys.stderr, flush=True)
            profile = cProfile.Profile()
            seconds = await transfer(args.profile, profile)
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("tottime").print_stats(args.top)
            if args.profile_out:
                stats.dump_stats(args.profile_out)
            results["profile"] = {
                "direction": args.profile,
                "mib_s": args.size / seconds,
                "text": out.getvalue(),
            }
    finally:
        loop.close()
    return results


def render(r: dict[str, Any]) -> str:
    base = r["mib_s"].get("official->official", 0.0)
    lines = [
        f"byte stream of {r['size_mib']:g} MiB (random bytes, {WRITE}-byte writes), "
        f"median of {r['repeat']}",
        "",
        "| direction | MiB/s | vs official->official | runs (s) | UDP rcvbuf drops |",
        "|---|---:|---:|---|---:|",
    ]
    for direction, mib in r["mib_s"].items():
        runs = ", ".join(f"{s:.2f}" for s in r["seconds"][direction])
        drops = r["udp_drops"][direction]
        lines.append(f"| {direction} | {mib:.2f} | {mib / base:.2f}x | {runs} | {drops} |")
    if "profile" in r:
        p = r["profile"]
        lines += [
            "",
            f"cProfile of the main thread (lkproto + aiortc), {p['direction']}, "
            f"{p['mib_s']:.2f} MiB/s under the profiler:",
            "",
            p["text"],
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=float, default=16, help="MiB per stream (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="0: only --profile")
    parser.add_argument("--limit", type=float, default=120, help="seconds per transfer")
    parser.add_argument("--profile", choices=DIRECTIONS, help="also profile one transfer")
    parser.add_argument("--top", type=int, default=15, help="profile entries to print")
    parser.add_argument("--profile-out", help="also write the raw pstats to this file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    confinement = confine()
    try:
        with LiveKitServer(confinement) as server:
            import anyio

            results = anyio.run(_main, args, server, confinement.host)
    finally:
        release(confinement)
    print(json.dumps(results) if args.json else render(results))


if __name__ == "__main__":
    main()
