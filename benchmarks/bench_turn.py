"""Throughput and RPC latency through TURN (UDP, TLS) against the direct path, lkproto and the
official SDK side by side.

One livekit-server with its embedded TURN (tests/harness/turn.py: UDP 3478, TLS 443 on a
generated certificate), in the harness's network namespace (root only: it binds 443 and
3478 and drops packets with nftables). For each path:
- "direct": no firewall;
- "turn-udp": the sender's direct path to the SFU dropped (and TURN over TLS), so it relays
  through TURN over UDP;
- "turn-tls": the direct path and TURN over UDP dropped, so it relays through TURN over TLS
  (443), after its UDP attempt (lkproto tries the join's TURN URLs in order).
lkproto's Room (anyio on asyncio) sends from a second address of the namespace (the one the
firewall cuts off); the official sender uses `TRANSPORT_RELAY` for the TURN paths (libwebrtc
cannot be told to trust the harness's certificate through livekit.rtc, so it has no TLS row).
The receiver is an official participant with its direct path open.

Measured per sender and path: reliable throughput (--packets packets of 15 000 bytes,
`publish_data`, from the first send to the receiver's last packet) and RPC latency (--calls
sequential calls of a 100-byte payload to an echo method on the receiver: p50, p95). Every
wait is bounded.

Run (as root): .venv/bin/python benchmarks/bench_turn.py [--packets 200] [--calls 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import confine, mint_token
from harness.netns import release

PACKET = 15_000
RPC_PAYLOAD = "x" * 100
CLIENT = "10.213.77.2"
LIMIT = 60.0  # seconds per measurement
PATHS = ("direct", "turn-udp", "turn-tls")


def _quantiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    if len(ms) < 2:
        return {"p50_ms": float("nan"), "p95_ms": float("nan")}
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2)}


async def _run(args: argparse.Namespace, confinement: Any) -> dict[str, Any]:
    import anyio

    from harness.official import OfficialLoop, OfficialPeer
    from harness.turn import Firewall, TurnServer, second_address
    from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration

    server = TurnServer(confinement)
    server.start()
    firewall = Firewall(server)
    loop = OfficialLoop()
    results: dict[str, Any] = {}
    room_number = [0]

    def room_name() -> str:
        room_number[0] += 1
        return f"bench-turn-{room_number[0]}"

    async def receiver(room: str) -> OfficialPeer:
        peer = OfficialPeer(loop)
        await peer.connect(server.url, mint_token("receiver", room))

        async def register(r: Any) -> None:
            r.local_participant.register_rpc_method("echo", lambda data: data.payload)

        await peer.do(register)
        return peer

    def received(peer: OfficialPeer, n: int) -> list[Any] | None:
        got = [a for name, a in peer.records if name == "data"]
        return got if len(got) >= n else None

    async def measure_lk(path: str) -> dict[str, Any]:
        room = room_name()
        peer = await receiver(room)
        lk = Room()
        host = confinement.host if path == "direct" else CLIENT
        options = RoomOptions(
            auto_subscribe=False,
            rtc_config=RtcConfiguration(
                host_addresses=[host], ssl_context=server.certificate.ssl_context()
            ),
        )
        try:
            await lk.connect(server.url, mint_token("sender", room), options)
            await peer.wait_for(lambda r: ("joined", ("sender",)) in r)
            payload = bytes(PACKET)
            with anyio.fail_after(LIMIT):
                start = time.perf_counter()
                for _ in range(args.packets):
                    await lk.local_participant.publish_data(payload, reliable=True)
                await peer.wait_for(lambda r: received(peer, args.packets), timeout=LIMIT)
                wall = time.perf_counter() - start
                latencies = []
                for _ in range(args.calls):
                    t = time.perf_counter()
                    reply = await lk.local_participant.perform_rpc(
                        destination_identity="receiver", method="echo", payload=RPC_PAYLOAD
                    )
                    assert reply == RPC_PAYLOAD
                    latencies.append(time.perf_counter() - t)
            return {
                "MiB_per_s": round(args.packets * PACKET / wall / 2**20, 2),
                **_quantiles(latencies),
            }
        finally:
            await lk.disconnect()
            await peer.disconnect()

    async def measure_official(path: str) -> dict[str, Any]:
        from livekit import rtc

        room = room_name()
        peer = await receiver(room)
        sender = OfficialPeer(loop)
        relay = rtc.RtcConfiguration(ice_transport_type=rtc.IceTransportType.TRANSPORT_RELAY)
        options: dict[str, Any] = {} if path == "direct" else {"rtc_config": relay}
        try:
            await sender.connect(server.url, mint_token("sender", room), **options)
            await peer.wait_for(lambda r: ("joined", ("sender",)) in r)

            async def send(r: Any) -> tuple[float, list[float]]:
                payload = bytes(PACKET)
                start = time.perf_counter()
                for _ in range(args.packets):
                    await r.local_participant.publish_data(payload, reliable=True)
                deadline = time.perf_counter() + LIMIT
                while not received(peer, args.packets) and time.perf_counter() < deadline:
                    await asyncio.sleep(0.005)
                wall = time.perf_counter() - start
                latencies = []
                for _ in range(args.calls):
                    t = time.perf_counter()
                    await r.local_participant.perform_rpc(
                        destination_identity="receiver", method="echo", payload=RPC_PAYLOAD
                    )
                    latencies.append(time.perf_counter() - t)
                return wall, latencies

            wall, latencies = await sender.do(send, LIMIT * 2)
            assert received(peer, args.packets), "the official receiver missed packets"
            return {
                "MiB_per_s": round(args.packets * PACKET / wall / 2**20, 2),
                **_quantiles(latencies),
            }
        finally:
            await sender.disconnect()
            await peer.disconnect()

    try:
        with second_address(confinement, CLIENT):
            for path in PATHS:
                if path == "direct":
                    firewall.clear()
                elif path == "turn-udp":
                    firewall.block(direct_from=CLIENT, turn_tls=True)
                else:
                    firewall.block(direct_from=CLIENT, turn_udp=True)
                results[f"lkproto {path}"] = await measure_lk(path)
                if path != "turn-tls":
                    # The official sender relays by policy (its host is the open address).
                    firewall.clear()
                    results[f"official {path}"] = await measure_official(path)
    finally:
        firewall.clear()
        loop.close()
        server.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    confinement = confine()
    if confinement.mode != "netns":
        sys.exit("bench_turn needs root (a network namespace, ports 443 and 3478, nftables)")
    try:
        import anyio

        results = anyio.run(_run, args, confinement)
    finally:
        release(confinement)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'sender, path':<24} {'MiB/s':>8} {'RPC p50 ms':>11} {'RPC p95 ms':>11}")
    for name, row in results.items():
        print(f"{name:<24} {row['MiB_per_s']:>8} {row['p50_ms']:>11} {row['p95_ms']:>11}")


if __name__ == "__main__":
    main()
