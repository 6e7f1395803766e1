"""Audio as `livekit.rtc` shapes it, for every adapter: frames, sources, streams.

Theory of operation (media findings F2.5, F8.3, F8.6, F8.11)
- `AudioFrame` is interleaved signed 16-bit PCM with its rate and channel count, as in
  `livekit.rtc`. Nothing here knows aiortc: the aiortc side (transports/_aiortc_media.py)
  pulls PCM from sources and pushes decoded frames into streams through the two thread-safe
  queues below, which are the only objects shared between the application's thread (or trio
  run) and the asyncio loop that runs aiortc (the same loop on anyio/asyncio, the bridge's
  thread on trio, the I/O thread of the threaded adapter).
- `PcmQueue` (an `AudioSource`'s queue): bounded by `queue_size_ms`. `capture_frame` waits
  while it is full (the official semantics), in pieces, so a frame longer than the queue
  still goes in. The aiortc sender takes one 20 ms frame per 20 ms of wall time, silence
  when the queue is short; `queued_duration`, `clear_queue()` and `wait_for_playout()` read
  and empty it.
- `FrameQueue` (an `AudioStream`'s queue): bounded, dropping the OLDEST frame when full, so
  a reader that falls behind costs bounded memory and hears the newest audio. Frames for a
  track that no stream reads are dropped at once (the reader of every aiortc receiver always
  drains it: aiortc's own queue is unbounded, F8.3).
- Waiting: a thread (the threaded adapter's blocking calls) waits on the queue's condition;
  an async waiter registers a waker that posts `Event.set` to its own loop
  (`loop.call_soon_threadsafe` on asyncio, `TrioToken.run_sync_soon` on trio), so no event
  loop thread ever blocks on another.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import sniffio

__all__ = [
    "FRAME_MS",
    "AudioFrame",
    "AudioFrameEvent",
    "AudioSource",
    "FrameQueue",
    "Latch",
    "PcmQueue",
    "PcmSource",
    "StreamFormat",
    "check_format",
    "poster",
]

FRAME_MS = 20  #: the sender's frame: what aiortc's Opus encoder packs into one packet
_SAMPLE_BYTES = 2


def check_format(sample_rate: object, num_channels: object, what: str) -> tuple[int, int]:
    """(rate, channels), or TypeError/ValueError naming `what`: 8 to 192 kHz in steps of
    100 Hz (whole 10 ms frames), 1 or 2 channels (aiortc's encoder takes mono or stereo)."""
    for name, value in (("sample_rate", sample_rate), ("num_channels", num_channels)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{what}: {name} must be an int, not {type(value).__name__}")
    assert isinstance(sample_rate, int) and isinstance(num_channels, int)
    if not 8000 <= sample_rate <= 192_000 or sample_rate % 100:
        raise ValueError(
            f"{what}: sample_rate must be 8000 to 192000 Hz in steps of 100 (whole 10 ms "
            f"frames), not {sample_rate}"
        )
    if num_channels not in (1, 2):
        raise ValueError(f"{what}: num_channels must be 1 or 2, not {num_channels}")
    return sample_rate, num_channels


class AudioFrame:
    """Interleaved signed 16-bit PCM (`livekit.rtc.AudioFrame`)."""

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        sample_rate: int,
        num_channels: int,
        samples_per_channel: int,
        *,
        userdata: dict[str, Any] | None = None,
    ) -> None:
        """Raises TypeError for data that is not bytes-like, ValueError if `data` is shorter
        than `num_channels * samples_per_channel` samples or not whole samples."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"AudioFrame: data must be bytes-like, not {type(data).__name__}")
        for name, value in (
            ("sample_rate", sample_rate),
            ("num_channels", num_channels),
            ("samples_per_channel", samples_per_channel),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TypeError(f"AudioFrame: {name} must be a non-negative int, not {value!r}")
        raw = bytearray(data.cast("B") if isinstance(data, memoryview) else data)
        if len(raw) < num_channels * samples_per_channel * _SAMPLE_BYTES:
            raise ValueError(
                "AudioFrame: data length must be >= num_channels * samples_per_channel * "
                "sizeof(int16)"
            )
        if len(raw) % _SAMPLE_BYTES:
            raise ValueError("AudioFrame: data length must be a multiple of sizeof(int16)")
        self._data = raw
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._samples_per_channel = samples_per_channel
        self._userdata = {} if userdata is None else userdata

    @staticmethod
    def create(sample_rate: int, num_channels: int, samples_per_channel: int) -> AudioFrame:
        """A frame of silence, to fill through `data`."""
        size = num_channels * samples_per_channel * _SAMPLE_BYTES
        return AudioFrame(bytes(size), sample_rate, num_channels, samples_per_channel)

    @property
    def data(self) -> memoryview:
        """The samples, as a writable int16 view."""
        used = self._num_channels * self._samples_per_channel * _SAMPLE_BYTES
        return memoryview(self._data)[:used].cast("h")

    @property
    def sample_rate(self) -> int:
        """Samples per second per channel."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Channels, interleaved."""
        return self._num_channels

    @property
    def samples_per_channel(self) -> int:
        """Samples in each channel."""
        return self._samples_per_channel

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self._samples_per_channel / self._sample_rate if self._sample_rate else 0.0

    @property
    def userdata(self) -> dict[str, Any]:
        """Free-form data the application attaches to the frame."""
        return self._userdata

    def pcm(self) -> bytes:
        """The samples as bytes (lkproto)."""
        return bytes(self.data.cast("B"))

    def to_wav_bytes(self) -> bytes:
        """The frame as a WAV file."""
        import wave

        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(self._num_channels)
            wav.setsampwidth(_SAMPLE_BYTES)
            wav.setframerate(self._sample_rate)
            wav.writeframes(self.pcm())
        return out.getvalue()

    def __repr__(self) -> str:
        return (
            f"rtc.AudioFrame(sample_rate={self._sample_rate}, num_channels={self._num_channels}, "
            f"samples_per_channel={self._samples_per_channel}, duration={self.duration:.3f})"
        )


@dataclass
class AudioFrameEvent:
    """What an `AudioStream` yields (`livekit.rtc.AudioFrameEvent`)."""

    frame: AudioFrame


# -- waiting across threads ---------------------------------------------------------------------


def poster() -> Callable[[Callable[[], None]], None]:
    """A thread-safe, non-blocking "run this soon in the calling task's event loop".

    An asyncio loop running in this thread wins over sniffio's answer: the aiortc loop of
    the trio adapter's bridge runs tasks whose context was copied from the trio thread, so
    sniffio says "trio" there. asyncio is not imported for this: where it was never imported,
    no asyncio loop runs (the trio adapter, issue 25's light import). Where it is in
    `sys.modules` it may still be initializing on another thread (aiortc's import runs on a
    worker thread, and a cancelled connect leaves it running): the `import` statement waits
    for it, where reading `sys.modules` would give a module without its names."""
    loop = None
    if "asyncio" in sys.modules:
        import asyncio as aio

        with contextlib.suppress(RuntimeError):  # no asyncio loop runs in this thread
            loop = aio.get_running_loop()
    if loop is None and sniffio.current_async_library() == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()
        return lambda fn: token.run_sync_soon(fn)
    if loop is None:
        import asyncio

        loop = asyncio.get_running_loop()  # raises: no event loop runs in this thread

    def post(fn: Callable[[], None]) -> None:
        loop.call_soon_threadsafe(fn)

    return post


class _Waitable:
    """A condition any thread may wait on, and async tasks on any loop."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._wakers: list[Callable[[], None]] = []

    def _notify(self) -> None:
        """Call with the lock held: wake threads and async waiters."""
        self._cond.notify_all()
        wakers, self._wakers = self._wakers, []
        for wake in wakers:
            with contextlib.suppress(RuntimeError):  # that loop is gone
                wake()

    async def _wait_async(self, ready: Callable[[], bool]) -> None:
        """Wait until `ready()` (called with the lock held) is true."""
        post = poster()
        while True:
            event = anyio.Event()
            with self._cond:
                if ready():
                    return
                self._wakers.append(functools.partial(post, event.set))
            await event.wait()

    def _wait_blocking(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(ready, timeout)


class Latch(_Waitable):
    """A flag set once, awaited from any loop or waited on from any thread."""

    def __init__(self) -> None:
        super().__init__()
        self.is_set = False

    def set(self) -> None:
        with self._cond:
            self.is_set = True
            self._notify()

    async def wait(self) -> None:
        await self._wait_async(lambda: self.is_set)

    def wait_blocking(self, timeout: float | None = None) -> bool:
        return self._wait_blocking(lambda: self.is_set, timeout)


class PcmQueue(_Waitable):
    """A bounded FIFO of interleaved int16 PCM bytes in one format (see the module)."""

    def __init__(self, sample_rate: int, num_channels: int, capacity_ms: int) -> None:
        super().__init__()
        self.sample_rate, self.num_channels = sample_rate, num_channels
        self.frame_bytes = sample_rate * FRAME_MS // 1000 * num_channels * _SAMPLE_BYTES
        per_ms = sample_rate * num_channels * _SAMPLE_BYTES // 1000
        self.capacity = max(capacity_ms * per_ms, self.frame_bytes)
        self._buffer = bytearray()
        self.closed = False
        self.underruns = 0  # pops that found some audio, but less than a frame

    @property
    def queued_bytes(self) -> int:
        with self._cond:
            return len(self._buffer)

    @property
    def queued_duration(self) -> float:
        per_second = self.sample_rate * self.num_channels * _SAMPLE_BYTES
        return self.queued_bytes / per_second

    def _space(self) -> bool:
        return self.closed or len(self._buffer) < self.capacity

    def _put_some(self, data: memoryview) -> int:
        """With the lock held: queue what fits of `data`; return the bytes taken."""
        if self.closed:
            return len(data)  # dropped: nobody will send it
        room = self.capacity - len(self._buffer)
        room -= room % (self.num_channels * _SAMPLE_BYTES)  # whole sample frames
        taken = min(room, len(data))
        self._buffer += data[:taken]
        return taken

    async def put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            await self._wait_async(self._space)
            with self._cond:
                view = view[self._put_some(view) :]

    def put_blocking(self, data: bytes, timeout: float | None = None) -> bool:
        """Queue `data`, waiting while full; False if `timeout` passed first (what did not
        fit then is dropped)."""
        view = memoryview(data)
        while view:
            if not self._wait_blocking(self._space, timeout):
                return False
            with self._cond:
                view = view[self._put_some(view) :]
        return True

    def pop_frame(self) -> bytes | None:
        """One 20 ms frame, or None if less than that is queued (the sender sends silence)."""
        with self._cond:
            if len(self._buffer) < self.frame_bytes:
                if self._buffer:
                    self.underruns += 1
                return None
            out = bytes(self._buffer[: self.frame_bytes])
            del self._buffer[: self.frame_bytes]
            self._notify()
            return out

    def flush_tail(self) -> bytes | None:
        """What is left (less than a frame), padded with silence: the end of a playout."""
        with self._cond:
            if not self._buffer:
                return None
            out = bytes(self._buffer) + bytes(self.frame_bytes - len(self._buffer))
            self._buffer.clear()
            self._notify()
            return out

    def clear(self) -> None:
        with self._cond:
            self._buffer.clear()
            self._notify()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._buffer.clear()
            self._notify()

    async def wait_empty(self) -> None:
        await self._wait_async(lambda: self.closed or not self._buffer)

    def wait_empty_blocking(self, timeout: float | None = None) -> bool:
        return self._wait_blocking(lambda: self.closed or not self._buffer, timeout)


class FrameQueue(_Waitable):
    """A bounded drop-oldest FIFO of frames; `None` from `get` means it ended."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self._frames: collections.deque[AudioFrame] = collections.deque(maxlen=capacity)
        self.closed = False
        self.dropped = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)

    def put(self, frame: AudioFrame) -> None:
        with self._cond:
            if self.closed:
                return
            if len(self._frames) == self._frames.maxlen:
                self.dropped += 1
            self._frames.append(frame)
            self._notify()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._notify()

    def _ready(self) -> bool:
        return self.closed or bool(self._frames)

    def _take(self) -> AudioFrame | None:
        return self._frames.popleft() if self._frames else None

    async def get(self) -> AudioFrame | None:
        await self._wait_async(self._ready)
        with self._cond:
            return self._take()

    def get_blocking(self, timeout: float | None = None) -> AudioFrame | None:
        """The next frame; None once closed and empty. TimeoutError after `timeout`."""
        if not self._wait_blocking(self._ready, timeout):
            raise TimeoutError("no audio frame within the timeout")
        with self._cond:
            return self._take()


# -- the livekit.rtc objects ----------------------------------------------------------------------


class PcmSource:
    """What every adapter's `AudioSource` is: a format and its `PcmQueue` (the async and
    the blocking `capture_frame` are the subclasses')."""

    def __init__(self, sample_rate: int, num_channels: int, queue_size_ms: int = 1000) -> None:
        """Raises TypeError/ValueError for a rate that is not 8 to 192 kHz in steps of
        100 Hz, a channel count other than 1 or 2, or a negative queue size (at least one
        20 ms frame always fits)."""
        self._sample_rate, self._num_channels = check_format(
            sample_rate, num_channels, "AudioSource"
        )
        if isinstance(queue_size_ms, bool) or not isinstance(queue_size_ms, int):
            raise TypeError("AudioSource: queue_size_ms must be an int")
        if queue_size_ms < 0:
            raise ValueError(f"AudioSource: queue_size_ms must not be negative: {queue_size_ms}")
        self.queue = PcmQueue(self._sample_rate, self._num_channels, queue_size_ms)

    @property
    def sample_rate(self) -> int:
        """Sample rate of every frame the source takes, in Hz."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Channels of every frame the source takes (1 or 2)."""
        return self._num_channels

    @property
    def queued_duration(self) -> float:
        """Seconds of audio queued, not yet sent."""
        return self.queue.queued_duration

    def clear_queue(self) -> None:
        """Drop everything queued (e.g. the user interrupted the agent)."""
        self.queue.clear()

    def _check(self, frame: AudioFrame) -> bytes:
        if not isinstance(frame, AudioFrame):
            raise TypeError(f"capture_frame: expected an AudioFrame, not {type(frame).__name__}")
        if (frame.sample_rate, frame.num_channels) != (self._sample_rate, self._num_channels):
            raise ValueError(
                f"capture_frame: the frame is {frame.sample_rate} Hz with "
                f"{frame.num_channels} channel(s); this source takes {self._sample_rate} Hz "
                f"with {self._num_channels}"
            )
        return frame.pcm()

    def __repr__(self) -> str:
        return (
            f"rtc.AudioSource(sample_rate={self._sample_rate}, num_channels={self._num_channels})"
        )


class AudioSource(PcmSource):
    """A real-time source of PCM to publish (`livekit.rtc.AudioSource`).

    `capture_frame` queues a frame, waiting while more than `queue_size_ms` is queued; once
    the track is published, the sender takes 20 ms every 20 ms (silence when short). The
    queue drains only while the track is published. Frames must have the source's rate and
    channel count (ValueError otherwise). Any event loop may use it (asyncio or trio).
    """

    def __init__(
        self,
        sample_rate: int,
        num_channels: int,
        queue_size_ms: int = 1000,
        loop: object = None,
    ) -> None:
        """As `PcmSource`; `loop` is accepted for compatibility with livekit.rtc."""
        del loop
        super().__init__(sample_rate, num_channels, queue_size_ms)

    async def capture_frame(self, frame: AudioFrame) -> None:
        """Queue `frame`, waiting while the queue is full. After `aclose()` it is dropped."""
        data = self._check(frame)
        if data:
            await self.queue.put(data)

    async def wait_for_playout(self) -> None:
        """Wait until everything queued has been taken by the sender."""
        await self.queue.wait_empty()

    async def aclose(self) -> None:
        """Drop what is queued; later frames are dropped; waiters are released."""
        self.queue.close()


@dataclass(frozen=True)
class StreamFormat:
    """What an `AudioStream` delivers: rate, channels and, optionally, a fixed frame size."""

    sample_rate: int
    num_channels: int
    frame_size_ms: int | None
