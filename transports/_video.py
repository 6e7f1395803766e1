"""Video as `livekit.rtc` shapes it, for every adapter: frames, sources, stream queues.

Theory of operation (issue 23; media findings F6, F8.3, F8.4, F8.6, F8.11)
- `VideoFrame(width, height, type, data)` holds one picture in one of `livekit.rtc`'s
  `VideoBufferType` layouts, tightly packed (no row padding), plane after plane, exactly as
  `livekit.rtc` lays them out. `convert(type)` goes through PyAV (swscale; aiortc brings
  it): the frame is copied into an `av.VideoFrame` of the matching pixel format, reformatted,
  and copied back out packed. Every type `livekit.rtc` names is supported.
- `VideoSource.capture_frame` is synchronous and never waits, as in `livekit.rtc` (the
  native source hands the frame to the encoder, which drops what it cannot take): the frame
  is converted to I420 at once, in the caller's thread (a rotation is applied to the pixels:
  aiortc cannot send the video-orientation extension), and queued in a `VideoQueue`, a
  bounded drop-OLDEST queue of `queue_size` frames (default 2): a producer faster than the
  encoder loses its oldest frames, never grows memory and never blocks.
- The aiortc sender (transports/_aiortc_media.py `VideoSendTrack`) waits for the next queued
  frame; its pts come from the capture time (monotonic, 90 kHz), never go backwards on a
  reused slot (F4.6, F8.4) and drop frames that come faster than `max_framerate`.
- Received frames (aiortc decodes to yuv420p) become I420 `VideoFrame`s in each
  `VideoStream`'s bounded drop-oldest queue (`Config.video_stream_capacity`); the stream
  converts a frame to its `format` only when the reader takes it, so a dropped frame costs
  no conversion and a slow reader never stalls the peer connection's loop (audio, data).
- The queues are thread-safe (`_audio._Waitable`): the threaded adapter's threads, a trio
  run and the asyncio loop that runs aiortc all use them without blocking one another.
- PyAV and numpy are imported by the functions that touch pixels (`to_av`, `from_av`, ...),
  at the first conversion or captured frame, not with this module: every adapter imports it,
  and they cost more than the rest of an adapter's import (issue 25).
"""

from __future__ import annotations

import collections
import enum
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from ._audio import _Waitable

if TYPE_CHECKING:
    import av
    import numpy as np

__all__ = [
    "DEFAULT_SOURCE_QUEUE_FRAMES",
    "CapturedFrame",
    "FrameSource",
    "VideoBufferType",
    "VideoCodec",
    "VideoEncoding",
    "VideoFormat",
    "VideoFrame",
    "VideoFrameEvent",
    "VideoQueue",
    "VideoRotation",
    "VideoSource",
    "buffer_type",
    "from_av",
    "to_av",
]

#: Frames a `VideoSource` holds for its sender (`VideoSource(queue_size=...)`).
DEFAULT_SOURCE_QUEUE_FRAMES: Final = 2
_MAX_DIMENSION = 16384  # as the core's: far above any real camera


class VideoBufferType(enum.IntEnum):
    """`livekit.rtc.VideoBufferType` values."""

    RGBA = 0
    ABGR = 1
    ARGB = 2
    BGRA = 3
    RGB24 = 4
    I420 = 5
    I420A = 6
    I422 = 7
    I444 = 8
    I010 = 9
    NV12 = 10


class VideoRotation(enum.IntEnum):
    """`livekit.rtc.VideoRotation` values."""

    VIDEO_ROTATION_0 = 0
    VIDEO_ROTATION_90 = 1
    VIDEO_ROTATION_180 = 2
    VIDEO_ROTATION_270 = 3


class VideoCodec(enum.IntEnum):
    """`livekit.rtc.VideoCodec` values. aiortc encodes VP8 and H264 only."""

    VP8 = 0
    H264 = 1
    AV1 = 2
    VP9 = 3
    H265 = 4


@dataclass
class VideoEncoding:
    """`livekit.rtc.VideoEncoding`: the one layer's bitrate (bps) and frame rate caps.

    `max_bitrate` is announced to the server as the layer's bitrate (0: livekit's preset for
    the size); aiortc's encoder follows the receiver's bandwidth estimate within its own
    bounds (VP8 250 kbps to 1.5 Mbps, H.264 0.5 to 3 Mbps). `max_framerate` (0: none) makes
    the sender drop frames that come faster."""

    max_bitrate: int = 0
    max_framerate: float = 0.0


# (PyAV pixel format, [(bytes per row, rows) of each plane as functions of w, h, cw, ch]).
_Plane = tuple[int, int]


def _planes(kind: VideoBufferType, w: int, h: int) -> list[_Plane]:
    cw, ch = (w + 1) // 2, (h + 1) // 2
    match kind:
        case VideoBufferType.RGBA | VideoBufferType.ABGR | VideoBufferType.ARGB:
            return [(w * 4, h)]
        case VideoBufferType.BGRA:  # (a separate case only to keep the lines short)
            return [(w * 4, h)]
        case VideoBufferType.RGB24:
            return [(w * 3, h)]
        case VideoBufferType.I420:
            return [(w, h), (cw, ch), (cw, ch)]
        case VideoBufferType.I420A:
            return [(w, h), (cw, ch), (cw, ch), (w, h)]
        case VideoBufferType.I422:
            return [(w, h), (cw, h), (cw, h)]
        case VideoBufferType.I444:
            return [(w, h), (w, h), (w, h)]
        case VideoBufferType.I010:
            return [(w * 2, h), (cw * 2, ch), (cw * 2, ch)]
        case VideoBufferType.NV12:
            return [(w, h), (cw * 2, ch)]


_AV_FORMATS: Final = {
    VideoBufferType.RGBA: "rgba",
    VideoBufferType.ABGR: "abgr",
    VideoBufferType.ARGB: "argb",
    VideoBufferType.BGRA: "bgra",
    VideoBufferType.RGB24: "rgb24",
    VideoBufferType.I420: "yuv420p",
    VideoBufferType.I420A: "yuva420p",
    VideoBufferType.I422: "yuv422p",
    VideoBufferType.I444: "yuv444p",
    VideoBufferType.I010: "yuv420p10le",
    VideoBufferType.NV12: "nv12",
}


def buffer_type(value: object, what: str) -> VideoBufferType:
    """`value` as a `VideoBufferType` (an int from livekit.rtc's enum works too)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a VideoBufferType, not {type(value).__name__}")
    try:
        return VideoBufferType(value)
    except ValueError:
        raise ValueError(f"{what}: unknown VideoBufferType {value}") from None


class VideoFrame:
    """One picture (`livekit.rtc.VideoFrame`): `data` holds the planes of `type`, packed."""

    def __init__(
        self,
        width: int,
        height: int,
        type: VideoBufferType | int,
        data: bytes | bytearray | memoryview,
    ) -> None:
        """Raises TypeError for arguments of the wrong type, ValueError for a size that is
        not 1 to 16384, an unknown type or `data` shorter than the type's planes need."""
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"VideoFrame: {name} must be an int, not {type_name(value)}")
            if not 1 <= value <= _MAX_DIMENSION:
                raise ValueError(f"VideoFrame: {name} must be 1 to {_MAX_DIMENSION}: {value}")
        kind = buffer_type(type, "VideoFrame: type")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"VideoFrame: data must be bytes-like, not {type_name(data)}")
        raw = data if isinstance(data, bytearray) else bytearray(_bytes(data))
        need = sum(row * rows for row, rows in _planes(kind, width, height))
        if len(raw) < need:
            raise ValueError(
                f"VideoFrame: a {width}x{height} {kind.name} frame needs {need} bytes, "
                f"data has {len(raw)}"
            )
        self._width, self._height, self._type, self._data = width, height, kind, raw

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self._width

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self._height

    @property
    def type(self) -> VideoBufferType:
        """The layout of `data`."""
        return self._type

    @property
    def data(self) -> memoryview:
        """The pixel data (writable)."""
        return memoryview(self._data)

    def get_plane(self, plane_nth: int) -> memoryview | None:
        """Plane `plane_nth` of `data` (Y, U, V... or the one RGB plane), or None."""
        planes = _planes(self._type, self._width, self._height)
        if isinstance(plane_nth, bool) or not isinstance(plane_nth, int) or plane_nth < 0:
            raise TypeError("get_plane: plane_nth must be a non-negative int")
        if plane_nth >= len(planes):
            return None
        start = sum(row * rows for row, rows in planes[:plane_nth])
        row, rows = planes[plane_nth]
        return memoryview(self._data)[start : start + row * rows]

    def convert(self, type: VideoBufferType | int, *, flip_y: bool = False) -> VideoFrame:
        """A new frame in layout `type` (PyAV's swscale, BT.601 like libyuv's defaults);
        `flip_y` flips it vertically."""
        kind = buffer_type(type, "convert: type")
        if kind is self._type and not flip_y:
            return VideoFrame(self._width, self._height, kind, bytes(self._data))
        out = from_av(to_av(self), kind)
        return _flipped(out) if flip_y else out

    def __repr__(self) -> str:
        return f"rtc.VideoFrame(width={self._width}, height={self._height}, type={self._type.name})"


def type_name(value: object) -> str:
    return type(value).__name__


def _bytes(data: bytes | bytearray | memoryview) -> bytes | bytearray:
    if isinstance(data, memoryview):
        return data.cast("B").tobytes() if data.ndim else bytes(data)
    return data


def _plane_views(frame: av.VideoFrame, planes: list[_Plane]) -> list[np.ndarray]:
    import numpy as np

    views = []
    for plane, (row, rows) in zip(frame.planes, planes, strict=True):
        raw = np.frombuffer(memoryview(plane), np.uint8)
        views.append(raw[: plane.line_size * rows].reshape(rows, plane.line_size)[:, :row])
    return views


def to_av(frame: VideoFrame) -> av.VideoFrame:
    """`frame` as an `av.VideoFrame` of the same layout (a copy)."""
    import av
    import numpy as np

    w, h = frame.width, frame.height
    planes = _planes(frame.type, w, h)
    out = av.VideoFrame(w, h, _AV_FORMATS[frame.type])
    data = np.frombuffer(frame._data, np.uint8)
    offset = 0
    for view, (row, rows) in zip(_plane_views(out, planes), planes, strict=True):
        view[:] = data[offset : offset + row * rows].reshape(rows, row)
        offset += row * rows
    return out


def from_av(frame: av.VideoFrame, kind: VideoBufferType) -> VideoFrame:
    """An `av.VideoFrame` as a packed `VideoFrame` of layout `kind` (reformatted if needed)."""
    fmt = _AV_FORMATS[kind]
    if frame.format.name != fmt:
        frame = frame.reformat(format=fmt)
    planes = _planes(kind, frame.width, frame.height)
    packed = b"".join(view.tobytes() for view in _plane_views(frame, planes))
    return VideoFrame(frame.width, frame.height, kind, packed)


def _flipped(frame: VideoFrame) -> VideoFrame:
    import numpy as np

    planes = _planes(frame.type, frame.width, frame.height)
    data = np.frombuffer(frame._data, np.uint8)
    parts, offset = [], 0
    for row, rows in planes:
        parts.append(data[offset : offset + row * rows].reshape(rows, row)[::-1].tobytes())
        offset += row * rows
    return VideoFrame(frame.width, frame.height, frame.type, b"".join(parts))


def _rotated(frame: av.VideoFrame, rotation: VideoRotation) -> av.VideoFrame:
    """A yuv420p frame turned clockwise by `rotation` (the receiver sees it upright)."""
    import av
    import numpy as np

    turns = {
        VideoRotation.VIDEO_ROTATION_90: -1,
        VideoRotation.VIDEO_ROTATION_180: 2,
        VideoRotation.VIDEO_ROTATION_270: 1,
    }[rotation]
    w, h = frame.width, frame.height
    nw, nh = (h, w) if turns in (1, -1) else (w, h)
    src = _plane_views(frame, _planes(VideoBufferType.I420, w, h))
    out = av.VideoFrame(nw, nh, "yuv420p")
    for dst, plane in zip(
        _plane_views(out, _planes(VideoBufferType.I420, nw, nh)), src, strict=True
    ):
        turned = np.rot90(plane, turns)
        dst[: turned.shape[0], : turned.shape[1]] = turned
    return out


@dataclass
class VideoFrameEvent:
    """What a `VideoStream` yields (`livekit.rtc.VideoFrameEvent`). `rotation` is always
    VIDEO_ROTATION_0: aiortc does not read the video-orientation extension."""

    frame: VideoFrame
    timestamp_us: int
    rotation: VideoRotation = VideoRotation.VIDEO_ROTATION_0
    metadata: Any = None


@dataclass
class CapturedFrame:
    """A frame waiting in a `VideoSource`: I420 for the encoder, with its capture time."""

    frame: av.VideoFrame
    captured: float  # time.monotonic() at capture
    timestamp_us: int = 0


T = TypeVar("T")


class VideoQueue(_Waitable, Generic[T]):
    """A bounded drop-oldest FIFO; `get` returns None once closed and empty."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self._items: collections.deque[T] = collections.deque(maxlen=capacity)
        self.closed = False
        self.dropped = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: T) -> None:
        with self._cond:
            if self.closed:
                return
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._notify()

    def close(self, *, drop: bool = False) -> None:
        """No more items; those queued may still be taken, unless `drop`."""
        with self._cond:
            self.closed = True
            if drop:
                self._items.clear()
            self._notify()

    def _ready(self) -> bool:
        return self.closed or bool(self._items)

    def _take(self) -> T | None:
        return self._items.popleft() if self._items else None

    def pop(self) -> T | None:
        """The next item, or None, without waiting."""
        with self._cond:
            return self._take()

    async def get(self) -> T | None:
        await self._wait_async(self._ready)
        with self._cond:
            return self._take()

    def get_blocking(self, timeout: float | None = None) -> T | None:
        """The next item; None once closed and empty. TimeoutError after `timeout`."""
        if not self._wait_blocking(self._ready, timeout):
            raise TimeoutError("no video frame within the timeout")
        with self._cond:
            return self._take()


class FrameSource:
    """What every adapter's `VideoSource` is (see the module docstring)."""

    def __init__(
        self,
        width: int,
        height: int,
        *,
        is_screencast: bool = False,
        queue_size: int = DEFAULT_SOURCE_QUEUE_FRAMES,
    ) -> None:
        """Raises TypeError/ValueError for a size that is not 1 to 16384, a non-bool
        `is_screencast` or a queue size below 1."""
        for name, value in (("width", width), ("height", height), ("queue_size", queue_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"VideoSource: {name} must be an int, not {type_name(value)}")
        if not (1 <= width <= _MAX_DIMENSION and 1 <= height <= _MAX_DIMENSION):
            raise ValueError(f"VideoSource: the size must be 1 to {_MAX_DIMENSION} each")
        if queue_size < 1:
            raise ValueError(f"VideoSource: queue_size must be at least 1: {queue_size}")
        if not isinstance(is_screencast, bool):
            raise TypeError("VideoSource: is_screencast must be a bool")
        self._width, self._height = width, height
        self._is_screencast = is_screencast
        self.queue: VideoQueue[CapturedFrame] = VideoQueue(queue_size)
        self.captured = 0

    @property
    def width(self) -> int:
        """The size announced when the track is published (frames may differ)."""
        return self._width

    @property
    def height(self) -> int:
        """The size announced when the track is published (frames may differ)."""
        return self._height

    @property
    def is_screencast(self) -> bool:
        """Published as a screen share unless `TrackPublishOptions.source` says otherwise."""
        return self._is_screencast

    @property
    def dropped_frames(self) -> int:
        """Frames dropped because the sender had not taken the older ones (lkproto)."""
        return self.queue.dropped

    def capture_frame(
        self,
        frame: VideoFrame,
        *,
        timestamp_us: int = 0,
        rotation: VideoRotation | int = VideoRotation.VIDEO_ROTATION_0,
        metadata: object = None,
    ) -> None:
        """Queue `frame` for sending, never waiting: when `queue_size` frames wait, the
        oldest is dropped. Once published, the sender takes them as they come. `rotation`
        turns the picture clockwise before sending; `metadata` is accepted and not sent.
        Raises TypeError for a frame that is not a `VideoFrame`, ValueError for an unknown
        rotation. After `aclose()` frames are dropped."""
        del metadata
        if not isinstance(frame, VideoFrame):
            raise TypeError(f"capture_frame: expected a VideoFrame, not {type_name(frame)}")
        if isinstance(timestamp_us, bool) or not isinstance(timestamp_us, int):
            raise TypeError("capture_frame: timestamp_us must be an int")
        if isinstance(rotation, bool) or not isinstance(rotation, int):
            raise TypeError("capture_frame: rotation must be a VideoRotation")
        try:
            turn = VideoRotation(rotation)
        except ValueError:
            raise ValueError(f"capture_frame: unknown rotation {rotation}") from None
        if self.queue.closed:
            return
        captured = time.monotonic()
        picture = to_av(frame)
        if picture.format.name != "yuv420p":
            picture = picture.reformat(format="yuv420p")
        if turn is not VideoRotation.VIDEO_ROTATION_0:
            picture = _rotated(picture, turn)
        self.captured += 1
        self.queue.put(CapturedFrame(picture, captured, timestamp_us))

    def __repr__(self) -> str:
        return f"rtc.VideoSource(width={self._width}, height={self._height})"


class VideoSource(FrameSource):
    """A source of pictures to publish (`livekit.rtc.VideoSource`); any thread or event loop
    may call `capture_frame`."""

    async def aclose(self) -> None:
        """Drop what is queued; later frames are dropped."""
        self.queue.close(drop=True)


@dataclass(frozen=True)
class VideoFormat:
    """What a `VideoStream` delivers: its frames' layout (None: I420, as decoded)."""

    type: VideoBufferType | None = None
