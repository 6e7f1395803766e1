"""Many participants in one process, one room on the real server: connect, broadcast, leave.

For each N in --sizes, N participants join one room from this one process (all at once),
then each sends one 100-byte reliable packet to everyone (N*(N-1) expected deliveries), then
all disconnect. `--rooms-of M` splits them into rooms of M instead (`--sizes 200 --rooms-of 2`:
100 rooms of 2; each sends to the others of its room). Measured per run:
- connected: from the first `connect()` call to the last one returning (all started at once);
- seen: until every participant lists the others of its room in `remote_participants`;
- RSS per participant: (RSS with all connected - RSS before) / N, from /proc/self/status
  (meaningful for the first round of a process only, hence one process per round, below);
- idle CPU per participant (`--idle S`): the process's CPU time (every thread, native ones
  included) over S seconds with all connected and nothing sent, as % of one core, over N;
- broadcast: delivered / expected within --limit seconds, p50 and p99 latency (send call to
  the receiver's `data_received`; one clock, one process);
- left: every `disconnect()` returned.
Clients (`--sdks`): `lkproto` is `lkproto.transports.anyio.Room` on asyncio, `trio` the trio
adapter under `trio.run`, `threaded` the blocking adapter (each blocking call from a worker
thread, all at once), `official` the official SDK's `livekit.rtc.Room` on asyncio. Each round
(size, client, repeat) runs in a fresh process of this script (`--inline`: all in this one,
on one server), so no client's runtime or freed memory weighs on another's figures.
--without-fix puts back aiortc's own SCTP reassembly (transports/_sctp.py) to show what the
fix of issue 26 changes.

lkproto's async participants are instrumented: every `PacketDropped`, `Reconnecting` and
`Reconnected` their sessions report is counted and printed. `--server-log PATH` keeps the
server's log (at `--server-log-level`, e.g. debug to see its data-channel drops).
`--cycles N` adds N connect/disconnect cycles of one Room (benchmarks/soak.py does more).

Confinement: as root the process first moves into a private network namespace (the test
harness's `confine()`), so no packet can leave it; otherwise everything binds 127.0.0.1.
Every wait is bounded (--limit, connect timeouts, a timeout per child process).

Run: .venv/bin/python benchmarks/bench_scale.py [--sizes 10 50 100]
     [--sdks lkproto trio threaded official] [--rooms-of 2] [--idle 30] [--packets 1]
     [--repeat 1] [--trace] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import LiveKitServer, confine, mint_token
from harness.netns import release

PAYLOAD = 100
HEADER = struct.Struct("<Id")  # sender index, send time (perf_counter)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Tally:
    """What one participant received: sender index -> latency, plus the core's reports."""

    def __init__(self) -> None:
        self.latency: dict[int, float] = {}
        self.reports: Counter[str] = Counter()
        self.sctp = ""

    def on_data(self, packet: Any) -> None:
        now = time.perf_counter()
        index, sent = HEADER.unpack_from(bytes(packet.data))
        self.latency[index] = now - sent

    # An events() subscriber (transports/_session.py): every core event of the session.
    def send_nowait(self, event: object) -> None:
        from lkproto import events as ev

        match event:
            case ev.DataReceived():
                self.reports["core:DataReceived"] += 1
            case ev.PacketDropped():
                self.reports[f"dropped:{event.reason}"] += 1
            case ev.Reconnecting() | ev.Reconnected() | ev.Disconnected():
                self.reports[type(event).__name__] += 1
            case _:
                pass

    def close(self) -> None:
        pass


_RAW: Counter[int] = Counter()  # reliable data-channel messages per Pump (--trace)


def _trace() -> None:
    """Count what each session's data channel delivered, before the core sees it."""
    from lkproto.models import Channel
    from lkproto.transports._pump import Pump

    original = Pump.on_data

    def on_data(self: Pump, channel: Channel, data: bytes) -> None:
        if channel is Channel.RELIABLE:
            _RAW[id(self)] += 1
        original(self, channel, data)

    Pump.on_data = on_data  # type: ignore[method-assign]


def _sctp_state(room: Any) -> str:
    """The receiving SCTP association's state: cumulative TSN, gaps, reassembly backlog."""
    out = []
    pcs = getattr(room._session.peer, "_pcs", {})
    for target, pc in pcs.items():
        sctp = pc.sctp
        if sctp is None:
            continue
        streams = {
            sid: (st.sequence_number, len(st.reassembly))
            for sid, st in sctp._inbound_streams.items()
        }
        out.append(
            f"{target.name}: last_tsn={sctp._last_received_tsn} "
            f"misordered={len(sctp._sack_misordered)} fwd_tsn={_FWD.get(id(sctp), 0)} "
            f"inbound(seq, waiting)={streams} rwnd={sctp._advertised_rwnd} "
            f"state={sctp.state}"
        )
        for sid, st in sctp._inbound_streams.items():
            if st.reassembly:
                head = [(c.tsn % 100000, c.stream_seq) for c in st.reassembly[:6]]
                has = any(c.stream_seq == st.sequence_number for c in st.reassembly)
                out.append(f"stream {sid} head (tsn, ssn)={head} expected ssn present={has}")
    return "; ".join(out)


_FWD: Counter[int] = Counter()


def _trace_sctp() -> None:
    from aiortc.rtcsctptransport import RTCSctpTransport

    original = RTCSctpTransport._receive_forward_tsn_chunk

    async def forward(self: Any, chunk: Any) -> None:
        _FWD[id(self)] += 1
        await original(self, chunk)

    RTCSctpTransport._receive_forward_tsn_chunk = forward  # type: ignore[method-assign]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Client:
    """One client library under test: how to make its Rooms and call them from async code.

    `lkproto` is the anyio adapter on asyncio, `trio` the trio adapter under `trio.run`,
    `threaded` the blocking adapter (every blocking call from a worker thread, all at once),
    `official` the official SDK's `livekit.rtc` on asyncio."""

    def __init__(self, sdk: str, host: str) -> None:
        self.sdk = sdk
        self.blocking = sdk == "threaded"
        if sdk == "official":
            from livekit import rtc

            self.Room: Any = rtc.Room
            self.options: Any = rtc.RoomOptions()
            return
        if sdk == "trio":
            from lkproto.transports import trio as module
        elif sdk == "threaded":
            from lkproto.transports import threaded as module  # type: ignore[no-redef]
        else:
            from lkproto.transports import anyio as module  # type: ignore[no-redef]
        self.Room = module.Room
        self.options = module.RoomOptions(rtc_config=module.RtcConfiguration(host_addresses=[host]))

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.blocking:
            import anyio.to_thread

            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=_LIMITER[0])
        return await fn(*args, **kwargs)


_LIMITER: list[Any] = []


async def _gather(*calls: Any) -> None:
    import anyio

    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(call)


def _cpu_seconds() -> float:
    """CPU time of the whole process (every thread, native ones included: user + system)."""
    return time.process_time()


async def _round(sdk: str, n: int, server: LiveKitServer, host: str, args: Any) -> dict[str, Any]:
    import anyio

    if not _LIMITER:
        _LIMITER.append(anyio.CapacityLimiter(max(40, 2 * n)))
    group = args.rooms_of or n  # participants per room
    room_base = f"scale-{sdk}-{n}-{time.monotonic_ns()}"
    client = Client(sdk, host)
    tallies = [Tally() for _ in range(n)]
    rooms: list[Any] = [client.Room() for _ in range(n)]
    if hasattr(rooms[0], "_session"):  # lkproto's async adapters: the core's own reports
        for room, tally in zip(rooms, tallies, strict=True):
            room._session.subscribe(tally)
    for room, tally in zip(rooms, tallies, strict=True):
        room.on("data_received", tally.on_data)

    def peers(i: int) -> range:
        first = i // group * group
        return range(first, min(n, first + group))

    rss0 = rss_mib()
    t0 = time.perf_counter()

    async def join(i: int) -> None:
        token = mint_token(f"p{i:04d}", f"{room_base}-{i // group}")
        await client.call(rooms[i].connect, server.url, token, client.options)

    with anyio.fail_after(args.limit * 4):
        await _gather(*(partial(join, i) for i in range(n)))
    connected = time.perf_counter() - t0
    visible_at_connect = sum(len(r.remote_participants) for r in rooms)
    deadline = time.perf_counter() + args.limit
    while any(len(r.remote_participants) < len(peers(i)) - 1 for i, r in enumerate(rooms)):
        if time.perf_counter() > deadline:
            break
        await anyio.sleep(0.02)
    seen = time.perf_counter() - t0
    if args.settle:
        await anyio.sleep(args.settle)
    rss1 = rss_mib()
    idle_cpu = float("nan")
    if args.idle:
        c0, w0 = _cpu_seconds(), time.perf_counter()
        await anyio.sleep(args.idle)
        idle_cpu = (_cpu_seconds() - c0) / (time.perf_counter() - w0)

    # -- broadcast: each sends --packets packets to everyone in its room ---------------------------
    k = args.packets

    async def send(i: int) -> None:
        for m in range(k):
            payload = HEADER.pack(i * k + m, time.perf_counter()).ljust(PAYLOAD, b"x")
            await client.call(rooms[i].local_participant.publish_data, payload, reliable=True)

    expected = sum((len(peers(i)) - 1) * k for i in range(n))
    b0 = time.perf_counter()
    await _gather(*(partial(send, i) for i in range(n)))
    deadline = b0 + args.limit
    while sum(len(t.latency) for t in tallies) < expected and time.perf_counter() < deadline:
        await anyio.sleep(0.02)
    delivered = sum(len(t.latency) for t in tallies)
    latencies = [lat for t in tallies for lat in t.latency.values()]
    per_receiver = sorted(len(t.latency) for t in tallies)
    missing_by_sender: Counter[int] = Counter()
    for i, t in enumerate(tallies):
        for j in peers(i):
            if j != i:
                missing_by_sender[j] += sum(1 for m in range(k) if j * k + m not in t.latency)
    missing_by_sender = +missing_by_sender

    if sdk == "lkproto" and args.trace:
        for room, t in zip(rooms, tallies, strict=True):
            t.sctp = _sctp_state(room)

    # -- leave ----------------------------------------------------------------------------------
    l0 = time.perf_counter()
    with anyio.fail_after(args.limit * 2):
        await _gather(*(partial(client.call, r.disconnect) for r in rooms))
    left = time.perf_counter() - l0
    reports: Counter[str] = Counter()
    for t in tallies:
        reports.update(t.reports)
    if sdk == "lkproto" and args.trace:
        for i, (room, t) in enumerate(zip(rooms, tallies, strict=True)):
            raw = _RAW.get(id(room._session.pump), 0)
            if len(t.latency) < (n - 1) * k or raw < (n - 1) * k:
                print(f"  sctp of p{i:04d}: {t.sctp}", file=sys.stderr)
                lost = {j // k for j in range(n * k) if j // k != i and j not in t.latency}
                missing = sorted(lost)
                print(
                    f"receiver p{i:04d}: data_received {len(t.latency)}, core DataReceived "
                    f"{t.reports['core:DataReceived']}, reliable messages from SCTP {raw}, "
                    f"missing from {missing[:20]}{'...' if len(missing) > 20 else ''}",
                    file=sys.stderr,
                )
    return {
        "sdk": sdk,
        "n": n,
        "rooms": -(-n // group),
        "connected_s": connected,
        "visible_at_connect": visible_at_connect,
        "seen_s": seen,
        "rss_per_participant_mib": (rss1 - rss0) / n,
        "rss_mib": rss1,
        "idle_s": args.idle,
        "idle_cpu_per_participant_pct": idle_cpu * 100 / n,
        "idle_cpu_pct": idle_cpu * 100,
        "delivered": delivered,
        "expected": expected,
        "packets_per_sender": k,
        "min_per_receiver": per_receiver[0] if per_receiver else 0,
        "senders_with_losses": len(missing_by_sender),
        "worst_sender_missing": max(missing_by_sender.values(), default=0),
        "p50_ms": _percentile(latencies, 0.5) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "left_s": left,
        "reports": dict(reports),
    }


async def _cycles(
    count: int, server: LiveKitServer, host: str, trace: bool = False
) -> dict[str, Any]:
    """One `Room` connects and disconnects `count` times: RSS and open descriptors after a
    warm-up (the first fifth) and at the end, to bound a leak per cycle. With `trace`,
    tracemalloc's top growers between the two are printed to stderr."""
    import gc
    import os
    import tracemalloc

    if trace:
        tracemalloc.start(8)
    snapshots = []

    from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration

    options = RoomOptions(rtc_config=RtcConfiguration(host_addresses=[host]))
    warm = max(1, count // 5)
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(count):
        room = Room()
        token = mint_token("cycler", "cycles")
        await asyncio.wait_for(room.connect(server.url, token, options), 20)
        await asyncio.wait_for(room.disconnect(), 20)
        if i + 1 in (warm, count):
            gc.collect()
            key = "warm" if i + 1 == warm else "end"
            marks[f"{key}_rss_mib"] = rss_mib()
            marks[f"{key}_fds"] = len(os.listdir("/proc/self/fd"))
            if trace:
                snapshots.append(tracemalloc.take_snapshot())
    elapsed = time.perf_counter() - t0
    if len(snapshots) == 2:
        for stat in snapshots[1].compare_to(snapshots[0], "traceback")[:8]:
            print(f"tracemalloc: {stat}", file=sys.stderr)
            print("    " + "\n    ".join(stat.traceback.format()[-6:]), file=sys.stderr)
    growth = marks["end_rss_mib"] - marks["warm_rss_mib"]
    return {
        "cycles": count,
        "ms_per_cycle": elapsed / count * 1000,
        **marks,
        "growth_kib_per_cycle": growth * 1024 / max(1, count - warm),
    }


async def _main(args: argparse.Namespace, server: LiveKitServer, host: str) -> list[dict]:
    if args.trace:
        _trace()
        _trace_sctp()
    if args.without_fix:  # aiortc's own SCTP reassembly, to show what transports/_sctp.py fixes
        from aiortc import rtcsctptransport

        from lkproto.transports import _aiortc  # noqa: F401 - it installs the fix on import
        from lkproto.transports._sctp import OrderedInboundStream

        rtcsctptransport.InboundStream = OrderedInboundStream.__mro__[1]  # type: ignore[misc]
    results = []
    for n in args.sizes:
        for _ in range(args.repeat):
            for sdk in args.sdks:
                results.append(await _round(sdk, n, server, host, args))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    if args.cycles:
        results.append(await _cycles(args.cycles, server, host, args.trace))
    return results


def render(results: list[dict]) -> str:
    lines = [
        "| client | N | rooms | connected | all seen | RSS/participant | idle CPU/participant "
        "| delivered | p50 | p99 | left |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['sdk']} | {r['n']} | failed: {r['error']} |")
            continue
        if "cycles" in r:
            lines.append(
                f"\n{r['cycles']} connect/disconnect cycles of one Room: "
                f"{r['ms_per_cycle']:.0f} ms each; RSS {r['warm_rss_mib']:.1f} MiB after "
                f"warm-up, {r['end_rss_mib']:.1f} MiB at the end "
                f"({r['growth_kib_per_cycle']:.1f} KiB per cycle); open descriptors "
                f"{r['warm_fds']} -> {r['end_fds']}"
            )
            continue
        cpu = r.get("idle_cpu_per_participant_pct", float("nan"))
        lines.append(
            f"| {r['sdk']} | {r['n']} | {r.get('rooms', 1)} | {r['connected_s']:.2f} s "
            f"| {r['seen_s']:.2f} s | {r['rss_per_participant_mib']:.2f} MiB "
            f"| {cpu:.3f} % | {r['delivered']:,} / {r['expected']:,} "
            f"| {r['p50_ms']:.0f} ms | {r['p99_ms']:.0f} ms | {r['left_s']:.2f} s |"
        )
    for r in results:
        reports = {
            k: v
            for k, v in r.get("reports", {}).items()
            if k not in ("core:DataReceived", "Disconnected")
        }
        if reports:
            lines.append(f"\n{r['sdk']} at {r['n']}: the sessions reported {reports}")
    return "\n".join(lines)


CHOICES = ["lkproto", "trio", "threaded", "official"]


def _inline(args: argparse.Namespace) -> list[dict]:
    """Every round of `args` in this process, on one server."""
    confinement = confine()
    try:
        server = LiveKitServer(
            confinement, log_level=args.server_log_level, log_dir=args.server_log
        )
        with server:
            if args.sdks == ["trio"]:
                import trio

                return trio.run(_main, args, server, confinement.host)
            if "trio" in args.sdks:
                raise SystemExit("--inline runs trio alone (trio.run)")
            return asyncio.run(_main(args, server, confinement.host))
    finally:
        release(confinement)


def _fresh(args: argparse.Namespace, argv: list[str]) -> list[dict]:
    """Each round (size, client, repeat) and the cycles in a fresh process of this script,
    one after the other, so no client's runtime or leftovers weigh on another's figures."""
    import subprocess

    drop = {"--sizes", "--sdks", "--repeat", "--cycles", "--json"}
    base, skip = [], False
    for arg in argv:
        if arg.startswith("--"):
            skip = arg.split("=")[0] in drop
        if not skip:
            base.append(arg)
    jobs = [
        ["--sizes", str(n), "--sdks", sdk]
        for n in args.sizes
        for _ in range(args.repeat)
        for sdk in args.sdks
    ]
    if args.cycles:
        jobs.append(["--sizes", "--cycles", str(args.cycles)])
    results: list[dict] = []
    for job in jobs:
        cmd = [sys.executable, __file__, *base, *job, "--inline", "--json"]
        name = job[3] if len(job) > 3 else "cycles"
        try:
            done = subprocess.run(
                cmd,
                stdout=subprocess.PIPE,  # the child's stderr (its JSON lines, any trace) is ours
                text=True,
                timeout=args.limit * 10 + args.idle + 120,
            )
        except subprocess.TimeoutExpired:
            results.append({"sdk": name, "n": job[1], "error": "timed out"})
            continue
        try:
            results.extend(json.loads(done.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            results.append({"sdk": name, "n": job[1], "error": f"exit {done.returncode}"})
        print(render(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 50, 100])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--sdks", nargs="+", choices=CHOICES, default=["lkproto"])
    parser.add_argument("--rooms-of", type=int, default=0, help="participants per room")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds of idle CPU sample")
    parser.add_argument("--limit", type=float, default=20.0, help="seconds per wait")
    parser.add_argument("--settle", type=float, default=0.0, help="sleep before broadcasting")
    parser.add_argument("--server-log", type=Path, help="keep the server's log in this dir")
    parser.add_argument("--server-log-level", default="info")
    parser.add_argument("--packets", type=int, default=1, help="reliable packets per sender")
    parser.add_argument("--without-fix", action="store_true", help="aiortc's SCTP reassembly")
    parser.add_argument("--cycles", type=int, default=0, help="then N connect/disconnect")
    parser.add_argument("--trace", action="store_true", help="per-receiver loss detail")
    parser.add_argument("--inline", action="store_true", help="all rounds in this process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rounds = len(args.sizes) * args.repeat * len(args.sdks) + bool(args.cycles)
    results = _inline(args) if args.inline or rounds == 1 else _fresh(args, sys.argv[1:])
    print(json.dumps(results) if args.json else render(results))


if __name__ == "__main__":
    main()
