"""Data tracks: delivery ratio, latency and CPU, lkproto beside the official SDK, in one run.

After the official `data_track_benchmark` (rust-sdks examples/data_track_benchmark): a
publisher pushes frames of each size (--sizes, bytes) at each rate (--rates, Hz) for
--seconds, on one data track, to one subscriber; then waits max(0.5 s, 2 frame intervals)
for stragglers. Per cell: the share of pushed frames that arrived whole (delivery ratio),
the latency of those that did (p50/p95, push to arrival, ms), and the CPU each participant's
process used over the cell (percent of one core).

Each participant runs in its own process (this script with --role), so its CPU is its own:
the lkproto participant is the anyio Room on asyncio (aiortc in the loop), the official one
`livekit.rtc` 1.2 (its Rust core on its own threads). Frames carry the cell and their number
in the payload and the push time (CLOCK_MONOTONIC, microseconds, shared by every process on
the machine) as the user timestamp. Directions: lkproto->official, official->lkproto and
official->official (the baseline), optionally lkproto->lkproto (--with-lkproto-pair).

livekit-server 1.13.5 drops data-track packets while a subscriber's channel holds more than
max(8 KiB, 100 ms of its bitrate) (field notes), and an lkproto publisher drops frames while
its own `_data_track` channel holds more than 8 KiB (as the official SDKs do): the "dropped
by the publisher" column counts those.

Confinement: as root the process first moves into a private network namespace (the test
harness's `confine()`) and the participants, its children, inherit it; otherwise everything
binds 127.0.0.1.

Run: .venv/bin/python benchmarks/bench_datatracks.py [--seconds 3] [--sizes 100,1024,16384,65536]
     [--rates 10,50,200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

DIRECTIONS = ("lkproto->official", "official->lkproto", "official->official")
HEADER = struct.Struct(">HI")  # cell, frame number
PROBE_CELL = 0xFFFF


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _now_us() -> int:
    return time.monotonic_ns() // 1000


# -- a participant (child process) ----------------------------------------------------------------


class _Participant:
    """One publisher or subscriber, lkproto or official, driven by JSON lines on stdin."""

    def __init__(self, kind: str, role: str) -> None:
        self.kind, self.role = kind, role
        self.room: Any = None
        self.track: Any = None
        self.received: dict[int, list[float]] = {}  # cell -> latencies (ms)
        self.cpu_mark = _cpu()
        self.wall_mark = time.monotonic()

    def say(self, **message: Any) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    async def connect(self, url: str, token: str, host: str) -> None:
        if self.kind == "lkproto":
            from lkproto.transports.anyio import Room, RoomOptions, RtcConfiguration

            self.room = Room()
            options = RoomOptions(
                auto_subscribe=False, rtc_config=RtcConfiguration(host_addresses=[host])
            )
            if self.role == "sub":
                self.room.on("data_track_published", self._published)
            await self.room.connect(url, token, options)
        else:
            from livekit import rtc

            self.room = rtc.Room()
            if self.role == "sub":
                self.room.on("data_track_published", self._published)
            await self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
        if self.role == "pub":
            self.track = await self.room.local_participant.publish_data_track(name="bench")

    def _published(self, track: Any) -> None:
        asyncio.get_running_loop().create_task(self._read(track))

    async def _read(self, track: Any) -> None:
        async for frame in track.subscribe():
            arrived = _now_us()
            cell, _number = HEADER.unpack_from(frame.payload)
            latency = (arrived - (frame.user_timestamp or arrived)) / 1000
            self.received.setdefault(cell, []).append(latency)

    def push(self, cell: int, number: int, size: int) -> bool:
        payload = HEADER.pack(cell, number).ljust(size, b"\x5a")
        if self.kind == "lkproto":
            from lkproto.transports.anyio import DataTrackFrame, PushFrameError

            frame: Any = DataTrackFrame(payload, user_timestamp=_now_us())
            refused: type[Exception] = PushFrameError
        else:
            from livekit import rtc

            frame = rtc.DataTrackFrame(payload=payload, user_timestamp=_now_us())
            refused = rtc.PushFrameError
        try:
            self.track.try_push(frame)
        except refused:
            return False
        return True

    def dropped_by_publisher(self) -> int | None:
        if self.kind != "lkproto" or self.room is None:
            return None
        peer = self.room._session.peer
        return int(getattr(getattr(peer, "_peer", peer), "data_track_frames_dropped", 0))

    async def cell(self, cell: int, size: int, rate: float, seconds: float) -> dict[str, Any]:
        count = max(1, round(rate * seconds))
        start = time.monotonic()
        refused = 0
        dropped = self.dropped_by_publisher()
        for number in range(count):
            delay = start + number / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.push(cell, number, size):
                refused += 1
        after = self.dropped_by_publisher()
        return {
            "pushed": count,
            "refused": refused,
            "dropped": None if after is None or dropped is None else after - dropped,
        }

    def mark(self) -> None:
        self.cpu_mark, self.wall_mark = _cpu(), time.monotonic()

    def usage(self) -> float:
        wall = max(1e-9, time.monotonic() - self.wall_mark)
        return 100 * (_cpu() - self.cpu_mark) / wall

    async def serve(self, url: str, token: str, host: str) -> None:
        await self.connect(url, token, host)
        self.say(event="ready")
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = json.loads(line)
            what = command["cmd"]
            if what == "probe":
                self.push(PROBE_CELL, command["n"], 100)
                self.say(event="probed")
            elif what == "probes":
                self.say(event="probes", count=len(self.received.get(PROBE_CELL, [])))
            elif what == "mark":
                self.mark()
                self.say(event="marked")
            elif what == "cell":
                self.mark()
                sent = await self.cell(
                    command["id"], command["size"], command["rate"], command["seconds"]
                )
                self.say(event="sent", cpu=self.usage(), **sent)
            elif what == "report":
                latencies = self.received.pop(command["id"], [])
                self.say(event="report", latencies=latencies, cpu=self.usage())
            elif what == "quit":
                break
        await self.room.disconnect()
        self.say(event="bye")


def _child(args: argparse.Namespace) -> None:
    participant = _Participant(args.kind, args.role)
    asyncio.run(participant.serve(args.url, args.token, args.host))


# -- the orchestrator ---------------------------------------------------------------------------


class _Child:
    def __init__(self, kind: str, role: str, url: str, token: str, host: str) -> None:
        command = [
            sys.executable,
            __file__,
            "--role",
            role,
            "--kind",
            kind,
            "--url",
            url,
            "--token",
            token,
            "--host",
            host,
        ]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a participant exited ({self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, BrokenPipeError, ValueError):
            self.ask(cmd="quit")
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_direction(
    direction: str, args: argparse.Namespace, url: str, host: str, room: str
) -> list[dict[str, Any]]:
    from harness import mint_token

    tx, rx = direction.split("->")
    sub = _Child(rx, "sub", url, mint_token("rx", room), host)
    pub: _Child | None = None
    try:
        assert sub.ask()["event"] == "ready"
        pub = _Child(tx, "pub", url, mint_token("tx", room), host)
        assert pub.ask()["event"] == "ready"
        deadline = time.monotonic() + 30
        n = 0
        while sub.ask(cmd="probes")["count"] == 0:  # the subscription is in place
            if time.monotonic() > deadline:
                raise TimeoutError(f"{direction}: no probe frame arrived")
            pub.ask(cmd="probe", n=n % 65536)
            n += 1
            time.sleep(0.1)
        rows = []
        cell = 0
        for size in args.sizes:
            for rate in args.rates:
                cell += 1
                sub.ask(cmd="mark")
                sent = pub.ask(cmd="cell", id=cell, size=size, rate=rate, seconds=args.seconds)
                time.sleep(max(0.5, 2 / rate))
                report = sub.ask(cmd="report", id=cell)
                latencies = report["latencies"]
                row = {
                    "direction": direction,
                    "size": size,
                    "rate": rate,
                    "pushed": sent["pushed"],
                    "refused": sent["refused"],
                    "dropped_by_publisher": sent["dropped"],
                    "received": len(latencies),
                    "ratio": len(latencies) / sent["pushed"],
                    "p50_ms": _percentile(latencies, 0.5),
                    "p95_ms": _percentile(latencies, 0.95),
                    "pub_cpu": sent["cpu"],
                    "sub_cpu": report["cpu"],
                }
                rows.append(row)
                print(
                    f"{direction} {size} B @ {rate:g} Hz: {row['received']}/{row['pushed']} "
                    f"p50 {row['p50_ms']} ms, cpu pub {row['pub_cpu']:.0f}% "
                    f"sub {row['sub_cpu']:.0f}%",
                    file=sys.stderr,
                    flush=True,
                )
        return rows
    finally:
        if pub is not None:
            pub.close()
        sub.close()


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        f"one data track, {args.seconds:g} s per cell; CPU is percent of one core for the "
        "publisher's and the subscriber's process over the cell",
        "",
        "| direction | size | rate | delivered | ratio | p50 ms | p95 ms | publisher CPU | "
        "subscriber CPU | dropped by the publisher |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        dropped = "-" if r["dropped_by_publisher"] is None else str(r["dropped_by_publisher"])
        lines.append(
            f"| {r['direction']} | {r['size']} | {r['rate']:g} | {r['received']}/{r['pushed']} | "
            f"{r['ratio']:.2f} | {ms(r['p50_ms'])} | {ms(r['p95_ms'])} | {r['pub_cpu']:.0f}% | "
            f"{r['sub_cpu']:.0f}% | {dropped} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell (default 3)")
    parser.add_argument("--sizes", default="100,1024,16384,65536")
    parser.add_argument("--rates", default="10,50,200")
    parser.add_argument("--directions", default=",".join(DIRECTIONS))
    parser.add_argument("--with-lkproto-pair", action="store_true")
    parser.add_argument("--json", action="store_true")
    # the participant processes
    parser.add_argument("--role", choices=("pub", "sub"), help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=("lkproto", "official"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        _child(args)
        return
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.rates = [float(r) for r in args.rates.split(",")]
    directions = args.directions.split(",")
    if args.with_lkproto_pair:
        directions.append("lkproto->lkproto")

    from harness import LiveKitServer, confine
    from harness.netns import release

    confinement = confine()
    rows: list[dict[str, Any]] = []
    try:
        with LiveKitServer(confinement) as server:
            for n, direction in enumerate(directions):
                room = f"datatracks-{os.getpid()}-{n}"
                rows += run_direction(direction, args, server.url, confinement.host, room)
    finally:
        release(confinement)
    print(json.dumps(rows) if args.json else render(rows, args))


if __name__ == "__main__":
    main()
