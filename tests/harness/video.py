"""Video for the media tests: solid pictures whose colour says which second they belong to,
and the colour of a received picture's centre (proof by content, as audio's frequency)."""

from __future__ import annotations

from typing import Any

import numpy as np

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
