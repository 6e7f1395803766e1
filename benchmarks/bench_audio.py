"""Audio: lkproto (anyio Room, aiortc) vs the official SDK, side by side in one run.

1. Mouth-to-ear latency of a click: the sender feeds silence into its `AudioSource` in real
   time (one frame per frame period, so its queue holds at most one frame), then a loud
   20 ms burst; the receiver's `AudioStream` yields frames and the first one louder than
   RMS 3000 ends the measure. Both ends live in this process and share `time.perf_counter`.
   lkproto->official, official->lkproto, official->official; --clicks per direction, one a
   second; median and 90th percentile.
2. CPU per track and how many tracks one process sustains: a child process (`child`) joins
   with one SDK and publishes N tones (one per track, each fed in real time) or subscribes
   to N; it reports its own CPU time (getrusage: every thread, so the official SDK's Rust
   threads count) over --seconds after a 3 s warm-up, minus nothing (the idle cost of a
   connected room is its own row, N = 0). The other side is the official SDK in this
   process: it publishes the N tones for a subscribing child, or reads every track of a
   publishing child and measures, per track, the share of the window that was loud: a
   track is sustained if that share is at least 97 % (a tone that underruns, stalls or
   bursts loses loud time at the receiver).

Confinement: as root the process (and its children) moves into a private network
namespace (`confine()`), else everything binds 127.0.0.1. The machine is shared: CPU shares
are upper bounds and only the ratios between the two SDKs, measured in one run, travel.

Run: .venv/bin/python benchmarks/bench_audio.py [--clicks 10] [--seconds 8] [--tracks 1,4,8,16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import LiveKitServer, confine, mint_token
from harness.netns import release

CLICK_RMS = 3000.0
RATE = 48000
WARMUP = 3.0


def _rms(data: bytes) -> float:
    import numpy as np

    samples = np.frombuffer(data, dtype=np.int16).astype(np.float64)
    return float(np.sqrt((samples**2).mean())) if len(samples) else 0.0


def _tone(freq: float, samples: int, start: int) -> bytes:
    import numpy as np

    t = (np.arange(samples) + start) / RATE
    return (0.5 * 32767 * np.sin(2 * math.pi * freq * t)).astype(np.int16).tobytes()


def _click(samples: int) -> bytes:
    return _tone(1000, samples, 0)


# -- 1. latency ---------------------------------------------------------------------------------


class _Clicks:
    """One direction's clicks: when each was captured, and when its frame was heard."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.heard: dict[int, float] = {}
        self.armed: int | None = None  # the click in flight

    def capture(self, index: int) -> None:
        self.sent[index] = time.perf_counter()
        self.armed = index

    def frame(self, data: bytes) -> None:
        if self.armed is not None and _rms(data) > CLICK_RMS:
            self.heard[self.armed] = time.perf_counter()
            self.armed = None

    def result(self) -> dict[str, Any]:
        delays = sorted((self.heard[i] - t) * 1000 for i, t in self.sent.items() if i in self.heard)
        return {
            "clicks": len(self.sent),
            "heard": len(delays),
            "median_ms": statistics.median(delays) if delays else None,
            "p90_ms": delays[int(0.9 * (len(delays) - 1))] if delays else None,
        }


def _frames(clicks: int, frame_ms: int) -> list[tuple[int | None, bytes]]:
    """Silence, and a click half-way through each second after 3 s of warm-up: (click index
    or None, PCM) per frame, one frame per `frame_ms`."""
    step = RATE * frame_ms // 1000
    per_second = 1000 // frame_ms
    out: list[tuple[int | None, bytes]] = []
    for second in range(clicks + 3):
        for i in range(per_second):
            index = second - 3 if i == per_second // 2 and second >= 3 else None
            out.append((index, _click(step) if index is not None else bytes(step * 2)))
    return out


async def _official_send(room: Any, clicks: _Clicks, count: int) -> None:
    from livekit import rtc

    source = rtc.AudioSource(RATE, 1, queue_size_ms=20)
    track = rtc.LocalAudioTrack.create_audio_track("click", source)
    await room.local_participant.publish_track(track)
    start = time.perf_counter()
    for n, (index, data) in enumerate(_frames(count, 10)):  # 10 ms frames, in real time
        await asyncio.sleep(max(0.0, start + n * 0.01 - time.perf_counter()))
        if index is not None:
            clicks.capture(index)
        await source.capture_frame(rtc.AudioFrame(data, RATE, 1, len(data) // 2))


async def _lk_send(room: Any, clicks: _Clicks, count: int) -> None:
    import anyio

    from lkproto.transports import anyio as lk

    source = lk.AudioSource(RATE, 1, queue_size_ms=20)
    track = lk.LocalAudioTrack.create_audio_track("click", source)
    await room.local_participant.publish_track(track)
    start = time.perf_counter()
    for n, (index, data) in enumerate(_frames(count, 20)):  # 20 ms frames, in real time
        await anyio.sleep(max(0.0, start + n * 0.02 - time.perf_counter()))
        if index is not None:
            clicks.capture(index)
        await source.capture_frame(lk.AudioFrame(data, RATE, 1, len(data) // 2))


def _official_listen(room: Any, clicks: _Clicks, keep: set[asyncio.Future[None]]) -> None:
    from livekit import rtc

    def subscribed(track: rtc.Track, *_: object) -> None:
        async def read() -> None:
            async for event in rtc.AudioStream(track, sample_rate=RATE, num_channels=1):
                clicks.frame(bytes(event.frame.data))

        task = asyncio.ensure_future(read())
        keep.add(task)

    room.on("track_subscribed", subscribed)


async def _direction(
    direction: str, server: LiveKitServer, host: str, loop: Any, count: int
) -> dict[str, Any]:
    import anyio
    import anyio.to_thread
    from livekit import rtc

    from lkproto.transports import anyio as lk

    name = f"latency-{direction.replace('->', '-')}-{time.monotonic_ns()}"
    sender_sdk, receiver_sdk = direction.split("->")
    clicks = _Clicks()
    keep: set[asyncio.Future[None]] = set()
    lk_room = lk.Room() if "lkproto" in direction else None
    official: dict[str, rtc.Room] = {}
    lk_tracks: list[Any] = []
    got = anyio.Event()

    def lk_subscribed(track: Any, *_: object) -> None:
        lk_tracks.append(track)
        got.set()

    async def join_official(role: str) -> None:
        r = official[role] = rtc.Room()
        if role == "rx":
            _official_listen(r, clicks, keep)
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
        async for event in lk.AudioStream(lk_tracks[0], sample_rate=RATE, num_channels=1):
            clicks.frame(bytes(event.frame.data))

    async with anyio.create_task_group() as tg:
        if receiver_sdk == "lkproto":
            tg.start_soon(lk_read)  # subscribes while the sender warms up (3 s of silence)
        if sender_sdk == "lkproto":
            await _lk_send(lk_room, clicks, count)
        else:
            await loop.run(lambda: _official_send(official["tx"], clicks, count), timeout=120)
        await anyio.sleep(0.5)
        tg.cancel_scope.cancel()
    if lk_room is not None:
        await lk_room.disconnect()
    for r in official.values():
        await loop.run(r.disconnect)
    return clicks.result()


async def _latency(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    from harness.official import OfficialLoop

    loop = OfficialLoop()
    results = {}
    for direction in ("lkproto->official", "official->lkproto", "official->official"):
        results[direction] = await _direction(direction, server, host, loop, args.clicks)
    loop.close()
    return results


# -- 2. CPU and capacity: the child ---------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _child_lk(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from lkproto.transports import anyio as lk

    room = lk.Room()
    options = lk.RoomOptions(rtc_config=lk.RtcConfiguration(host_addresses=[args.host]))
    seen: list[Any] = []
    changed = anyio.Event()

    def subscribed(track: Any, *_: object) -> None:
        nonlocal changed
        seen.append(track)
        changed.set()

    room.on("track_subscribed", subscribed)  # before connecting: a late joiner subscribes at once
    await room.connect(args.url, args.token, options)
    loud: dict[str, int] = {}
    frames: dict[str, int] = {}
    measuring = [False]
    async with anyio.create_task_group() as tg:
        if args.role == "pub":
            for i in range(args.tracks):
                source = lk.AudioSource(RATE, 1, queue_size_ms=100)
                track = lk.LocalAudioTrack.create_audio_track(f"t{i}", source)
                await room.local_participant.publish_track(track)

                async def feed(source: Any = source, freq: float = 300 + 40 * i) -> None:
                    step, n, start = RATE // 50, 0, anyio.current_time()
                    while True:
                        await anyio.sleep(max(0.0, start + n * 0.02 - anyio.current_time()))
                        chunk = _tone(freq, step, n * step)
                        await source.capture_frame(lk.AudioFrame(chunk, RATE, 1, step))
                        n += 1

                tg.start_soon(feed)
        else:
            with anyio.fail_after(30):
                while len(seen) < args.tracks:
                    await changed.wait()
                    changed = anyio.Event()
            for track in seen:

                async def read(track: Any = track) -> None:
                    async for event in lk.AudioStream(track, sample_rate=RATE):
                        if measuring[0]:
                            frames[track.sid] = frames.get(track.sid, 0) + 1
                            if _rms(event.frame.pcm()) > 1000:
                                loud[track.sid] = loud.get(track.sid, 0) + 1

                tg.start_soon(read)
        return await _measure(args, measuring, loud, frames, tg.cancel_scope, room)


async def _measure(
    args: argparse.Namespace,
    measuring: list[bool],
    loud: dict[str, int],
    frames: dict[str, int],
    scope: Any,
    room: Any,
) -> dict[str, Any]:
    import anyio

    await anyio.sleep(WARMUP)
    print("measuring", flush=True)
    measuring[0] = True
    cpu0, wall0 = _cpu(), time.perf_counter()
    await anyio.sleep(args.seconds)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    measuring[0] = False
    scope.cancel()
    with anyio.CancelScope(shield=True):
        await room.disconnect()
    # A subscriber's share of loud 20 ms (lkproto) or 10 ms (official) frames per track.
    expected = args.seconds * (50 if args.sdk == "lkproto" else 100)
    shares = [min(1.0, n / expected) for n in loud.values()] if args.role == "sub" else []
    return {"cpu": cpu / wall, "loud": shares}


async def _child_official(args: argparse.Namespace) -> dict[str, Any]:
    from livekit import rtc

    room = rtc.Room()
    await room.connect(args.url, args.token, rtc.RoomOptions(auto_subscribe=args.role == "sub"))
    loud: dict[str, int] = {}
    measuring = [False]
    tasks: list[asyncio.Task[None]] = []
    if args.role == "pub":
        for i in range(args.tracks):
            source = rtc.AudioSource(RATE, 1, queue_size_ms=100)
            track = rtc.LocalAudioTrack.create_audio_track(f"t{i}", source)
            await room.local_participant.publish_track(track)

            async def feed(source: rtc.AudioSource = source, freq: float = 300 + 40 * i) -> None:
                step, n, start = RATE // 100, 0, time.perf_counter()
                while True:
                    await asyncio.sleep(max(0.0, start + n * 0.01 - time.perf_counter()))
                    chunk = _tone(freq, step, n * step)
                    await source.capture_frame(rtc.AudioFrame(chunk, RATE, 1, step))
                    n += 1

            tasks.append(asyncio.ensure_future(feed()))
    else:
        seen: list[rtc.Track] = []
        ready = asyncio.Event()

        def subscribed(track: rtc.Track, *_: object) -> None:
            seen.append(track)
            if len(seen) >= args.tracks:
                ready.set()

        room.on("track_subscribed", subscribed)
        await asyncio.wait_for(ready.wait(), 30)
        for track in seen:

            async def read(track: rtc.Track = track) -> None:
                async for event in rtc.AudioStream(track, sample_rate=RATE, num_channels=1):
                    if measuring[0] and _rms(bytes(event.frame.data)) > 1000:
                        loud[track.sid] = loud.get(track.sid, 0) + 1

            tasks.append(asyncio.ensure_future(read()))
    await asyncio.sleep(WARMUP)
    print("measuring", flush=True)
    measuring[0] = True
    cpu0, wall0 = _cpu(), time.perf_counter()
    await asyncio.sleep(args.seconds)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    measuring[0] = False
    for task in tasks:
        task.cancel()
    await room.disconnect()
    expected = args.seconds * 100
    shares = [min(1.0, n / expected) for n in loud.values()] if args.role == "sub" else []
    return {"cpu": cpu / wall, "loud": shares}


def child(args: argparse.Namespace) -> None:
    if args.sdk == "lkproto":
        import anyio

        result = anyio.run(_child_lk, args)
    else:
        result = asyncio.run(_child_official(args))
    print("result " + json.dumps(result), flush=True)
    import faulthandler

    faulthandler.dump_traceback_later(20, exit=True)  # a child that cannot exit: say where


# -- 2. CPU and capacity: the parent ------------------------------------------------------------


async def _other_side(
    server: LiveKitServer, name: str, role: str, n: int, captures: dict[str, Any], keep: set[Any]
) -> Any:
    """The official participant in this process: it reads a publishing child's tracks into
    `captures`, or publishes `n` tones for a subscribing child."""
    from livekit import rtc

    from harness.audio import Capture, official_publish

    room = rtc.Room()

    def subscribed(track: rtc.Track, pub: rtc.RemoteTrackPublication, *_: object) -> None:
        capture = captures.setdefault(pub.sid, Capture())

        async def read() -> None:
            async for event in rtc.AudioStream(track, sample_rate=RATE, num_channels=1):
                capture.add(bytes(event.frame.data), RATE, 1)

        keep.add(asyncio.ensure_future(read()))

    room.on("track_subscribed", subscribed)
    options = rtc.RoomOptions(auto_subscribe=role == "pub")
    await room.connect(server.url, mint_token("other", name), options)
    if role == "sub":
        for i in range(n):
            await official_publish(room, 300 + 40 * i, 120.0, name=f"t{i}")
    return room


async def _one_run(
    args: argparse.Namespace, server: LiveKitServer, host: str, loop: Any, run: tuple[str, int, str]
) -> dict[str, Any]:
    import anyio

    role, n, sdk = run
    name = f"cpu-{role}-{sdk}-{n}-{time.monotonic_ns()}"
    captures: dict[str, Any] = {}
    keep: set[Any] = set()
    room = await loop.run(lambda: _other_side(server, name, role, n, captures, keep))
    argv = [sys.executable, __file__, "child", "--sdk", sdk, "--role", role, "--tracks", str(n)]
    argv += ["--url", server.url, "--host", host, "--token", mint_token("child", name)]
    argv += ["--seconds", str(args.seconds)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    result: dict[str, Any] = {}
    started = time.perf_counter()
    for line in proc.stdout:  # this loop's thread only waits; the official SDK has its own
        if line.startswith("measuring"):
            await anyio.sleep(0.2)
            for capture in captures.values():
                capture.clear()
            started = time.perf_counter()
        elif line.startswith("result "):
            window = time.perf_counter() - started
            result = json.loads(line.removeprefix("result "))
            if role == "pub":
                result["loud"] = [min(1.0, c.loud_seconds() / window) for c in captures.values()]
    proc.wait(60)
    await loop.run(room.disconnect)
    loud = result.get("loud") or []
    row = {"role": role, "sdk": sdk, "tracks": n, "cpu": result.get("cpu")}
    row.update(min_loud=min(loud) if loud else None, heard=len(loud))
    print(f"# {row}", file=sys.stderr, flush=True)
    return row


async def _capacity(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    from harness.official import OfficialLoop

    loop = OfficialLoop()
    counts = [int(n) for n in args.tracks.split(",")]
    rows: list[dict[str, Any]] = []
    for role in args.roles.split(","):
        for n in [0, *counts] if role == "pub" else counts[:3]:
            for sdk in args.sdks.split(","):
                rows.append(await _one_run(args, server, host, loop, (role, n, sdk)))
    loop.close()
    return {"rows": rows}


def render(latency: dict[str, Any], capacity: dict[str, Any]) -> str:
    lines = [
        "## Audio latency (mouth to ear of a click)",
        "",
        "| direction | clicks heard | median ms | p90 ms |",
        "|---|---:|---:|---:|",
    ]
    for direction, r in latency.items():
        med = "-" if r["median_ms"] is None else f"{r['median_ms']:.0f}"
        p90 = "-" if r["p90_ms"] is None else f"{r['p90_ms']:.0f}"
        lines.append(f"| {direction} | {r['heard']}/{r['clicks']} | {med} | {p90} |")
    lines += [
        "",
        "## CPU and capacity",
        "",
        "| role | tracks | lkproto CPU | official CPU | lkproto min loud | official min loud |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by = {(r["role"], r["tracks"], r["sdk"]): r for r in capacity["rows"]}
    for role, n in sorted({(r["role"], r["tracks"]) for r in capacity["rows"]}):
        a, b = by.get((role, n, "lkproto"), {}), by.get((role, n, "official"), {})
        cells = [_pct(a.get("cpu")), _pct(b.get("cpu"))]
        cells += [_pct(a.get("min_loud")), _pct(b.get("min_loud"))]
        lines.append(f"| {role} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode")
    kid = sub.add_parser("child")
    kid.add_argument("--sdk", choices=("lkproto", "official"), required=True)
    kid.add_argument("--role", choices=("pub", "sub"), required=True)
    kid.add_argument("--tracks", type=int, required=True)
    kid.add_argument("--url", required=True)
    kid.add_argument("--host", required=True)
    kid.add_argument("--token", required=True)
    kid.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--tracks", default="1,4,8,16")
    parser.add_argument("--skip", choices=("latency", "capacity"), action="append", default=[])
    parser.add_argument("--roles", default="pub,sub", help="capacity rows to measure")
    parser.add_argument("--sdks", default="lkproto,official", help="capacity SDKs to measure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.mode == "child":
        child(args)
        return
    import anyio

    confinement = confine()
    try:
        with LiveKitServer(confinement) as server:
            latency = (
                {}
                if "latency" in args.skip
                else anyio.run(_latency, args, server, confinement.host)
            )
            capacity = (
                {"rows": []}
                if "capacity" in args.skip
                else anyio.run(_capacity, args, server, confinement.host)
            )
    finally:
        release(confinement)
    print(
        json.dumps({"latency": latency, "capacity": capacity})
        if args.json
        else render(latency, capacity)
    )


if __name__ == "__main__":
    main()
