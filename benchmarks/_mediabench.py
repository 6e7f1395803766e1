"""The harness bench_audio.py and bench_video.py share: one medium's side-by-side run.

- Latency (`latency`): for each direction (lkproto->official, official->lkproto,
  official->official) a sender and a receiver join one room in this process, share
  `time.perf_counter`, and `Marks` records when each mark (a click, a flash) was captured and
  when the receiver first perceived it. What differs by medium (the senders, the streams, what
  counts as perceived) is a `Medium`.
- CPU (`child`, `window`, `child_lines`): the measured SDK runs in a child process that says
  `measuring` after the warm-up and prints `result {json}` when done; `window` measures its
  own CPU time (getrusage: every thread, so the official SDK's Rust threads count) over the
  window, with `anyio.sleep` or `asyncio.sleep`.
- `on_server` runs a benchmark against a livekit-server in a private network namespace when
  root (`confine()`), else bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from harness import LiveKitServer, confine, mint_token
from harness.netns import release

T = TypeVar("T")

WARMUP = 3.0
DIRECTIONS = ("lkproto->official", "official->lkproto", "official->official")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def on_server(run: Callable[[LiveKitServer, str], T]) -> T:
    """`run(server, host)` against a fresh confined livekit-server."""
    confinement = confine()
    try:
        with LiveKitServer(confinement) as server:
            return run(server, confinement.host)
    finally:
        release(confinement)


# -- latency ------------------------------------------------------------------------------------


class Marks:
    """One direction's marks: when each was captured, and when a frame that `perceived` accepts
    was received after it. `names` are the result's keys for the two counts."""

    def __init__(self, perceived: Callable[[Any], bool], names: tuple[str, str]) -> None:
        self.perceived = perceived
        self.names = names
        self.sent: dict[int, float] = {}
        self.got: dict[int, float] = {}
        self.armed: int | None = None  # the mark in flight

    def capture(self, index: int) -> None:
        self.sent[index] = time.perf_counter()
        self.armed = index

    def frame(self, frame: Any) -> None:
        if self.armed is not None and self.perceived(frame):
            self.got[self.armed] = time.perf_counter()
            self.armed = None

    def result(self) -> dict[str, Any]:
        delays = sorted((self.got[i] - t) * 1000 for i, t in self.sent.items() if i in self.got)
        sent, got = self.names
        return {
            sent: len(self.sent),
            got: len(delays),
            "median_ms": statistics.median(delays) if delays else None,
            "p90_ms": delays[int(0.9 * (len(delays) - 1))] if delays else None,
        }


@dataclass(frozen=True)
class Medium:
    """What a medium plugs into the latency harness: the room name's prefix, a fresh `Marks`,
    each SDK's sender (`(room, marks, count)`: publish, then capture `count` marks in real
    time) and each SDK's stream of a subscribed track (whose events carry `.frame`)."""

    prefix: str
    marks: Callable[[], Marks]
    lk_send: Callable[[Any, Marks, int], Awaitable[None]]
    official_send: Callable[[Any, Marks, int], Awaitable[None]]
    lk_stream: Callable[[Any], AsyncIterable[Any]]
    official_stream: Callable[[Any], AsyncIterable[Any]]


async def _direction(
    medium: Medium, direction: str, server: LiveKitServer, host: str, loop: Any, count: int
) -> dict[str, Any]:
    import anyio
    from livekit import rtc

    from lkproto.transports import anyio as lk

    name = f"{medium.prefix}-{direction.replace('->', '-')}-{time.monotonic_ns()}"
    sender_sdk, receiver_sdk = direction.split("->")
    marks = medium.marks()
    keep: set[asyncio.Future[None]] = set()
    lk_room = lk.Room() if "lkproto" in direction else None
    official: dict[str, rtc.Room] = {}
    lk_tracks: list[Any] = []
    got = anyio.Event()

    def lk_subscribed(track: Any, *_: object) -> None:
        lk_tracks.append(track)
        got.set()

    def official_subscribed(track: rtc.Track, *_: object) -> None:
        async def read() -> None:
            async for event in medium.official_stream(track):
                marks.frame(event.frame)

        keep.add(asyncio.ensure_future(read()))

    async def join_official(role: str) -> None:
        r = official[role] = rtc.Room()
        if role == "rx":
            r.on("track_subscribed", official_subscribed)
        await r.connect(server.url, mint_token(role, name), rtc.RoomOptions())

    if lk_room is not None:
        lk_room.on("track_subscribed", lk_subscribed)
        options = lk.RoomOptions(rtc_config=lk.RtcConfiguration(host_addresses=[host]))
        await lk_room.connect(server.url, mint_token("lk", name), options)
    if receiver_sdk == "official":
        await loop.run(lambda: join_official("rx"))
    if sender_sdk == "official":
        await loop.run(lambda: join_official("tx"))

    async def lk_read() -> None:
        with anyio.fail_after(20):
            await got.wait()
        async for event in medium.lk_stream(lk_tracks[0]):
            marks.frame(event.frame)

    async with anyio.create_task_group() as tg:
        if receiver_sdk == "lkproto":
            tg.start_soon(lk_read)  # subscribes while the sender warms up
        if sender_sdk == "lkproto":
            await medium.lk_send(lk_room, marks, count)
        else:
            await loop.run(lambda: medium.official_send(official["tx"], marks, count), timeout=120)
        await anyio.sleep(0.5)
        tg.cancel_scope.cancel()
    if lk_room is not None:
        await lk_room.disconnect()
    for r in official.values():
        await loop.run(r.disconnect)
    await loop.run(lambda: _cancel(keep))
    return marks.result()


async def _cancel(tasks: set[asyncio.Future[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def latency(medium: Medium, server: LiveKitServer, host: str, count: int) -> dict[str, Any]:
    """`count` marks in each of the three directions, one after the other."""
    from harness.official import OfficialLoop

    loop = OfficialLoop()
    results = {}
    for direction in DIRECTIONS:
        results[direction] = await _direction(medium, direction, server, host, loop, count)
    loop.close()
    return results


def latency_lines(title: str, latency: dict[str, Any], names: tuple[str, str]) -> list[str]:
    """The latency table: marks received of sent, median and 90th percentile per direction."""
    sent, got = names
    header = f"| direction | {sent} {got} | median ms | p90 ms |"
    lines = [title, "", header, "|---|---:|---:|---:|"]
    for direction, r in latency.items():
        med = "-" if r["median_ms"] is None else f"{r['median_ms']:.0f}"
        p90 = "-" if r["p90_ms"] is None else f"{r['p90_ms']:.0f}"
        lines.append(f"| {direction} | {r[got]}/{r[sent]} | {med} | {p90} |")
    return lines


# -- CPU: the child and its parent --------------------------------------------------------------


def child_parser(sub: Any) -> argparse.ArgumentParser:
    """The `child` subcommand with the arguments every child takes."""
    kid: argparse.ArgumentParser = sub.add_parser("child")
    kid.add_argument("--sdk", choices=("lkproto", "official"), required=True)
    kid.add_argument("--role", choices=("pub", "sub"), required=True)
    kid.add_argument("--url", required=True)
    kid.add_argument("--host", required=True)
    kid.add_argument("--token", required=True)
    kid.add_argument("--seconds", type=float, required=True)
    return kid


def child_argv(
    script: str, sdk: str, role: str, url: str, host: str, token: str, seconds: float
) -> list[str]:
    import sys

    argv = [sys.executable, script, "child", "--sdk", sdk, "--role", role]
    argv += ["--url", url, "--host", host, "--token", token, "--seconds", str(seconds)]
    return argv


async def window(
    sleep: Callable[[float], Awaitable[None]], seconds: float, measuring: list[bool]
) -> tuple[float, float]:
    """Warm up, tell the parent (`measuring`), and measure: (CPU share of one core, wall
    seconds) over `seconds`, with `measuring[0]` true meanwhile."""
    await sleep(WARMUP)
    print("measuring", flush=True)
    measuring[0] = True
    cpu0, wall0 = cpu(), time.perf_counter()
    await sleep(seconds)
    used, wall = cpu() - cpu0, time.perf_counter() - wall0
    measuring[0] = False
    return used / wall, wall


def child(
    args: argparse.Namespace,
    lk_main: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
    official_main: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
) -> None:
    """Run the child for `args.sdk` (lkproto on anyio, official on asyncio) and print its result."""
    if args.sdk == "lkproto":
        import anyio

        result = anyio.run(lk_main, args)
    else:
        result = asyncio.run(official_main(args))
    print("result " + json.dumps(result), flush=True)
    import faulthandler

    faulthandler.dump_traceback_later(20, exit=True)  # a child that cannot exit: say where


def child_lines(argv: list[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Start the child and yield ("measuring", None) when its window opens, then ("result",
    what it measured); waits for it to exit."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # the caller's thread only waits; the official SDK has its own
        if line.startswith("measuring"):
            yield "measuring", None
        elif line.startswith("result "):
            yield "result", json.loads(line.removeprefix("result "))
    proc.wait(60)
