"""Media on the memory transport: the transceiver slots of a `_MemoryPeer`, a pacer that sends
each published track's audio to the MemoryRoom 20 ms at a time (and every video frame
captured since, as an I420 `VideoFrameEvent`), and the delivery of what the room forwards to
the session's `AudioStream`s and `VideoStream`s. No RTP, no codec: frames travel whole.

As on aiortc (transports/_aiortc_media.py): every frame sent is 48 kHz stereo (what a real
receiver decodes), silence is not sent for a muted track, frames arriving on a receive slot
go to the readers of whatever track the core bound to that slot (`MediaRouter`), converted
to each reader's format, and are dropped when nobody reads. The pacer sleeps on the Room's
loop clock, so with a virtual clock seconds of audio play out in milliseconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import anyio
import av

from lkproto import commands as cmd
from lkproto.testing import media_lines
from lkproto.tracks import TrackKind

from .._aiortc_media import CHANNELS, FRAME_SAMPLES, RATE, _Converter, deliver, fan_out
from .._audio import FRAME_MS, AudioFrame, PcmQueue
from .._media import MediaRouter
from .._video import VideoBufferType, VideoFrameEvent, VideoQueue, from_av

__all__ = ["MemoryMedia"]


class MemoryMedia:
    """One memory peer connection's media (see the module docstring)."""

    def __init__(self, router: MediaRouter | None, send: Callable[[str, object], None]) -> None:
        self.router = router or MediaRouter(1)
        self._send = send  # (mid, frame) -> the room
        # slot -> [mid, kind, direction, source cid]
        self.slots: dict[int, list[str]] = {}
        self._converters: dict[str, _Converter] = {}
        self._pacing = False
        self.closed = False

    def slot_mids(self) -> dict[int, str]:
        return {slot: line[0] for slot, line in self.slots.items()}

    def offer_lines(self) -> str:
        return media_lines((m, k, d, c or None) for m, k, d, c in self.slots.values())

    def execute(
        self, command: cmd.AddTransceiver | cmd.SetTransceiverDirection | cmd.SetSendSource
    ) -> bool:
        """Carry out a transceiver command; True if a pacer should run (a send slot)."""
        match command:
            case cmd.AddTransceiver():
                kind = "audio" if command.kind is TrackKind.AUDIO else "video"
                mid = str(len(self.slots) + 1)  # after the data channels' "0"
                line = [mid, kind, command.direction.value, command.source_cid or ""]
                self.slots[command.slot] = line
            case cmd.SetTransceiverDirection():
                self.slots[command.slot][2] = command.direction.value
            case cmd.SetSendSource():
                self.slots[command.slot][3] = command.source_cid or ""
        start = not self._pacing and any(line[3] for line in self.slots.values())
        self._pacing = self._pacing or start
        return start

    def reset(self) -> None:
        self.slots.clear()

    async def pace(self) -> None:
        """Every 20 ms, send 20 ms of each published track that has audio queued."""
        with contextlib.suppress(anyio.get_cancelled_exc_class()):
            deadline = anyio.current_time()
            while not self.closed:
                deadline += FRAME_MS / 1000
                await anyio.sleep(max(0.0, deadline - anyio.current_time()))
                for mid, _, direction, cid in list(self.slots.values()):
                    if cid and direction == "sendonly":
                        self._send_one(mid, cid)

    def _send_one(self, mid: str, cid: str) -> None:
        source = self.router.source(cid)
        if source is None:
            return
        queue = source.queue
        if isinstance(queue, VideoQueue):  # every frame captured since, as the room's payload
            while (item := queue.pop()) is not None:
                if not source.muted:
                    picture = from_av(item.frame, VideoBufferType.I420)
                    self._send(mid, VideoFrameEvent(picture, item.timestamp_us))
            return
        assert isinstance(queue, PcmQueue)
        pcm = queue.pop_frame()
        if pcm is None or source.muted:
            return  # nothing (the room forwards nothing of a muted track anyway)
        if (queue.sample_rate, queue.num_channels) != (RATE, CHANNELS):
            converter = self._converters.get(cid)
            if converter is None:
                converter = self._converters[cid] = _Converter(
                    queue.sample_rate, queue.num_channels
                )
            converted = converter.convert(pcm)
            if converted is None:
                return
            pcm = converted
        self._send(mid, AudioFrame(pcm, RATE, CHANNELS, FRAME_SAMPLES))

    def received(self, mid: str, payload: object) -> None:
        """A frame the room forwarded on our m-line `mid`."""
        slot = next((s for s, line in self.slots.items() if line[0] == mid), None)
        if slot is None or not isinstance(payload, AudioFrame | VideoFrameEvent):
            return
        consumers = self.router.consumers(slot)
        if not consumers:
            return  # nobody reads this track: dropped
        if isinstance(payload, VideoFrameEvent):
            own = payload.frame.convert(payload.frame.type)  # the room's payload is shared
            fan_out(consumers, VideoFrameEvent(own, payload.timestamp_us))
            return
        frame = av.AudioFrame(
            format="s16",
            layout="stereo" if payload.num_channels == 2 else "mono",
            samples=payload.samples_per_channel,
        )
        frame.planes[0].update(payload.pcm())
        frame.sample_rate = payload.sample_rate
        deliver(consumers, frame)
