"""Audio for the media tests: tones to send, and proof by content of what arrived.

Frame counts prove nothing (the official `AudioStream` yields silence even when no RTP
arrives, media findings F1.6): a test measures how much of what arrived was loud (RMS per
10 ms) and the dominant frequency of the loud part (an FFT, interpolated between bins).
The official participant's audio runs on the official loop (harness/official.py): its
publisher task and its readers record into `Capture`s guarded by a lock.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator

import numpy as np
from livekit import rtc

from harness.official import OfficialPeer

LOUD = 1000.0  # RMS of int16 samples above which 10 ms count as loud (a 0.5 sine: ~11 600)


def tone(freq: float, rate: int, channels: int, samples: int, start: int = 0) -> bytes:
    """A 0.5-amplitude sine as interleaved int16, continuing from sample `start`."""
    t = (np.arange(samples) + start) / rate
    mono = (0.5 * 32767 * np.sin(2 * math.pi * freq * t)).astype(np.int16)
    return np.repeat(mono, channels).tobytes()


def frames(
    freq: float, rate: int, channels: int, seconds: float, frame_ms: int = 20
) -> Iterator[bytes]:
    """`seconds` of tone in `frame_ms` pieces."""
    step = rate * frame_ms // 1000
    for n in range(int(seconds * 1000) // frame_ms):
        yield tone(freq, rate, channels, step, n * step)


def click(rate: int, channels: int, samples: int) -> bytes:
    """A loud burst (1 kHz, full scale): the latency benchmark's marker."""
    t = np.arange(samples) / rate
    mono = (0.9 * 32767 * np.sin(2 * math.pi * 1000 * t)).astype(np.int16)
    return np.repeat(mono, channels).tobytes()


class Capture:
    """Received PCM of one format, thread-safe; the analysis is over the first channel."""

    def __init__(self, rate: int = 0, channels: int = 0) -> None:
        self.rate, self.channels = rate, channels
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self.frames = 0

    def add(self, data: bytes, rate: int, channels: int) -> None:
        with self._lock:
            if not self.rate:
                self.rate, self.channels = rate, channels
            assert (rate, channels) == (self.rate, self.channels), "one format per capture"
            self._chunks.append(bytes(data))
            self.frames += 1

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self.frames = 0

    def samples(self) -> np.ndarray:
        with self._lock:
            raw = b"".join(self._chunks)
        data = np.frombuffer(raw, dtype=np.int16)
        return data[:: self.channels] if self.channels else data

    def loud_seconds(self) -> float:
        """Seconds of 10 ms windows whose RMS is over `LOUD`."""
        _, loud = self._windows()
        return float(loud.sum()) / 100

    def _windows(self) -> tuple[np.ndarray, np.ndarray]:
        """The first channel in 10 ms windows (one per row), and which of them are loud."""
        data = self.samples().astype(np.float64)
        win = max(self.rate // 100, 1)  # no rate: nothing was added
        n = len(data) // win
        blocks = data[: n * win].reshape(n, win)
        return blocks, np.sqrt((blocks**2).mean(axis=1)) > LOUD

    def frequency(self) -> float:
        """The dominant frequency of the loud part (0 if none): the median over its pieces,
        runs of 3 to 10 loud 10 ms windows in a row (30 to 100 ms).

        One FFT over all loud windows spliced together let the phase jumps at a few gaps
        (late frames on a loaded machine, a lost packet) smear the peak: CI once measured
        426.8 Hz for a 440 Hz tone with 2.66 s of 3 loud. The median still fails a tone that
        is wrong throughout (a wrong rate, a swapped track). Loud audio in runs shorter than
        30 ms only (a stream in tatters) is measured spliced, as before.
        """
        blocks, loud = self._windows()
        n = len(loud)
        pieces: list[float] = []
        run = 0
        for i in range(n + 1):
            if i < n and loud[i] and run < 10:
                run += 1
                continue
            if run >= 3:  # windows i - run .. i - 1
                pieces.append(dominant(blocks[i - run : i].reshape(-1), self.rate))
            run = 1 if i < n and loud[i] else 0
        if pieces:
            return float(np.median(pieces))
        spliced = blocks[loud].reshape(-1)
        return dominant(spliced, self.rate) if loud.sum() >= 10 else 0.0

    def longest_quiet(self) -> float:
        """The longest run of quiet 10 ms windows between the first and last loud one, in
        seconds (how long the audio stopped, e.g. across a reconnect)."""
        _, loud = self._windows()
        where = np.flatnonzero(loud)
        if len(where) < 2:
            return 0.0
        return float((np.diff(where) - 1).max()) / 100

    def summary(self) -> str:
        return (
            f"{self.loud_seconds():.2f}s loud at {self.frequency():.1f} Hz ({self.frames} frames)"
        )


def dominant(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency, with parabolic interpolation between FFT bins."""
    window = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window, n=max(len(window), 1 << 16)))
    k = int(np.argmax(spectrum[1:])) + 1
    if 1 <= k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        k += 0.5 * (a - c) / (a - 2 * b + c)
    return k * rate / (2 * (len(spectrum) - 1))


# -- the official side (runs on the official loop) -------------------------------------------


async def official_publish(
    room: rtc.Room, freq: float, seconds: float, *, name: str = "tone"
) -> rtc.LocalTrackPublication:
    """Publish a tone from the official participant for `seconds` (in the background)."""
    source = rtc.AudioSource(48000, 1)
    track = rtc.LocalAudioTrack.create_audio_track(name, source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    publication = await room.local_participant.publish_track(track, options)

    async def play() -> None:
        # 100 ms per call, into the source's 1 s queue, so that a loaded test process (the
        # official loop shares its GIL with lkproto's media) keeps ahead of the real-time
        # pull. With 10 ms per call CI run J heard 1.26 s loud of 3.5, in pieces; a producer
        # falling behind is our reading of that, not verified.
        for chunk in frames(freq, 48000, 1, seconds, frame_ms=100):
            await source.capture_frame(rtc.AudioFrame(chunk, 48000, 1, 4800))

    task = asyncio.ensure_future(play())
    _KEEP.add(task)
    task.add_done_callback(_KEEP.discard)
    return publication


_KEEP: set[asyncio.Future[None]] = set()


def official_reader(room: rtc.Room, captures: dict[str, Capture], identity: str) -> None:
    """Read each audio track of `identity` the official room subscribes to into
    `captures[track sid]` (48 kHz mono; created on subscription unless already there)."""

    def subscribed(
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if participant.identity != identity or track.kind != rtc.TrackKind.KIND_AUDIO:
            return
        capture = captures.setdefault(publication.sid, Capture())

        async def read() -> None:
            stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)
            async for event in stream:
                capture.add(bytes(event.frame.data), 48000, 1)

        task = asyncio.ensure_future(read())
        _KEEP.add(task)
        task.add_done_callback(_KEEP.discard)

    room.on("track_subscribed", subscribed)


def track_events(peer: OfficialPeer) -> None:
    """Record the official room's track events as (name, (identity, sid)), and its
    `local_track_*` as (name, (sid,)), in `peer.records`."""

    def install(room: rtc.Room) -> None:
        def pub_participant(name: str) -> None:
            room.on(name, lambda pub, p: peer._record(name, p.identity, pub.sid))

        def track_pub_participant(name: str) -> None:
            room.on(name, lambda _t, pub, p: peer._record(name, p.identity, pub.sid))

        def participant_pub(name: str) -> None:
            room.on(name, lambda p, pub: peer._record(name, p.identity, pub.sid))

        pub_participant("track_published")
        pub_participant("track_unpublished")
        track_pub_participant("track_subscribed")
        track_pub_participant("track_unsubscribed")
        participant_pub("track_muted")
        participant_pub("track_unmuted")
        room.on(
            "active_speakers_changed", lambda s: peer._record("speakers", [p.identity for p in s])
        )

    peer.on_room.append(install)
