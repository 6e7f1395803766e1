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
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _mediabench as mb
from _mediabench import Marks, Medium

from harness import LiveKitServer, mint_token

CLICK_RMS = 3000.0
RATE = 48000


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


def _clicks() -> Marks:
    """One direction's clicks: a click is heard in the first frame louder than RMS 3000."""
    return Marks(lambda frame: _rms(bytes(frame.data)) > CLICK_RMS, ("clicks", "heard"))


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


async def _official_send(room: Any, clicks: Marks, count: int) -> None:
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


async def _lk_send(room: Any, clicks: Marks, count: int) -> None:
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


def _lk_stream(track: Any) -> Any:
    from lkproto.transports import anyio as lk

    return lk.AudioStream(track, sample_rate=RATE, num_channels=1)


def _official_stream(track: Any) -> Any:
    from livekit import rtc

    return rtc.AudioStream(track, sample_rate=RATE, num_channels=1)


MEDIUM = Medium("latency", _clicks, _lk_send, _official_send, _lk_stream, _official_stream)


async def _latency(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    return await mb.latency(MEDIUM, server, host, args.clicks)


# -- 2. CPU and capacity: the child ---------------------------------------------------------------


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

    share, _ = await mb.window(anyio.sleep, args.seconds, measuring)
    scope.cancel()
    with anyio.CancelScope(shield=True):
        await room.disconnect()
    # A subscriber's share of loud 20 ms (lkproto) or 10 ms (official) frames per track.
    expected = args.seconds * (50 if args.sdk == "lkproto" else 100)
    shares = [min(1.0, n / expected) for n in loud.values()] if args.role == "sub" else []
    return {"cpu": share, "loud": shares}


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
    share, _ = await mb.window(asyncio.sleep, args.seconds, measuring)
    for task in tasks:
        task.cancel()
    await room.disconnect()
    expected = args.seconds * 100
    shares = [min(1.0, n / expected) for n in loud.values()] if args.role == "sub" else []
    return {"cpu": share, "loud": shares}


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
    token = mint_token("child", name)
    argv = mb.child_argv(__file__, sdk, role, server.url, host, token, args.seconds)
    argv += ["--tracks", str(n)]
    result: dict[str, Any] = {}
    started = time.perf_counter()
    for kind, measured in mb.child_lines(argv):
        if kind == "measuring":
            await anyio.sleep(0.2)
            for capture in captures.values():
                capture.clear()
            started = time.perf_counter()
        else:
            window = time.perf_counter() - started
            result = measured or {}
            if role == "pub":
                result["loud"] = [min(1.0, c.loud_seconds() / window) for c in captures.values()]
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
    title = "## Audio latency (mouth to ear of a click)"
    lines = mb.latency_lines(title, latency, ("clicks", "heard"))
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
        cells = [mb.pct(a.get("cpu")), mb.pct(b.get("cpu"))]
        cells += [mb.pct(a.get("min_loud")), mb.pct(b.get("min_loud"))]
        lines.append(f"| {role} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode")
    mb.child_parser(sub).add_argument("--tracks", type=int, required=True)
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--tracks", default="1,4,8,16")
    parser.add_argument("--skip", choices=("latency", "capacity"), action="append", default=[])
    parser.add_argument("--roles", default="pub,sub", help="capacity rows to measure")
    parser.add_argument("--sdks", default="lkproto,official", help="capacity SDKs to measure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.mode == "child":
        mb.child(args, _child_lk, _child_official)
        return
    import anyio

    def run(server: LiveKitServer, host: str) -> tuple[dict[str, Any], dict[str, Any]]:
        skip = args.skip
        latency = {} if "latency" in skip else anyio.run(_latency, args, server, host)
        capacity = {"rows": []} if "capacity" in skip else anyio.run(_capacity, args, server, host)
        return latency, capacity

    latency, capacity = mb.on_server(run)
    print(
        json.dumps({"latency": latency, "capacity": capacity})
        if args.json
        else render(latency, capacity)
    )


if __name__ == "__main__":
    main()
