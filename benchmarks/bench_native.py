"""lkproto, the official SDK and the Go SDK (a native client), each participant in its own process.

Directions (sender -> receiver, caller -> callee): lkproto -> Go, Go -> lkproto, Go -> Go,
official -> Go, and lkproto -> lkproto for reference. For each, on one confined
livekit-server, the median of --repeat runs of:
- 300 x 15 KiB reliable packets: MiB/s, from the sender's first send to the receiver's last
  packet;
- 2000 x 100 B reliable packets: packets/s, timed the same way;
- the RPC echo: 15360-byte payload (the Go SDK speaks RPC v1, whose limit is 15360 bytes; so
  lkproto and the official SDK speak v1 to it too), concurrency 3, --gap between a caller's
  calls, --calls calls: p50/p95 latency and calls/s;
and for each of the three, the CPU seconds per MiB moved of the sender and of the receiver
process, and of livekit-server's (utime + stime from /proc/<pid>/stat, all threads, over the
measurement: from just before the first send to the last packet's arrival, or over the whole
RPC run, whose MiB are the request and response payloads of the calls that succeeded; the
clock tick is 10 ms, so the 100 B rows, 0.19 MiB, are coarse).

Every participant is a child process speaking the Go peer's JSON lines (peers/go/README.md):
`.venv/bin/lkproto-go-peer` for Go, and this script's `child` subcommand for lkproto (anyio
Room on asyncio) and the official SDK, which implement the commands the benchmark uses
(connect, count_data, flood, register_rpc echo, rpc_bench, disconnect). Timestamps cross
processes as CLOCK_REALTIME nanoseconds (one machine, one clock).

Confinement: as root the process first moves into a private network namespace (the test
harness's `confine()`); its children inherit it, so no packet can leave it. The Go SDK cannot
be told which addresses to gather ICE candidates from, so without the namespace (not root)
this benchmark refuses to run. Every loop is bounded by a count and a time limit.

Run (as root): .venv/bin/python benchmarks/bench_native.py [--packets 300] [--small 2000]
     [--calls 200] [--repeat 3] [--only go->lkproto ...] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import LiveKitServer, confine, mint_token
from harness.netns import release

LIMIT = 60.0  # seconds, per measured transfer or RPC run
RPC_PAYLOAD = 15360  # the Go SDK's RPC v1 limit (MaxPayloadBytes), inclusive
CONCURRENCY = 3
METHOD = "benchmark-echo"
WARMUP_PACKETS = 50
WARMUP_CALLS = 6
DIRECTIONS = [
    ("lkproto", "go"),
    ("go", "lkproto"),
    ("go", "go"),
    ("official", "go"),
    ("lkproto", "lkproto"),
]
MIB = 1024 * 1024


# -- the parent: participants as processes ------------------------------------------------------


@dataclass
class Participant:
    kind: str
    pid: int
    peer: Any  # harness.gopeer.GoPeer: the JSON-lines driver, whatever the program


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def participant(kind: str, host: str, log_dir: Path) -> AsyncIterator[Participant]:
    """Start one participant process (`go`, `lkproto` or `official`) and wait until it is ready;
    on exit, ask it to leave and kill it if it has not exited within 5 s."""
    import anyio

    from harness.gopeer import GO_PEER_BIN, GoPeer

    if kind == "go":
        argv = [str(GO_PEER_BIN)]
    else:
        argv = [sys.executable, __file__, "child", "--sdk", kind, "--host", host]
    stderr_path = log_dir / f"{kind}-{time.monotonic_ns()}.log"
    with open(stderr_path, "wb") as stderr:
        process = await anyio.open_process(
            argv, stdin=-1, stdout=-1, stderr=stderr, start_new_session=True
        )
    peer = GoPeer(process, stderr_path)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(peer._read)
            try:
                await peer.wait_event("ready", timeout=30)
                yield Participant(kind, process.pid, peer)
            finally:
                with anyio.CancelScope(shield=True):
                    with anyio.move_on_after(5):
                        await peer.disconnect(timeout=5)
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                        with anyio.move_on_after(5):
                            await process.wait()
                tg.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()


async def transfer(
    tx: Participant, rx: Participant, sfu: int, size: int, count: int
) -> dict[str, float]:
    """One flood of `count` reliable packets of `size` bytes from tx to rx."""
    await rx.peer.do("count_data", expect=count)
    n_counted = len(rx.peer.of("data_counted"))
    cpu0 = cpu_seconds(tx.pid), cpu_seconds(rx.pid), cpu_seconds(sfu)
    sent = await tx.peer.do(
        "flood",
        LIMIT + 10,
        size=size,
        count=count,
        reliable=True,
        destinations=["rx"],
        limit_ms=int(LIMIT * 1000),
    )
    counted = await rx.peer.wait_for(
        lambda _r: rx.peer.of("data_counted")[n_counted:] or None, timeout=LIMIT
    )
    cpu1 = cpu_seconds(tx.pid), cpu_seconds(rx.pid), cpu_seconds(sfu)
    seconds = (counted[0]["last_ns"] - sent["start_ns"]) / 1e9
    mib = size * count / MIB
    return {
        "seconds": seconds,
        "mib_s": mib / seconds,
        "pps": count / seconds,
        "tx_cpu_per_mib": (cpu1[0] - cpu0[0]) / mib,
        "rx_cpu_per_mib": (cpu1[1] - cpu0[1]) / mib,
        "sfu_cpu_per_mib": (cpu1[2] - cpu0[2]) / mib,
    }


async def rpc_run(
    caller: Participant, callee: Participant, sfu: int, payload: str, calls: int, gap: float
) -> dict[str, Any]:
    cpu0 = cpu_seconds(caller.pid), cpu_seconds(callee.pid), cpu_seconds(sfu)
    r = await caller.peer.do(
        "rpc_bench",
        LIMIT + 30,
        destination="rx",
        method=METHOD,
        payload=payload,
        calls=calls,
        concurrency=CONCURRENCY,
        gap_ms=int(gap * 1000),
        limit_ms=int(LIMIT * 1000),
    )
    cpu1 = cpu_seconds(caller.pid), cpu_seconds(callee.pid), cpu_seconds(sfu)
    ms = sorted(r["latencies_ms"])
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [float("nan")] * 99
    mib = 2 * len(ms) * len(payload.encode()) / MIB or float("nan")
    return {
        "ok": len(ms),
        "errors": r["errors"],
        "p50_ms": q[49],
        "p95_ms": q[94],
        "calls_per_s": (len(ms) + sum(r["errors"].values())) / r["wall_s"],
        "tx_cpu_per_mib": (cpu1[0] - cpu0[0]) / mib,
        "rx_cpu_per_mib": (cpu1[1] - cpu0[1]) / mib,
        "sfu_cpu_per_mib": (cpu1[2] - cpu0[2]) / mib,
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, float | int)]
    out: dict[str, Any] = {k: statistics.median(run[k] for run in runs) for k in keys}
    errors: dict[str, int] = {}
    for run in runs:
        for code, n in run.get("errors", {}).items():
            errors[code] = errors.get(code, 0) + n
    if any("errors" in run for run in runs):
        out["errors"] = errors
    return out


async def _main(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    from bench_rpc import make_payload

    payload = make_payload(RPC_PAYLOAD)
    sfu = server.pid
    assert sfu is not None
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-native-") as tmp:
        log_dir = Path(tmp)
        for index, (tx_kind, rx_kind) in enumerate(DIRECTIONS):
            if args.only and f"{tx_kind}->{rx_kind}" not in args.only:
                continue
            room = f"native-{index}"
            async with (
                participant(rx_kind, host, log_dir) as rx,
                participant(tx_kind, host, log_dir) as tx,
            ):
                await rx.peer.connect(server.url, mint_token("rx", room))
                await rx.peer.do("register_rpc", method=METHOD, mode="echo")
                await tx.peer.connect(server.url, mint_token("tx", room))
                await rx.peer.wait_event(
                    "participant_connected", lambda f: f["identity"] == "tx", timeout=20
                )
                await transfer(tx, rx, sfu, 100, WARMUP_PACKETS)
                await rpc_run(tx, rx, sfu, payload, WARMUP_CALLS, 0)
                big, small, rpc = [], [], []
                for _ in range(args.repeat):
                    big.append(await transfer(tx, rx, sfu, 15 * 1024, args.packets))
                    small.append(await transfer(tx, rx, sfu, 100, args.small))
                    rpc.append(await rpc_run(tx, rx, sfu, payload, args.calls, args.gap))
                results[f"{tx_kind}->{rx_kind}"] = {
                    "big": _median(big),
                    "small": _median(small),
                    "rpc": _median(rpc),
                    "big_runs_s": [run["seconds"] for run in big],
                    "small_runs_s": [run["seconds"] for run in small],
                }
                print(f"{tx_kind}->{rx_kind}: {results[f'{tx_kind}->{rx_kind}']}", file=sys.stderr)
    return results


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    base = results.get("go->go")

    def vs(r: dict[str, Any], part: str, key: str) -> str:
        return f"{r[part][key] / base[part][key]:.2f}x" if base else "-"

    lines = [
        f"Reliable packets: {args.packets} x 15 KiB and {args.small} x 100 B, first send to last "
        f"packet received. RPC echo `{METHOD}`: {RPC_PAYLOAD}-byte payload (v1 with Go), "
        f"concurrency {CONCURRENCY}, {args.gap * 1000:g} ms between a caller's calls, "
        f"{args.calls} calls. Median of {args.repeat}.",
        "",
        "| sender -> receiver | 15 KiB MiB/s | vs Go->Go | 100 B pkt/s | vs Go->Go "
        "| RPC p50 ms | RPC p95 ms | RPC calls/s | vs Go->Go | RPC errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for direction, r in results.items():
        b, s, c = r["big"], r["small"], r["rpc"]
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(c["errors"].items())) or "none"
        lines.append(
            f"| {direction} | {b['mib_s']:.1f} | {vs(r, 'big', 'mib_s')} | {s['pps']:,.0f} "
            f"| {vs(r, 'small', 'pps')} | {c['p50_ms']:.1f} | {c['p95_ms']:.1f} "
            f"| {c['calls_per_s']:.1f} | {vs(r, 'rpc', 'calls_per_s')} | {errors} |"
        )
    lines += [
        "",
        "CPU seconds per MiB of payload (RPC: request + response payloads), for the sender "
        "(caller), the receiver (callee) and livekit-server",
        "",
        "| sender -> receiver | 15 KiB tx | rx | server | 100 B tx | rx | server "
        "| RPC caller | callee | server |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for direction, r in results.items():
        cells = [
            f"{r[part][k]:.3f}"
            for part in ("big", "small", "rpc")
            for k in ("tx_cpu_per_mib", "rx_cpu_per_mib", "sfu_cpu_per_mib")
        ]
        lines.append(f"| {direction} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- the child: lkproto or the official SDK behind the Go peer's JSON lines ---------------------


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def _child(args: argparse.Namespace) -> None:
    import anyio

    if args.sdk == "lkproto":
        from lkproto.transports.anyio import Room, RoomOptions, RpcError, RtcConfiguration

        room: Any = Room()

        def options() -> Any:
            rtc = RtcConfiguration(host_addresses=[args.host])
            return RoomOptions(auto_subscribe=False, rtc_config=rtc)
    else:
        from livekit import rtc

        room = rtc.Room()
        RpcError = rtc.RpcError

        def options() -> Any:
            return rtc.RoomOptions(auto_subscribe=False)

    counter: dict[str, Any] = {}

    def on_data(packet: Any) -> None:
        if not counter:
            return
        now = time.time_ns()
        if counter["count"] == 0:
            counter["first_ns"] = now
        counter["count"] += 1
        counter["bytes"] += len(packet.data)
        counter["last_ns"] = now
        if counter["count"] >= counter["expect"]:
            done = dict(counter)
            counter.clear()
            _emit("data_counted", **{k: done[k] for k in ("count", "bytes", "first_ns", "last_ns")})

    room.on("data_received", on_data)
    room.on("participant_connected", lambda p: _emit("participant_connected", identity=p.identity))

    async def flood(c: dict[str, Any]) -> dict[str, Any]:
        payload = bytes(c["size"])
        deadline = time.monotonic() + c["limit_ms"] / 1000
        start, sent = time.time_ns(), 0
        while sent < c["count"] and time.monotonic() < deadline:
            await room.local_participant.publish_data(
                payload, reliable=True, destination_identities=c["destinations"]
            )
            sent += 1
        return {"sent": sent, "start_ns": start, "end_ns": time.time_ns()}

    async def rpc_bench(c: dict[str, Any]) -> dict[str, Any]:
        latencies: list[float] = []
        errors: dict[str, int] = {}
        left = [c["calls"]]
        deadline = time.monotonic() + c["limit_ms"] / 1000

        async def worker() -> None:
            while left[0] > 0 and time.monotonic() < deadline:
                left[0] -= 1
                t = time.perf_counter()
                try:
                    reply = await room.local_participant.perform_rpc(
                        destination_identity=c["destination"],
                        method=c["method"],
                        payload=c["payload"],
                    )
                except RpcError as exc:
                    errors[str(exc.code)] = errors.get(str(exc.code), 0) + 1
                else:
                    if reply == c["payload"]:
                        latencies.append((time.perf_counter() - t) * 1000)
                    else:
                        errors["wrong payload"] = errors.get("wrong payload", 0) + 1
                await anyio.sleep(c["gap_ms"] / 1000)

        start = time.perf_counter()
        with anyio.fail_after(c["limit_ms"] / 1000 + 20):
            async with anyio.create_task_group() as tg:
                for _ in range(c["concurrency"]):
                    tg.start_soon(worker)
        return {"latencies_ms": latencies, "wall_s": time.perf_counter() - start, "errors": errors}

    _emit("ready", sdk=args.sdk)
    while line := await anyio.to_thread.run_sync(sys.stdin.readline):
        c = json.loads(line)
        cmd, fields = c["cmd"], {}
        try:
            if cmd == "connect":
                await room.connect(c["url"], c["token"], options())
                _emit("joined", identity=room.local_participant.identity, room=room.name)
            elif cmd == "count_data":
                counter.update(expect=c["expect"], count=0, bytes=0, first_ns=0, last_ns=0)
            elif cmd == "flood":
                fields = await flood(c)
            elif cmd == "register_rpc":
                room.local_participant.register_rpc_method(c["method"], lambda data: data.payload)
            elif cmd == "rpc_bench":
                fields = await rpc_bench(c)
            elif cmd == "disconnect":
                with anyio.move_on_after(5):
                    await room.disconnect()
                _emit("result", id=c.get("id"), cmd=cmd, ok=True)
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Exception as exc:  # reported to the parent, as the Go peer does
            _emit("result", id=c.get("id"), cmd=cmd, ok=False, error=repr(exc))
        else:
            _emit("result", id=c.get("id"), cmd=cmd, ok=True, **fields)
    with anyio.move_on_after(5):
        await room.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    kid = sub.add_parser("child")
    kid.add_argument("--sdk", choices=("lkproto", "official"), required=True)
    kid.add_argument("--host", required=True)
    parser.add_argument("--packets", type=int, default=300)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.01, help="seconds between a caller's calls")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", action="append", help="a direction, e.g. go->lkproto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "child":
        import anyio

        anyio.run(_child, args)
        import faulthandler

        faulthandler.dump_traceback_later(20, exit=True)  # a child that cannot exit: say where
        return
    confinement = confine()
    try:
        if confinement.mode != "netns":
            raise SystemExit(
                "bench_native needs the harness's network namespace (run as root): the Go SDK "
                "cannot be told which addresses to gather ICE candidates from"
            )
        with LiveKitServer(confinement) as server:
            import anyio

            results = anyio.run(_main, args, server, confinement.host)
    finally:
        release(confinement)
    print(json.dumps(results) if args.json else render(results, args))


if __name__ == "__main__":
    main()
