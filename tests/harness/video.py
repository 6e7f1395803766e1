"""Video for the media tests: solid pictures whose colour says which second they belong to,
and the colour of a received picture's centre (proof by content, as audio's frequency)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sized
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
from livekit import rtc

#: One colour per second of a pattern: far apart in RGB, so compression cannot confuse them.
COLOURS: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40),
    (40, 200, 40),
    (40, 40, 220),
    (230, 230, 40),
    (40, 220, 220),
    (220, 40, 220),
)
TOLERANCE = 40  #: per channel, for VP8/H.264 and the RGB<->YUV round trips


def pixels(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A solid RGBA picture."""
    picture = np.empty((height, width, 4), np.uint8)
    picture[:, :, :3] = colour
    picture[:, :, 3] = 255
    return picture.tobytes()


def solid(width: int, height: int, colour: tuple[int, int, int]) -> Any:
    """lkproto's RGBA `VideoFrame` of one colour."""
    from lkproto.transports.anyio import VideoBufferType, VideoFrame

    return VideoFrame(width, height, VideoBufferType.RGBA, pixels(width, height, colour))


def centre(frame: Any) -> tuple[int, int, int]:
    """The RGB of the centre pixel of an RGBA, RGB24 or I420 frame (lkproto's or livekit's:
    both lay planes out packed, in the same order)."""
    w, h = frame.width, frame.height
    data = bytes(frame.data)
    name = getattr(frame.type, "name", None) or _official_name(frame.type)
    if name == "I420":
        y = data[(h // 2) * w + w // 2]
        cw, ch = (w + 1) // 2, (h + 1) // 2
        u = data[w * h + (h // 4) * cw + w // 4]
        v = data[w * h + cw * ch + (h // 4) * cw + w // 4]
        return _rgb(y, u, v)
    step = {"RGBA": 4, "RGB24": 3}[name]
    at = ((h // 2) * w + w // 2) * step
    r, g, b = data[at : at + 3]
    return r, g, b


def _official_name(value: int) -> str:
    from livekit import rtc

    return str(rtc.VideoBufferType.Name(value))


def _rgb(y: int, u: int, v: int) -> tuple[int, int, int]:
    """BT.601 limited range, as libyuv and swscale's defaults."""
    c, d, e = y - 16, u - 128, v - 128
    r = 1.164 * c + 1.596 * e
    g = 1.164 * c - 0.392 * d - 0.813 * e
    b = 1.164 * c + 2.017 * d
    return tuple(int(max(0, min(255, round(x)))) for x in (r, g, b))  # type: ignore[return-value]


def near(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return max(abs(a - b) for a, b in zip(colour, expected, strict=True)) <= TOLERANCE


# -- what was seen -----------------------------------------------------------------------------


class Seen:
    """Received pictures of one track, thread-safe: (width, height, centre colour) each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames: list[tuple[int, int, tuple[int, int, int]]] = []

    def add(self, frame: Any) -> None:
        entry = (frame.width, frame.height, centre(frame))
        with self._lock:
            self.frames.append(entry)

    def clear(self) -> None:
        with self._lock:
            self.frames.clear()

    def snapshot(self) -> list[tuple[int, int, tuple[int, int, int]]]:
        with self._lock:
            return list(self.frames)

    def runs(
        self, palette: tuple[tuple[int, int, int], ...] = COLOURS
    ) -> tuple[list[tuple[int, int]], int]:
        """([(colour index, frames in a row)], frames matching no colour of `palette`)."""
        runs: list[tuple[int, int]] = []
        unmatched = 0
        for _, _, colour in self.snapshot():
            index = next((i for i, c in enumerate(palette) if near(colour, c)), None)
            if index is None:
                unmatched += 1
            elif runs and runs[-1][0] == index:
                runs[-1] = (index, runs[-1][1] + 1)
            else:
                runs.append((index, 1))
        return runs, unmatched

    def check_pattern(
        self,
        fps: int,
        seconds: float,
        *,
        size: tuple[int, int],
        palette: tuple[tuple[int, int, int], ...] = COLOURS,
    ) -> str:
        """Assert the frames show the pattern (a colour per second, in order) at `size`, at
        least 70% of `fps * seconds`, and their centre colours match `palette` (the pattern's
        colours as the receiver is expected to see them); a summary if so.

        Each second inside the window holds 40-140% of `fps` frames, but for one that may
        hold fewer: a single stall of a loaded 2-core machine (CI run M2: seconds of 12, 12,
        3, 12 frames, 42 in all, in order). Two short seconds, a burst, a colour out of
        order or too few frames in all still fail."""
        frames = self.snapshot()
        runs, unmatched = self.runs(palette)
        summary = f"{len(frames)} frames, runs {runs}, {unmatched} unmatched"
        assert {(w, h) for w, h, _ in frames} == {size}, summary
        assert len(frames) >= wanted(fps, seconds), summary
        assert unmatched <= 0.1 * len(frames), summary
        steps = [(b[0] - a[0]) % len(palette) for a, b in itertools.pairwise(runs)]
        assert all(step == 1 for step in steps), summary  # each second's colour, in order
        interior = [count for _, count in runs[1:-1]]
        assert len(runs) >= int(seconds) - 1, summary
        assert all(count <= 1.4 * fps for count in interior), summary
        short = [count for count in interior if count < 0.4 * fps]
        assert len(short) <= 1, summary  # one stall (see above); a loaded receiver drops some
        return summary


def wanted(fps: int, seconds: float) -> int:
    """The frames `Seen.check_pattern` wants of `seconds` at `fps`: 70% of them."""
    return math.ceil(0.7 * fps * seconds)


async def fill_window(
    frames: Callable[[], Sized] | Callable[[], Awaitable[Sized]],
    fps: int,
    seconds: float,
) -> float:
    """Watch for `seconds`, then for up to `seconds` more until `frames()` holds what
    `check_pattern(fps, seconds)` wants; returns the seconds watched. A sender on a loaded
    2-core machine (Chromium's canvas, a software encoder beside the rest of the suite) runs
    below its frame rate for a while (24 of 32 frames in 3 s in two full runs); what the check
    proves is the pattern, its size and its order at a real rate, not the machine's speed."""

    async def count() -> int:
        got = frames()
        return len(await got if isinstance(got, Awaitable) else got)

    start = time.monotonic()
    await anyio.sleep(seconds)
    with anyio.move_on_after(seconds):
        while await count() < wanted(fps, seconds):
            await anyio.sleep(0.2)
    return time.monotonic() - start


# -- the official side (runs on the official loop) -------------------------------------------

_KEEP: set[asyncio.Future[None]] = set()


def _keep(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _KEEP.add(task)
    task.add_done_callback(_KEEP.discard)


async def official_publish_video(
    room: rtc.Room, seconds: float, *, fps: int = 15, size: tuple[int, int] = (640, 360)
) -> rtc.LocalTrackPublication:
    """Publish the pattern from the official participant for `seconds` (in the background)."""
    width, height = size
    source = rtc.VideoSource(width, height)
    track = rtc.LocalVideoTrack.create_video_track("cam", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    publication = await room.local_participant.publish_track(track, options)
    pictures = [pixels(width, height, c) for c in COLOURS]

    async def play() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(int(seconds * fps)):
            await asyncio.sleep(max(0.0, start + n / fps - loop.time()))
            data = pictures[(n // fps) % len(COLOURS)]
            source.capture_frame(rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, data))

    _keep(play())
    return publication


def official_video_reader(room: rtc.Room, seen: dict[str, Seen], identity: str) -> None:
    """Read each video track of `identity` the official room subscribes to, in RGBA, into
    `seen[track sid]` (created on subscription unless already there)."""

    def subscribed(
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if participant.identity != identity or track.kind != rtc.TrackKind.KIND_VIDEO:
            return
        into = seen.setdefault(publication.sid, Seen())

        async def read() -> None:
            stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA)
            async for event in stream:
                into.add(event.frame)

        _keep(read())

    room.on("track_subscribed", subscribed)


# -- the adapter under test ----------------------------------------------------------------------


async def play_pattern(room: Any, source: Any, seconds: float, fps: int = 15) -> None:
    """Capture the pattern into `source` for `seconds` (the threaded adapter: from a thread,
    as a threaded application does)."""
    width, height = source.width, source.height
    module = lk_module(room)
    pictures = [
        module.VideoFrame(width, height, module.VideoBufferType.RGBA, pixels(width, height, c))
        for c in COLOURS
    ]

    def frame(n: int) -> Any:
        return pictures[(n // fps) % len(COLOURS)]

    if type(room).__name__ == "FacadeRoom":
        stop = threading.Event()  # set when the caller cancels: the thread ends at its next frame

        def run() -> None:
            start = time.monotonic()
            for n in range(int(seconds * fps)):
                if stop.wait(max(0.0, start + n / fps - time.monotonic())):
                    return
                source.capture_frame(frame(n))

        try:
            await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        finally:
            stop.set()
        return
    start = anyio.current_time()
    for n in range(int(seconds * fps)):
        await anyio.sleep(max(0.0, start + n / fps - anyio.current_time()))
        source.capture_frame(frame(n))


def lk_module(room: Any) -> Any:
    from lkproto.transports import anyio as lk
    from lkproto.transports import threaded

    return threaded if type(room).__name__ == "FacadeRoom" else lk


async def publish_video(room: Any, source: Any, name: str = "cam", **options: Any) -> Any:
    module = lk_module(room)
    track = module.LocalVideoTrack.create_video_track(name, source)
    if type(room).__name__ == "FacadeRoom":
        local = room.threaded.local_participant
        return await anyio.to_thread.run_sync(
            lambda: local.publish_track(track, module.TrackPublishOptions(**options))
        )
    return await room.local_participant.publish_track(track, module.TrackPublishOptions(**options))


async def unpublish(room: Any, sid: str) -> None:
    if type(room).__name__ == "FacadeRoom":
        await anyio.to_thread.run_sync(room.threaded.local_participant.unpublish_track, sid)
    else:
        await room.local_participant.unpublish_track(sid)


@contextlib.asynccontextmanager
async def watching(room: Any, stream: Any, seen: Seen) -> AsyncIterator[None]:
    """Read `stream` into `seen` in the background until the block ends."""
    if type(room).__name__ == "FacadeRoom":

        def run() -> None:
            for event in stream:
                seen.add(event.frame)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stream.aclose()
            await anyio.to_thread.run_sync(thread.join, 5)
        return

    async def read() -> None:
        async for event in stream:
            seen.add(event.frame)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
            await stream.aclose()
