"""lkproto's anyio Room vs the official SDK, side by side in one run on one confined server.

Measured (median of --repeat runs each):
- join: `connect()` until it returns (lkproto returns with the reliable data channel open;
  the official SDK returns when its engine is connected);
- reliable `publish_data` throughput with 15 KiB payloads, sender start to last packet
  received, in MiB/s;
- small-packet rate: 100-byte reliable packets per second, same timing;
for lkproto -> official, official -> lkproto and official -> official. Official participants
run on an asyncio loop in a helper thread (as in the e2e tests), lkproto on the main loop.

Confinement: as root the process first moves into a private network namespace (the test
harness's `confine()`), so no packet can leave it; otherwise everything binds 127.0.0.1.
Loops are bounded by count and by a time limit.

Run: .venv/bin/python benchmarks/bench_transport.py [--packets 300] [--small 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import LiveKitServer, confine, mint_token
from harness.netns import release

LIMIT = 60.0  # seconds, per measured transfer


def _token(identity: str, room: str) -> str:
    return mint_token(identity, room, can_update_own_metadata=True)


async def _main(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    import anyio
    from livekit import rtc

    from harness.official import OfficialLoop, OfficialPeer
    from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration

    loop = OfficialLoop()
    lk_options = RoomOptions(
        auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[host])
    )
    rooms = iter(range(1_000_000))
    results: dict[str, Any] = {"join_s": {}, "throughput_mib_s": {}, "small_pps": {}}

    # -- join ----------------------------------------------------------------------------------
    lk_joins, official_joins = [], []
    for _ in range(args.repeat):
        name = f"join-{next(rooms)}"
        room = Room()
        t0 = time.perf_counter()
        await room.connect(server.url, _token("lk", name), lk_options)
        lk_joins.append(time.perf_counter() - t0)
        await room.disconnect()

        async def official_join(name: str = name) -> float:
            r = rtc.Room()
            t = time.perf_counter()
            await r.connect(server.url, _token("off", name), rtc.RoomOptions(auto_subscribe=False))
            elapsed = time.perf_counter() - t
            await r.disconnect()
            return elapsed

        official_joins.append(await loop.run(official_join))
    results["join_s"] = {
        "lkproto": statistics.median(lk_joins),
        "official": statistics.median(official_joins),
    }

    # -- transfers -------------------------------------------------------------------------------
    async def transfer(direction: str, size: int, count: int) -> float:
        """Seconds from the first send to the last packet received."""
        name = f"xfer-{next(rooms)}"
        receiver = OfficialPeer(loop)
        await receiver.connect(server.url, _token("rx", name))
        payload = bytes(size)
        try:
            if direction == "official->official":
                sender = OfficialPeer(loop)
                await sender.connect(server.url, _token("tx", name))
                await receiver.wait_for(lambda r: ("joined", ("tx",)) in r)

                async def blast(room: Any) -> float:
                    t = time.perf_counter()
                    for _ in range(count):
                        await room.local_participant.publish_data(payload)
                    return t

                start = await sender.do(blast, LIMIT)
                await receiver.wait_for(lambda r: len(r) >= count + 1, LIMIT)
                elapsed = time.perf_counter() - start
                await sender.disconnect()
                return elapsed
            room = Room()
            await room.connect(server.url, _token("lk", name), lk_options)
            try:
                if direction == "lkproto->official":
                    await receiver.wait_for(lambda r: ("joined", ("lk",)) in r)
                    start = time.perf_counter()
                    for _ in range(count):
                        await room.local_participant.publish_data(payload)
                    await receiver.wait_for(lambda r: len(r) >= count + 1, LIMIT)
                    return time.perf_counter() - start
                got = 0
                done = anyio.Event()

                def on_data(_packet: object) -> None:
                    nonlocal got
                    got += 1
                    if got == count:
                        done.set()

                room.on("data_received", on_data)

                async def blast_lk(r: Any) -> float:
                    t = time.perf_counter()
                    for _ in range(count):
                        await r.local_participant.publish_data(
                            payload, destination_identities=["lk"]
                        )
                    return t

                start = await receiver.do(blast_lk, LIMIT)
                with anyio.fail_after(LIMIT):
                    await done.wait()
                return time.perf_counter() - start
            finally:
                await room.disconnect()
        finally:
            await receiver.disconnect()

    directions = ["lkproto->official", "official->lkproto", "official->official"]
    for direction in directions:
        big = [await transfer(direction, 15 * 1024, args.packets) for _ in range(args.repeat)]
        small = [await transfer(direction, 100, args.small) for _ in range(args.repeat)]
        mib = args.packets * 15 * 1024 / (1024 * 1024)
        results["throughput_mib_s"][direction] = mib / statistics.median(big)
        results["small_pps"][direction] = args.small / statistics.median(small)
    loop.close()
    return results


def render(r: dict[str, Any], args: argparse.Namespace) -> str:
    base_t = r["throughput_mib_s"]["official->official"]
    base_s = r["small_pps"]["official->official"]
    lines = [
        f"join (connect() returns), median of {args.repeat}: lkproto "
        f"{r['join_s']['lkproto'] * 1000:.0f} ms, official {r['join_s']['official'] * 1000:.0f} ms "
        f"(ratio {r['join_s']['lkproto'] / r['join_s']['official']:.2f}x)",
        "",
        "| direction | 15 KiB reliable MiB/s | vs official->official | 100 B packets/s "
        "| vs official->official |",
        "|---|---:|---:|---:|---:|",
    ]
    for direction, mib in r["throughput_mib_s"].items():
        pps = r["small_pps"][direction]
        lines.append(
            f"| {direction} | {mib:.1f} | {mib / base_t:.2f}x | {pps:,.0f} | {pps / base_s:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=300)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    confinement = confine()
    try:
        with LiveKitServer(confinement) as server:
            import anyio

            results = anyio.run(_main, args, server, confinement.host)
    finally:
        release(confinement)
    print(json.dumps(results) if args.json else render(results, args))


if __name__ == "__main__":
    main()
