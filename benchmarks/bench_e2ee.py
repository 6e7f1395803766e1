"""End-to-end encryption: its cost in throughput, RPC latency and CPU, lkproto vs the official SDK.

Side by side in one run on one confined livekit-server, each measurement clear and encrypted
(`RoomOptions(encryption=E2EEOptions(KeyProviderOptions(shared_key=...)))`, PBKDF2, both
sides the same key):
1. reliable `publish_data` throughput, 15 KiB payloads (--packets of them), first send to
   last packet received, median of --repeat runs after one warm-up, for lkproto -> official,
   official -> lkproto, official -> official;
2. RPC round-trip latency: `--calls` sequential echo calls of a 1 KiB payload, p50/p95, for
   the same three pairs (both advertise client_protocol 2: RPC v2 text streams);
3. CPU, lkproto only:
   - the core's per-packet cost, in memory: `DataCryptor.encrypt_packet` + `decrypt_packet`
     of a 15 KiB user packet, against serializing and parsing it in clear;
   - a key change: `KeyProvider.set_shared_key` (one PBKDF2 run), on the calling thread;
   - a failed decryption's ratchet window (16 PBKDF2 ratchets, 32 runs) as lkproto runs it,
     in a worker thread: an anyio Room receives one packet under a key it does not have, and
     a ticker on the Room's event loop (1 ms sleeps) records the longest gap between its
     ticks from the packet's arrival until `e2ee_state_changed` reports the failure; next to
     it, the time the same window takes when run inline on the loop (what a native-style
     synchronous search would freeze it for).

Official participants run on an asyncio loop in a helper thread (as in the e2e tests), the
lkproto Room on the main loop. Confinement as in the other benchmarks.

Run: .venv/bin/python benchmarks/bench_e2ee.py [--packets 300] [--calls 100] [--repeat 3] [--json]
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
KEY = b"benchmark shared key"
RPC_PAYLOAD = "x" * 1024


def _token(identity: str, room: str) -> str:
    return mint_token(identity, room)


def core_costs(rounds: int = 2000) -> dict[str, float]:
    """Microseconds per 15 KiB packet: encrypt+decrypt vs clear serialize+parse; ms per key
    change; ms for a whole ratchet window run inline."""
    from lkproto._pb import data_pb2 as dpb
    from lkproto.e2ee import DataCryptor, KeyProvider, KeyProviderOptions, ratchet_chain

    packet = dpb.DataPacket(user=dpb.UserPacket(payload=bytes(15 * 1024)), participant_identity="a")
    keys = KeyProvider(KeyProviderOptions(shared_key=KEY))
    cryptor = DataCryptor(keys, iv_source=lambda: bytes(12))
    t = time.perf_counter()
    for _ in range(rounds):
        dpb.DataPacket.FromString(packet.SerializeToString())
    clear = (time.perf_counter() - t) / rounds
    t = time.perf_counter()
    for _ in range(rounds):
        sealed = cryptor.encrypt_packet(packet, participant_identity="a")
        cryptor.decrypt_packet(dpb.DataPacket.FromString(sealed.SerializeToString()))
    encrypted = (time.perf_counter() - t) / rounds
    changes = []
    for i in range(5):
        t = time.perf_counter()
        keys.set_shared_key(KEY + bytes([i]), 0)
        changes.append(time.perf_counter() - t)
    t = time.perf_counter()
    ratchet_chain(KEY, 16)
    window = time.perf_counter() - t
    return {
        "clear_us": clear * 1e6,
        "encrypted_us": encrypted * 1e6,
        "key_change_ms": statistics.median(changes) * 1000,
        "inline_window_ms": window * 1000,
    }


async def _main(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    import anyio
    from livekit import rtc

    from harness.official import OfficialLoop, OfficialPeer
    from lkproto.transports.anyio import (
        E2EEOptions,
        KeyProviderOptions,
        Room,
        RoomOptions,
        RtcConfiguration,
    )

    loop = OfficialLoop()
    rooms = iter(range(1_000_000))

    def lk_options(key: bytes | None) -> RoomOptions:
        encryption = None if key is None else E2EEOptions(KeyProviderOptions(shared_key=key))
        return RoomOptions(
            auto_subscribe=False,
            rtc_config=RtcConfiguration(host_addresses=[host]),
            encryption=encryption,
        )

    def official_options(key: bytes | None) -> dict[str, Any]:
        if key is None:
            return {}
        kp = rtc.KeyProviderOptions(shared_key=key)
        return {"encryption": rtc.E2EEOptions(key_provider_options=kp)}

    async def pair(direction: str, key: bytes | None) -> tuple[Any, Any, Any]:
        """(receiver-or-callee official peer, lk room or None, sender official peer or None)."""
        name = f"e2ee-{next(rooms)}"
        peer = OfficialPeer(loop)
        await peer.connect(server.url, _token("off", name), **official_options(key))
        if direction == "official->official":
            other = OfficialPeer(loop)
            await other.connect(server.url, _token("tx", name), **official_options(key))
            await peer.wait_for(lambda r: ("joined", ("tx",)) in r)
            return peer, None, other
        room = Room()
        await room.connect(server.url, _token("lk", name), lk_options(key))
        await peer.wait_for(lambda r: ("joined", ("lk",)) in r)
        return peer, room, None

    async def close(peer: Any, room: Any, other: Any) -> None:
        if room is not None:
            await room.disconnect()
        if other is not None:
            await other.disconnect()
        await peer.disconnect()

    async def throughput(direction: str, key: bytes | None) -> float:
        count, payload = args.packets, bytes(15 * 1024)
        peer, room, other = await pair(direction, key)
        try:
            if direction == "lkproto->official":
                start = time.perf_counter()
                for _ in range(count):
                    await room.local_participant.publish_data(payload)
                await peer.wait_for(lambda r: len([n for n, _ in r if n == "data"]) >= count, LIMIT)
                return time.perf_counter() - start
            if direction == "official->official":

                async def blast(r: Any) -> float:
                    t = time.perf_counter()
                    for _ in range(count):
                        await r.local_participant.publish_data(payload)
                    return t

                start = await other.do(blast, LIMIT)
                await peer.wait_for(lambda r: len([n for n, _ in r if n == "data"]) >= count, LIMIT)
                return time.perf_counter() - start
            got, done = 0, anyio.Event()

            def on_data(_: object) -> None:
                nonlocal got
                got += 1
                if got == count:
                    done.set()

            room.on("data_received", on_data)

            async def blast_lk(r: Any) -> float:
                t = time.perf_counter()
                for _ in range(count):
                    await r.local_participant.publish_data(payload, destination_identities=["lk"])
                return t

            start = await peer.do(blast_lk, LIMIT)
            with anyio.fail_after(LIMIT):
                await done.wait()
            return time.perf_counter() - start
        finally:
            await close(peer, room, other)

    async def rpc_latency(direction: str, key: bytes | None) -> list[float]:
        peer, room, other = await pair(direction, key)

        async def echo(data: Any) -> str:
            return str(data.payload)

        async def register(r: Any) -> None:
            r.local_participant.register_rpc_method("bench-echo", echo)

        try:
            if direction == "official->lkproto":
                room.local_participant.register_rpc_method("bench-echo", echo)
            else:
                await peer.do(register)
            caller_is_lk = direction == "lkproto->official"
            callee = "off" if direction != "official->lkproto" else "lk"

            async def calls(r: Any) -> list[float]:
                out = []
                for _ in range(args.calls):
                    t = time.perf_counter()
                    reply = await r.local_participant.perform_rpc(
                        destination_identity=callee, method="bench-echo", payload=RPC_PAYLOAD
                    )
                    assert reply == RPC_PAYLOAD
                    out.append(time.perf_counter() - t)
                return out

            if caller_is_lk:
                with anyio.fail_after(LIMIT):
                    return await calls(room)
            caller = other if direction == "official->official" else peer
            return await caller.do(calls, LIMIT)
        finally:
            await close(peer, room, other)

    async def loop_stall() -> dict[str, float]:
        """The longest gap on the lkproto Room's loop while it searches a ratchet window."""
        name = f"e2ee-{next(rooms)}"
        peer = OfficialPeer(loop)
        await peer.connect(server.url, _token("off", name), **official_options(KEY))
        room = Room()
        await room.connect(server.url, _token("lk", name), lk_options(b"some other key"))
        await peer.wait_for(lambda r: ("joined", ("lk",)) in r)
        failed = anyio.Event()
        room.on("e2ee_state_changed", lambda p, s: failed.set())
        gaps: list[float] = []
        try:
            async with anyio.create_task_group() as tg:

                async def ticker() -> None:
                    last = time.perf_counter()
                    while True:
                        await anyio.sleep(0.001)
                        now = time.perf_counter()
                        gaps.append(now - last)
                        last = now

                tg.start_soon(ticker)
                t = time.perf_counter()
                await peer.do(lambda r: r.local_participant.publish_data(b"unreadable"))
                with anyio.fail_after(LIMIT):
                    await failed.wait()
                elapsed = time.perf_counter() - t
                tg.cancel_scope.cancel()
        finally:
            await room.disconnect()
            await peer.disconnect()
        return {"search_ms": elapsed * 1000, "max_loop_gap_ms": max(gaps) * 1000}

    results: dict[str, Any] = {"throughput_mib_s": {}, "rpc_ms": {}}
    mib = args.packets * 15 * 1024 / (1024 * 1024)
    await throughput("lkproto->official", None)  # warm-up: first connections, imports, caches
    for direction in ("lkproto->official", "official->lkproto", "official->official"):
        for label, key in (("clear", None), ("encrypted", KEY)):
            runs = [await throughput(direction, key) for _ in range(args.repeat)]
            results["throughput_mib_s"][f"{direction} {label}"] = mib / statistics.median(runs)
            latencies = sorted(x * 1000 for x in await rpc_latency(direction, key))
            q = statistics.quantiles(latencies, n=100, method="inclusive")
            results["rpc_ms"][f"{direction} {label}"] = {"p50": q[49], "p95": q[94]}
    results["stall"] = await loop_stall()
    loop.close()
    return results


def render(r: dict[str, Any], args: argparse.Namespace) -> str:
    t, rpc, core, stall = r["throughput_mib_s"], r["rpc_ms"], r["core"], r["stall"]
    lines = [
        "| direction | clear MiB/s | encrypted MiB/s | encrypted/clear | RPC p50 clear ms "
        "| RPC p50 encrypted ms | RPC p95 clear ms | RPC p95 encrypted ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for direction in ("lkproto->official", "official->lkproto", "official->official"):
        clear, enc = t[f"{direction} clear"], t[f"{direction} encrypted"]
        rc, re_ = rpc[f"{direction} clear"], rpc[f"{direction} encrypted"]
        lines.append(
            f"| {direction} | {clear:.2f} | {enc:.2f} | {enc / clear:.2f}x | {rc['p50']:.1f} "
            f"| {re_['p50']:.1f} | {rc['p95']:.1f} | {re_['p95']:.1f} |"
        )
    lines += [
        "",
        f"core, per 15 KiB packet: clear serialize+parse {core['clear_us']:.1f} us, "
        f"encrypt+decrypt {core['encrypted_us']:.1f} us",
        f"key change (set_shared_key, one PBKDF2 run): {core['key_change_ms']:.1f} ms",
        f"ratchet window of 16 (32 PBKDF2 runs) inline: {core['inline_window_ms']:.0f} ms; "
        f"offloaded in a Room: failure reported after {stall['search_ms']:.0f} ms, "
        f"longest event-loop gap meanwhile {stall['max_loop_gap_ms']:.1f} ms",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=300)
    parser.add_argument("--calls", type=int, default=100)
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
    results["core"] = core_costs()
    print(json.dumps(results) if args.json else render(results, args))


if __name__ == "__main__":
    main()
