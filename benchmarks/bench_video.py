"""Video: lkproto (anyio Room, aiortc) vs the official SDK, side by side in one run (issue 23).

1. Glass-to-glass latency: the sender captures black 640x360 frames at 15 fps and, once a
   second after a 3 s warm-up, switches to white; the receiver's `VideoStream` (RGBA) yields
   frames and the first one whose centre is bright ends the measure. Both ends live in this
   process and share `time.perf_counter`. lkproto->official, official->lkproto,
   official->official; --flashes per direction; median and 90th percentile.
2. CPU per track: a child process (`child`) joins with one SDK and publishes one track
   (pre-made frames of a moving gradient with noise, so the encoder has real work and the
   child does not spend its time drawing), or subscribes to one and converts every frame to
   RGBA. It reports its own CPU time (getrusage: every thread, so the official SDK's Rust
   threads count) over --seconds after a 3 s warm-up. The other side is the official SDK in
   this process: it reads a publishing child's track, or publishes for a subscribing child;
   the receiver's frame rate is reported beside the CPU. Sizes: 640x360 at 15 fps and
   1280x720 at 30 fps (--sizes). The official SDK publishes simulcast (its default), lkproto
   one layer: the official publisher encodes more.

Confinement: as root the process (and its children) moves into a private network
namespace (`confine()`), else everything binds 127.0.0.1. The machine is shared: CPU shares
are upper bounds and only the ratios between the two SDKs, measured in one run, travel.

Run: .venv/bin/python benchmarks/bench_video.py [--flashes 10] [--seconds 8]
     [--sizes 640x360@15,1280x720@30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _mediabench as mb
from _mediabench import Marks, Medium

from harness import LiveKitServer, mint_token

BRIGHT = 128


def _pictures(width: int, height: int, count: int = 30) -> list[bytes]:
    """RGBA frames of a gradient that moves, with noise: what a camera gives an encoder."""
    import numpy as np

    rng = np.random.default_rng(1)
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    out = []
    for n in range(count):
        picture = np.empty((height, width, 4), np.uint8)
        picture[:, :, 0] = (x + 8 * n) % 256
        picture[:, :, 1] = (y + 4 * n) % 256
        picture[:, :, 2] = ((x + y) // 2 + 6 * n) % 256
        picture[:, :, :3] += rng.integers(0, 24, (height, width, 3), dtype=np.uint8)
        picture[:, :, 3] = 255
        out.append(picture.tobytes())
    return out


def _solid(width: int, height: int, value: int) -> bytes:
    return bytes([value, value, value, 255]) * (width * height)


def _centre_bright(frame: Any) -> bool:
    w, h = frame.width, frame.height
    at = ((h // 2) * w + w // 2) * 4
    return bytes(frame.data)[at] > BRIGHT


# -- 1. latency ---------------------------------------------------------------------------------


def _flashes() -> Marks:
    """One direction's flashes: a flash is seen in the first frame whose centre is bright."""
    return Marks(_centre_bright, ("flashes", "seen"))


def _schedule(flashes: int, fps: int = 15) -> list[int | None]:
    """Per frame: the flash index it starts (white from there for 5 frames), or None."""
    out: list[int | None] = []
    for second in range(flashes + 3):
        out += [second - 3 if i == 0 and second >= 3 else None for i in range(fps)]
    return out


def _is_white(schedule: list[int | None], n: int) -> bool:
    return any(schedule[k] is not None for k in range(max(0, n - 4), n + 1))


async def _official_send(room: Any, flashes: Marks, count: int) -> None:
    from livekit import rtc

    source = rtc.VideoSource(640, 360)
    track = rtc.LocalVideoTrack.create_video_track("flash", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    await room.local_participant.publish_track(track, options)
    white, black = _solid(640, 360, 255), _solid(640, 360, 0)
    schedule = _schedule(count)
    start = time.perf_counter()
    for n, index in enumerate(schedule):
        await asyncio.sleep(max(0.0, start + n / 15 - time.perf_counter()))
        if index is not None:
            flashes.capture(index)
        data = white if _is_white(schedule, n) else black
        source.capture_frame(rtc.VideoFrame(640, 360, rtc.VideoBufferType.RGBA, data))


async def _lk_send(room: Any, flashes: Marks, count: int) -> None:
    import anyio

    from lkproto.transports import anyio as lk

    source = lk.VideoSource(640, 360)
    track = lk.LocalVideoTrack.create_video_track("flash", source)
    await room.local_participant.publish_track(track)
    white, black = _solid(640, 360, 255), _solid(640, 360, 0)
    schedule = _schedule(count)
    start = time.perf_counter()
    for n, index in enumerate(schedule):
        await anyio.sleep(max(0.0, start + n / 15 - time.perf_counter()))
        if index is not None:
            flashes.capture(index)
        data = white if _is_white(schedule, n) else black
        source.capture_frame(lk.VideoFrame(640, 360, lk.VideoBufferType.RGBA, data))


def _lk_stream(track: Any) -> Any:
    from lkproto.transports import anyio as lk

    return lk.VideoStream(track, format=lk.VideoBufferType.RGBA)


def _official_stream(track: Any) -> Any:
    from livekit import rtc

    return rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA)


MEDIUM = Medium("glass", _flashes, _lk_send, _official_send, _lk_stream, _official_stream)


async def _latency(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    return await mb.latency(MEDIUM, server, host, args.flashes)


# -- 2. CPU: the child ----------------------------------------------------------------------------


async def _child_lk(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from lkproto.transports import anyio as lk

    room = lk.Room()
    options = lk.RoomOptions(rtc_config=lk.RtcConfiguration(host_addresses=[args.host]))
    seen: list[Any] = []
    got = anyio.Event()

    def subscribed(track: Any, *_: object) -> None:
        seen.append(track)
        got.set()

    room.on("track_subscribed", subscribed)
    await room.connect(args.url, args.token, options)
    frames = [0]
    measuring = [False]
    async with anyio.create_task_group() as tg:
        if args.role == "pub":
            source = lk.VideoSource(args.width, args.height)
            track = lk.LocalVideoTrack.create_video_track("cam", source)
            await room.local_participant.publish_track(track)
            pictures = [
                lk.VideoFrame(args.width, args.height, lk.VideoBufferType.RGBA, p)
                for p in _pictures(args.width, args.height)
            ]

            async def feed() -> None:
                n, start = 0, anyio.current_time()
                while True:
                    await anyio.sleep(max(0.0, start + n / args.fps - anyio.current_time()))
                    source.capture_frame(pictures[n % len(pictures)])
                    n += 1

            tg.start_soon(feed)
        else:
            with anyio.fail_after(30):
                await got.wait()

            async def read() -> None:
                stream = lk.VideoStream(seen[0], format=lk.VideoBufferType.RGBA)
                async for _ in stream:
                    if measuring[0]:
                        frames[0] += 1

            tg.start_soon(read)
        share, wall = await mb.window(anyio.sleep, args.seconds, measuring)
        tg.cancel_scope.cancel()
    with anyio.CancelScope(shield=True):
        await room.disconnect()
    return {"cpu": share, "fps": frames[0] / wall if args.role == "sub" else None}


async def _child_official(args: argparse.Namespace) -> dict[str, Any]:
    from livekit import rtc

    room = rtc.Room()
    await room.connect(args.url, args.token, rtc.RoomOptions(auto_subscribe=args.role == "sub"))
    frames = [0]
    measuring = [False]
    tasks: list[asyncio.Future[None]] = []
    if args.role == "pub":
        source = rtc.VideoSource(args.width, args.height)
        track = rtc.LocalVideoTrack.create_video_track("cam", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        await room.local_participant.publish_track(track, options)
        pictures = [
            rtc.VideoFrame(args.width, args.height, rtc.VideoBufferType.RGBA, p)
            for p in _pictures(args.width, args.height)
        ]

        async def feed() -> None:
            n, start = 0, time.perf_counter()
            while True:
                await asyncio.sleep(max(0.0, start + n / args.fps - time.perf_counter()))
                source.capture_frame(pictures[n % len(pictures)])
                n += 1

        tasks.append(asyncio.ensure_future(feed()))
    else:
        ready: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()

        def subscribed(track: rtc.Track, *_: object) -> None:
            if not ready.done():
                ready.set_result(track)

        room.on("track_subscribed", subscribed)
        subscribed_track = await asyncio.wait_for(ready, 30)

        async def read() -> None:
            stream = rtc.VideoStream(subscribed_track, format=rtc.VideoBufferType.RGBA)
            async for _ in stream:
                if measuring[0]:
                    frames[0] += 1

        tasks.append(asyncio.ensure_future(read()))
    share, wall = await mb.window(asyncio.sleep, args.seconds, measuring)
    for task in tasks:
        task.cancel()
    await room.disconnect()
    return {"cpu": share, "fps": frames[0] / wall if args.role == "sub" else None}


# -- 2. CPU: the parent ------------------------------------------------------------------------


async def _other_side(
    server: LiveKitServer, name: str, role: str, size: tuple[int, int, int], counter: list[Any]
) -> Any:
    """The official participant in this process: it reads a publishing child's track and
    counts frames while `counter[1]` is true, or publishes for a subscribing child."""
    from livekit import rtc

    width, height, fps = size
    room = rtc.Room()

    def subscribed(track: rtc.Track, *_: object) -> None:
        async def read() -> None:
            async for _ in rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA):
                if counter[1]:
                    counter[0] += 1

        counter.append(asyncio.ensure_future(read()))

    room.on("track_subscribed", subscribed)
    await room.connect(server.url, mint_token("other", name), rtc.RoomOptions())
    if role == "sub":
        source = rtc.VideoSource(width, height)
        track = rtc.LocalVideoTrack.create_video_track("cam", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        await room.local_participant.publish_track(track, options)
        pictures = [
            rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, p)
            for p in _pictures(width, height)
        ]

        async def feed() -> None:
            n, start = 0, time.perf_counter()
            while True:
                await asyncio.sleep(max(0.0, start + n / fps - time.perf_counter()))
                source.capture_frame(pictures[n % len(pictures)])
                n += 1

        counter.append(asyncio.ensure_future(feed()))
    return room


async def _one_run(
    args: argparse.Namespace,
    server: LiveKitServer,
    host: str,
    loop: Any,
    run: tuple[str, tuple[int, int, int], str],
) -> dict[str, Any]:
    role, size, sdk = run
    width, height, fps = size
    name = f"vcpu-{role}-{sdk}-{width}-{time.monotonic_ns()}"
    counter: list[Any] = [0, False]
    room = await loop.run(lambda: _other_side(server, name, role, size, counter))
    token = mint_token("child", name)
    argv = mb.child_argv(__file__, sdk, role, server.url, host, token, args.seconds)
    argv += ["--width", str(width), "--height", str(height), "--fps", str(fps)]
    result: dict[str, Any] = {}
    started = time.perf_counter()
    for kind, measured in mb.child_lines(argv):
        if kind == "measuring":
            counter[0], counter[1] = 0, True
            started = time.perf_counter()
        else:
            counter[1] = False
            result = measured or {}
            if role == "pub":
                result["fps"] = counter[0] / (time.perf_counter() - started)
    for task in counter[2:]:
        task.cancel()
    await loop.run(room.disconnect)
    row: dict[str, Any] = {"role": role, "size": f"{width}x{height}@{fps}", "sdk": sdk}
    row.update(cpu=result.get("cpu"), fps=result.get("fps"))
    print(f"# {row}", file=sys.stderr, flush=True)
    return row


async def _costs(args: argparse.Namespace, server: LiveKitServer, host: str) -> dict[str, Any]:
    from harness.official import OfficialLoop

    loop = OfficialLoop()
    rows: list[dict[str, Any]] = []
    for spec in args.sizes.split(","):
        dims, fps = spec.split("@")
        width, height = (int(v) for v in dims.split("x"))
        for role in ("pub", "sub"):
            for sdk in ("lkproto", "official"):
                size = (width, height, int(fps))
                rows.append(await _one_run(args, server, host, loop, (role, size, sdk)))
    loop.close()
    return {"rows": rows}


def render(latency: dict[str, Any], costs: dict[str, Any]) -> str:
    title = "## Video glass-to-glass latency (a black-to-white switch, 640x360 at 15 fps)"
    lines = mb.latency_lines(title, latency, ("flashes", "seen"))
    lines += [
        "",
        "## Video CPU per track (fraction of one core; fps at the receiver)",
        "",
        "| role | size | lkproto CPU | official CPU | lkproto fps | official fps |",
        "|---|---|---:|---:|---:|---:|",
    ]
    by = {(r["role"], r["size"], r["sdk"]): r for r in costs["rows"]}
    for role, size in dict.fromkeys((r["role"], r["size"]) for r in costs["rows"]):
        a, b = by.get((role, size, "lkproto"), {}), by.get((role, size, "official"), {})
        cells = [mb.pct(a.get("cpu")), mb.pct(b.get("cpu")), _num(a.get("fps")), _num(b.get("fps"))]
        lines.append(f"| {role} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode")
    kid = mb.child_parser(sub)
    kid.add_argument("--width", type=int, required=True)
    kid.add_argument("--height", type=int, required=True)
    kid.add_argument("--fps", type=int, required=True)
    parser.add_argument("--flashes", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sizes", default="640x360@15,1280x720@30")
    parser.add_argument("--skip", choices=("latency", "cpu"), action="append", default=[])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.mode == "child":
        mb.child(args, _child_lk, _child_official)
        return
    import anyio

    def run(server: LiveKitServer, host: str) -> tuple[dict[str, Any], dict[str, Any]]:
        latency = {} if "latency" in args.skip else anyio.run(_latency, args, server, host)
        costs = {"rows": []} if "cpu" in args.skip else anyio.run(_costs, args, server, host)
        return latency, costs

    latency, costs = mb.on_server(run)
    print(json.dumps({"latency": latency, "cpu": costs}) if args.json else render(latency, costs))


if __name__ == "__main__":
    main()
